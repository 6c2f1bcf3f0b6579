/**
 * POST /api/catalog/events through the HTTP function, against the local broker: what is accepted lands on the
 * queue as the contract says; every rejection is a 4xx problem and leaves the queue untouched.
 */
import { randomUUID } from 'node:crypto';
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { ServiceBusClient } from '@azure/service-bus';
import { Webhook } from 'standardwebhooks';
import { catalogEvents } from '../../functions/catalogEvents';
import type { LocalServiceBus } from '../../local/servicebus/broker';
import { resetRuntime } from '../../shared/runtime';
import type { Container, CosmosClient } from '@azure/cosmos';
import { loadConfig } from '../../shared/platform/config';
import { provisionCosmos, startBroker, testEnvironment, userToken } from '../support/stack';
import { catalogEvent } from '../support/events';
import { bodyJson } from '../support/http';

jest.setTimeout(60_000);

const QUEUE = 'entity-sync';
const SECRET_OLD = `whsec_${Buffer.from('old-secret-old-secret-old!').toString('base64')}`;
const SECRET_NEW = `whsec_${Buffer.from('new-secret-new-secret-new!').toString('base64')}`;
const SINGLE = 'application/cloudevents+json';
const BATCH = 'application/cloudevents-batch+json';

let broker: LocalServiceBus;
/** The replay guard's container, read directly to see its records. */
let deliveries: Container;
let cosmos: CosmosClient;

beforeAll(async () => {
  broker = await startBroker();
  Object.assign(
    process.env,
    testEnvironment({
      ServiceBusConnection: broker.connectionString,
      SERVICEBUS_SEND_TIMEOUT_MS: '1500',
      INTAKE_AUTH: 'entra,standard-webhooks',
      WEBHOOK_SECRETS: `${SECRET_NEW},${SECRET_OLD}`,
      INTAKE_MAX_BODY_BYTES: '65536',
      INTAKE_MAX_BATCH_EVENTS: '50',
    }),
  );
  const config = loadConfig(process.env);
  cosmos = await provisionCosmos(config);
  deliveries = cosmos.database(config.cosmos.databaseName).container(config.cosmos.deliveriesContainer);
});

afterAll(async () => {
  cosmos?.dispose();
  await resetRuntime();
  await broker?.stop();
});

const event = (overrides: Record<string, unknown> = {}, ref = 'component:default/payments-service') => catalogEvent(overrides, ref);

async function post(body: unknown, options: { contentType?: string; token?: string | null; headers?: Record<string, string>; raw?: Uint8Array } = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const token = options.token === undefined ? await userToken({ roles: ['Events.Send'] }) : options.token;
  const request = new HttpRequest({
    method: 'POST',
    url: 'http://localhost:7071/api/catalog/events',
    headers: {
      'content-type': options.contentType ?? SINGLE,
      ...(token && { authorization: `Bearer ${token}` }),
      ...options.headers,
    },
    body: options.raw ? { bytes: options.raw } : { string: text },
  });
  return catalogEvents(request, new InvocationContext({ functionName: 'catalogEvents' }));
}

function signed(body: unknown, secret: string, options: { id?: string; timestamp?: Date } = {}) {
  const text = JSON.stringify(body);
  const id = options.id ?? `msg_${randomUUID()}`;
  const timestamp = options.timestamp ?? new Date();
  const signature = new Webhook(secret).sign(id, timestamp, text);
  return { text, headers: { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)), 'webhook-signature': signature } };
}

const json = (response: HttpResponseInit) => bodyJson<any>(response);
const header = (response: HttpResponseInit, name: string) => (response.headers as Record<string, string>)[name];
const enqueued = () => broker.stats(QUEUE).enqueued;

/** Runs a rejected request and asserts status, problem type and that nothing reached the queue. */
async function expectRejected(response: Promise<HttpResponseInit>, status: number, type: string) {
  const before = enqueued();
  const answer = await response;
  expect({ status: answer.status, type: json(answer).type }).toEqual({ status, type: `urn:backstage-cosmos-sync:problem:${type}` });
  expect(header(answer, 'content-type')).toBe('application/problem+json');
  expect(json(answer)).toMatchObject({ status, title: expect.any(String) });
  expect(enqueued()).toBe(before);
  return json(answer);
}

