/**
 * The module in a test backend (`startTestBackend`, Backstage's mock services and in-memory catalog), its
 * database a real SQLite shared across backend restarts, its endpoint a local HTTP receiver.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServiceFactory } from '@backstage/backend-plugin-api';
import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import type { SchedulerService, ServiceFactory } from '@backstage/backend-plugin-api';

/** The test utils' scheduler: a real SchedulerService whose tasks the test triggers. */
type MockSchedulerService = SchedulerService & {
  factory(options?: { skipTaskRunOnStartup?: boolean }): ServiceFactory<SchedulerService, 'plugin', 'singleton'>;
};
import type { Entity } from '@backstage/catalog-model';
import { catalogServiceRef, type CatalogService } from '@backstage/plugin-catalog-node';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import knexFactory, { type Knex } from 'knex';
import { Webhook } from 'standardwebhooks';
import { catalogModuleChangeEvents, TASK_ID } from './module';
import type { CatalogEvent } from './ChangeEventsEngine';

jest.setTimeout(30_000);

const SECRET = `whsec_${Buffer.from('module-test-secret-32-bytes-long!').toString('base64')}`;

// Metrics: the module uses the global meter provider, as a Backstage backend's OpenTelemetry setup provides.
const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));

async function metricTotal(name: string): Promise<number> {
  await reader.forceFlush();
  const batches = exporter.getMetrics();
  const last = batches[batches.length - 1];
  let total = 0;
  for (const scope of last?.scopeMetrics ?? []) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name === name) for (const point of metric.dataPoints) total += Number(point.value);
    }
  }
  return total;
}

function entity(kind: string, name: string, etag: string, uid = `uid-${name}`): Entity {
  return { apiVersion: 'backstage.io/v1alpha1', kind, metadata: { name, namespace: 'default', uid, etag }, spec: {} };
}

/** An HTTP endpoint that records every delivery and can be told to fail. */
class Receiver {
  readonly batches: Array<{ headers: http.IncomingHttpHeaders; events: CatalogEvent[] }> = [];
  failNext = 0;
  private server!: http.Server;
  url = '';

