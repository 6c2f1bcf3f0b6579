/**
 * Every dependency observable, end to end: a worker process with Application Insights (test/support/
 * observability-scenario.ts) against the local ingestion endpoint, Cosmos DB behind a fault proxy. Injected latency,
 * 429s with a retry-after, a failing call, a stalled and resumed edge projection, a waiting and a dead-lettered queue
 * message must move the exported metrics and the log fields as docs/operations.md describes them.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { startIngestionEndpoint, type Envelope, type IngestionEndpoint } from '../../local/appinsights';
import type { BacklogReport } from '../../shared/monitoring/backlogs';
import { INJECTED_ACTIVITY_ID, INJECTED_DELAY_IN_MS, INJECTED_THROTTLES, RETRY_AFTER_IN_MS, SLOW_POINT_OPERATION_MS } from '../support/observability-faults';
import { testEnvironment } from '../support/stack';

jest.setTimeout(240_000);

interface Facts {
  brokenError: string | undefined;
  mirrorWrites: number;
  idle: BacklogReport;
  stalled: BacklogReport;
  caughtUp: BacklogReport;
  waiting: BacklogReport;
  deadLettered: BacklogReport;
}

let ingestion: IngestionEndpoint;
let logs: Array<Record<string, unknown>>;
let facts: Facts;

beforeAll(async () => {
  ingestion = await startIngestionEndpoint();
  const env = {
    ...process.env,
    ...testEnvironment({
      APPLICATIONINSIGHTS_CONNECTION_STRING: ingestion.connectionString,
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD',
      TELEMETRY_TRACES_PER_SECOND: '0',
      LOG_LEVEL: 'info',
    }),
    NODE_EXTRA_CA_CERTS: ingestion.certificatePath,
  };
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, '..', 'support', 'observability-scenario.ts')], {
    env,
    cwd: join(__dirname, '..', '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`the observability scenario failed (${code}):\n${(stdout + stderr).slice(-4000)}`);
  const lines = stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  facts = lines.find((line) => 'facts' in line)!.facts as Facts;
  logs = lines.filter((line) => 'message' in line);
});

afterAll(async () => {
  await ingestion?.close();
});

interface ExportedMetric {
  name: string;
  value: number;
  count: number;
  min?: number;
  max?: number;
  properties: Record<string, string>;
}

/** Every metric the process exported, with its dimensions. */
function metrics(name: string, dimensions: Record<string, string> = {}): ExportedMetric[] {
  return ingestion.envelopes
    .filter((e: Envelope) => e.data?.baseType === 'MetricData')
    .flatMap((e) => {
      const baseData = e.data!.baseData as { metrics: Array<Omit<ExportedMetric, 'properties'>>; properties?: Record<string, string> };
      return baseData.metrics.map((m) => ({ ...m, properties: baseData.properties ?? {} }));
    })
    .filter((m) => m.name === name && Object.entries(dimensions).every(([k, v]) => m.properties[k] === v));
}

const total = (found: ExportedMetric[]) => found.reduce((sum, m) => sum + m.value, 0);

test('Cosmos DB latency: every call is a dependency.duration, the injected delay shows, a slow call is logged with its diagnostics', () => {
  const reads = metrics('dependency.duration', { dependency: 'cosmos', operation: 'entities.read', status: '404', retries: '0', outcome: 'success' });
  expect(reads.length).toBeGreaterThan(0);
  expect(Math.max(...reads.map((m) => m.max ?? 0))).toBeGreaterThanOrEqual(INJECTED_DELAY_IN_MS);
  const slow = logs.filter((l) => typeof l.message === 'string' && l.message.startsWith('Slow Cosmos DB call: read slow-'));
  expect(slow).toHaveLength(3);
  for (const line of slow) {
    expect(line).toMatchObject({ level: 'warn', dependency: 'cosmos', container: 'entities', operation: 'read', statusCode: 404, retries: 0, requestCharge: expect.any(Number) });
    expect(line.durationInMs as number).toBeGreaterThanOrEqual(SLOW_POINT_OPERATION_MS);
    expect(line.activityId).toMatch(/^[0-9a-f-]{36}$/);
    expect((line.diagnostics as { requests: unknown[] }).requests.length).toBeGreaterThan(0);
  }
  // The throttled read waited out two retry-afters: slow too, and its log shows why.
  const throttled = logs.filter((l) => l.message === 'Slow Cosmos DB call: read throttle-1');
  expect(throttled).toHaveLength(1);
  expect(throttled[0]).toMatchObject({ statusCode: 404, retries: INJECTED_THROTTLES, diagnostics: { failedAttempts: Array(INJECTED_THROTTLES).fill(expect.objectContaining({ statusCode: 429 })) } });
  // Calls under the threshold are not logged: every line is a call that took at least that long.
  for (const line of logs.filter((l) => typeof l.message === 'string' && l.message.startsWith('Slow Cosmos DB call'))) {
    expect(line.durationInMs as number).toBeGreaterThanOrEqual(SLOW_POINT_OPERATION_MS);
  }
});

