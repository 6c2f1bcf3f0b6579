/**
 * Maintenance runs (POST /api/admin/reconcile → 202): the run's document in the Cosmos emulator through the app's own
 * identity and roles, and what the worker does with a command — claim it once, settle the message before running,
 * write heartbeats with progress, record how it ended. The maintenance itself is a scripted stand-in here (what a run
 * does is the reconcile's business, tested with it); the end-to-end path through the queue is in functions.test and
 * hostile-input.test.
 */
import type { ServiceBusMessage, ServiceBusReceivedMessage } from '@azure/service-bus';
import type { Maintenance, MaintenanceResult } from '../../shared/maintenance';
import { MaintenanceRunStore } from '../../shared/maintenance-runs/run-store';
import { MAINTENANCE_SESSION_ID, MAINTENANCE_SUBJECT, MaintenanceRuns } from '../../shared/maintenance-runs/runs';
import { QueueUnavailableError } from '../../shared/platform/errors';
import type { MaintenanceRunOptions } from '../../shared/maintenance';
import type { EventQueue } from '../../shared/queue/queue';
import { createRuntime, type Runtime } from '../../shared/runtime';
import { eventually, provisionCosmos, testConfig } from '../support/stack';

jest.setTimeout(60_000);

let runtime: Runtime;
let store: MaintenanceRunStore;

beforeAll(async () => {
  const config = testConfig({ LOG_LEVEL: 'error' });
  (await provisionCosmos(config)).dispose();
  runtime = createRuntime(config);
  store = new MaintenanceRunStore(runtime.cosmosClient.database(config.cosmos.databaseName).container(config.cosmos.runsContainer), { throttleRetry: config.cosmos.throttleRetry });
});

afterAll(async () => {
  await runtime?.dispose();
});

const RESULT = {
  seen: 3,
  created: 1,
  updated: 0,
  unchanged: 2,
  tombstoned: 0,
  failed: 0,
  writes: 1,
  requestCharge: 10,
  backstageRequests: 2,
  durationInMs: 5,
  deletionGuard: { allowed: true, tripped: false, forced: false, pendingTombstones: 0 },
  scope: { excludedBySetting: 0, excludedByAnnotation: 0, envelopeOnly: 0, fieldsOmitted: 0, leftScope: { setting: 0, annotation: 0 } },
  failures: [],
  projectionFailures: { replayed: 0, failed: [] },
  selfCheck: { status: 'ok' as const, failed: [] },
} satisfies MaintenanceResult;

/** A maintenance that reports progress and ends when told to (or fails with `error`). */
function scriptedMaintenance() {
  let finish!: (outcome: { result?: MaintenanceResult; error?: Error }) => void;
  const ended = new Promise<{ result?: MaintenanceResult; error?: Error }>((resolve) => (finish = resolve));
  const calls: MaintenanceRunOptions[] = [];
  const maintenance = {
    run: async (options: MaintenanceRunOptions) => {
      calls.push(options);
      options.onProgress?.({ phase: 'write', done: 40, total: 100 });
      const outcome = await ended;
      if (outcome.error) throw outcome.error;
      return outcome.result!;
    },
  } as unknown as Maintenance;
  return { maintenance, calls, finish };
}

function recordingQueue(fail = false) {
  const sent: ServiceBusMessage[] = [];
  const queue = {
    enqueue: async (messages: ServiceBusMessage[]) => {
      if (fail) throw new QueueUnavailableError('Could not send to Service Bus queue entity-sync: no link');
      sent.push(...messages);
    },
  } as unknown as EventQueue;
  return { queue, sent };
}

function settlement(onComplete: () => void = () => undefined) {
  const settled: string[] = [];
  return {
    settled,
    complete: async () => {
      settled.push('complete');
      onComplete();
    },
    deadLetter: async (reason: string) => void settled.push(`dead-letter ${reason}`),
  };
}

