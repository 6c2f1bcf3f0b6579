/**
 * What the Functions host would receive when it loads the app: the binding metadata of every function.
 * `@azure/functions` hands registrations to `@azure/functions-core`, which only exists inside the host;
 * a virtual module captures them here.
 */
import { OPERATIONS } from '../support/contract';

const registered: Array<{ name: string; bindings: Record<string, Record<string, unknown>>; retryOptions?: unknown }> = [];
const hooks: string[] = [];

jest.mock(
  '@azure/functions-core',
  () => ({
    setProgrammingModel: () => undefined,
    getProgrammingModel: () => undefined,
    registerFunction: (metadata: (typeof registered)[number]) => {
      registered.push(metadata);
      return { dispose: () => undefined };
    },
    registerHook: (name: string) => {
      hooks.push(name);
      return { dispose: () => undefined };
    },
    log: () => undefined,
  }),
  { virtual: true },
);

beforeAll(() => {
  process.env.RECONCILE_SCHEDULE = '0 0 */2 * * *';
  process.env.SERVICEBUS_QUEUE_NAME = 'entity-sync-test';
  process.env.COSMOS_DATABASE_NAME = 'catalog-test';
  jest.isolateModules(() => {
    require('../../functions/health');
    require('../../functions/getEntity');
    require('../../functions/getEntityHistory');
    require('../../functions/getChanges');
    require('../../functions/adminReconcile');
    require('../../functions/getReconcileRun');
    require('../../functions/reconcileCatalog');
    require('../../functions/catalogEvents');
    require('../../functions/listDeadLetters');
    require('../../functions/replayDeadLetters');
    require('../../functions/syncEntity');
    require('../../functions/projectEdges');
    require('../../functions/recordHistory');
    require('../../functions/graph');
    require('../../functions/listProjectionFailures');
    require('../../functions/replayProjectionFailures');
    require('../../functions/selfCheck');
    require('../../functions/openapi');
    require('../../functions/getAuthored');
    require('../../functions/putAuthored');
    require('../../functions/deleteAuthored');
  });
});
afterAll(() => {
  delete process.env.RECONCILE_SCHEDULE;
  delete process.env.SERVICEBUS_QUEUE_NAME;
  delete process.env.COSMOS_DATABASE_NAME;
});

function trigger(name: string) {
  const fn = registered.find((f) => f.name === name);
  expect(fn).toBeDefined();
  return Object.values(fn!.bindings).find((b) => String(b.type).endsWith('Trigger'))!;
}

test('the HTTP functions and their routes', () => {
  expect(trigger('health')).toMatchObject({ type: 'httpTrigger', route: 'health', methods: ['GET'], authLevel: 'anonymous' });
  expect(trigger('getEntity')).toMatchObject({ type: 'httpTrigger', route: 'entities/{kind}/{namespace}/{name}', methods: ['GET'] });
  expect(trigger('getEntityHistory')).toMatchObject({ type: 'httpTrigger', route: 'entities/{kind}/{namespace}/{name}/history', methods: ['GET'] });
  expect(trigger('getChanges')).toMatchObject({ type: 'httpTrigger', route: 'changes', methods: ['GET'] });
  expect(trigger('adminReconcile')).toMatchObject({ type: 'httpTrigger', route: 'admin/reconcile', methods: ['POST'] });
  expect(trigger('getReconcileRun')).toMatchObject({ type: 'httpTrigger', route: 'admin/reconcile/runs/{id}', methods: ['GET'], authLevel: 'anonymous' });
  expect(trigger('catalogEvents')).toMatchObject({ type: 'httpTrigger', route: 'catalog/events', methods: ['POST'], authLevel: 'anonymous' });
  expect(trigger('listDeadLetters')).toMatchObject({ type: 'httpTrigger', route: 'admin/deadletters', methods: ['GET'] });
  expect(trigger('replayDeadLetters')).toMatchObject({ type: 'httpTrigger', route: 'admin/deadletters/replay', methods: ['POST'] });
  expect(trigger('selfCheck')).toMatchObject({ type: 'httpTrigger', route: 'admin/self-check', methods: ['GET'], authLevel: 'anonymous' });
  expect(trigger('openapi')).toMatchObject({ type: 'httpTrigger', route: 'openapi.json', methods: ['GET'], authLevel: 'anonymous' });
});

test('every HTTP function is an operation of the OpenAPI contract, and every operation is a function', () => {
  const functions = registered
    .map((f) => Object.values(f.bindings).find((b) => b.type === 'httpTrigger'))
    .filter((b): b is Record<string, unknown> => b !== undefined)
    .flatMap((b) => (b.methods as string[]).map((method) => `${method} /api/${String(b.route)}`));
  expect(functions.sort()).toEqual(OPERATIONS.map((o) => `${o.method} ${o.template}`).sort());
});

test('the sync trigger: a session queue from the setting, identity connection, SDK binding with manual settlement', () => {
  expect(trigger('syncEntity')).toMatchObject({
    type: 'serviceBusTrigger',
    connection: 'ServiceBusConnection',
    queueName: 'entity-sync-test',
    isSessionsEnabled: true,
    sdkBinding: true,
    autoCompleteMessages: false,
    cardinality: 'one',
  });
});

test('the change-feed trigger: identity connection, never creates the leases container, retries with backoff', () => {
  expect(trigger('projectEdges')).toMatchObject({
    type: 'cosmosDBTrigger',
    connection: 'CosmosDBConnection',
    databaseName: 'catalog-test',
    containerName: 'entities',
    leaseContainerName: 'leases',
    createLeaseContainerIfNotExists: false,
    maxItemsPerInvocation: 100,
    startFromBeginning: true,
  });
  expect(registered.find((f) => f.name === 'projectEdges')!.retryOptions).toMatchObject({ strategy: 'exponentialBackoff', maxRetryCount: 5 });
  expect(trigger('graph')).toMatchObject({ type: 'httpTrigger', route: 'graph/{kind}/{namespace}/{name}', methods: ['GET'] });
  expect(trigger('listProjectionFailures')).toMatchObject({ route: 'admin/projection-failures', methods: ['GET'] });
  expect(trigger('replayProjectionFailures')).toMatchObject({ route: 'admin/projection-failures/replay', methods: ['POST'] });
});

test('the history trigger reads the same feed under its own lease prefix, from the beginning, and retries with backoff', () => {
  expect(trigger('recordHistory')).toMatchObject({
    type: 'cosmosDBTrigger',
    connection: 'CosmosDBConnection',
    databaseName: 'catalog-test',
    containerName: 'entities',
    leaseContainerName: 'leases',
    leaseContainerPrefix: 'recordHistory-',
    createLeaseContainerIfNotExists: false,
    startFromBeginning: true,
  });
  expect(trigger('projectEdges')).toMatchObject({ leaseContainerPrefix: 'projectEdges-' });
  expect(registered.find((f) => f.name === 'recordHistory')!.retryOptions).toMatchObject({ strategy: 'exponentialBackoff', maxRetryCount: 5 });
});

test('the reconcile timer uses RECONCILE_SCHEDULE and retries with backoff', () => {
  expect(trigger('reconcileCatalog')).toMatchObject({ type: 'timerTrigger', schedule: '0 0 */2 * * *', useMonitor: true, runOnStartup: false });
  expect(registered.find((f) => f.name === 'reconcileCatalog')!.retryOptions).toMatchObject({ strategy: 'exponentialBackoff', maxRetryCount: 3 });
});

test('configuration is validated at app start', () => {
  expect(hooks).toContain('appStart');
});
