/**
 * Hostile-input corpus for every HTTP endpoint, through the function handlers with real `HttpRequest` /
 * `InvocationContext` objects, the real runtime, the local Service Bus broker and the Cosmos emulator.
 *
 * Each case is one row: a name, a request, the documented status and problem type. For every row the suite checks
 * the RFC 9457 problem, that nothing reached the queue (broker counters unchanged) and nothing changed in Cosmos DB
 * (every document's `_etag` in `entities`, `edges` and `authored` unchanged), that no global prototype was polluted, and that
 * the process is still healthy afterwards (a valid request is still accepted, `GET /api/health` answers 200).
 *
 * Header duplicates are sent the way a fetch `Headers` object presents repeated header lines: joined with ", ".
 */
import { randomUUID } from 'node:crypto';
import type { CosmosClient } from '@azure/cosmos';
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { ServiceBusClient } from '@azure/service-bus';
import { Webhook } from 'standardwebhooks';
import { adminReconcile } from '../../functions/adminReconcile';
import { getReconcileRun } from '../../functions/getReconcileRun';
import { catalogEvents } from '../../functions/catalogEvents';
import { getEntity } from '../../functions/getEntity';
import { getEntityHistory } from '../../functions/getEntityHistory';
import { getChanges } from '../../functions/getChanges';
import { graph } from '../../functions/graph';
import { health } from '../../functions/health';
import { listDeadLetters } from '../../functions/listDeadLetters';
import { listProjectionFailures } from '../../functions/listProjectionFailures';
import { replayDeadLetters } from '../../functions/replayDeadLetters';
import { replayProjectionFailures } from '../../functions/replayProjectionFailures';
import { selfCheck } from '../../functions/selfCheck';
import { openapi } from '../../functions/openapi';
import { getAuthored } from '../../functions/getAuthored';
import { putAuthored } from '../../functions/putAuthored';
import { deleteAuthored } from '../../functions/deleteAuthored';
import type { LocalServiceBus } from '../../local/servicebus/broker';
import { loadConfig, type Environment } from '../../shared/platform/config';
import { toEntityDocument } from '../../shared/model/documents';
import { toDocumentId } from '../../shared/model/refs';
import { getRuntime, resetRuntime } from '../../shared/runtime';
import { toSessionId } from '../../shared/queue/queue';
import { startFixtureCatalog, type FixtureCatalog } from '../support/backstage';
import { graphFixture } from '../support/graph-fixture';
import { algNone, hs256, INVALID_UTF8, nestedArrays, nestedObjects, prototypeFingerprint, tampered, unknownKid, withBytes } from '../support/hostile';
import { API_AUDIENCE, eventually, identityAdmin, provisionCosmos, standins, startBroker, testEnvironment, userToken } from '../support/stack';
import { catalogEvent } from '../support/events';
import { ContractChecker, OPERATIONS, PROBLEM_TYPES } from '../support/contract';
import { bodyJson, bodyText } from '../support/http';
import { startSyncTrigger } from '../support/triggers';

jest.setTimeout(60_000);

const QUEUE = 'entity-sync';
const SINGLE = 'application/cloudevents+json';
const BATCH = 'application/cloudevents-batch+json';
const SECRET = `whsec_${Buffer.from('hostile-corpus-secret-0123456789').toString('base64')}`;
const OTHER_SECRET = `whsec_${Buffer.from('some-other-secret-entirely-abcdef').toString('base64')}`;
const MiB = 1024 * 1024;