const received = (message: ServiceBusMessage) => ({ ...message, sequenceNumber: undefined }) as unknown as ServiceBusReceivedMessage;

test('a request records a queued run and sends one command in the maintenance session', async () => {
  const { queue, sent } = recordingQueue();
  const runs = new MaintenanceRuns({ store, maintenance: scriptedMaintenance().maintenance, queue, logger: runtime.logger });
  const run = await runs.request({ force: true });
  expect(run).toMatchObject({ status: 'queued', force: true });
  expect(run).not.toHaveProperty('ttl');
  expect(sent).toEqual([{ messageId: `maintenance:${run.id}`, sessionId: MAINTENANCE_SESSION_ID, subject: MAINTENANCE_SUBJECT, contentType: 'application/json', body: { runId: run.id }, applicationProperties: { attempt: 1 } }]);
  expect(await runs.read(run.id)).toEqual(run);
  expect((await store.read(run.id))!.run.ttl).toBe(7 * 24 * 3600);
});

test('a command is claimed, settled before the maintenance runs, heartbeats its progress, and records the result', async () => {
  const { queue, sent } = recordingQueue();
  const script = scriptedMaintenance();
  const runs = new MaintenanceRuns({ store, maintenance: script.maintenance, queue, logger: runtime.logger, heartbeatIntervalInMs: 20 });
  const { id } = await runs.request();
  let runningWhenSettled: string | undefined;
  const settle = settlement(() => void store.read(id).then((r) => (runningWhenSettled = r?.run.status)));
  const executing = runs.execute(received(sent[0]!), settle);

  const running = await eventually(async () => {
    const run = await runs.read(id);
    return run?.progress ? run : undefined;
  }, 'a heartbeat with progress');
  expect(running).toMatchObject({ status: 'running', startedAt: expect.any(String), progress: { phase: 'write', done: 40, total: 100 } });
  expect(settle.settled).toEqual(['complete']); // settled while the maintenance still runs
  await eventually(async () => runningWhenSettled, 'the status when the message was settled');
  expect(runningWhenSettled).toBe('running');
  expect(script.calls).toMatchObject([{ force: false, trigger: 'admin' }]);

  // A second delivery of the same command (a lost settlement, a redelivery) does not start it again.
  const again = settlement();
  expect(await runs.execute(received(sent[0]!), again)).toEqual({ action: 'maintenance-skipped', runId: id, reason: 'the run is already running' });
  expect(again.settled).toEqual(['complete']);
  expect(script.calls).toHaveLength(1);

  script.finish({ result: RESULT });
  expect(await executing).toEqual({ action: 'maintenance-run', runId: id, status: 'succeeded' });
  const done = (await runs.read(id))!;
  expect(done).toMatchObject({ status: 'succeeded', result: RESULT, finishedAt: expect.any(String) });
  expect(done).not.toHaveProperty('progress');
  expect(done).not.toHaveProperty('error');
});

test('a heartbeat that fails does not keep the run from recording how it ended', async () => {
  const { queue, sent } = recordingQueue();
  const script = scriptedMaintenance();
  const runs = new MaintenanceRuns({ store, maintenance: script.maintenance, queue, logger: runtime.logger, heartbeatIntervalInMs: 20 });
  const { id } = await runs.request();
  const replace = store.replace.bind(store);
  let heartbeats = 0;
  // The claim goes through; the first heartbeat meets a Cosmos DB outage.
  const spy = jest.spyOn(store, 'replace').mockImplementation(async (run, ifMatch, options) => {
    if (run.status === 'running' && run.updatedAt !== run.startedAt && ++heartbeats === 1) throw new Error('Cosmos DB replace failed: ECONNRESET');
    return replace(run, ifMatch, options);
  });
  try {
    const executing = runs.execute(received(sent[0]!), settlement());
    await eventually(async () => heartbeats >= 2, 'a heartbeat after the failed one');
    script.finish({ result: RESULT });
    expect(await executing).toMatchObject({ status: 'succeeded' });
  } finally {
    spy.mockRestore();
  }
  expect(await runs.read(id)).toMatchObject({ status: 'succeeded', result: RESULT });
});

