/**
 * `npm start` pointed at services it does not own — here a Cosmos account and a Service Bus namespace standing in
 * for real Azure ones (the shared Cosmos emulator, a broker started by this test) — skips those stand-ins and runs
 * the app against what the settings name, authenticating with the developer's own credential (here the shared
 * managed-identity endpoint the test process already has). Backstage stays local.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { CosmosClient } from '@azure/cosmos';
import { readStackState } from '../../local/stack-state';
import type { LocalServiceBus } from '../../local/servicebus/broker';
import { loadConfig } from '../../shared/platform/config';
import type { EntityDocument } from '../../shared/model/documents';
import { eventually, provisionCosmos, startBroker, testEnvironment } from '../support/stack';

jest.setTimeout(180_000);

const ROOT = resolve(__dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'local-stack-external-'));
let child: ChildProcess | undefined;
let broker: LocalServiceBus;
let cosmos: CosmosClient;
const output: string[] = [];

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGINT');
    await exited;
  }
  cosmos?.dispose();
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('with settings for existing Cosmos DB and Service Bus, npm start uses them and starts neither stand-in', async () => {
  broker = await startBroker();
  const env = testEnvironment({ ServiceBusConnection: broker.connectionString });
  // What infrastructure provisions in Azure: the database and containers exist before the app starts.
  cosmos = await provisionCosmos(loadConfig(env));
  const given = {
    CosmosDBConnection__accountEndpoint: env.CosmosDBConnection__accountEndpoint!,
    COSMOS_CA_CERT_PATH: env.COSMOS_CA_CERT_PATH!,
    COSMOS_DATABASE_NAME: env.COSMOS_DATABASE_NAME!,
    ServiceBusConnection: broker.connectionString,
    AZURE_CLIENT_ID: env.AZURE_CLIENT_ID!,
  };
  const statePath = join(dir, 'stack.json');
  child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'local', 'start.ts'), '--ports', 'auto', '--state', statePath], {
    cwd: ROOT,
    env: { ...process.env, ...given, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [child.stdout!, child.stderr!]) stream.on('data', (chunk: Buffer) => output.push(...chunk.toString().split('\n')));
  await eventually(async () => output.includes('READY') || (child!.exitCode !== null && Promise.reject(new Error(output.join('\n')))), 'READY', 150_000);

  const text = output.join('\n');
  expect(text).toContain(`Cosmos DB          ${given.CosmosDBConnection__accountEndpoint}\n`); // no "(emulator)"
  expect(text).toContain('Service Bus        from settings');
  const state = readStackState(statePath);
  expect(state.settings).toMatchObject(given);
  // The app reads the local Backstage with its static token: the developer's credential is not trusted there.
  expect(state.settings.BACKSTAGE_STATIC_TOKEN).toBeDefined();
  expect(state.identityEnv).toBeUndefined();
  const settingsFile = JSON.parse(readFileSync(join(dir, 'local.settings.json'), 'utf8')) as { Values: Record<string, string> };
  expect(settingsFile.Values).toMatchObject(given);
  expect(settingsFile.Values.IDENTITY_ENDPOINT).toBeUndefined();

  // The initial reconcile wrote the example catalog into the database the settings name…
  const entities = cosmos.database(given.COSMOS_DATABASE_NAME).container('entities');
  const docs = (await entities.items.query<EntityDocument>('SELECT c.id FROM c').fetchAll()).resources;
  expect(docs.length).toBeGreaterThanOrEqual(35);
  expect(docs.map((d) => d.id)).toContain('component:default:checkout-service');

  // …and a catalog change travels through the given broker. (Events may already have gone through it: the module
  // takes its baseline at its first run, which can come before Backstage has ingested every entity.)
  const enqueuedBefore = broker.stats('entity-sync').enqueued;
  const file = join(state.catalogDir!, 'platform.yaml');
  writeFileSync(file, `${readFileSync(file, 'utf8')}\n---\napiVersion: backstage.io/v1alpha1\nkind: Resource\nmetadata: { name: external-check }\nspec: { type: queue, owner: platform }\n`);
  await eventually(async () => (await entities.item('resource:default:external-check', 'resource:default:external-check').read()).resource, 'the new entity in the given database', 60_000);
  expect(broker.stats('entity-sync').enqueued).toBeGreaterThan(enqueuedBefore);
});