/** Takes every message off the queue, session by session. */
async function takeAll() {
  const impatient = new ServiceBusClient(broker.connectionString, { retryOptions: { timeoutInMs: 300, maxRetries: 0 } });
  const messages = [];
  try {
    for (;;) {
      const receiver = await impatient.acceptNextSession(QUEUE).catch(() => undefined);
      if (!receiver) return messages;
      const batch = await receiver.receiveMessages(100, { maxWaitTimeInMs: 200 });
      for (const m of batch) await receiver.completeMessage(m);
      messages.push(...batch);
      await receiver.close();
    }
  } finally {
    await impatient.close();
  }
}

describe('accepted', () => {
  test('one event with an Entra token: 202, one message as the contract says', async () => {
    const e = event({}, 'Component:default/Payments-Service');
    const response = await post(e, { headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } });
    expect(response.status).toBe(202);
    expect(json(response)).toEqual({ accepted: 1, enqueued: 1, outOfScope: 0 });
    const [message, ...rest] = await takeAll();
    expect(rest).toEqual([]);
    expect(message).toMatchObject({
      messageId: e.id,
      sessionId: 'component:default:payments-service',
      contentType: 'application/json',
      subject: 'upserted',
      applicationProperties: { attempt: 1, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
      body: {
        entityRef: 'Component:default/Payments-Service',
        type: 'upserted',
        etag: 'etag-1',
        uid: 'uid-1',
        eventId: e.id,
        eventTime: e.time,
        source: 'https://backstage.example.com',
      },
    });
  });

  test('a batch is coalesced per entity: the newest event of each entity is enqueued', async () => {
    const t = (s: number) => new Date(Date.now() - 60_000 + s * 1000).toISOString();
    const a1 = event({ time: t(1) }, 'component:default/a');
    const a3 = event({ time: t(3), type: 'io.backstage.catalog.entity.deleted', data: { entityRef: 'component:default/a' } }, 'component:default/a');
    const a2 = event({ time: t(2) }, 'component:default/a');
    const b1 = event({ time: t(1) }, 'api:default/b');
    const response = await post([a1, a3, a2, b1], { contentType: BATCH });
    expect(json(response)).toEqual({ accepted: 4, enqueued: 2, outOfScope: 0 });
    const messages = await takeAll();
    expect(messages.map((m) => [m.sessionId, m.messageId, m.body.type]).sort()).toEqual(
      [
        ['api:default:b', b1.id, 'upserted'],
        ['component:default:a', a3.id, 'deleted'],
      ].sort(),
    );
    expect(header(response, 'content-type')).toMatch(/^application\/json/);
  });

  test('a re-delivered event (same id) is accepted again and dropped by duplicate detection', async () => {
    const e = event();
    expect((await post(e)).status).toBe(202);
    expect((await post(e)).status).toBe(202);
    expect((await takeAll()).map((m) => m.messageId)).toEqual([e.id]);
  });

  test('Standard Webhooks: the current and the previous secret both verify (rotation)', async () => {
    for (const secret of [SECRET_NEW, SECRET_OLD]) {
      const { text, headers } = signed(event(), secret);
      const response = await post(text, { token: null, headers });
      expect(response.status).toBe(202);
    }
    expect(await takeAll()).toHaveLength(2);
  });
});

