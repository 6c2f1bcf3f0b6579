/**
 * The one mapping from errors to problems: what a caller is told, and that a dependency that timed out or failed
 * transiently is a 503 with Retry-After — never a 500, however the timeout reached the endpoint.
 */
import { ProblemType, toProblem } from '../../shared/http/problem';
import {
  AuthenticationError,
  AuthorizationError,
  BackstageUnavailableError,
  CosmosOperationError,
  InvalidRequestError,
  NotFoundError,
  OperationAbortedError,
  QueueUnavailableError,
  SyncServiceError,
} from '../../shared/platform/errors';
import type { Logger } from '../../shared/platform/logger';

function capture(): Logger & { lines: Array<{ level: string; message: string }> } {
  const lines: Array<{ level: string; message: string }> = [];
  const log = (level: string) => (message: string) => void lines.push({ level, message });
  const logger = { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), child: () => logger } as unknown as Logger & { lines: typeof lines };
  return logger;
}

const bodyOf = (response: { body?: string }) => JSON.parse(response.body ?? '{}') as { type: string; status: number };

/** The Cosmos DB SDK's own request timeout, as it throws it. */
class CosmosSdkTimeout extends Error {
  code = 'TimeoutError';
  override name = 'TimeoutError';
}

test.each([
  ['a deadline of ours (DOMException TimeoutError)', new DOMException('Timed out after 10000 ms', 'TimeoutError')],
  ['the Cosmos DB SDK request timeout, unwrapped', new CosmosSdkTimeout('Timeout Error! Request took more than 10000 ms')],
  ['a socket timeout', Object.assign(new Error('connect ETIMEDOUT 10.0.0.4:443'), { code: 'ETIMEDOUT' })],
  ['undici headers timeout', Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('Headers Timeout Error'), { code: 'UND_ERR_HEADERS_TIMEOUT' }) })],
  ['a Service Bus operation timeout', Object.assign(new Error('operation timed out'), { code: 'OperationTimeoutError' })],
  ['a non-transient typed error caused by a timeout', new SyncServiceError('wrapped', { code: 'Wrapped', cause: new DOMException('x', 'TimeoutError') })],
  ['work cut short by the worker stopping', new OperationAbortedError('Cosmos DB read aborted', new DOMException('x', 'AbortError'))],
  ['Cosmos DB throttling that outlasted the retries', new CosmosOperationError('throttled', 429)],
  ['Backstage unavailable', new BackstageUnavailableError('Backstage GET /x still failing', 503)],
  ['the queue unreachable', new QueueUnavailableError('no link')],
])('%s: 503 unavailable with Retry-After, logged as a dependency failure', (_name, error) => {
  const logger = capture();
  const response = toProblem(error, logger);
  expect({ status: response.status, type: bodyOf(response).type, retryAfter: response.headers['retry-after'] }).toEqual({ status: 503, type: ProblemType.unavailable, retryAfter: '5' });
  expect(logger.lines).toEqual([{ level: 'warn', message: 'Request failed on a dependency' }]);
});

test.each([
  ['an error the code does not know', new TypeError("Cannot read properties of undefined (reading 'x')")],
  ['a Cosmos DB refusal that retrying will not fix', new CosmosOperationError('bad request', 400)],
  ['a string thrown', 'boom'],
])('%s: 500 internal, logged at error level, no detail given away', (_name, error) => {
  const logger = capture();
  const response = toProblem(error, logger);
  expect({ status: response.status, type: bodyOf(response).type }).toEqual({ status: 500, type: ProblemType.internal });
  expect(response.body).not.toContain(String(error instanceof Error ? error.message : error));
  expect(logger.lines).toEqual([{ level: 'error', message: 'Request failed' }]);
});

test('the caller\'s errors keep their statuses', () => {
  const logger = capture();
  expect(toProblem(new AuthenticationError('no token'), logger).status).toBe(401);
  expect(toProblem(new AuthorizationError(['Catalog.Admin'], { subject: 's' }), logger).status).toBe(403);
  expect(toProblem(new InvalidRequestError('bad'), logger).status).toBe(400);
  expect(toProblem(new NotFoundError('none'), logger).status).toBe(404);
  expect(logger.lines).toEqual([]);
});
