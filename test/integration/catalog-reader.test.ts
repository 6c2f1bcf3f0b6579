/**
 * The catalog reader's request policy (retries, Retry-After, timeouts, 401 refresh, abort) exercised with the
 * real `@backstage/catalog-client` over real HTTP, against a scripted server that answers like Backstage
 * does — and, for the happy paths, misbehaves on cue. (Fault injection in front of the real Backstage
 * stand-in is a separate suite.)
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CatalogReader } from '../../shared/sync/catalog-reader';
import { BackstageAuthError, BackstageRequestError, BackstageUnavailableError, OperationAbortedError } from '../../shared/platform/errors';
import type { BackstageTokenProvider, GetTokenOptions } from '../../shared/platform/identity';
import { createJsonLogger } from '../../shared/platform/logger';
import { InMemoryMetrics } from '../../shared/platform/metrics';

type Handler = (req: http.IncomingMessage, body: string, res: http.ServerResponse) => void;

let server: http.Server;
let baseUrl: string;
let script: Handler[] = [];
const seen: Array<{ method: string; url: string; authorization: string | undefined; body: string }> = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization, body });
      const handler = script.shift() ?? ((_q, _b, r) => r.writeHead(500).end());
      handler(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => {
  server.closeAllConnections();
  server.close(() => r());
}));
beforeEach(() => {
  script = [];
  seen.length = 0;
});

const entity = (name: string) => ({
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: { name, namespace: 'default', uid: `uid-${name}`, etag: `etag-${name}` },
  spec: {},
});
const json = (status: number, value: unknown, headers: Record<string, string> = {}): Handler => (_q, _b, res) =>
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(value));
const error = (status: number, message: string, headers: Record<string, string> = {}) =>
  json(status, { error: { name: 'Error', message }, response: { statusCode: status } }, headers);

class RecordingTokens implements BackstageTokenProvider {
  calls: GetTokenOptions[] = [];
  async getToken(options: GetTokenOptions = {}) {
    this.calls.push(options);
    return `token-${this.calls.filter((c) => c.forceRefresh).length}`;
  }
}

function reader(overrides: Partial<ConstructorParameters<typeof CatalogReader>[0]> = {}) {
  const logs: Array<Record<string, unknown>> = [];
  const tokens = new RecordingTokens();
  const metrics = new InMemoryMetrics();
  const r = new CatalogReader({
    baseUrl,
    tokenProvider: tokens,
    requestTimeoutInMs: 2_000,
    maxRetries: 3,
    retryBaseDelayInMs: 1,
    retryMaxDelayInMs: 5_000,
    pageSize: 2,
    logger: createJsonLogger({ level: 'debug', write: (l) => logs.push(JSON.parse(l)) }),
    metrics,
    ...overrides,
  });
  return { r, logs, tokens, metrics };
}

test('getEntityByRef sends the bearer token and returns the entity', async () => {
  script = [json(200, entity('a'))];
  const { r } = reader();
  expect(await r.getEntityByRef('component:default/a')).toEqual(entity('a'));
  expect(seen[0]).toMatchObject({ method: 'GET', url: '/api/catalog/entities/by-name/component/default/a', authorization: 'Bearer token-0' });
});

test('404 means absent, without retries', async () => {
  script = [error(404, 'NotFound')];
  const { r } = reader();
  expect(await r.getEntityByRef('component:default/gone')).toBeUndefined();
  expect(r.requestCount).toBe(1);
});

test('502/503/504 are retried with backoff until success', async () => {
  script = [error(503, 'down'), error(502, 'bad gateway'), error(504, 'timeout'), json(200, entity('a'))];
  const { r, metrics, logs } = reader();
  expect(await r.getEntityByRef('component:default/a')).toEqual(entity('a'));
  expect(r.requestCount).toBe(4);
  expect(metrics.counter('backstage.retries')).toBe(3);
  expect(logs.filter((l) => l.message === 'Backstage request failed; retrying').map((l) => l.reason)).toEqual(['HTTP 503', 'HTTP 502', 'HTTP 504']);
});

test('each call counts its own requests, retries included, while others run at the same time', async () => {
  // Whatever order the two calls' requests arrive in: the first request for `a` fails once, `b` succeeds at once.
  let failedA = false;
  const byPath: Handler = (req, body, res) => {
    if (req.url!.endsWith('/a') && !failedA) {
      failedA = true;
      return error(503, 'down')(req, body, res);
    }
    return json(200, entity(req.url!.split('/').at(-1)!))(req, body, res);
  };
  script = [byPath, byPath, byPath];
  const { r } = reader();
  const counts = { a: 0, b: 0 };
  await Promise.all([
    r.getEntityByRef('component:default/a', { onRequest: () => (counts.a += 1) }),
    r.getEntityByRef('component:default/b', { onRequest: () => (counts.b += 1) }),
  ]);
  expect(counts).toEqual({ a: 2, b: 1 });
  expect(r.requestCount).toBe(3);
});

test('429 waits what Retry-After says', async () => {
  script = [error(429, 'slow down', { 'retry-after': '1' }), json(200, entity('a'))];
  const { r, logs } = reader();
  await r.getEntityByRef('component:default/a');
  expect(logs.find((l) => l.message === 'Backstage request failed; retrying')).toMatchObject({ reason: 'HTTP 429', delayInMs: 1000 });
});

test('retries are bounded: the last failure becomes BackstageUnavailableError', async () => {
  script = Array.from({ length: 10 }, () => error(503, 'down'));
  const { r } = reader({ maxRetries: 2 });
  const failure = await r.getEntityByRef('component:default/a').catch((e: unknown) => e);
  expect(failure).toBeInstanceOf(BackstageUnavailableError);
  expect((failure as Error).message).toMatch(/still failing after 3 attempts \(HTTP 503\)/);
  expect((failure as BackstageUnavailableError).transient).toBe(true);
  expect(r.requestCount).toBe(3);
});

test('a request that hangs past the timeout is retried, then reported as timed out', async () => {
  const hang: Handler = () => undefined; // never answers
  script = [hang, hang];
  const { r } = reader({ requestTimeoutInMs: 200, maxRetries: 1 });
  const failure = await r.getEntityByRef('component:default/a').catch((e: unknown) => e);
  expect(failure).toBeInstanceOf(BackstageUnavailableError);
  expect((failure as Error).message).toMatch(/timed out/);
  expect(r.requestCount).toBe(2);
});

test('401 → one token refresh and one retry', async () => {
  script = [error(401, 'Unauthorized'), json(200, entity('a'))];
  const { r, tokens } = reader();
  expect(await r.getEntityByRef('component:default/a')).toEqual(entity('a'));
  expect(tokens.calls.map((c) => c.forceRefresh ?? false)).toEqual([false, true]);
  expect(seen.map((s) => s.authorization)).toEqual(['Bearer token-0', 'Bearer token-1']);
});

test('401 again after the refresh is a BackstageAuthError with the server message', async () => {
  script = [error(401, 'Illegal token'), error(401, 'Illegal token')];
  const { r } = reader();
  const failure = await r.getEntityByRef('component:default/a').catch((e: unknown) => e);
  expect(failure).toBeInstanceOf(BackstageAuthError);
  expect((failure as Error).message).toMatch(/rejected the token \(401\) for GET .*: Illegal token/);
  expect((failure as BackstageAuthError).transient).toBe(false);
  expect(r.requestCount).toBe(2);
});

test('403 is not retried', async () => {
  script = [error(403, 'NotAllowed')];
  const { r } = reader();
  await expect(r.getEntityByRef('component:default/a')).rejects.toThrow(/refused GET .* \(403\): NotAllowed/);
  expect(r.requestCount).toBe(1);
});

test('other 4xx are our fault: no retry, BackstageRequestError', async () => {
  script = [error(400, 'bad filter')];
  const { r } = reader();
  const failure = await r.getEntityByRef('component:default/a').catch((e: unknown) => e);
  expect(failure).toBeInstanceOf(BackstageRequestError);
  expect(r.requestCount).toBe(1);
});

test("the caller's abort signal stops waiting at once and is not retried", async () => {
  script = [() => undefined];
  const { r } = reader({ requestTimeoutInMs: 30_000 });
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  await expect(r.getEntityByRef('component:default/a', { abortSignal: controller.signal })).rejects.toBeInstanceOf(OperationAbortedError);
  expect(r.requestCount).toBe(1);
});

test('streamProjection follows the cursor and asks only for the projection fields and the scope annotations', async () => {
  script = [
    json(200, { items: [entity('a'), entity('b')], pageInfo: { nextCursor: 'c1' } }),
    error(503, 'blip'),
    json(200, { items: [entity('c')], pageInfo: {} }),
  ];
  const { r } = reader();
  const pages = [];
  for await (const page of r.streamProjection()) pages.push(page);
  expect(pages).toEqual([
    [
      { id: 'component:default:a', entityRef: 'Component:default/a', uid: 'uid-a', etag: 'etag-a' },
      { id: 'component:default:b', entityRef: 'Component:default/b', uid: 'uid-b', etag: 'etag-b' },
    ],
    [{ id: 'component:default:c', entityRef: 'Component:default/c', uid: 'uid-c', etag: 'etag-c' }],
  ]);
  const first = new URL(seen[0]!.url, baseUrl);
  expect(first.pathname).toBe('/api/catalog/entities/by-query');
  expect(first.searchParams.getAll('fields').join(',')).toBe(
    'kind,metadata.namespace,metadata.name,metadata.uid,metadata.etag,' +
      'metadata.annotations.backstage-cosmos-sync/exclude,metadata.annotations.backstage-cosmos-sync/envelope-only,metadata.annotations.backstage-cosmos-sync/omit-fields',
  );
  expect(first.searchParams.get('limit')).toBe('2');
  expect(new URL(seen[2]!.url, baseUrl).searchParams.get('cursor')).toBe('c1'); // the retried page
});

test('streamCatalog reads a page whole when readWhole says so, on the same cursor, keeping only the scope annotations in its items', async () => {
  const annotated = {
    ...entity('c'),
    metadata: { ...entity('c').metadata, annotations: { 'backstage-cosmos-sync/envelope-only': 'true', 'backstage.io/source-location': 'url:x' } },
  };
  script = [
    json(200, { items: [entity('a'), entity('b')], pageInfo: { nextCursor: 'c1' } }),
    json(200, { items: [annotated, entity('d')], pageInfo: { nextCursor: 'c2' } }),
    json(200, { items: [entity('e')], pageInfo: {} }),
  ];
  const { r } = reader();
  const asked: number[] = [];
  const answers = [true, false];
  const pages = [];
  for await (const page of r.streamCatalog({ readWhole: () => (asked.push(asked.length), answers.shift()!) })) pages.push(page);
  // Asked before each page after the first (the first one's projection tells a run whether to read whole at all).
  expect(asked).toHaveLength(2);
  expect(pages.map((p) => p.items.map((i) => i.id.split(':')[2]))).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
  expect(pages[0]!.entities).toBeUndefined();
  expect(pages[1]!.entities).toEqual([annotated, entity('d')]);
  expect(pages[1]!.items[0]).toEqual({
    id: 'component:default:c',
    entityRef: 'Component:default/c',
    uid: 'uid-c',
    etag: 'etag-c',
    annotations: { 'backstage-cosmos-sync/envelope-only': 'true' },
  });
  expect(pages[2]!.entities).toBeUndefined();
  const urls = seen.map((s) => new URL(s.url, baseUrl));
  expect(urls.map((u) => u.searchParams.get('cursor'))).toEqual([null, 'c1', 'c2']);
  expect(urls.map((u) => u.searchParams.getAll('fields').length > 0)).toEqual([true, false, true]);
});

test('getEntitiesByRefs posts the refs and keeps their order, with gaps for unknown refs', async () => {
  script = [json(200, { items: [entity('a'), null, entity('c')] })];
  const { r } = reader();
  const result = await r.getEntitiesByRefs(['component:default/a', 'component:default/x', 'component:default/c']);
  expect(result).toEqual([entity('a'), undefined, entity('c')]);
  expect(seen[0]).toMatchObject({ method: 'POST' });
  expect(JSON.parse(seen[0]!.body).entityRefs).toEqual(['component:default/a', 'component:default/x', 'component:default/c']);
  expect(await r.getEntitiesByRefs([])).toEqual([]);
  expect(seen).toHaveLength(1);
});