describe('rejected: authentication', () => {
  test('no credentials', async () => {
    await expectRejected(post(event(), { token: null }), 401, 'unauthorized');
  });
  test('expired token', async () => {
    const detail = await expectRejected(post(event(), { token: await userToken({ roles: ['Events.Send'], lifetimeInSeconds: -120 }) }), 401, 'unauthorized');
    expect(detail.detail).toBe('The token has expired');
  });
  test('wrong audience', async () => {
    await expectRejected(post(event(), { token: await userToken({ roles: ['Events.Send'], audience: 'api://other' }) }), 401, 'unauthorized');
  });
  test('wrong issuer', async () => {
    await expectRejected(post(event(), { token: await userToken({ roles: ['Events.Send'], issuer: 'https://sts.example.com/x/' }) }), 401, 'unauthorized');
  });
  test('missing sender role', async () => {
    const detail = await expectRejected(post(event(), { token: await userToken({ roles: ['Catalog.Admin'] }) }), 403, 'forbidden');
    expect(detail.requiredRoles).toEqual(['Events.Send']);
  });
  test('Standard Webhooks: signature of another secret', async () => {
    const { text, headers } = signed(event(), `whsec_${Buffer.from('some-other-secret-entirely').toString('base64')}`);
    await expectRejected(post(text, { token: null, headers }), 401, 'invalid-signature');
  });
  test('Standard Webhooks: signature over a different body', async () => {
    const { headers } = signed(event(), SECRET_NEW);
    await expectRejected(post(event(), { token: null, headers }), 401, 'invalid-signature');
  });
  test('Standard Webhooks: stale timestamp', async () => {
    const { text, headers } = signed(event(), SECRET_NEW, { timestamp: new Date(Date.now() - 6 * 60_000) });
    const detail = await expectRejected(post(text, { token: null, headers }), 401, 'invalid-signature');
    expect(detail.detail).toMatch(/webhook-timestamp is \d+ s away from now/);
  });
  test('Standard Webhooks: missing header', async () => {
    const { text, headers } = signed(event(), SECRET_NEW);
    const { 'webhook-timestamp': _dropped, ...partial } = headers;
    await expectRejected(post(text, { token: null, headers: partial }), 401, 'invalid-signature');
  });
  test('Standard Webhooks: a replayed webhook-id', async () => {
    const signedOnce = signed(event(), SECRET_NEW);
    expect((await post(signedOnce.text, { token: null, headers: signedOnce.headers })).status).toBe(202);
    await expectRejected(post(signedOnce.text, { token: null, headers: signedOnce.headers }), 409, 'duplicate-delivery');
    await takeAll();
  });
});

describe('the replay guard is shared by every instance', () => {
  test('a replay after a restart gets the same 409; the claim carries its TTL', async () => {
    const once = signed(event(), SECRET_NEW);
    expect((await post(once.text, { token: null, headers: once.headers })).status).toBe(202);
    await resetRuntime(); // a new instance: nothing in memory remembers the first delivery
    await expectRejected(post(once.text, { token: null, headers: once.headers }), 409, 'duplicate-delivery');
    const { resource } = await deliveries.item(once.headers['webhook-id'], once.headers['webhook-id']).read<{ ttl: number }>();
    expect(resource?.ttl).toBeGreaterThan(2 * 300);
    await takeAll();
  });

  test('concurrent copies of one delivery: exactly one is accepted', async () => {
    const once = signed(event(), SECRET_NEW);
    const before = enqueued();
    const answers = await Promise.all(Array.from({ length: 8 }, () => post(once.text, { token: null, headers: once.headers })));
    expect(answers.map((a) => a.status).sort()).toEqual([202, 409, 409, 409, 409, 409, 409, 409]);
    expect(enqueued()).toBe(before + 1);
    await takeAll();
  });

  test('a rotation: old and new secrets while both are configured, then only the new one', async () => {
    const byOld = signed(event(), SECRET_OLD);
    expect((await post(byOld.text, { token: null, headers: byOld.headers })).status).toBe(202);
    const byNew = signed(event(), SECRET_NEW);
    expect((await post(byNew.text, { token: null, headers: byNew.headers })).status).toBe(202);
    process.env.WEBHOOK_SECRETS = SECRET_NEW; // the old secret retired: the Key Vault secret now holds the new one only
    await resetRuntime();
    try {
      const late = signed(event(), SECRET_OLD);
      await expectRejected(post(late.text, { token: null, headers: late.headers }), 401, 'invalid-signature');
      const current = signed(event(), SECRET_NEW);
      expect((await post(current.text, { token: null, headers: current.headers })).status).toBe(202);
    } finally {
      process.env.WEBHOOK_SECRETS = `${SECRET_NEW},${SECRET_OLD}`;
      await resetRuntime();
    }
    await takeAll();
  });
});