  async start() {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (this.failNext > 0) {
          this.failNext -= 1;
          res.writeHead(503, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ title: 'down', detail: 'scripted outage' }));
          return;
        }
        new Webhook(SECRET).verify(body, req.headers as Record<string, string>);
        this.batches.push({ headers: req.headers, events: JSON.parse(body) });
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"accepted":1}');
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/api/catalog/events`;
  }

  events(): CatalogEvent[] {
    return this.batches.flatMap((b) => b.events);
  }

  stop() {
    return new Promise<void>((r) => {
      this.server.closeAllConnections();
      this.server.close(() => r());
    });
  }
}

let receiver: Receiver;
let knex: Knex;
let catalog: CatalogService;
let scheduler: MockSchedulerService;

beforeEach(async () => {
  receiver = new Receiver();
  await receiver.start();
  knex = knexFactory({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true, pool: { min: 1, max: 1 } });
});

afterEach(async () => {
  await receiver.stop();
  await knex.destroy();
});

/** Starts a backend with the module; the catalog it sees can be swapped between runs. */
async function backend(changeEvents: Record<string, unknown> = {}) {
  scheduler = mockServices.scheduler() as MockSchedulerService;
  return startTestBackend({
    features: [
      catalogModuleChangeEvents,
      scheduler.factory({ skipTaskRunOnStartup: true }),
      mockServices.database.factory({ knex }),
      createServiceFactory({
        service: catalogServiceRef,
        deps: {},
        // Delegates to whichever in-memory catalog the test installed last.
        factory: () =>
          new Proxy({} as CatalogService, {
            get: (_target, key) => {
              const value = (catalog as unknown as Record<PropertyKey, unknown>)[key];
              return typeof value === 'function' ? value.bind(catalog) : value;
            },
          }),
      }),
      mockServices.rootConfig.factory({
        data: {
          backend: { baseUrl: 'http://backstage.test' },
          catalog: {
            changeEvents: {
              schedule: { frequency: { minutes: 1 }, timeout: { minutes: 1 } },
              // The in-memory catalog has no database, hence no generations: the diff, on every triggered run.
              fullDiffInterval: '0s',
              retry: { initialDelay: '1ms', maxDelay: '5ms' },
              endpoints: [{ name: 'receiver', url: receiver.url, auth: { type: 'standardWebhooks', secret: SECRET } }],
              ...changeEvents,
            },
          },
        },
      }),
    ],
  });
}

const run = () => scheduler.triggerTask(TASK_ID);
const summary = (events: CatalogEvent[]) => events.map((e) => `${e.type.split('.').pop()} ${e.subject}`).sort();

test('the first run records a baseline and emits nothing; then creates, updates and deletes become exactly one event each', async () => {
  catalog = catalogServiceMock({ entities: [entity('Component', 'a', 'e1'), entity('Component', 'b', 'e1'), entity('API', 'c', 'e1')] });
  const instance = await backend();
  await run();
  expect(receiver.batches).toEqual([]);

  catalog = catalogServiceMock({ entities: [entity('Component', 'a', 'e1'), entity('Component', 'b', 'e2'), entity('Group', 'd', 'e1')] });
  await run();
  const events = receiver.events();
  expect(summary(events)).toEqual(['deleted API:default/c', 'upserted Component:default/b', 'upserted Group:default/d']);
  const updated = events.find((e) => e.subject === 'Component:default/b')!;
  expect(updated).toEqual({
    specversion: '1.0',
    id: expect.stringMatching(/^[0-9a-f-]{36}$/),
    source: 'http://backstage.test',
    type: 'io.backstage.catalog.entity.upserted',
    subject: 'Component:default/b',
    time: expect.any(String),
    datacontenttype: 'application/json',
    data: { entityRef: 'Component:default/b', uid: 'uid-b', etag: 'e2' },
  });
  expect(events.find((e) => e.subject === 'API:default/c')!.data).toEqual({ entityRef: 'API:default/c', uid: 'uid-c' });
  expect(receiver.batches[0]!.headers['content-type']).toBe('application/cloudevents-batch+json');
  expect(await metricTotal('catalog_change_events.emitted')).toBe(3);

  // Nothing changed: nothing more.
  await run();
  expect(receiver.events()).toHaveLength(3);

  // A re-created entity (new uid, same etag) is an update.
  catalog = catalogServiceMock({ entities: [entity('Component', 'a', 'e1', 'uid-a2'), entity('Component', 'b', 'e2'), entity('Group', 'd', 'e1')] });
  await run();
  expect(summary(receiver.events().slice(3))).toEqual(['upserted Component:default/a']);
  await instance.stop();
});

test('a restart with the persisted snapshot emits nothing new, and picks up what changed while down', async () => {
  catalog = catalogServiceMock({ entities: [entity('Component', 'a', 'e1'), entity('Component', 'b', 'e1')] });
  const first = await backend();
  await run();
  await run();
  await first.stop();

  const second = await backend();
  await run();
  expect(receiver.batches).toEqual([]);
  catalog = catalogServiceMock({ entities: [entity('Component', 'a', 'e9')] });
  await run();
  expect(summary(receiver.events())).toEqual(['deleted Component:default/b', 'upserted Component:default/a']);
  await second.stop();
});

test('an endpoint that fails twice then recovers gets every event once, in order per entity', async () => {
  catalog = catalogServiceMock({ entities: [entity('Component', 'a', 'e1')] });
  const instance = await backend({ batchSize: 2 });
  await run();
  receiver.failNext = 2;
  // Three changes of one entity and one of another, across runs; deliveries fail meanwhile.
  for (const [etag, extra] of [['e2', true], ['e3', true], ['e4', false]] as const) {
    catalog = catalogServiceMock({ entities: [entity('Component', 'a', etag), ...(extra ? [entity('Component', `x-${etag}`, 'e1')] : [])] });
    await run();
    await new Promise((r) => setTimeout(r, 20)); // past the (millisecond) backoff
  }
  await run();
  const events = receiver.events();
  const ids = events.map((e) => e.id);
  expect(new Set(ids).size).toBe(ids.length);
  const etagsOfA = events.filter((e) => e.subject === 'Component:default/a').map((e) => e.data.etag);
  expect(etagsOfA).toEqual(['e2', 'e3', 'e4']);
  expect(summary(events)).toEqual([
    'deleted Component:default/x-e2',
    'deleted Component:default/x-e3',
    'upserted Component:default/a',
    'upserted Component:default/a',
    'upserted Component:default/a',
    'upserted Component:default/x-e2',
    'upserted Component:default/x-e3',
  ]);
  expect(await metricTotal('catalog_change_events.delivery_failures')).toBeGreaterThanOrEqual(2);
  await instance.stop();
});

test('events older than the maximum age are dropped with a warning and counted', async () => {
  catalog = catalogServiceMock({ entities: [entity('Component', 'a', 'e1')] });
  const instance = await backend({ maxAge: '50ms' });
  await run();
  receiver.failNext = 100;
  catalog = catalogServiceMock({ entities: [entity('Component', 'a', 'e2'), entity('Component', 'b', 'e1')] });
  await run();
  const before = await metricTotal('catalog_change_events.dropped');
  await new Promise((r) => setTimeout(r, 80));
  receiver.failNext = 0;
  await run();
  expect(receiver.events()).toEqual([]);
  expect((await metricTotal('catalog_change_events.dropped')) - before).toBe(2);
  await instance.stop();
});

test('invalid configuration stops the backend with every problem named', async () => {
  catalog = catalogServiceMock({ entities: [] });
  await expect(
    backend({
      batchSize: 0,
      endpoints: [
        { name: 'a', url: 'not a url', auth: { type: 'entra', scope: 'api://x' } },
        { name: 'a', url: 'https://x', auth: { type: 'basic' } },
      ],
    }),
  ).rejects.toThrow(
    /catalog\.changeEvents is invalid:[\s\S]*endpoints\[0\]\.url: must be an absolute http\(s\) URL[\s\S]*endpoints\[0\]\.auth\.scope: must end with \/\.default[\s\S]*endpoints\[1\]\.name: 'a' is used twice[\s\S]*endpoints\[1\]\.auth\.type: must be 'entra', 'serviceAccountToken' or 'standardWebhooks'[\s\S]*batchSize: must be a whole number from 1 to 500/,
  );
});

test('without configuration the module stays idle', async () => {
  catalog = catalogServiceMock({ entities: [] });
  scheduler = mockServices.scheduler() as MockSchedulerService;
  const instance = await startTestBackend({
    features: [catalogModuleChangeEvents, scheduler.factory({ skipTaskRunOnStartup: true }), mockServices.database.factory({ knex })],
  });
  expect(await scheduler.getScheduledTasks()).toEqual([]);
  await instance.stop();
});