test('a maintenance that throws ends the run failed, with what went wrong', async () => {
  const { queue, sent } = recordingQueue();
  const script = scriptedMaintenance();
  const runs = new MaintenanceRuns({ store, maintenance: script.maintenance, queue, logger: runtime.logger });
  const { id } = await runs.request();
  script.finish({ error: new Error('Backstage GET /api/catalog/entities/by-query still failing after 5 attempts (timed out)') });
  expect(await runs.execute(received(sent[0]!), settlement())).toMatchObject({ status: 'failed' });
  expect(await runs.read(id)).toMatchObject({ status: 'failed', error: { title: 'Maintenance failed', detail: expect.stringMatching(/still failing after 5 attempts/) } });
});

test('a deletion guard that refused ends the run refused, with the result and what to do', async () => {
  const { queue, sent } = recordingQueue();
  const script = scriptedMaintenance();
  const runs = new MaintenanceRuns({ store, maintenance: script.maintenance, queue, logger: runtime.logger });
  const { id } = await runs.request();
  const guard = { allowed: false, tripped: true, forced: false, reason: 'the catalog returned no entities', pendingTombstones: 3 };
  script.finish({ result: { ...RESULT, deletionGuard: guard } });
  await runs.execute(received(sent[0]!), settlement());
  expect(await runs.read(id)).toMatchObject({ status: 'refused', result: { deletionGuard: guard }, error: { detail: expect.stringMatching(/^the catalog returned no entities\. .*force=true/) } });
});

test('a command that cannot be queued leaves no queued run behind', async () => {
  const runs = new MaintenanceRuns({ store, maintenance: scriptedMaintenance().maintenance, queue: recordingQueue(true).queue, logger: runtime.logger });
  const created: string[] = [];
  const spy = jest.spyOn(store, 'create').mockImplementation(async function (this: MaintenanceRunStore, run, options) {
    created.push(run.id);
    spy.mockRestore();
    return store.create(run, options);
  });
  await expect(runs.request()).rejects.toBeInstanceOf(QueueUnavailableError);
  expect(await runs.read(created[0]!)).toMatchObject({ status: 'failed', error: { title: 'Could not be queued' } });
});

test('commands that are not followed: an unknown run is skipped, a malformed command dead-lettered', async () => {
  const runs = new MaintenanceRuns({ store, maintenance: scriptedMaintenance().maintenance, queue: recordingQueue().queue, logger: runtime.logger });
  const unknown = settlement();
  const runId = '00000000-0000-4000-8000-00000000abcd';
  expect(await runs.execute(received({ body: { runId }, subject: MAINTENANCE_SUBJECT }), unknown)).toMatchObject({ action: 'maintenance-skipped', runId });
  expect(unknown.settled).toEqual(['complete']);
  const malformed = settlement();
  await runs.execute(received({ body: { runId: 'x', extra: true }, subject: MAINTENANCE_SUBJECT }), malformed);
  expect(malformed.settled).toEqual(['dead-letter InvalidMessage']);
});

test('a running run whose heartbeat stopped reads as abandoned', async () => {
  const { queue, sent } = recordingQueue();
  const script = scriptedMaintenance();
  let now = Date.now();
  const runs = new MaintenanceRuns({ store, maintenance: script.maintenance, queue, logger: runtime.logger, heartbeatIntervalInMs: 60_000, abandonedAfterInMs: 120_000, now: () => now });
  const { id } = await runs.request();
  const executing = runs.execute(received(sent[0]!), settlement());
  await eventually(async () => (await runs.read(id))?.status === 'running', 'the run started');
  now += 121_000;
  expect((await runs.read(id))!.status).toBe('abandoned');
  script.finish({ result: RESULT });
  await executing;
  expect((await runs.read(id))!.status).toBe('succeeded');
});
