import { backoffDelay, parseRetryAfter, retryDelay, sleep } from '../../shared/platform/backoff';
import { OperationAbortedError } from '../../shared/platform/errors';

const options = { baseDelayInMs: 100, maxDelayInMs: 5_000 };

test('delays double per attempt, with jitter between half and all of the cap', () => {
  expect(backoffDelay(0, { ...options, random: () => 0 })).toBe(50);
  expect(backoffDelay(0, { ...options, random: () => 0.999999 })).toBe(100);
  expect(backoffDelay(3, { ...options, random: () => 0 })).toBe(400);
  expect(backoffDelay(3, { ...options, random: () => 0.5 })).toBe(600);
});

test('delays never exceed the maximum', () => {
  for (let attempt = 0; attempt < 40; attempt += 1) {
    const delay = backoffDelay(attempt, options);
    expect(delay).toBeGreaterThanOrEqual(Math.min(options.maxDelayInMs, 100 * 2 ** attempt) / 2);
    expect(delay).toBeLessThanOrEqual(options.maxDelayInMs);
  }
});

test('jitter spreads concurrent retries', () => {
  const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(4, options)));
  expect(delays.size).toBeGreaterThan(10);
});

test('Retry-After: seconds, HTTP dates, garbage', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  expect(parseRetryAfter('3', now)).toBe(3000);
  expect(parseRetryAfter('0.5', now)).toBe(500);
  expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10_000);
  expect(parseRetryAfter('Wed, 31 Dec 2025 23:59:00 GMT', now)).toBe(0);
  expect(parseRetryAfter('soon', now)).toBeUndefined();
  expect(parseRetryAfter('', now)).toBeUndefined();
  expect(parseRetryAfter(null, now)).toBeUndefined();
  expect(parseRetryAfter('-1', now)).toBeUndefined();
});

test('the server-requested delay wins, capped by the maximum', () => {
  expect(retryDelay(0, 2_000, options)).toBe(2_000);
  expect(retryDelay(0, 60_000, options)).toBe(5_000);
  expect(retryDelay(0, 0, options)).toBe(0);
  expect(retryDelay(2, undefined, { ...options, random: () => 0 })).toBe(200);
});

test('sleep rejects when aborted, before or during', async () => {
  const aborted = AbortSignal.abort();
  await expect(sleep(10, aborted)).rejects.toBeInstanceOf(OperationAbortedError);
  const controller = new AbortController();
  const pending = sleep(10_000, controller.signal);
  controller.abort();
  await expect(pending).rejects.toBeInstanceOf(OperationAbortedError);
  await expect(sleep(1)).resolves.toBeUndefined();
});