describe('rejected: the request', () => {
  test('wrong content type', async () => {
    const answer = await expectRejected(post(event(), { contentType: 'application/json' }), 415, 'unsupported-media-type');
    expect(answer.detail).toMatch(/application\/cloudevents\+json/);
  });
  test('malformed JSON', async () => {
    await expectRejected(post('{"specversion": "1.0",'), 400, 'invalid-json');
  });
  test('invalid UTF-8', async () => {
    await expectRejected(post('', { raw: Uint8Array.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }), 400, 'invalid-json');
  });
  test('oversized body', async () => {
    const big = event({ padding: 'x'.repeat(70_000) });
    await expectRejected(post(big), 413, 'payload-too-large');
  });
  test('oversized batch', async () => {
    const answer = await expectRejected(post(Array.from({ length: 51 }, () => event()), { contentType: BATCH }), 413, 'payload-too-large');
    expect(answer.detail).toMatch(/at most 50 events/);
  });
  test('empty batch', async () => {
    await expectRejected(post([], { contentType: BATCH }), 400, 'invalid-event');
  });
  test('a batch body that is not an array', async () => {
    await expectRejected(post(event(), { contentType: BATCH }), 400, 'invalid-event');
  });
  test('unknown event type', async () => {
    const answer = await expectRejected(post(event({ type: 'io.backstage.catalog.entity.renamed' })), 400, 'invalid-event');
    expect(answer.errors).toEqual([{ index: 0, path: 'type', message: expect.stringMatching(/must be io\.backstage\.catalog\.entity\.upserted or/) }]);
  });
  test('invalid entity ref', async () => {
    const answer = await expectRejected(
      post(event({ subject: 'component:default/not valid', data: { entityRef: 'component:default/not valid' } })),
      400,
      'invalid-event',
    );
    expect(answer.errors.map((e: { path: string }) => e.path).sort()).toEqual(['data.entityRef', 'subject']);
  });
  test('subject naming another entity than data', async () => {
    const answer = await expectRejected(post(event({ subject: 'component:default/other' })), 400, 'invalid-event');
    expect(answer.errors).toEqual([{ index: 0, path: 'subject', message: 'must name the same entity as data.entityRef' }]);
  });
  test('missing required attributes, wrong types', async () => {
    const { id: _id, time: _time, ...partial } = event();
    const answer = await expectRejected(post({ ...partial, specversion: 1 }), 400, 'invalid-event');
    expect(answer.errors.map((e: { path: string }) => e.path).sort()).toEqual(['id', 'specversion', 'time']);
  });
  test('a batch mixing good and bad events enqueues nothing', async () => {
    const answer = await expectRejected(post([event(), event({ time: 'yesterday' }), event()], { contentType: BATCH }), 400, 'invalid-event');
    expect(answer.errors).toEqual([{ index: 1, path: 'time', message: 'must be an RFC 3339 timestamp' }]);
    expect(answer.detail).toBe('1 of 3 events are invalid; nothing was accepted');
  });
});

describe('the queue is down', () => {
  test('503 with Retry-After', async () => {
    await broker.stop();
    const response = await post(event());
    expect(response.status).toBe(503);
    expect(json(response).type).toBe('urn:backstage-cosmos-sync:problem:queue-unavailable');
    expect(header(response, 'retry-after')).toBe('10');
  });
  test('a signed delivery that could not be queued gives its webhook-id back, so the retry is not a replay', async () => {
    const once = signed(event(), SECRET_NEW);
    expect((await post(once.text, { token: null, headers: once.headers })).status).toBe(503);
    const { statusCode } = await deliveries.item(once.headers['webhook-id'], once.headers['webhook-id']).read();
    expect(statusCode).toBe(404);
  });
});