test('throttling: each 429 counted per container and operation, the retry-after honoured, the call a success after its retries', () => {
  expect(total(metrics('cosmos.throttled', { container: 'entities', operation: 'read' }))).toBe(INJECTED_THROTTLES);
  const waits = metrics('cosmos.throttle_wait_ms', { container: 'entities', operation: 'read' });
  expect(waits.reduce((n, m) => n + m.count, 0)).toBe(1);
  // Two waits of the server's retry-after (the SDK may start the next attempt a little early: allow 10 %).
  expect(waits[0]!.value).toBeGreaterThanOrEqual(INJECTED_THROTTLES * RETRY_AFTER_IN_MS * 0.9);
  expect(metrics('dependency.duration', { dependency: 'cosmos', operation: 'entities.read', retries: String(INJECTED_THROTTLES), outcome: 'success' })).not.toHaveLength(0);
  // The request charge per operation is there for the operator to compare with the throughput.
  expect(metrics('cosmos.request_charge', { container: 'entities', operation: 'create' }).reduce((n, m) => n + m.count, 0)).toBeGreaterThan(0);
});

test('a failed Cosmos DB call: one log line with activity id, status, sub-status, request charge and retries; counted as a failure', () => {
  expect(facts.brokenError).toBe('CosmosOperationError');
  const failed = logs.filter((l) => l.message === 'Cosmos DB call failed: read broken-1');
  expect(failed).toHaveLength(1);
  expect(failed[0]).toMatchObject({ level: 'warn', container: 'entities', operation: 'read', statusCode: 500, subStatusCode: 21008, retries: expect.any(Number), requestCharge: 0 });
  expect(failed[0]!.activityId).toBe(INJECTED_ACTIVITY_ID);
  expect(metrics('dependency.duration', { dependency: 'cosmos', operation: 'entities.read', status: '500', outcome: 'failure' })).not.toHaveLength(0);
});

test('Backstage, Service Bus and the token endpoint are dependencies too, with status and retries', () => {
  expect(metrics('dependency.duration', { dependency: 'backstage', status: '200', outcome: 'success' }).map((m) => m.properties.operation)).toEqual(
    expect.arrayContaining([expect.stringMatching(/^(GET|POST) \/api\/catalog\/entities/)]),
  );
  expect(metrics('dependency.duration', { dependency: 'servicebus', operation: 'send', status: 'ok', retries: '0' })).not.toHaveLength(0);
  expect(metrics('dependency.duration', { dependency: 'servicebus', operation: 'peek', status: 'ok' })).not.toHaveLength(0);
  const tokens = metrics('dependency.duration', { dependency: 'identity', operation: 'token', status: '200', outcome: 'success' });
  expect(tokens.reduce((n, m) => n + m.count, 0)).toBeGreaterThan(0);
  // No operation names an entity: one series per endpoint.
  for (const m of metrics('dependency.duration', { dependency: 'backstage' })) expect(m.properties.operation).not.toMatch(/payments|billing|component\//);
});

test('change-feed backlog: 0 when caught up, every mirror write while the projection is stalled, 0 again once it resumes', () => {
  expect(facts.mirrorWrites).toBeGreaterThan(5);
  expect(facts.idle.changeFeedTotals).toEqual({ projectEdges: 0 });
  expect(facts.stalled.changeFeedTotals).toEqual({ projectEdges: facts.mirrorWrites });
  expect(facts.stalled.changeFeed).toEqual([expect.objectContaining({ processor: 'projectEdges', lease: '-FF', estimatedBacklog: facts.mirrorWrites })]);
  expect(facts.caughtUp.changeFeedTotals).toEqual({ projectEdges: 0 });
  const exported = metrics('changefeed.estimated_backlog', { processor: 'projectEdges', lease: '-FF' });
  expect(Math.max(...exported.map((m) => m.max ?? m.value))).toBe(facts.mirrorWrites);
  expect(Math.min(...exported.map((m) => m.min ?? m.value))).toBe(0);
  const measured = logs.filter((l) => l.message === 'Backlogs measured');
  expect(measured.map((l) => (l.changeFeed as Record<string, number>).projectEdges)).toEqual([0, facts.mirrorWrites, 0, 0, 0]);
});

test('the queue: the age of a waiting message, then a dead letter counted', () => {
  expect(facts.idle.queue).toMatchObject({ oldestMessageAgeInMs: 0, deadLetters: 0, deadLettersCapped: false });
  expect(facts.waiting.queue!.oldestMessageAgeInMs).toBeGreaterThanOrEqual(1_000);
  expect(facts.waiting.queue!.deadLetters).toBe(0);
  expect(facts.deadLettered.queue).toMatchObject({ oldestMessageAgeInMs: 0, deadLetters: 1 });
  expect(Math.max(...metrics('queue.oldest_message_age_ms').map((m) => m.max ?? m.value))).toBeGreaterThanOrEqual(1_000);
  expect(Math.max(...metrics('queue.dead_letters').map((m) => m.max ?? m.value))).toBe(1);
  for (const report of [facts.idle, facts.stalled, facts.caughtUp, facts.waiting, facts.deadLettered]) expect(report.failures).toEqual([]);
});

test('no token in any log line or envelope', () => {
  const everything = JSON.stringify(ingestion.envelopes) + JSON.stringify(logs);
  expect(everything).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}/);
});
