/**
 * Telemetry end to end: a worker process with Application Insights (Entra-authenticated ingestion) against a local
 * HTTPS ingestion endpoint. One webhook → queue → sync → projection run must produce request, dependency and custom
 * event envelopes under one operation id — the trace the caller sent — custom metrics, and no token anywhere.
 *
 * Twice: with the sources, and with the deployed artifact — the single-file bundle `package.json` `main` points at,
 * built here by scripts/bundle.ts from the current sources — loaded by the local dev host as the Functions host loads
 * `main`, every function running with its trigger against the stand-ins (see ../support/telemetry-scenario.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startIngestionEndpoint, type Envelope, type IngestionEndpoint } from '../../local/appinsights';
import type { LocalServiceBus } from '../../local/servicebus/broker';
import { startFixtureCatalog, type FixtureCatalog } from '../support/backstage';
import { startBroker, testEnvironment, userToken } from '../support/stack';
import { ROOT } from '../../scripts/bundle';

jest.setTimeout(180_000);

let bundleDir: string | undefined;

afterAll(() => {
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
});

/** Builds the bundle as `npm run build` does (the CLI compiles dist/ first when it is stale), into a scratch directory. */
function buildBundle(): string {
  mkdirSync(join(ROOT, 'dist-bundle'), { recursive: true });
  bundleDir = mkdtempSync(join(ROOT, 'dist-bundle', 'test-'));
  const cli = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'bundle.ts'), '--outfile', join(bundleDir, 'main.js')], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  if (cli.status !== 0) throw new Error(`scripts/bundle.ts failed (${cli.status}):\n${cli.stdout}${cli.stderr}`);
  return join(bundleDir, 'main.js');
}

describe.each([
  ['the sources', false],
  ['the deployed bundle', true],
])('%s', (_layout, bundled) => {
  let ingestion: IngestionEndpoint;
  let fixture: FixtureCatalog;
  let broker: LocalServiceBus;
  const traceId = randomBytes(16).toString('hex');
  let senderToken: string;
  let byOperation: Envelope[];

  beforeAll(async () => {
    const bundle = bundled ? buildBundle() : undefined;
    [ingestion, fixture, broker] = await Promise.all([startIngestionEndpoint(), startFixtureCatalog(), startBroker()]);
    senderToken = await userToken({ roles: ['Events.Send'] });
    const env = {
      ...process.env,
      ...testEnvironment({
        BACKSTAGE_BASE_URL: fixture.baseUrl,
        ServiceBusConnection: broker.connectionString,
        APPLICATIONINSIGHTS_CONNECTION_STRING: ingestion.connectionString,
        APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD',
        TELEMETRY_TRACES_PER_SECOND: '0',
        LOG_LEVEL: 'warn',
      }),
      NODE_EXTRA_CA_CERTS: ingestion.certificatePath,
      TEST_SENDER_TOKEN: senderToken,
      TEST_TRACEPARENT: `00-${traceId}-${randomBytes(8).toString('hex')}-01`,
      ...(bundle && { TEST_APP_BUNDLE: bundle }),
    };
    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, '..', 'support', 'telemetry-scenario.ts')], {
      env,
      cwd: join(__dirname, '..', '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    if (code !== 0) throw new Error(`the telemetry scenario failed (${code}):\n${output.slice(-4000)}`);
    byOperation = ingestion.envelopes.filter((e) => e.tags?.['ai.operation.id'] === traceId);
  });

  afterAll(async () => {
    await broker?.stop();
    await fixture?.stop();
    await ingestion?.close();
  });

  const kinds = (envelopes: Envelope[]) => envelopes.map((e) => e.data?.baseType);
  const named = (envelopes: Envelope[], baseType: string) => envelopes.filter((e) => e.data?.baseType === baseType).map((e) => String(e.data?.baseData?.name));

  test('one operation id from the webhook request through the queue to the sync and the projection', () => {
    expect(byOperation.length).toBeGreaterThan(0);
    const requests = named(byOperation, 'RequestData');
    // The HTTP request, the queue message's processing and the change-feed processing are all requests of one trace.
    expect(requests.some((n) => /POST/.test(n))).toBe(true);
    expect(requests).toContain('syncEntity');
    expect(requests).toContain('projectEdges');
    // Dependencies of the same trace: Backstage, Cosmos DB and Service Bus.
    const dependencies = named(byOperation, 'RemoteDependencyData');
    expect(dependencies).toContain('GET /api/catalog/entities/by-name/component/default/payments-service');
    expect(dependencies.some((n) => /^POST \/dbs\/.+\/colls\/entities\/docs$/.test(n))).toBe(true);
    expect(dependencies.some((n) => /^POST \/dbs\/.+\/colls\/edges\/docs$/.test(n))).toBe(true);
    expect(dependencies).toContain('ServiceBusSender.send');
    expect(kinds(byOperation)).toContain('RemoteDependencyData');
  });

  test('custom events carry the same operation id', () => {
    const events = named(byOperation, 'EventData');
    expect(events).toEqual(expect.arrayContaining(['CatalogEventsAccepted', 'EntitySynced']));
    const synced = byOperation.find((e) => e.data?.baseType === 'EventData' && e.data.baseData?.name === 'EntitySynced');
    expect(synced?.data?.baseData?.properties).toMatchObject({ entityRef: 'component:default/payments-service', outcome: 'created' });
  });

  test('custom metrics are exported (aggregated by OpenTelemetry, so they carry no operation id)', () => {
    const metricNames = ingestion.envelopes
      .filter((e) => e.data?.baseType === 'MetricData')
      .flatMap((e) => ((e.data?.baseData?.metrics as Array<{ name: string }>) ?? []).map((m) => m.name));
    expect(metricNames).toEqual(expect.arrayContaining(['sync.entities', 'cosmos.request_charge', 'backstage.request.duration', 'intake.events']));
  });

  test('ingestion is Entra-authenticated, and no envelope holds a token', () => {
    expect(ingestion.authorizations.length).toBeGreaterThan(0);
    expect(ingestion.authorizations.every((a) => a?.startsWith('Bearer '))).toBe(true);
    const everything = JSON.stringify(ingestion.envelopes);
    expect(everything).not.toContain(senderToken);
    expect(everything).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}/);
    for (const auth of ingestion.authorizations) expect(everything).not.toContain(auth!.slice('Bearer '.length));
  });
});
