/** The faults test/support/observability-scenario.ts injects, shared with the test that checks what they moved. */
/** Injected delay on the point reads of `slow-*`; the slow-call threshold is set below it. */
export const INJECTED_DELAY_IN_MS = 400;
export const SLOW_POINT_OPERATION_MS = 250;
/** The `retry-after` the injected 429s carry, and how many are injected. */
export const RETRY_AFTER_IN_MS = 300;
export const INJECTED_THROTTLES = 2;
/** The activity id the injected failing answers carry (Cosmos DB sends one with every answer). */
export const INJECTED_ACTIVITY_ID = '7c5e1d2a-9b3f-4e8a-8d6c-2f1b0a9e4d37';
