/**
 * Contract between the Backstage module (backstage/) and this service: the events the module produces and delivers
 * are accepted by POST /api/catalog/events — served over HTTP as the Functions host would — with an Entra token from
 * the module's own DefaultAzureCredential, and with a Standard Webhooks signature; a wrong signature is refused and
 * the events stay in the module's outbox.
 */
import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import type { Entity } from '@backstage/catalog-model';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import knexFactory, { type Knex } from 'knex';
import type { SchedulerService, ServiceFactory } from '@backstage/backend-plugin-api';
import { catalogModuleChangeEvents, TABLES, TASK_ID } from '../../backstage/src';
import { catalogEvents } from '../../functions/catalogEvents';
import { startHttpHost, type HttpHost } from '../../local/functions-host/http';
import type { LocalServiceBus } from '../../local/servicebus/broker';
import { resetRuntime } from '../../shared/runtime';
import { loadConfig } from '../../shared/platform/config';
import { API_AUDIENCE, identityAdmin, provisionCosmos, startBroker, testEnvironment, uniqueName } from '../support/stack';

jest.setTimeout(60_000);

type MockScheduler = SchedulerService & { factory(o?: { skipTaskRunOnStartup?: boolean }): ServiceFactory<SchedulerService, 'plugin', 'singleton'> };

const SECRET = `whsec_${Buffer.from('contract-secret-of-32-bytes-long').toString('base64')}`;
const WRONG = `whsec_${Buffer.from('some-other-secret-entirely-wrong').toString('base64')}`;

let broker: LocalServiceBus;
let host: HttpHost;

beforeAll(async () => {
  broker = await startBroker();
  Object.assign(
    process.env,
    testEnvironment({ ServiceBusConnection: broker.connectionString, INTAKE_AUTH: 'entra,standard-webhooks', WEBHOOK_SECRETS: SECRET }),
  );
  (await provisionCosmos(loadConfig(process.env))).dispose(); // the webhook replay guard's container
  host = await startHttpHost({ routes: [{ functionName: 'catalogEvents', route: 'catalog/events', methods: ['POST'], handler: catalogEvents }] });
});

afterAll(async () => {
  await host?.close();
  await resetRuntime();
  await broker?.stop();
});

const entity = (name: string, etag: string): Entity => ({
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: { name, namespace: 'default', uid: `uid-${name}`, etag },
  spec: {},
});

/** Runs the module twice — a baseline, then after the catalog changed across a restart — with one endpoint. */
async function deliverWith(auth: Record<string, string>): Promise<{ outbox: number }> {
  const knex: Knex = knexFactory({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true, pool: { min: 1, max: 1 } });
  const runOnce = async (entities: Entity[]) => {
    const scheduler = mockServices.scheduler() as MockScheduler;
    const backend = await startTestBackend({
      features: [
        catalogModuleChangeEvents,
        scheduler.factory({ skipTaskRunOnStartup: true }),
        mockServices.database.factory({ knex }),
        catalogServiceMock.factory({ entities }),
        mockServices.rootConfig.factory({
          data: {
            backend: { baseUrl: 'https://backstage.example.com' },
            catalog: { changeEvents: { endpoints: [{ name: 'cosmos-sync', url: `${host.url}/api/catalog/events`, auth }] } },
          },
        }),
      ],
    });
    await scheduler.triggerTask(TASK_ID);
    await backend.stop();
  };
  await runOnce([entity('a', 'e1'), entity('b', 'e1')]); // baseline
  await runOnce([entity('a', 'e2'), entity('c', 'e1')]); // a updated, b deleted, c created
  const [row]: Array<{ count: number }> = await knex(TABLES.outbox).count({ count: '*' });
  const count = row?.count ?? 0;
  await knex.destroy();
  return { outbox: Number(count) };
}

test('Entra: the module gets a token with its managed identity and the intake accepts the batch', async () => {
  const clientId = uniqueName('backstage-mi');
  await identityAdmin().setClientBehaviour(clientId, { roles: ['Events.Send'] });
  const before = broker.stats('entity-sync').enqueued;
  const { outbox } = await deliverWith({ type: 'entra', scope: `${API_AUDIENCE}/.default`, clientId });
  expect(outbox).toBe(0);
  // a updated, b deleted, c created → three entities, three messages.
  expect(broker.stats('entity-sync').enqueued - before).toBe(3);
});

test('Standard Webhooks: signed with the shared secret, accepted', async () => {
  const before = broker.stats('entity-sync').enqueued;
  const { outbox } = await deliverWith({ type: 'standardWebhooks', secret: SECRET });
  expect(outbox).toBe(0);
  expect(broker.stats('entity-sync').enqueued - before).toBe(3);
});

test('a signature with the wrong secret is refused; the events stay in the outbox for a later try', async () => {
  const before = broker.stats('entity-sync').enqueued;
  const { outbox } = await deliverWith({ type: 'standardWebhooks', secret: WRONG });
  expect(outbox).toBe(3);
  expect(broker.stats('entity-sync').enqueued).toBe(before);
});

test('an Entra token without the sender role is refused the same way', async () => {
  const clientId = uniqueName('backstage-mi-norole');
  await identityAdmin().setClientBehaviour(clientId, { roles: ['Catalog.Read'] });
  const { outbox } = await deliverWith({ type: 'entra', scope: `${API_AUDIENCE}/.default`, clientId });
  expect(outbox).toBe(3);
});
