import type { CosmosDiagnostics } from '@azure/cosmos';
import { LogAllowance, summarizeDiagnostics, trimDiagnostics } from '../../shared/platform/cosmos';
import { latencyBucket, noAnswerStatus, recordDependencyCall, retriesBucket } from '../../shared/platform/dependencies';
import { InMemoryMetrics } from '../../shared/platform/metrics';
import { routeOf } from '../../shared/sync/catalog-reader';

test('one call is one dependency.duration measurement and one dependency.calls count in its latency bucket', () => {
  const metrics = new InMemoryMetrics();
  recordDependencyCall(metrics, { dependency: 'cosmos', operation: 'entities.read', status: 404, retries: 0, durationInMs: 12, success: true });
  recordDependencyCall(metrics, { dependency: 'cosmos', operation: 'entities.read', status: 503, retries: 5, durationInMs: 12_000, success: false });
  expect(metrics.series('dependency.duration').map((s) => s.dimensions)).toEqual([
    { dependency: 'cosmos', operation: 'entities.read', outcome: 'success', retries: '0', status: '404' },
    { dependency: 'cosmos', operation: 'entities.read', outcome: 'failure', retries: '3+', status: '503' },
  ]);
  expect(metrics.counter('dependency.calls', { dependency: 'cosmos', operation: 'entities.read', outcome: 'success', le: '25' })).toBe(1);
  expect(metrics.counter('dependency.calls', { dependency: 'cosmos', operation: 'entities.read', outcome: 'failure', le: '+Inf' })).toBe(1);
});

test('buckets: latency bounds are inclusive, retries are exact up to 2', () => {
  expect([0, 10, 10.1, 250, 251, 10_000, 10_001].map(latencyBucket)).toEqual(['10', '10', '25', '250', '500', '10000', '+Inf']);
  expect([0, 1, 2, 3, 9].map(retriesBucket)).toEqual(['0', '1', '2', '3+', '3+']);
});

test('a call without an answer is aborted, a timeout or a network failure', () => {
  expect(noAnswerStatus(new Error('x'), true)).toBe('aborted');
  expect(noAnswerStatus(new DOMException('late', 'TimeoutError'))).toBe('timeout');
  expect(noAnswerStatus(Object.assign(new Error('x'), { code: 'ETIMEDOUT' }))).toBe('timeout');
  expect(noAnswerStatus(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe('network');
});

test('Backstage routes name the endpoint, never the entity', () => {
  expect(routeOf('/api/catalog/entities/by-name/component/default/payments')).toBe('/api/catalog/entities/by-name/{ref}');
  expect(routeOf('/api/catalog/entities/by-uid/4f1c')).toBe('/api/catalog/entities/by-uid/{ref}');
  expect(routeOf('/api/catalog/locations/8a1d/refresh')).toBe('/api/catalog/locations/{id}');
  expect(routeOf('/api/catalog/entities/by-query')).toBe('/api/catalog/entities/by-query');
  expect(routeOf('/api/catalog/entities/by-refs')).toBe('/api/catalog/entities/by-refs');
});

/** Diagnostics as the SDK shapes them (only what the summary reads). */
function diagnostics(stats: { failed?: Array<[number, number, number]>; requests?: Array<[number, number, number, string?]> }): CosmosDiagnostics {
  return {
    clientSideRequestStatistics: {
      retryDiagnostics: {
        failedAttempts: (stats.failed ?? []).map(([start, duration, status], i) => ({ attemptNumber: i, activityId: `failed-${i}`, startTimeUTCInMs: start, durationInMs: duration, statusCode: status, requestPayloadLengthInBytes: 0, responsePayloadLengthInBytes: 0 })),
      },
      gatewayStatistics: (stats.requests ?? []).map(([start, duration, status, activityId]) => ({ startTimeUTCInMs: start, durationInMs: duration, statusCode: status, ...(activityId && { activityId }) })),
      metadataDiagnostics: { metadataLookups: [] },
      locationEndpointsContacted: [],
    },
  } as unknown as CosmosDiagnostics;
}

test('diagnostics: retries, the 429s among them, the retry-after waited between each 429 and the next attempt, the last activity id', () => {
  const throttled = diagnostics({
    failed: [
      [1_000, 5, 429],
      [1_305, 5, 429],
    ],
    requests: [[1_620, 10, 200, 'final']],
  });
  // 1005 → 1305 and 1310 → 1620: the two retry-afters (300 and 310 ms).
  expect(summarizeDiagnostics(throttled)).toEqual({ retries: 2, throttled: 2, throttleWaitInMs: 610, activityId: 'final' });
  expect(trimDiagnostics(throttled)).toMatchObject({ failedAttempts: [{ statusCode: 429 }, { statusCode: 429 }], requests: [{ activityId: 'final', statusCode: 200 }] });
});

test('diagnostics: a wait after another failure is not a throttle wait; missing diagnostics are zeros; long ones are trimmed', () => {
  expect(summarizeDiagnostics(diagnostics({ failed: [[0, 5, 503]], requests: [[500, 5, 200]] }))).toMatchObject({ retries: 1, throttled: 0, throttleWaitInMs: 0 });
  expect(summarizeDiagnostics(undefined)).toMatchObject({ retries: 0, throttled: 0, throttleWaitInMs: 0 });
  const many = diagnostics({ requests: Array.from({ length: 8 }, (_, i): [number, number, number, string] => [i * 10, 5, 200, `r${i}`]) });
  expect(trimDiagnostics(many)).toMatchObject({ requestsOmitted: 3 });
  expect((trimDiagnostics(many).requests as unknown[]).length).toBe(5);
  expect(summarizeDiagnostics(many).activityId).toBe('r7');
});

test('diagnostics log lines: at most the allowance per key and window, then how many alike were not logged', () => {
  let now = 0;
  const allowance = new LogAllowance(2, 60_000, () => now);
  expect([1, 2, 3, 4].map(() => allowance.take('create|429'))).toEqual([
    { allowed: true, suppressed: 0 },
    { allowed: true, suppressed: 0 },
    { allowed: false, suppressed: 0 },
    { allowed: false, suppressed: 0 },
  ]);
  expect(allowance.take('read|503')).toEqual({ allowed: true, suppressed: 0 });
  now = 60_000;
  expect(allowance.take('create|429')).toEqual({ allowed: true, suppressed: 2 });
  expect(allowance.take('create|429')).toEqual({ allowed: true, suppressed: 0 });
});

test('series hand back the dimensions as recorded, also values with commas and equals signs', () => {
  const metrics = new InMemoryMetrics();
  metrics.record('m', 1, { operation: 'GET /x?a=1,b=2', status: 200 });
  expect(metrics.series('m')).toEqual([{ dimensions: { operation: 'GET /x?a=1,b=2', status: '200' }, summary: { count: 1, sum: 1, min: 1, max: 1 } }]);
});