type Handler = (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>;

/** A request as the host would hand it over. `query` is the raw query string, so names may repeat. */
interface Req {
  method?: string;
  path?: string;
  query?: string;
  headers?: Record<string, string>;
  params?: Record<string, string>;
  body?: string | Uint8Array;
}

interface Case {
  name: string;
  req: () => Req | Promise<Req>;
  status: number;
  /** The problem type's last segment: `urn:backstage-cosmos-sync:problem:<type>`. */
  type: string;
  /** Extra assertions on the problem body. */
  check?: (problem: Record<string, unknown>) => void;
}

// ---------------------------------------------------------------------------------------------------------------
// Stand-ins and state

let broker: LocalServiceBus;
let cosmos: CosmosClient;
let env: Environment;
let cosmosNames: { databaseName: string; entitiesContainer: string; edgesContainer: string; authoredContainer: string };
/** The issuer's RSA modulus (base64url), used as an HMAC secret by the key-confusion case. */
let jwksModulus = '';
const fingerprint = prototypeFingerprint();

/** Tokens minted once (they last an hour); forged ones derive from them. */
const tokens = {} as Record<
  'sender' | 'reader' | 'admin' | 'writer' | 'none' | 'expired' | 'wrongAudience' | 'wrongIssuer' | 'foreignKey' | 'rolesAsString' | 'lowerCaseRole',
  string
>;

function useMode(intakeAuth: string): void {
  Object.assign(process.env, { ...env, INTAKE_AUTH: intakeAuth });
}

beforeAll(async () => {
  broker = await startBroker();
  env = testEnvironment({
    ServiceBusConnection: broker.connectionString,
    SERVICEBUS_SEND_TIMEOUT_MS: '1500',
    BACKSTAGE_MAX_RETRIES: '0', // Backstage is unreachable: a reconcile that wrongly ran would fail fast with a 503
    WEBHOOK_SECRETS: SECRET,
    LOG_LEVEL: 'error',
    // INTAKE_MAX_BODY_BYTES and INTAKE_MAX_BATCH_EVENTS keep their documented defaults: 1 MiB and 500 events.
  });
  useMode('entra,standard-webhooks');
  const config = loadConfig(process.env);
  cosmosNames = config.cosmos;
  cosmos = await provisionCosmos(config);

  // Something every endpoint could damage: a mirror with edges, a projection failure, a dead letter.
  const runtime = getRuntime();
  const docs = graphFixture().map((e) => toEntityDocument(e));
  for (const doc of docs) await runtime.entityStore.create(doc);
  expect(await runtime.projector.projectBatch(docs)).toMatchObject({ failed: 0 });
  await runtime.projectionFailures.record({ id: 'component:default:web', entityRef: 'Component:default/web', error: 'seeded by the hostile-input corpus' });
  await seedDeadLetter();

  const mint = (roles: string[] | undefined, extra: Parameters<typeof userToken>[0] = {}) => userToken({ ...(roles && { roles }), ...extra });
  Object.assign(tokens, {
    sender: await mint(['Events.Send']),
    reader: await mint(['Catalog.Read']),
    admin: await mint(['Catalog.Admin']),
    writer: await mint(['Catalog.Write']),
    none: await mint(undefined),
    expired: await mint(['Events.Send', 'Catalog.Read', 'Catalog.Admin'], { lifetimeInSeconds: -300 }),
    wrongAudience: await mint(['Events.Send', 'Catalog.Read', 'Catalog.Admin'], { audience: 'api://someone-else' }),
    wrongIssuer: await mint(['Events.Send', 'Catalog.Read', 'Catalog.Admin'], { issuer: 'https://login.example.com/other/v2.0' }),
    foreignKey: await mint(['Events.Send', 'Catalog.Read', 'Catalog.Admin'], { foreignKey: true }),
    rolesAsString: await identityAdmin().mint({ audience: API_AUDIENCE, claims: { roles: 'Events.Send Catalog.Read Catalog.Admin' } }),
    lowerCaseRole: await mint(['events.send', 'catalog.read', 'catalog.admin']),
  });
  jwksModulus = ((await (await fetch(standins.jwksUri)).json()) as { keys: Array<{ n: string }> }).keys[0]!.n;
});

afterAll(async () => {
  await resetRuntime();
  cosmos?.dispose();
  await broker?.stop();
});

/** One message on the dead-letter queue, so a replay that should have been refused would show. */
async function seedDeadLetter(): Promise<void> {
  const client = new ServiceBusClient(broker.connectionString);
  try {
    const sessionId = 'component:default:seeded-dead-letter';
    await client.createSender(QUEUE).sendMessages({
      messageId: randomUUID(),
      sessionId,
      body: { entityRef: 'Component:default/seeded-dead-letter', type: 'upserted', eventId: randomUUID(), eventTime: new Date().toISOString(), source: 'urn:test' },
    });
    const receiver = await client.acceptSession(QUEUE, sessionId);
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    await receiver.deadLetterMessage(message!, { deadLetterReason: 'Seeded', deadLetterErrorDescription: 'seeded by the hostile-input corpus' });
    await receiver.close();
  } finally {
    await client.close();
  }
  expect(broker.stats(QUEUE).deadLettered).toBe(1);
}

// ---------------------------------------------------------------------------------------------------------------
// Requests

function toHttpRequest(req: Req, defaults: { method: string; path: string }): HttpRequest {
  const url = `http://localhost:7071/api/${req.path ?? defaults.path}${req.query !== undefined ? `?${req.query}` : ''}`;
  const body = req.body === undefined ? undefined : typeof req.body === 'string' ? { string: req.body } : { bytes: req.body };
  return new HttpRequest({ method: req.method ?? defaults.method, url, headers: req.headers ?? {}, params: req.params ?? {}, ...(body && { body }) });
}

let invocations = 0;
function context(functionName: string): InvocationContext {
  invocations += 1;
  return new InvocationContext({ invocationId: `hostile-${invocations}`, functionName, logHandler: () => undefined });
}

const parse = (response: HttpResponseInit) => bodyJson(response);
const headerOf = (response: HttpResponseInit, name: string) => (response.headers as Record<string, string> | undefined)?.[name];
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

const event = (overrides: Record<string, unknown> = {}, ref = 'component:default/web') => catalogEvent(overrides, ref);

/** An event whose subject and data.entityRef are both `ref`. */
const refEvent = (ref: unknown) => event({ subject: ref, data: { entityRef: ref } });

const textOf = (body: unknown) => (typeof body === 'string' ? body : JSON.stringify(body));

/** POST /api/catalog/events with an Entra token (the sender's unless `token` says otherwise). */
function post(body: unknown, o: { contentType?: string | null; token?: string | null; headers?: Record<string, string> } = {}): Req {
  const contentType = o.contentType === undefined ? (Array.isArray(body) ? BATCH : SINGLE) : o.contentType;
  const token = o.token === undefined ? tokens.sender : o.token;
  return {
    headers: { ...(contentType !== null && { 'content-type': contentType }), ...(token !== null && bearer(token)), ...o.headers },
    body: body instanceof Uint8Array ? body : textOf(body),
  };
}

/**
 * POST /api/catalog/events signed with Standard Webhooks. `sign` replaces what is signed (default: the body sent),
 * `at` shifts the timestamp (seconds), `headers` overrides (null removes) the webhook headers.
 */
function signed(
  body: unknown,
  o: { secret?: string; id?: string; at?: number; sign?: string | Buffer; contentType?: string; headers?: Record<string, string | null>; token?: string } = {},
): Req {
  const raw = body instanceof Uint8Array ? Buffer.from(body) : Buffer.from(textOf(body));
  const id = o.id ?? `msg_${randomUUID()}`;
  const timestamp = new Date(Date.now() + (o.at ?? 0) * 1000);
  const signature = new Webhook(o.secret ?? SECRET).sign(id, timestamp, o.sign ?? raw);
  const headers: Record<string, string> = {
    'content-type': o.contentType ?? (Array.isArray(body) ? BATCH : SINGLE),
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
    'webhook-signature': signature,
    ...(o.token && bearer(o.token)),
  };
  for (const [name, value] of Object.entries(o.headers ?? {})) {
    if (value === null) delete headers[name];
    else headers[name] = value;
  }
  return { headers, body: new Uint8Array(raw) };
}

/** A header sent twice, as `Headers.get` presents it. */
const twice = (value: string, other = value) => `${value}, ${other}`;

/** Every response this suite sees is held to the OpenAPI contract; what it covered is asserted at the end. */
const contract = new ContractChecker();

async function send(handler: Handler, functionName: string, req: Req, defaults: { method: string; path: string }): Promise<HttpResponseInit> {
  const response = await handler(toHttpRequest(req, defaults), context(functionName));
  const violations = contract.violations({
    method: req.method ?? defaults.method,
    path: `/api/${req.path ?? defaults.path}`,
    status: response.status ?? 200,
    headers: (response.headers ?? {}) as Record<string, string>,
    body: bodyText(response),
  });
  expect(violations).toEqual([]);
  return response;
}

const intake = (req: Req) => send(catalogEvents, 'catalogEvents', req, { method: 'POST', path: 'catalog/events' });

// ---------------------------------------------------------------------------------------------------------------
// Observation

interface Observation {
  queue: { enqueued: number; duplicatesDropped: number; deadLettered: number; active: number; scheduled: number };
  cosmos: Record<string, string>;
}

async function observe(): Promise<Observation> {
  const { enqueued, duplicatesDropped, deadLettered, active, scheduled } = broker.stats(QUEUE);
  const config = cosmosNames;
  const documents: Record<string, string> = {};
  for (const name of [config.entitiesContainer, config.edgesContainer, config.authoredContainer]) {
    const { resources } = await cosmos
      .database(config.databaseName)
      .container(name)
      .items.query<{ id: string; _etag: string }>('SELECT c.id, c._etag FROM c')
      .fetchAll();
    for (const r of resources) documents[`${name}/${r.id}`] = r._etag;
  }
  return { queue: { enqueued, duplicatesDropped, deadLettered, active, scheduled }, cosmos: documents };
}

/** Still healthy: health answers 200, a valid request is accepted, no prototype was touched. */
async function expectHealthy(mode: 'entra' | 'webhooks'): Promise<void> {
  expect(prototypeFingerprint()).toBe(fingerprint);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  const probe = await send(health, 'health', {}, { method: 'GET', path: 'health' });
  expect(probe.status).toBe(200);
  const before = broker.stats(QUEUE).enqueued;
  const valid = mode === 'entra' ? post(event({}, `component:default/probe-${randomUUID()}`)) : signed(event({}, `component:default/probe-${randomUUID()}`));
  const accepted = await intake(valid);
  expect({ status: accepted.status, body: parse(accepted) }).toEqual({ status: 202, body: { accepted: 1, enqueued: 1, outOfScope: 0 } });
  expect(broker.stats(QUEUE).enqueued).toBe(before + 1);
}

/** Sends a hostile request; asserts the documented problem and that nothing changed. */
async function expectRejected(handler: Handler, functionName: string, defaults: { method: string; path: string }, c: Case): Promise<void> {
  const req = await c.req();
  const before = await observe();
  const response = await send(handler, functionName, req, defaults);
  const after = await observe();
  const body = response.body === undefined ? {} : parse(response);
  expect({ status: response.status, type: body.type }).toEqual({ status: c.status, type: `urn:backstage-cosmos-sync:problem:${c.type}` });
  expect(headerOf(response, 'content-type')).toBe('application/problem+json');
  expect(body).toMatchObject({ status: c.status, title: expect.any(String) });
  if (c.status === 401) expect(headerOf(response, 'www-authenticate')).toMatch(/^Bearer/);
  if (c.type === 'forbidden') expect(body.requiredRoles).toEqual(expect.any(Array));
  c.check?.(body);
  expect(after).toEqual(before);
  expect(prototypeFingerprint()).toBe(fingerprint);
}

const errorPaths = (problem: Record<string, unknown>) => (problem.errors as Array<{ path: string }>).map((e) => e.path).sort();
const errorIndexes = (problem: Record<string, unknown>) => [...new Set((problem.errors as Array<{ index: number }>).map((e) => e.index))];

// ---------------------------------------------------------------------------------------------------------------
// POST /api/catalog/events — INTAKE_AUTH=entra,standard-webhooks

const c = (name: string, req: Case['req'], status: number, type: string, check?: Case['check']): Case => ({ name, req, status, type, ...(check && { check }) });

const ref63 = (ch: string) => `${ch}${'a'.repeat(62)}`;
const padded = (size: number) => event({ padding: 'x'.repeat(size) });

const intakeCases: Case[] = [
  // Content type (checked first: 415 whatever else is wrong)
  c('no Content-Type', () => post(event(), { contentType: null }), 415, 'unsupported-media-type'),
  c('application/json', () => post(event(), { contentType: 'application/json' }), 415, 'unsupported-media-type'),
  c('text/plain', () => post(event(), { contentType: 'text/plain' }), 415, 'unsupported-media-type'),
  c('application/cloudevents (no +json)', () => post(event(), { contentType: 'application/cloudevents' }), 415, 'unsupported-media-type'),
  c('application/cloudevents+jsonx', () => post(event(), { contentType: 'application/cloudevents+jsonx' }), 415, 'unsupported-media-type'),
  c('Content-Type sent twice', () => post(event(), { contentType: twice(SINGLE) }), 415, 'unsupported-media-type'),
  c('single and batch types sent together', () => post([event()], { contentType: twice(BATCH, SINGLE) }), 415, 'unsupported-media-type'),
  c('multipart/form-data', () => post(event(), { contentType: 'multipart/form-data; boundary=xyz' }), 415, 'unsupported-media-type'),
  c('*/*', () => post(event(), { contentType: '*/*' }), 415, 'unsupported-media-type'),
  c('media type with a prefix', () => post(event(), { contentType: `x-${SINGLE}` }), 415, 'unsupported-media-type'),
  c(
    'CloudEvents binary mode (ce-* headers, JSON data): not supported',
    () => {
      const e = event();
      const ce = { 'ce-specversion': '1.0', 'ce-id': e.id, 'ce-source': e.source, 'ce-type': e.type, 'ce-subject': e.subject, 'ce-time': e.time };
      return post(e.data, { contentType: 'application/json', headers: ce });
    },
    415,
    'unsupported-media-type',
  ),
  c('oversized body with a wrong Content-Type: the type is checked first', () => post(padded(2 * MiB), { contentType: 'application/json' }), 415, 'unsupported-media-type'),

  // Size (before authentication: nothing over the limit is even looked at)
  c('body 1 byte over 1 MiB', () => post(padded(MiB - JSON.stringify(padded(0)).length + 1)), 413, 'payload-too-large', (p) =>
    expect(p.detail).toBe(`The body may be at most ${MiB} bytes`),
  ),
  c('8 MiB body', () => post(padded(8 * MiB)), 413, 'payload-too-large'),
  // The token is checked before a byte of the body is read: an anonymous caller never gets 2 MiB buffered.
  c('oversized body without any credentials', () => post(padded(2 * MiB), { token: null }), 401, 'unauthorized'),
  c('declared oversized body without any credentials', () => post(event(), { token: null, headers: { 'content-length': String(2 * MiB) } }), 413, 'payload-too-large'),
  c('oversized body of invalid UTF-8', () => post(new Uint8Array(MiB + 10).fill(0xff)), 413, 'payload-too-large'),
  c('declared Content-Length over the limit', () => post(event(), { headers: { 'content-length': String(2 * MiB) } }), 413, 'payload-too-large'),
  c('501 events (limit 500)', () => post(Array.from({ length: 501 }, () => event())), 413, 'payload-too-large', (p) => expect(p.detail).toMatch(/at most 500 events/)),

  // Entra authentication
  c('no Authorization header', () => post(event(), { token: null }), 401, 'unauthorized'),
  c('empty Authorization header', () => post(event(), { token: null, headers: { authorization: '' } }), 401, 'unauthorized'),
  c('"Bearer" without a token', () => post(event(), { token: null, headers: { authorization: 'Bearer' } }), 401, 'unauthorized'),
  c('"Bearer <token> trailing"', () => post(event(), { token: null, headers: { authorization: `Bearer ${tokens.sender} trailing` } }), 401, 'unauthorized'),
  c('Basic credentials', () => post(event(), { token: null, headers: { authorization: 'Basic dXNlcjpwYXNz' } }), 401, 'unauthorized'),
  c('Authorization sent twice', () => post(event(), { token: null, headers: { authorization: twice(`Bearer ${tokens.sender}`) } }), 401, 'unauthorized'),
  c('token that is not a JWT', () => post(event(), { token: 'not.a.jwt' }), 401, 'unauthorized', (p) => expect(p.detail).toBe('The token is malformed')),
  c('token with two segments', () => post(event(), { token: tokens.sender.split('.').slice(0, 2).join('.') }), 401, 'unauthorized'),
  c('16 KiB token', () => post(event(), { token: `${'a'.repeat(8192)}.${'b'.repeat(8192)}.c` }), 401, 'unauthorized'),
  c('expired token', () => post(event(), { token: tokens.expired }), 401, 'unauthorized', (p) => expect(p.detail).toBe('The token has expired')),
  c('token for another audience', () => post(event(), { token: tokens.wrongAudience }), 401, 'unauthorized', (p) => expect(p.detail).toMatch(/audience/)),
  c('token from another issuer', () => post(event(), { token: tokens.wrongIssuer }), 401, 'unauthorized', (p) => expect(p.detail).toMatch(/issuer/)),
  c('token signed by a key the issuer does not publish', () => post(event(), { token: tokens.foreignKey }), 401, 'unauthorized'),
  c('token with a kid the issuer does not publish', () => post(event(), { token: unknownKid(tokens.sender) }), 401, 'unauthorized'),
  c('alg none', () => post(event(), { token: algNone(tokens.sender) }), 401, 'unauthorized', (p) => expect(p.detail).toMatch(/algorithm/)),
  c('HS256 with the public key as secret', () => post(event(), { token: hs256(tokens.sender, jwksModulus) }), 401, 'unauthorized'),
  c('claims changed under the signature (role added)', () => post(event(), { token: tampered(tokens.none, { roles: ['Events.Send'] }) }), 401, 'unauthorized'),
  c('valid token without the sender role', () => post(event(), { token: tokens.admin }), 403, 'forbidden', (p) => expect(p.requiredRoles).toEqual(['Events.Send'])),
  c('valid token without any role', () => post(event(), { token: tokens.none }), 403, 'forbidden'),
  c('roles claim a string, not an array', () => post(event(), { token: tokens.rolesAsString }), 403, 'forbidden'),
  c('role names in the wrong case', () => post(event(), { token: tokens.lowerCaseRole }), 403, 'forbidden'),

  // Standard Webhooks
  c('signature over a different body', () => signed(event(), { sign: JSON.stringify(event()) }), 401, 'invalid-signature'),
  c('signature with a secret not configured', () => signed(event(), { secret: OTHER_SECRET }), 401, 'invalid-signature'),
  c('body changed after signing (a newline appended)', () => {
    const e = event();
    return { ...signed(e, { sign: JSON.stringify(e) }), body: `${JSON.stringify(e)}\n` };
  }, 401, 'invalid-signature'),
  c('webhook-id missing', () => signed(event(), { headers: { 'webhook-id': null } }), 401, 'invalid-signature'),
  c('webhook-timestamp missing', () => signed(event(), { headers: { 'webhook-timestamp': null } }), 401, 'invalid-signature'),
  c('webhook-signature missing', () => signed(event(), { headers: { 'webhook-signature': null } }), 401, 'invalid-signature'),
  c('webhook-id sent twice', () => {
    const r = signed(event());
    return { ...r, headers: { ...r.headers, 'webhook-id': twice(r.headers!['webhook-id']!) } };
  }, 401, 'invalid-signature'),
  c('webhook-timestamp sent twice', () => {
    const r = signed(event());
    return { ...r, headers: { ...r.headers, 'webhook-timestamp': twice(r.headers!['webhook-timestamp']!) } };
  }, 401, 'invalid-signature'),
  c('webhook-signature sent twice, neither valid', () => signed(event(), { headers: { 'webhook-signature': twice(`v1,${Buffer.alloc(32).toString('base64')}`, 'v1,AAAA') } }), 401, 'invalid-signature'),
  c('webhook-timestamp not a number', () => signed(event(), { headers: { 'webhook-timestamp': 'yesterday' } }), 401, 'invalid-signature'),
  c('webhook-timestamp negative', () => signed(event(), { headers: { 'webhook-timestamp': '-1' } }), 401, 'invalid-signature'),
  c('webhook-timestamp in milliseconds', () => signed(event(), { headers: { 'webhook-timestamp': String(Date.now()) } }), 401, 'invalid-signature'),
  c('webhook-timestamp with a fraction', () => signed(event(), { headers: { 'webhook-timestamp': `${Math.floor(Date.now() / 1000)}.5` } }), 401, 'invalid-signature'),
  c('stale timestamp (6 min old, correctly signed)', () => signed(event(), { at: -360 }), 401, 'invalid-signature', (p) => expect(p.detail).toMatch(/away from now/)),
  c('future timestamp (6 min ahead, correctly signed)', () => signed(event(), { at: 360 }), 401, 'invalid-signature', (p) => expect(p.detail).toMatch(/away from now/)),
  c('timestamp 0', () => signed(event(), { headers: { 'webhook-timestamp': '0' } }), 401, 'invalid-signature'),
  c('webhook-id with a control character (correctly signed)', () => signed(event(), { id: 'msg\u0001id' }), 401, 'invalid-signature', (p) => expect(p.detail).toMatch(/malformed/)),
  c('webhook-id of 257 characters (correctly signed)', () => signed(event(), { id: 'm'.repeat(257) }), 401, 'invalid-signature'),
  c('signature version v2', () => {
    const r = signed(event());
    return { ...r, headers: { ...r.headers, 'webhook-signature': r.headers!['webhook-signature']!.replace(/^v1,/, 'v2,') } };
  }, 401, 'invalid-signature'),
  c('signature not base64', () => signed(event(), { headers: { 'webhook-signature': 'v1,!!!!not-base64!!!!' } }), 401, 'invalid-signature'),
  c('signature empty', () => signed(event(), { headers: { 'webhook-signature': 'v1,' } }), 401, 'invalid-signature'),
  c('signature without a version', () => {
    const r = signed(event());
    return { ...r, headers: { ...r.headers, 'webhook-signature': r.headers!['webhook-signature']!.replace(/^v1,/, '') } };
  }, 401, 'invalid-signature'),
  c('bad signature is not rescued by a valid Entra token', () => signed(event(), { secret: OTHER_SECRET, token: tokens.sender }), 401, 'invalid-signature'),
  c('replayed webhook-id', async () => {
    const first = signed(event());
    expect((await intake(first)).status).toBe(202);
    return first;
  }, 409, 'duplicate-delivery', (p) => expect(p.webhookId).toEqual(expect.stringMatching(/^msg_/))),
  c('replayed webhook-id with another body, correctly signed', async () => {
    const first = signed(event());
    expect((await intake(first)).status).toBe(202);
    return signed(event(), { id: first.headers!['webhook-id']! });
  }, 409, 'duplicate-delivery'),

  // Bytes and JSON
  c('truncated JSON', () => post('{"specversion": "1.0",'), 400, 'invalid-json'),
  c('empty body', () => post(''), 400, 'invalid-json'),
  c('JSON with trailing garbage', () => post(`${JSON.stringify(event())} trailing`), 400, 'invalid-json'),
  c('single-quoted JSON5', () => post("{'specversion': '1.0'}"), 400, 'invalid-json'),
  c('NaN literal', () => post('{"specversion": NaN}'), 400, 'invalid-json'),
  c('raw control character inside a string', () => post(JSON.stringify(event()).replace('"uid-1"', '"uid\u0001-1"')), 400, 'invalid-json'),
  c('invalid UTF-8: 0xFF', () => post(withBytes(JSON.stringify(event({ x: '@' })), '@', [...INVALID_UTF8.ff])), 400, 'invalid-json', (p) => expect(p.detail).toMatch(/UTF-8/)),
  c('invalid UTF-8: overlong encoding of "/"', () => post(withBytes(JSON.stringify(refEvent('component:default/@')), '@', [...INVALID_UTF8.overlongSlash])), 400, 'invalid-json'),
  c('invalid UTF-8: encoded surrogate', () => post(withBytes(JSON.stringify(event({ x: '@' })), '@', [...INVALID_UTF8.encodedSurrogate])), 400, 'invalid-json'),
  c('invalid UTF-8: truncated sequence', () => post(withBytes(JSON.stringify(event({ x: '@' })), '@', [...INVALID_UTF8.truncated])), 400, 'invalid-json'),
  c('invalid UTF-8: beyond U+10FFFF', () => post(withBytes(JSON.stringify(event({ x: '@' })), '@', [...INVALID_UTF8.beyondUnicode])), 400, 'invalid-json'),
  c('UTF-16LE body with BOM', () => post(new Uint8Array(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(JSON.stringify(event()), 'utf16le')]))), 400, 'invalid-json'),
  c('Latin-1 body declared as such', () => post(new Uint8Array(Buffer.from(JSON.stringify(event({ x: 'café' })), 'latin1')), { contentType: `${SINGLE}; charset=iso-8859-1` }), 400, 'invalid-json'),
  c('correctly signed invalid UTF-8', () => signed(withBytes(JSON.stringify(event({ x: '@' })), '@', [...INVALID_UTF8.ff])), 400, 'invalid-json'),
  c('100 000 nested arrays', () => post(nestedArrays(100_000)), 400, 'invalid-json', (p) => expect(p.detail).toMatch(/nested too deeply/)),
  c('100 000 nested objects', () => post(nestedObjects(100_000)), 400, 'invalid-json', (p) => expect(p.detail).toMatch(/nested too deeply/)),
  c('deep nesting inside data', () => post(JSON.stringify(event()).replace('"uid":"uid-1"', `"uid":${nestedArrays(50_000)}`)), 400, 'invalid-json'),
  c('deep nesting inside the 2nd event of a batch', () => post(`[${JSON.stringify(event())},${nestedObjects(10_000)}]`, { contentType: BATCH }), 400, 'invalid-json'),

  // Shape
  c('empty batch', () => post([]), 400, 'invalid-event'),
  c('batch body that is an object', () => post(event(), { contentType: BATCH }), 400, 'invalid-event'),
  c('batch body that is null', () => post('null', { contentType: BATCH }), 400, 'invalid-event'),
  c('single body that is an array', () => post([event()], { contentType: SINGLE }), 400, 'invalid-event'),
  c('single body null', () => post('null'), 400, 'invalid-event'),
  c('single body a number', () => post('42'), 400, 'invalid-event'),
  c('single body a string', () => post('"component:default/web"'), 400, 'invalid-event'),
  c('batch of non-objects', () => post([1, 'x', null, true]), 400, 'invalid-event', (p) => expect(errorIndexes(p)).toEqual([0, 1, 2, 3])),
  c('batch of nested arrays', () => post([[event()]]), 400, 'invalid-event'),
  c('empty object', () => post({}), 400, 'invalid-event', (p) => expect(errorPaths(p)).toEqual(['data', 'id', 'source', 'specversion', 'subject', 'time', 'type'])),
  c('mixed batch: good, bad, good', () => post([event(), event({ time: 'yesterday' }), event({}, 'api:default/orders-api')]), 400, 'invalid-event', (p) => {
    expect(errorIndexes(p)).toEqual([1]);
    expect(p.detail).toBe('1 of 3 events are invalid; nothing was accepted');
  }),
  c('mixed batch: 499 good, then 1 bad', () => post([...Array.from({ length: 499 }, (_, i) => event({}, `component:default/good-${i}`)), refEvent('component:default/bad name')]), 400, 'invalid-event', (p) =>
    expect(errorIndexes(p)).toEqual([499]),
  ),

  // Prototype pollution attempts
  c('__proto__ at the top level', () => post(`{"__proto__":{"polluted":true,"isAdmin":true},${JSON.stringify(event()).slice(1)}`), 400, 'invalid-event', (p) => expect(errorPaths(p)).toContain('__proto__')),
  c('__proto__ in data', () => post(JSON.stringify(event()).replace('"data":{', '"data":{"__proto__":{"polluted":true},')), 400, 'invalid-event', (p) => expect(errorPaths(p)).toContain('data.__proto__')),
  c('__proto__ in the 2nd event of a batch', () => post(`[${JSON.stringify(event())},{"__proto__":{"polluted":true},${JSON.stringify(event({}, 'api:default/orders-api')).slice(1)}]`, { contentType: BATCH }), 400, 'invalid-event', (p) =>
    expect(errorIndexes(p)).toEqual([1]),
  ),
  c('constructor.prototype payload', () => post(event({ constructor: { prototype: { polluted: true } } })), 400, 'invalid-event'),
  c('prototype object as extension', () => post(event({ prototype: { polluted: true } })), 400, 'invalid-event'),
  c('constructor in data', () => post(event({ data: { entityRef: 'component:default/web', constructor: { prototype: { polluted: true } } } })), 400, 'invalid-event'),

  // Entity refs
  c('ref with a Cyrillic letter', () => post(refEvent('component:default/w\u0435b')), 400, 'invalid-event'),
  c('ref with a Kelvin sign in the namespace (lower-cases to "k")', () => post(refEvent('component:\u212Aube/web')), 400, 'invalid-event', (p) =>
    expect(errorPaths(p)).toEqual(['data.entityRef', 'subject']),
  ),
  c('ref with fullwidth letters', () => post(refEvent('\uFF23omponent:default/web')), 400, 'invalid-event'),
  c('ref with a slash in the name', () => post(refEvent('component:default/web/../admin')), 400, 'invalid-event'),
  c('ref with .. as namespace', () => post(refEvent('component:../web')), 400, 'invalid-event'),
  c('ref with .. as name', () => post(refEvent('component:default/..')), 400, 'invalid-event'),
  c('ref with a NUL', () => post(refEvent('component:default/web\u0000')), 400, 'invalid-event'),
  c('ref with a newline', () => post(refEvent('component:default/web\nx')), 400, 'invalid-event'),
  c('ref with DEL', () => post(refEvent('component:default/web\u007f')), 400, 'invalid-event'),
  c('ref with percent-encoding', () => post(refEvent('component:default/a%2Fb')), 400, 'invalid-event'),
  c('ref with surrounding whitespace', () => post(refEvent(' component:default/web ')), 400, 'invalid-event'),
  c('empty ref', () => post(refEvent('')), 400, 'invalid-event'),
  c('ref without a kind', () => post(refEvent(':default/web')), 400, 'invalid-event'),
  c('64-character name', () => post(refEvent(`component:default/${'a'.repeat(64)}`)), 400, 'invalid-event'),
  c('64-character kind', () => post(refEvent(`${'K'.repeat(64)}:default/web`)), 400, 'invalid-event'),
  c('64-character namespace', () => post(refEvent(`component:${'n'.repeat(64)}/web`)), 400, 'invalid-event'),
  c('ref of 10 000 characters', () => post(refEvent(`component:default/${'a'.repeat(10_000)}`)), 400, 'invalid-event'),
  c('subject naming another entity than data', () => post(event({ subject: 'component:default/orders' })), 400, 'invalid-event', (p) => expect(errorPaths(p)).toEqual(['subject'])),

  // Wrong types where strings belong
  c('subject a number', () => post(event({ subject: 42 })), 400, 'invalid-event', (p) => expect(errorPaths(p)).toEqual(['subject'])),
  c('subject an array', () => post(event({ subject: ['component:default/web'] })), 400, 'invalid-event'),
  c('data.entityRef null', () => post(event({ data: { entityRef: null } })), 400, 'invalid-event'),
  c('data.entityRef an object', () => post(event({ data: { entityRef: { kind: 'component', name: 'web' } } })), 400, 'invalid-event'),
  c('id a number', () => post(event({ id: 12345 })), 400, 'invalid-event', (p) => expect(errorPaths(p)).toEqual(['id'])),
  c('id null', () => post(event({ id: null })), 400, 'invalid-event'),
  c('id empty', () => post(event({ id: '' })), 400, 'invalid-event'),
  c('id of 129 characters', () => post(event({ id: 'i'.repeat(129) })), 400, 'invalid-event'),
  c('id with a newline', () => post(event({ id: 'a\nb' })), 400, 'invalid-event'),
  c('id with a C1 control character (NEL)', () => post(event({ id: `id-\u0085-${randomUUID()}` })), 400, 'invalid-event', (p) => expect(errorPaths(p)).toEqual(['id'])),
  c('id with a lone surrogate', () => post(event({ id: `id-\ud800-${randomUUID()}` })), 400, 'invalid-event', (p) => expect(errorPaths(p)).toEqual(['id'])),
  c('specversion a number', () => post(event({ specversion: 1.0 })), 400, 'invalid-event'),
  c('specversion 0.3', () => post(event({ specversion: '0.3' })), 400, 'invalid-event'),
  c('type a boolean', () => post(event({ type: true })), 400, 'invalid-event'),
  c('type unknown', () => post(event({ type: 'io.backstage.catalog.entity.renamed' })), 400, 'invalid-event'),
  c('time a number', () => post(event({ time: Date.now() })), 400, 'invalid-event'),
  c('time without offset', () => post(event({ time: '2026-01-01T00:00:00' })), 400, 'invalid-event'),
  c('time on 30 February', () => post(event({ time: '2026-02-30T00:00:00Z' })), 400, 'invalid-event'),
  c('source an object', () => post(event({ source: { href: 'https://x' } })), 400, 'invalid-event'),
  c('source with spaces', () => post(event({ source: 'not a uri' })), 400, 'invalid-event'),
  c('data null', () => post(event({ data: null })), 400, 'invalid-event'),
  c('data a string', () => post(event({ data: 'component:default/web' })), 400, 'invalid-event'),
  c('data an array', () => post(event({ data: [{ entityRef: 'component:default/web' }] })), 400, 'invalid-event'),
  c('data with an extra key', () => post(event({ data: { entityRef: 'component:default/web', spec: {} } })), 400, 'invalid-event'),
  c('data.uid an object', () => post(event({ data: { entityRef: 'component:default/web', uid: { $ne: null } } })), 400, 'invalid-event'),
  c('datacontenttype text/xml', () => post(event({ datacontenttype: 'text/xml' })), 400, 'invalid-event'),
  c('extension value an object', () => post(event({ tenant: { id: 1 } })), 400, 'invalid-event'),
  c('extension value null', () => post(event({ tenant: null })), 400, 'invalid-event'),
  c('extension value an array', () => post(event({ tenant: ['a'] })), 400, 'invalid-event'),
  c('extension name in upper case', () => post(event({ TraceParent: 'x' })), 400, 'invalid-event'),
  c('extension name of 21 characters', () => post(event({ ['e'.repeat(21)]: 'x' })), 400, 'invalid-event'),
  c('extension value of 1025 characters', () => post(event({ tenant: 'x'.repeat(1025) })), 400, 'invalid-event'),

  // Ids are unique per event: two events with one id would become one queue message (duplicate detection)
  c('two events for different entities with one id', () => {
    const id = randomUUID();
    return post([event({ id }, 'component:default/web'), event({ id }, 'api:default/orders-api')]);
  }, 400, 'invalid-event', (p) => expect(p.errors).toEqual([{ index: 1, path: 'id', message: 'must be unique in the batch (event 0 has the same id)' }])),
  c('the same event twice in a batch', () => {
    const e = event();
    return post([e, e]);
  }, 400, 'invalid-event'),
];

