/**
 * The typed error hierarchy of the core. Every error carries a stable `code` and, where it wraps
 * another failure, the original as `cause`. `transient` says whether trying again later can succeed;
 * the queue trigger and the reconciler use it to decide between retry and dead-letter.
 */
export class SyncServiceError extends Error {
  readonly code: string;
  readonly transient: boolean;

  constructor(message: string, options: { code: string; transient?: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.transient = options.transient ?? false;
  }
}

/** One problem with one setting, as reported by {@link ConfigurationError}. */
export interface ConfigurationIssue {
  setting: string;
  message: string;
}

/** The configuration is missing or invalid. Raised once, at start-up, naming every bad setting. */
export class ConfigurationError extends SyncServiceError {
  readonly issues: readonly ConfigurationIssue[];

  constructor(issues: readonly ConfigurationIssue[]) {
    super(
      `Invalid configuration (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n` +
        issues.map((i) => `  - ${i.setting}: ${i.message}`).join('\n'),
      { code: 'ConfigurationInvalid' },
    );
    this.issues = issues;
  }
}

/** A string that is not a valid Backstage entity reference (or document id). */
export class InvalidEntityRefError extends SyncServiceError {
  readonly input: string;
  constructor(input: string, reason: string) {
    super(`Invalid entity reference ${JSON.stringify(truncate(input, 200))}: ${reason}`, { code: 'InvalidEntityRef' });
    this.input = input;
  }
}

/** Backstage answered 401/403 even after a fresh token: a trust or permission problem, not a transient one. */
export class BackstageAuthError extends SyncServiceError {
  readonly status: number;
  constructor(message: string, status: number, cause?: unknown) {
    super(message, { code: status === 403 ? 'BackstageForbidden' : 'BackstageUnauthorized', cause });
    this.status = status;
  }
}

/** Backstage could not be reached or kept failing (429, 5xx, timeouts) after the bounded retries. */
export class BackstageUnavailableError extends SyncServiceError {
  readonly status: number | undefined;
  constructor(message: string, status: number | undefined, cause?: unknown) {
    super(message, { code: 'BackstageUnavailable', transient: true, cause });
    this.status = status;
  }
}

/** Backstage answered with an unexpected client error (e.g. 400): retrying will not help. */
export class BackstageRequestError extends SyncServiceError {
  readonly status: number;
  constructor(message: string, status: number, cause?: unknown) {
    super(message, { code: 'BackstageRequestFailed', cause });
    this.status = status;
  }
}

/** A Cosmos DB operation failed. `statusCode` is Cosmos's; 429/408/449/5xx are transient. */
export class CosmosOperationError extends SyncServiceError {
  readonly statusCode: number | undefined;
  /** What Cosmos asked us to wait (429), when it said. */
  retryAfterInMs?: number;
  constructor(message: string, statusCode: number | undefined, cause?: unknown) {
    super(message, { code: 'CosmosOperationFailed', transient: isTransientCosmosStatus(statusCode), cause });
    this.statusCode = statusCode;
  }
}

/** Optimistic concurrency kept losing: another writer changed the document every time we tried. */
export class ConcurrencyConflictError extends SyncServiceError {
  readonly entityRef: string;
  constructor(entityRef: string, attempts: number) {
    super(`Gave up syncing ${entityRef} after ${attempts} attempts: the mirror document kept changing underneath`, {
      code: 'ConcurrencyConflict',
      transient: true,
    });
    this.entityRef = entityRef;
  }
}

/** The caller's abort signal fired. */
export class OperationAbortedError extends SyncServiceError {
  constructor(message = 'The operation was aborted', cause?: unknown) {
    super(message, { code: 'Aborted', cause });
  }
}

export function isTransientCosmosStatus(statusCode: number | undefined): boolean {
  if (statusCode === undefined) return true; // network failure, no answer at all
  return statusCode === 408 || statusCode === 429 || statusCode === 449 || statusCode >= 500;
}

export function isTransient(error: unknown): boolean {
  return error instanceof SyncServiceError ? error.transient : false;
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

function truncate(value: string, max: number): string {
  return value.length > max ? `${value.slice(0, max)}…` : value;
}