/** Hostile-looking requests the contract accepts: each must enqueue exactly `enqueued` messages and pollute nothing. */
const toleratedCases: Array<{ name: string; req: () => Req; enqueued: number }> = [
  { name: 'media type in upper case with a charset parameter', req: () => post(event(), { contentType: `${SINGLE.toUpperCase()}; charset=utf-8` }), enqueued: 1 },
  { name: 'UTF-8 byte order mark', req: () => post(new Uint8Array(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(event()))]))), enqueued: 1 },
  { name: 'garbage traceparent and tracestate', req: () => post(event(), { headers: { traceparent: '00-zz-zz-zz', tracestate: '=,=,='.repeat(100) } }), enqueued: 1 },
  { name: '"constructor" and "prototype" as string extensions', req: () => post(event({ constructor: 'x', prototype: 'y' })), enqueued: 1 },
  {
    name: 'a ref with 63-character kind, namespace and name (a 191-character document id, over Service Bus\'s 128 for a session id)',
    req: () => post(refEvent(`${ref63('K')}:${ref63('n')}/${ref63('n')}`)),
    enqueued: 1,
  },
  {
    name: 'a signature list with one valid signature among others (Standard Webhooks: space-delimited)',
    req: () => {
      const r = signed(event());
      return { ...r, headers: { ...r.headers, 'webhook-signature': twice(r.headers!['webhook-signature']!, 'v1,AAAA') } };
    },
    enqueued: 1,
  },
];

describe('POST /api/catalog/events (INTAKE_AUTH=entra,standard-webhooks)', () => {
  beforeAll(async () => {
    await resetRuntime();
    useMode('entra,standard-webhooks');
  });

  test.each(intakeCases.map((x) => [x.name, x] as const))('%s', async (_name, x) => {
    await expectRejected(catalogEvents, 'catalogEvents', { method: 'POST', path: 'catalog/events' }, x);
    await expectHealthy('entra');
  });

  test.each(toleratedCases.map((x) => [x.name, x] as const))('tolerated: %s', async (_name, x) => {
    const before = broker.stats(QUEUE);
    const response = await intake(x.req());
    expect({ status: response.status, body: parse(response) }).toEqual({ status: 202, body: { accepted: 1, enqueued: x.enqueued, outOfScope: 0 } });
    const after = broker.stats(QUEUE);
    expect({ enqueued: after.enqueued - before.enqueued, duplicatesDropped: after.duplicatesDropped - before.duplicatesDropped }).toEqual({
      enqueued: x.enqueued,
      duplicatesDropped: 0,
    });
    await expectHealthy('entra');
  });

  test('regression: a document id over 128 characters gets a 128-character session of its own (was a 503 forever)', async () => {
    const ref = `${ref63('K')}:${ref63('n')}/${ref63('x')}`;
    expect((await intake(post(refEvent(ref)))).status).toBe(202);
    const sessionId = toSessionId(toDocumentId(ref));
    expect(sessionId).toHaveLength(128);
    expect(toSessionId(sessionId)).toBe(sessionId);
    const client = new ServiceBusClient(broker.connectionString);
    try {
      const receiver = await client.acceptSession(QUEUE, sessionId);
      const messages = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5_000 });
      expect(messages.map((m) => (m.body as { entityRef: string }).entityRef)).toEqual([ref]);
      for (const m of messages) await receiver.completeMessage(m);
      await receiver.close();
    } finally {
      await client.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// POST /api/catalog/events — INTAKE_AUTH=standard-webhooks (no Entra tokens at all) and INTAKE_AUTH=entra

const webhookOnlyCases: Case[] = [
  c('a valid Entra token, no webhook headers', () => post(event()), 401, 'invalid-signature'),
  c('no credentials at all', () => post(event(), { token: null }), 401, 'invalid-signature'),
  c('only webhook-timestamp', () => post(event(), { token: null, headers: { 'webhook-timestamp': String(Math.floor(Date.now() / 1000)) } }), 401, 'invalid-signature'),
  c('signature over a different body', () => signed(event(), { sign: JSON.stringify(event()) }), 401, 'invalid-signature'),
  c('signature with a secret not configured', () => signed(event(), { secret: OTHER_SECRET }), 401, 'invalid-signature'),
  c('stale timestamp', () => signed(event(), { at: -301 - 60 }), 401, 'invalid-signature'),
  c('future timestamp', () => signed(event(), { at: 301 + 60 }), 401, 'invalid-signature'),
  c('replayed webhook-id', async () => {
    const first = signed(event());
    expect((await intake(first)).status).toBe(202);
    return first;
  }, 409, 'duplicate-delivery'),
  c('correctly signed, wrong Content-Type', () => signed(event(), { contentType: 'application/json' }), 415, 'unsupported-media-type'),
  c('correctly signed, oversized', () => signed(padded(MiB)), 413, 'payload-too-large'),
  c('correctly signed, deeply nested', () => signed(nestedArrays(100_000)), 400, 'invalid-json'),
  c('correctly signed, __proto__', () => signed(`{"__proto__":{"polluted":true},${JSON.stringify(event()).slice(1)}`), 400, 'invalid-event'),
  c('correctly signed, mixed batch', () => signed([event(), refEvent('component:default/..')]), 400, 'invalid-event'),
];

const entraOnlyCases: Case[] = [
  c('a valid Standard Webhooks signature when only Entra is enabled', () => signed(event()), 401, 'unauthorized'),
  c('a valid signature and a token without the sender role', () => signed(event(), { token: tokens.reader }), 403, 'forbidden'),
  c('a valid signature and an expired token', () => signed(event(), { token: tokens.expired }), 401, 'unauthorized'),
];

describe('POST /api/catalog/events (INTAKE_AUTH=standard-webhooks)', () => {
  beforeAll(async () => {
    await resetRuntime();
    useMode('standard-webhooks');
  });
  afterAll(() => resetRuntime());

  test.each(webhookOnlyCases.map((x) => [x.name, x] as const))('%s', async (_name, x) => {
    await expectRejected(catalogEvents, 'catalogEvents', { method: 'POST', path: 'catalog/events' }, x);
    await expectHealthy('webhooks');
  });

  test('a rejected body does not burn its webhook-id: the corrected delivery is accepted', async () => {
    const id = `msg_${randomUUID()}`;
    const bad = c('an invalid time', () => signed(event({ time: 'now' }), { id }), 400, 'invalid-event');
    await expectRejected(catalogEvents, 'catalogEvents', { method: 'POST', path: 'catalog/events' }, bad);
    expect((await intake(signed(event(), { id }))).status).toBe(202);
  });
});

describe('POST /api/catalog/events (INTAKE_AUTH=entra)', () => {
  beforeAll(async () => {
    await resetRuntime();
    useMode('entra');
  });
  afterAll(async () => {
    await resetRuntime();
    useMode('entra,standard-webhooks');
  });

  test.each(entraOnlyCases.map((x) => [x.name, x] as const))('%s', async (_name, x) => {
    await expectRejected(catalogEvents, 'catalogEvents', { method: 'POST', path: 'catalog/events' }, x);
    await expectHealthy('entra');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The other endpoints

interface Endpoint {
  handler: Handler;
  functionName: string;
  method: string;
  path: string;
  /** A token that passes this endpoint's role check. */
  token: () => string;
}

/** A run id no run has. */
const NO_RUN = '00000000-0000-4000-8000-000000000001';

const ENDPOINTS = {
  getEntity: { handler: getEntity, functionName: 'getEntity', method: 'GET', path: 'entities/component/default/web', token: () => tokens.reader },
  getEntityHistory: { handler: getEntityHistory, functionName: 'getEntityHistory', method: 'GET', path: 'entities/component/default/web/history', token: () => tokens.reader },
  getChanges: { handler: getChanges, functionName: 'getChanges', method: 'GET', path: 'changes', token: () => tokens.reader },
  graph: { handler: graph, functionName: 'graph', method: 'GET', path: 'graph/component/default/web', token: () => tokens.reader },
  adminReconcile: { handler: adminReconcile, functionName: 'adminReconcile', method: 'POST', path: 'admin/reconcile', token: () => tokens.admin },
  getReconcileRun: { handler: getReconcileRun, functionName: 'getReconcileRun', method: 'GET', path: `admin/reconcile/runs/${NO_RUN}`, token: () => tokens.admin },
  listDeadLetters: { handler: listDeadLetters, functionName: 'listDeadLetters', method: 'GET', path: 'admin/deadletters', token: () => tokens.admin },
  replayDeadLetters: { handler: replayDeadLetters, functionName: 'replayDeadLetters', method: 'POST', path: 'admin/deadletters/replay', token: () => tokens.admin },
  listProjectionFailures: { handler: listProjectionFailures, functionName: 'listProjectionFailures', method: 'GET', path: 'admin/projection-failures', token: () => tokens.admin },
  selfCheck: { handler: selfCheck, functionName: 'selfCheck', method: 'GET', path: 'admin/self-check', token: () => tokens.admin },
  getAuthored: { handler: getAuthored, functionName: 'getAuthored', method: 'GET', path: 'authored/component/default/provisioned-service', token: () => tokens.writer },
  putAuthored: { handler: putAuthored, functionName: 'putAuthored', method: 'PUT', path: 'authored/component/default/provisioned-service', token: () => tokens.writer },
  deleteAuthored: { handler: deleteAuthored, functionName: 'deleteAuthored', method: 'DELETE', path: 'authored/component/default/provisioned-service', token: () => tokens.writer },
  replayProjectionFailures: {
    handler: replayProjectionFailures,
    functionName: 'replayProjectionFailures',
    method: 'POST',
    path: 'admin/projection-failures/replay',
    token: () => tokens.admin,
  },
} satisfies Record<string, Endpoint>;

type EndpointName = keyof typeof ENDPOINTS;

interface EndpointCase extends Case {
  endpoint: EndpointName;
}

const WEB = { kind: 'component', namespace: 'default', name: 'web' };
const AUTHORED = { kind: 'component', namespace: 'default', name: 'provisioned-service' };
/** A valid entity for the authoring API, at the path of {@link AUTHORED}. */
const authoredEntity = (spec: Record<string, unknown> = {}) =>
  JSON.stringify({
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: { name: 'provisioned-service', description: 'Created by a provisioning pipeline' },
    spec: { type: 'service', lifecycle: 'experimental', owner: 'group:default/platform-team', ...spec },
  });

/** A request to `endpoint` with its role's token (unless `token` says otherwise) and the entity route params. */
function to(
  endpoint: EndpointName,
  o: { token?: string | null; params?: Record<string, string>; query?: string; body?: string | Uint8Array; headers?: Record<string, string> } = {},
): () => Req {
  return () => {
    const token = o.token === undefined ? ENDPOINTS[endpoint].token() : o.token;
    const params =
      o.params ??
      (endpoint === 'getEntity' || endpoint === 'graph' || endpoint === 'getEntityHistory' ? WEB : endpoint.endsWith('Authored') ? AUTHORED : endpoint === 'getReconcileRun' ? { id: NO_RUN } : {});
    return {
      headers: { ...(token !== null && bearer(token)), ...(o.body !== undefined && { 'content-type': 'application/json' }), ...o.headers },
      params,
      ...(o.query !== undefined && { query: o.query }),
      ...(o.body !== undefined && { body: o.body }),
    };
  };
}

const e = (endpoint: EndpointName, name: string, req: () => Req, status: number, type: string, check?: Case['check']): EndpointCase => ({
  endpoint,
  ...c(`${endpoint}: ${name}`, req, status, type, check),
});

/** Route parameters that break Backstage's rules: each must be a 400 invalid-entity-ref. */
const BAD_PARAMS: Array<[string, Record<string, string>]> = [
  ['unicode name', { ...WEB, name: 'w\u0435b' }],
  ['Kelvin sign in the namespace', { ...WEB, namespace: '\u212Aube' }],
  ['.. as kind', { ...WEB, kind: '..' }],
  ['.. as namespace', { ...WEB, namespace: '..' }],
  ['.. as name', { ...WEB, name: '..' }],
  ['slash in the name', { ...WEB, name: 'web/../admin' }],
  ['backslash in the name', { ...WEB, name: 'web\\x' }],
  ['NUL in the name', { ...WEB, name: 'web\u0000' }],
  ['newline in the namespace', { ...WEB, namespace: 'default\n' }],
  ['percent-encoded dots', { ...WEB, name: '%2e%2e' }],
  ['64-character name', { ...WEB, name: 'a'.repeat(64) }],
  ['64-character kind', { ...WEB, kind: 'k'.repeat(64) }],
  ['64-character namespace', { ...WEB, namespace: 'n'.repeat(64) }],
  ['10 000-character name', { ...WEB, name: 'a'.repeat(10_000) }],
  ['empty kind', { ...WEB, kind: '' }],
  ['empty namespace', { ...WEB, namespace: '' }],
  ['empty name', { ...WEB, name: '' }],
  ['no route parameters at all', {}],
  ['name with surrounding spaces', { ...WEB, name: ' web ' }],
  ['__proto__ as name', { ...WEB, name: '__proto__' }],
];

/** Tokens no endpoint accepts (401), for each endpoint. */
const BAD_TOKENS: Array<[string, () => string | null, number, string]> = [
  ['no token', () => null, 401, 'unauthorized'],
  ['expired token', () => tokens.expired, 401, 'unauthorized'],
  ['token for another audience', () => tokens.wrongAudience, 401, 'unauthorized'],
  ['alg none', () => algNone(tokens.admin), 401, 'unauthorized'],
  ['admin role added under the signature', () => tampered(tokens.none, { roles: ['Catalog.Admin', 'Catalog.Read'] }), 401, 'unauthorized'],
  ['only the sender role', () => tokens.sender, 403, 'forbidden'],
];

const otherCases: EndpointCase[] = [
  e('putAuthored', 'no token', to('putAuthored', { token: null, body: authoredEntity() }), 401, 'unauthorized'),
  e('putAuthored', 'only the read role', () => to('putAuthored', { token: tokens.reader, body: authoredEntity() })(), 403, 'forbidden'),
  e('putAuthored', 'the admin role is not the write role', () => to('putAuthored', { token: tokens.admin, body: authoredEntity() })(), 403, 'forbidden'),
  e('putAuthored', 'text/plain', () => to('putAuthored', { body: authoredEntity(), headers: { 'content-type': 'text/plain' } })(), 415, 'unsupported-media-type'),
  e('putAuthored', 'over AUTHORED_MAX_BYTES', to('putAuthored', { body: authoredEntity({ padding: 'x'.repeat(70_000) }) }), 413, 'payload-too-large'),
  e('putAuthored', 'not JSON', to('putAuthored', { body: '{kind: Component' }), 400, 'invalid-json'),
  e('putAuthored', 'not UTF-8', to('putAuthored', { body: withBytes(authoredEntity(), 'experimental', [...INVALID_UTF8.ff]) }), 400, 'invalid-json'),
  e('putAuthored', 'an array', to('putAuthored', { body: `[${authoredEntity()}]` }), 400, 'invalid-entity'),
  e('putAuthored', 'relations and status', to('putAuthored', { body: JSON.stringify({ ...JSON.parse(authoredEntity()), relations: [], status: {} }) }), 400, 'invalid-entity', (p) =>
    expect(p.errors).toEqual(['relations: computed by Backstage; leave it out', 'status: computed by Backstage; leave it out'])),
  e('putAuthored', 'a Component without an owner', to('putAuthored', { body: JSON.stringify({ ...JSON.parse(authoredEntity()), spec: { type: 'service', lifecycle: 'x' } }) }), 400, 'invalid-entity'),
  e('putAuthored', 'a name that is not the path', to('putAuthored', { body: authoredEntity().replace('"name":"provisioned-service"', '"name":"someone-else"') }), 400, 'invalid-entity'),
  e('putAuthored', '__proto__ in metadata', to('putAuthored', { body: authoredEntity().replace('"metadata":{', '"metadata":{"__proto__":{"polluted":true},') }), 400, 'invalid-entity'),
  e('putAuthored', 'a kind the policy does not allow', to('putAuthored', {
    params: { kind: 'group', namespace: 'default', name: 'provisioned-team' },
    body: JSON.stringify({ apiVersion: 'backstage.io/v1alpha1', kind: 'Group', metadata: { name: 'provisioned-team' }, spec: { type: 'team', children: [] } }),
  }), 403, 'authoring-not-allowed'),
  e('putAuthored', 'If-Match on an entity that does not exist', to('putAuthored', { body: authoredEntity(), headers: { 'if-match': '"0000"' } }), 412, 'precondition-failed'),
  e('putAuthored', 'an invalid path', to('putAuthored', { params: { ...AUTHORED, name: '..' }, body: authoredEntity() }), 400, 'invalid-entity-ref'),
  e('getAuthored', 'no such authored entity', to('getAuthored'), 404, 'not-found'),
  e('getAuthored', 'only the read role', () => to('getAuthored', { token: tokens.reader })(), 403, 'forbidden'),
  e('getAuthored', 'no token', to('getAuthored', { token: null }), 401, 'unauthorized'),
  e('getAuthored', 'an invalid path', to('getAuthored', { params: { ...AUTHORED, kind: '' } }), 400, 'invalid-entity-ref'),
  e('deleteAuthored', 'no such authored entity', to('deleteAuthored'), 404, 'not-found'),
  e('deleteAuthored', 'no token', to('deleteAuthored', { token: null }), 401, 'unauthorized'),
  e('deleteAuthored', 'only the read role', () => to('deleteAuthored', { token: tokens.reader })(), 403, 'forbidden'),
  e('deleteAuthored', 'an invalid path', to('deleteAuthored', { params: { ...AUTHORED, namespace: 'Not Valid' } }), 400, 'invalid-entity-ref'),
  // Route parameters
  ...BAD_PARAMS.flatMap(([name, params]) => [
    e('getEntity', name, to('getEntity', { params }), 400, 'invalid-entity-ref'),
    e('graph', name, to('graph', { params }), 400, 'invalid-entity-ref'),
    e('getEntityHistory', name, to('getEntityHistory', { params }), 400, 'invalid-entity-ref'),
  ]),
  e('getEntity', '"constructor" as kind (valid, absent)', to('getEntity', { params: { ...WEB, kind: 'constructor' } }), 404, 'not-found'),
  e('graph', '"constructor" as name (valid, absent)', to('graph', { params: { ...WEB, name: 'constructor' } }), 404, 'not-found'),

  // Tokens
  ...(Object.keys(ENDPOINTS) as EndpointName[]).flatMap((endpoint) =>
    BAD_TOKENS.map(([name, token, status, type]) => e(endpoint, name, () => to(endpoint, { token: token() })(), status, type)),
  ),
  e('getEntity', 'Basic credentials', to('getEntity', { token: null, headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } }), 401, 'unauthorized'),
  e('graph', 'token signed by an unknown key', () => to('graph', { token: tokens.foreignKey })(), 401, 'unauthorized'),
  e('listDeadLetters', 'HS256 with the public key as secret', () => to('listDeadLetters', { token: hs256(tokens.admin, jwksModulus) })(), 401, 'unauthorized'),
  e('adminReconcile', 'only the read role', () => to('adminReconcile', { token: tokens.reader })(), 403, 'forbidden'),
  e('replayDeadLetters', 'only the read role', () => to('replayDeadLetters', { token: tokens.reader, body: '{}' })(), 403, 'forbidden'),
  e('replayProjectionFailures', 'only the read role', () => to('replayProjectionFailures', { token: tokens.reader, body: '{}' })(), 403, 'forbidden'),
  e('adminReconcile', 'token from another issuer', () => to('adminReconcile', { token: tokens.wrongIssuer })(), 401, 'unauthorized'),
  e('getReconcileRun', 'only the read role', () => to('getReconcileRun', { token: tokens.reader })(), 403, 'forbidden'),
  e('getReconcileRun', 'a run that does not exist', to('getReconcileRun'), 404, 'not-found'),
  ...(
    [
      ['id not a UUID', { id: 'run-1' }],
      ['id empty', {}],
      ['id a path traversal', { id: '../../entities/component/default/web' }],
      ['id with a NUL', { id: `${NO_RUN}\u0000` }],
      ['id 10 000 characters', { id: 'a'.repeat(10_000) }],
      ['id __proto__', { id: '__proto__' }],
    ] as const
  ).map(([name, params]) => e('getReconcileRun', name, to('getReconcileRun', { params }), 400, 'invalid-request')),

  // Graph query parameters
  ...(
    [
      ['depth=0', 'depth=0'],
      ['depth=11', 'depth=11'],
      ['depth=-1', 'depth=-1'],
      ['depth not a number', 'depth=abc'],
      ['depth a fraction', 'depth=1.5'],
      ['depth in exponent form', 'depth=1e1'],
      ['depth with a space', 'depth=%203'],
      ['depth in Arabic-Indic digits', 'depth=%D9%A3'],
      ['depth of 30 digits', `depth=${'9'.repeat(30)}`],
      ['depth repeated', 'depth=1&depth=10'],
      ['direction sideways', 'direction=sideways'],
      ['direction in upper case', 'direction=DOWNSTREAM'],
      ['direction empty', 'direction='],
      ['direction repeated', 'direction=downstream&direction=upstream'],
      ['format xml', 'format=xml'],
      ['format in upper case', 'format=JSON'],
      ['format repeated', 'format=json&format=dot'],
      ['limit=0', 'limit=0'],
      ['limit=5001', 'limit=5001'],
      ['limit repeated', 'limit=1&limit=2'],
      ['relations empty', 'relations='],
      ['relations only commas', 'relations=,,,'],
      ['relations with an injection attempt', `relations=${encodeURIComponent("dependsOn') OR 1=1 --")}`],
      ['21 relations', `relations=${Array.from({ length: 21 }, (_, i) => `r${i}`).join(',')}`],
      ['relation with unicode', `relations=${encodeURIComponent('dependsÖn')}`],
      ['relation __proto__', 'relations=__proto__'],
      ['relation of 64 characters', `relations=${'r'.repeat(64)}`],
      ['relations repeated', 'relations=dependsOn&relations=ownedBy'],
    ] as const
  ).map(([name, query]) => e('graph', name, to('graph', { query }), 400, 'invalid-request')),
  e('graph', 'unknown root', to('graph', { params: { ...WEB, name: 'does-not-exist' } }), 404, 'not-found'),

  // History query parameters
  ...(
    [
      ['since a date without a time', 'since=2026-12-01'],
      ['since without a zone', 'since=2026-12-01T10:00:00'],
      ['since not a real time', 'since=2026-13-45T10:00:00Z'],
      ['since yesterday', 'since=yesterday'],
      ['since repeated', 'since=2026-12-01T00:00:00Z&since=2026-12-02T00:00:00Z'],
      ['include everything', 'include=everything'],
      ['include empty', 'include='],
      ['include with an unknown part', 'include=diff,secrets'],
      ['include repeated', 'include=diff&include=entity'],
      ['pageSize=0', 'pageSize=0'],
      ['pageSize=101', 'pageSize=101'],
      ['pageSize not a number', 'pageSize=ten'],
      ['continuation not base64url', `continuation=${encodeURIComponent('{"token":"x"}')}`],
      ['continuation not a token we gave out', `continuation=${Buffer.from('hello').toString('base64url')}`],
      ['continuation of 5000 characters', `continuation=${'a'.repeat(5000)}`],
    ] as const
  ).map(([name, query]) => e('getEntityHistory', name, to('getEntityHistory', { query }), 400, 'invalid-request')),

  // The change log
  e('getChanges', 'no token', to('getChanges', { token: null }), 401, 'unauthorized'),
  e('getChanges', 'the authoring role only', () => to('getChanges', { token: tokens.writer })(), 403, 'forbidden'),
  ...(
    [
      ['after not base64url', `after=${encodeURIComponent('{"v":1,"feed":"x"}')}`],
      ['after not JSON', `after=${Buffer.from('hello').toString('base64url')}`],
      ['after of another version', `after=${Buffer.from('{"v":2,"feed":"x"}').toString('base64url')}`],
      ['after with an empty feed', `after=${Buffer.from('{"v":1,"feed":""}').toString('base64url')}`],
      ['after whose feed token Cosmos DB refuses', `after=${Buffer.from('{"v":1,"feed":"not a token"}').toString('base64url')}`],
      ['after whose feed token is JSON of another shape', `after=${Buffer.from(JSON.stringify({ v: 1, feed: '{"Continuation":[{"token":1}]}' })).toString('base64url')}`],
      ['after of 20000 characters', `after=${'a'.repeat(20_000)}`],
      ['after repeated', 'after=a&after=b'],
      ['after and since together', `after=${Buffer.from('{"v":1,"feed":"x"}').toString('base64url')}&since=2026-12-01T00:00:00Z`],
      ['since without a zone', 'since=2026-12-01T00:00:00'],
      ['since not a time', 'since=2026-13-45T99:00:00Z'],
      ['include everything', 'include=everything'],
      ['pageSize=0', 'pageSize=0'],
      ['pageSize=1001', 'pageSize=1001'],
      ['pageSize negative', 'pageSize=-5'],
    ] as const
  ).map(([name, query]) => e('getChanges', name, to('getChanges', { query }), 400, 'invalid-request')),

  // Reconcile
  e('adminReconcile', 'force=yes', to('adminReconcile', { query: 'force=yes' }), 400, 'invalid-request'),
  e('selfCheck', 'no token', to('selfCheck', { token: null }), 401, 'unauthorized'),
  e('selfCheck', 'only the read role', () => to('selfCheck', { token: tokens.reader })(), 403, 'forbidden'),
  e('selfCheck', 'a query parameter given twice', to('selfCheck', { query: 'x=1&x=2' }), 400, 'invalid-request'),
  e('adminReconcile', 'force=1', to('adminReconcile', { query: 'force=1' }), 400, 'invalid-request'),
  e('adminReconcile', 'force=TRUE', to('adminReconcile', { query: 'force=TRUE' }), 400, 'invalid-request'),
  e('adminReconcile', 'force repeated', to('adminReconcile', { query: 'force=false&force=true' }), 400, 'invalid-request'),
  e('adminReconcile', 'body not JSON', to('adminReconcile', { body: 'force please' }), 400, 'invalid-request'),
  e('adminReconcile', 'body an array', to('adminReconcile', { body: '[true]' }), 400, 'invalid-request'),
  e('adminReconcile', 'body null', to('adminReconcile', { body: 'null' }), 400, 'invalid-request'),
  e('adminReconcile', 'body a string', to('adminReconcile', { body: '"force"' }), 400, 'invalid-request'),
  e('adminReconcile', 'force a string', to('adminReconcile', { body: '{"force":"true"}' }), 400, 'invalid-request'),
  e('adminReconcile', 'force a number', to('adminReconcile', { body: '{"force":1}' }), 400, 'invalid-request'),
  e('adminReconcile', 'force null', to('adminReconcile', { body: '{"force":null}' }), 400, 'invalid-request'),
  e('adminReconcile', 'force deeply nested', to('adminReconcile', { body: `{"force":${nestedArrays(50_000)}}` }), 400, 'invalid-request'),
  e('adminReconcile', 'invalid UTF-8 body', to('adminReconcile', { body: withBytes('{"force":@}', '@', [...INVALID_UTF8.ff]) }), 400, 'invalid-request'),
  e('adminReconcile', 'unknown key (a typo of force)', to('adminReconcile', { body: '{"forse":true}' }), 400, 'invalid-request'),
  e('adminReconcile', '__proto__ carrying force', to('adminReconcile', { body: '{"__proto__":{"force":true}}' }), 400, 'invalid-request'),

  // Dead letters
  ...(
    [
      ['max=0', 'max=0'],
      ['max=501', 'max=501'],
      ['max not a number', 'max=ten'],
      ['max negative', 'max=-1'],
      ['max a fraction', 'max=1.5'],
      ['max repeated', 'max=1&max=500'],
      ['from negative', 'from=-1'],
      ['from not a number', 'from=abc'],
      ['from in exponent form', 'from=1e3'],
      ['from beyond 2^53', 'from=99999999999999999999'],
      ['from repeated', 'from=1&from=2'],
    ] as const
  ).map(([name, query]) => e('listDeadLetters', name, to('listDeadLetters', { query }), 400, 'invalid-request')),
  ...(
    [
      ['body not JSON', '{max: 1}'],
      ['body an array', '[1]'],
      ['body null', 'null'],
      ['body a number', '42'],
      ['max 0', '{"max":0}'],
      ['max 1001', '{"max":1001}'],
      ['max a string', '{"max":"5"}'],
      ['max a fraction', '{"max":1.5}'],
      ['max negative', '{"max":-1}'],
      ['max null', '{"max":null}'],
      ['sequenceNumbers a string', '{"sequenceNumbers":"1"}'],
      ['sequenceNumbers numbers', '{"sequenceNumbers":[1]}'],
      ['sequence number negative', '{"sequenceNumbers":["-1"]}'],
      ['sequence number a fraction', '{"sequenceNumbers":["1.5"]}'],
      ['sequence number with a suffix', '{"sequenceNumbers":["1 OR 1=1"]}'],
      ['sequence number empty', '{"sequenceNumbers":[""]}'],
      ['sequence number of 20 digits', '{"sequenceNumbers":["99999999999999999999"]}'],
      ['sequence number in Arabic-Indic digits', '{"sequenceNumbers":["\u0661"]}'],
      ['sequence number null', '{"sequenceNumbers":[null]}'],
      ['1001 sequence numbers', JSON.stringify({ sequenceNumbers: Array.from({ length: 1001 }, (_, i) => String(i + 1)) })],
      ['unknown key (a typo of sequenceNumbers)', '{"sequenceNumber":["1"]}'],
      ['__proto__ carrying max', '{"__proto__":{"max":1}}'],
      ['constructor key', '{"constructor":{"prototype":{"polluted":true}}}'],
    ] as const
  ).map(([name, body]) => e('replayDeadLetters', name, to('replayDeadLetters', { body }), 400, 'invalid-request')),
  e('replayDeadLetters', 'invalid UTF-8 body', to('replayDeadLetters', { body: withBytes('{"max":@}', '@', [...INVALID_UTF8.overlongSlash]) }), 400, 'invalid-request'),

  // Projection failures
  ...(
    [
      ['max=0', 'max=0'],
      ['max=1001', 'max=1001'],
      ['max not a number', 'max=x'],
      ['max repeated', 'max=1&max=2'],
    ] as const
  ).map(([name, query]) => e('listProjectionFailures', name, to('listProjectionFailures', { query }), 400, 'invalid-request')),
  ...(
    [
      ['body not JSON', '{ids}'],
      ['body an array', '["component:default:web"]'],
      ['body null', 'null'],
      ['ids a string', '{"ids":"component:default:web"}'],
      ['ids numbers', '{"ids":[1]}'],
      ['id empty', '{"ids":[""]}'],
      ['id null', '{"ids":[null]}'],
      ['id of 301 characters', JSON.stringify({ ids: ['i'.repeat(301)] })],
      ['1001 ids', JSON.stringify({ ids: Array.from({ length: 1001 }, (_, i) => `component:default:c${i}`) })],
      ['id with a slash', '{"ids":["component/default/web"]}'],
      ['id with a backslash', '{"ids":["component\\\\default"]}'],
      ['id with a query string', '{"ids":["component:default:web?x=1"]}'],
      ['id with a fragment', '{"ids":["component:default:web#x"]}'],
      ['id with a control character', '{"ids":["component:default:web\\u0000"]}'],
      ['unknown key (a typo of ids)', '{"id":["component:default:web"]}'],
      ['__proto__ carrying ids', '{"__proto__":{"ids":[]}}'],
    ] as const
  ).map(([name, body]) => e('replayProjectionFailures', name, to('replayProjectionFailures', { body }), 400, 'invalid-request')),
];

describe('the other endpoints', () => {
  beforeAll(async () => {
    await resetRuntime();
    useMode('entra,standard-webhooks');
  });

  test('positive controls: the seeded state is there and readable', async () => {
    const read = await send(getEntity, 'getEntity', to('getEntity')(), { method: 'GET', path: 'entities/component/default/web' });
    expect(read.status).toBe(200);
    const traversal = await send(graph, 'graph', to('graph', { query: 'depth=1' })(), { method: 'GET', path: 'graph/component/default/web' });
    expect(traversal.status).toBe(200);
    const history = await send(getEntityHistory, 'getEntityHistory', to('getEntityHistory', { query: 'include=diff,entity&pageSize=5&since=2026-01-01T00:00:00Z' })(), {
      method: 'GET',
      path: 'entities/component/default/web/history',
    });
    expect(history.status).toBe(200);
    expect(parse(history)).toMatchObject({ entityRef: 'component:default/web', items: expect.any(Array) });
    const changes = await send(getChanges, 'getChanges', to('getChanges', { query: 'pageSize=2&include=diff,entity' })(), { method: 'GET', path: 'changes' });
    expect(changes.status).toBe(200);
    const { cursor } = parse(changes) as { cursor: string };
    const next = await send(getChanges, 'getChanges', to('getChanges', { query: `after=${cursor}&pageSize=2` })(), { method: 'GET', path: 'changes' });
    expect({ status: next.status, body: parse(next) }).toMatchObject({ status: 200, body: { items: expect.any(Array), cursor: expect.any(String) } });
    const failures = await send(listProjectionFailures, 'listProjectionFailures', to('listProjectionFailures')(), { method: 'GET', path: 'admin/projection-failures' });
    expect(parse(failures)).toMatchObject({ count: 1, items: [{ id: 'component:default:web' }] });
    const deadLetters = await send(listDeadLetters, 'listDeadLetters', to('listDeadLetters')(), { method: 'GET', path: 'admin/deadletters' });
    expect(parse(deadLetters)).toMatchObject({ count: 1, items: [{ reason: 'Seeded' }] });
  });

  test.each(otherCases.map((x) => [x.name, x] as const))('%s', async (_name, x) => {
    const { handler, functionName, method, path } = ENDPOINTS[x.endpoint];
    await expectRejected(handler, functionName, { method, path }, x);
    await expectHealthy('entra');
  });

  test('health ignores hostile headers and bodies', async () => {
    const requests: Req[] = [
      { headers: { authorization: `Bearer ${algNone(tokens.admin)}` } },
      { headers: { authorization: 'x'.repeat(16_384), 'content-type': 'application/cloudevents+json' } },
      { query: 'depth=0&format=xml&__proto__[polluted]=1' },
    ];
    for (const req of requests) {
      const response = await send(health, 'health', req, { method: 'GET', path: 'health' });
      expect({ status: response.status, status2: parse(response).status }).toEqual({ status: 200, status2: 'ok' });
    }
    expect(prototypeFingerprint()).toBe(fingerprint);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The OpenAPI contract: the happy paths and the dependency failures the corpus above does not reach, then coverage.
// Every response in this file went through `send`, which holds it to shared/api/openapi.json.

describe('the OpenAPI contract', () => {
  const call = (name: keyof typeof ENDPOINTS, o: Parameters<typeof to>[1] = {}) => {
    const { handler, functionName, method, path } = ENDPOINTS[name];
    return send(handler, functionName, to(name, o)(), { method, path });
  };
  const served = (req: Req = {}) => send(openapi, 'openapi', req, { method: 'GET', path: 'openapi.json' });
  const run = (id: string) => call('getReconcileRun', { params: { id } });
  /** A maintenance run requested, waited for (the worker runs it) and returned as the request's answer. */
  const requestRun = (o: Parameters<typeof to>[1] = {}) => call('adminReconcile', { ...o, headers: { prefer: 'wait=60', ...o.headers } });
  let fixture: FixtureCatalog | undefined;
  // The sync trigger, which runs the maintenance that POST /api/admin/reconcile queues.
  let worker: ReturnType<typeof startSyncTrigger> | undefined;

  beforeAll(() => {
    worker = startSyncTrigger(broker.connectionString);
  });

  afterAll(async () => {
    await worker?.stop();
    await fixture?.stop();
  });

  test('the contract is served anonymously, cacheable, and revalidated with its ETag', async () => {
    const first = await served();
    expect(first.status).toBe(200);
    expect(bodyJson(first)).toMatchObject({ openapi: '3.1.0' });
    expect((await served({ headers: { 'if-none-match': headerOf(first, 'etag')! } })).status).toBe(304);
  });

  test('a mirror read revalidates with its ETag; the graph answers in every format', async () => {
    const read = await call('getEntity');
    expect((await call('getEntity', { headers: { 'if-none-match': headerOf(read, 'etag')! } })).status).toBe(304);
    for (const format of ['json', 'mermaid', 'dot']) expect((await call('graph', { query: `format=${format}` })).status).toBe(200);
  });

  test('with Backstage unreachable: a requested run is accepted and fails naming the dependency; the self-check 503 names it', async () => {
    const accepted = await call('adminReconcile');
    expect({ status: accepted.status, run: bodyJson(accepted) }).toMatchObject({ status: 202, run: { status: 'queued' } });
    const id = bodyJson<{ id: string }>(accepted).id;
    expect(headerOf(accepted, 'location')).toMatch(new RegExp(`/api/admin/reconcile/runs/${id}$`));
    const current = await eventually(async () => {
      const response = await run(id);
      return ['failed', 'succeeded'].includes(bodyJson<{ status: string }>(response).status) && response;
    }, 'the run to end', 30_000);
    expect({ status: current.status, run: bodyJson(current) }).toMatchObject({ status: 200, run: { id, status: 'failed', error: { detail: expect.stringMatching(/Backstage/) } } });
    const check = await call('selfCheck');
    expect({ status: check.status, type: bodyJson(check).type }).toEqual({ status: 503, type: 'urn:backstage-cosmos-sync:problem:self-check-failed' });
    // Authoring asks the catalog whether another source owns the entity: without an answer, nothing is written.
    const put = await call('putAuthored', { body: authoredEntity() });
    expect({ status: put.status, type: bodyJson(put).type }).toEqual({ status: 503, type: 'urn:backstage-cosmos-sync:problem:unavailable' });
    expect((await call('getAuthored')).status).toBe(404);
  });

  test('with a catalog: the self-check passes; the guard refuses a reconcile that would empty the seeded mirror, force runs it', async () => {
    fixture = await startFixtureCatalog();
    Object.assign(process.env, { BACKSTAGE_BASE_URL: fixture.baseUrl, BACKSTAGE_MAX_RETRIES: '2' });
    await resetRuntime();
    expect((await call('selfCheck')).status).toBe(200);
    const refused = await requestRun();
    expect({ status: refused.status, run: bodyJson(refused) }).toMatchObject({
      status: 200,
      run: { status: 'refused', result: { deletionGuard: { tripped: true, allowed: false } }, error: { title: 'Mass-deletion guard refused to tombstone' } },
    });
    const forced = await requestRun({ query: 'force=true' });
    expect({ status: forced.status, run: bodyJson(forced) }).toMatchObject({ status: 200, run: { status: 'succeeded', force: true, result: { deletionGuard: { forced: true } } } });
    // Starting a Backstage and two runs: well within a minute alone, not always on a loaded 2-core machine.
  }, 180_000);

  test('authoring: created, read back, replaced under If-Match, deleted; an entity a catalog file owns is refused', async () => {
    const owned = await call('putAuthored', {
      params: { kind: 'component', namespace: 'default', name: 'payments-service' },
      body: authoredEntity().replace('"name":"provisioned-service"', '"name":"payments-service"'),
    });
    expect({ status: owned.status, body: bodyJson(owned) }).toMatchObject({
      status: 409,
      body: { type: 'urn:backstage-cosmos-sync:problem:owned-elsewhere', entityRef: 'Component:default/payments-service', ownerLocation: expect.stringMatching(/^file:/) },
    });
    expect((await call('getAuthored', { params: { kind: 'component', namespace: 'default', name: 'payments-service' } })).status).toBe(404);

    const created = await call('putAuthored', { body: authoredEntity(), headers: { 'if-none-match': '*' } });
    expect(created.status).toBe(201);
    expect(bodyJson(created)).toMatchObject({ entityRef: 'Component:default/provisioned-service', authoredBy: { subject: expect.any(String) } });
    const etag = headerOf(created, 'etag')!;
    expect((await call('putAuthored', { body: authoredEntity(), headers: { 'if-none-match': '*' } })).status).toBe(412);
    const read = await call('getAuthored');
    expect({ status: read.status, etag: headerOf(read, 'etag') }).toEqual({ status: 200, etag });
    expect((await call('getAuthored', { headers: { 'if-none-match': etag } })).status).toBe(304);
    const replaced = await call('putAuthored', { body: authoredEntity({ lifecycle: 'production' }), headers: { 'if-match': etag } });
    expect(replaced.status).toBe(200);
    expect((await call('putAuthored', { body: authoredEntity(), headers: { 'if-match': etag } })).status).toBe(412);
    expect((await call('deleteAuthored', { headers: { 'if-match': etag } })).status).toBe(412);
    expect((await call('deleteAuthored', { headers: { 'if-match': headerOf(replaced, 'etag')! } })).status).toBe(204);
    expect((await call('getAuthored')).status).toBe(404);
    const again = await call('putAuthored', { body: authoredEntity() });
    expect(again.status).toBe(201);
  });

  test('the replays answer what they replayed', async () => {
    expect((await call('replayProjectionFailures', { body: '{}' })).status).toBe(200);
    expect((await call('replayDeadLetters', { body: '{}' })).status).toBe(200);
  });

  test('a queue that cannot be reached: 503 queue-unavailable with Retry-After, nothing accepted; no run is requested', async () => {
    await worker?.stop();
    worker = undefined;
    await broker.stop();
    const response = await intake(post(event({}, `component:default/unqueued-${randomUUID()}`)));
    expect({ status: response.status, type: bodyJson(response).type }).toEqual({ status: 503, type: 'urn:backstage-cosmos-sync:problem:queue-unavailable' });
    expect(headerOf(response, 'retry-after')).toBeDefined();
    const reconcile = await call('adminReconcile');
    expect({ status: reconcile.status, type: bodyJson(reconcile).type }).toEqual({ status: 503, type: 'urn:backstage-cosmos-sync:problem:unavailable' });
    expect(headerOf(reconcile, 'retry-after')).toBeDefined();
  });

  test('Cosmos DB unreachable: a run cannot be read, 503 unavailable with Retry-After', async () => {
    const endpoint = process.env.CosmosDBConnection__accountEndpoint;
    Object.assign(process.env, { CosmosDBConnection__accountEndpoint: 'https://127.0.0.1:1/', COSMOS_REQUEST_TIMEOUT_MS: '1000', COSMOS_MAX_RETRY_ATTEMPTS: '0' });
    await resetRuntime();
    try {
      const response = await run(NO_RUN);
      expect({ status: response.status, type: bodyJson(response).type }).toEqual({ status: 503, type: 'urn:backstage-cosmos-sync:problem:unavailable' });
      expect(headerOf(response, 'retry-after')).toBeDefined();
    } finally {
      Object.assign(process.env, { CosmosDBConnection__accountEndpoint: endpoint });
      delete process.env.COSMOS_REQUEST_TIMEOUT_MS;
      delete process.env.COSMOS_MAX_RETRY_ATTEMPTS;
      await resetRuntime();
    }
  });

  test('a worker with invalid settings answers every operation but the contract 503 misconfigured', async () => {
    Object.assign(process.env, { RECONCILE_MAX_DELETE_RATIO: '7' });
    await resetRuntime();
    try {
      const probes: Array<[Handler, string, { method: string; path: string }]> = [
        [health, 'health', { method: 'GET', path: 'health' }],
        [catalogEvents, 'catalogEvents', { method: 'POST', path: 'catalog/events' }],
        ...Object.values(ENDPOINTS).map((x) => [x.handler, x.functionName, { method: x.method, path: x.path }] as [Handler, string, { method: string; path: string }]),
      ];
      for (const [handler, functionName, defaults] of probes) {
        const response = await send(handler, functionName, { headers: bearer(tokens.admin), params: WEB }, defaults);
        expect({ status: response.status, type: bodyJson(response).type }).toEqual({ status: 503, type: 'urn:backstage-cosmos-sync:problem:misconfigured' });
      }
      expect((await served()).status).toBe(200);
    } finally {
      delete process.env.RECONCILE_MAX_DELETE_RATIO;
      await resetRuntime();
    }
  });

  /** Documented but not produced by any request here, each with the reason. */
  const NOT_REACHABLE: Record<string, string> = {
    '500': 'an error the code does not recognise: the mapping is unit-tested (toProblem); no request is meant to produce it',
    'problem internal': 'as 500',
  };

  test('coverage: every operation, every documented status and every problem type was answered and conformed', () => {
    const missing: string[] = [];
    for (const operation of OPERATIONS) {
      for (const status of Object.keys(operation.spec.responses)) {
        if (!contract.seen.has(`${operation.operationId} ${status}`) && !NOT_REACHABLE[status]) missing.push(`${operation.operationId} ${status}`);
      }
    }
    for (const type of PROBLEM_TYPES) if (!contract.seen.has(`problem ${type}`) && !NOT_REACHABLE[`problem ${type}`]) missing.push(`problem ${type}`);
    expect(missing).toEqual([]);
  });
});
