/**
 * `npm start`: the whole system on one machine, in one process tree — the Cosmos DB emulator (with its working change
 * feed), the Service Bus broker, Azurite, the local identity (OIDC issuer + managed-identity endpoint), a real
 * Backstage backend with the example catalog and the change-events module pointed at the local intake, and the
 * Functions app itself in the local dev host. Ctrl+C stops everything.
 *
 * With settings for real services in the environment (CosmosDBConnection__accountEndpoint,
 * ServiceBusConnection__fullyQualifiedNamespace, BACKSTAGE_BASE_URL, AUTH_ISSUER) the matching stand-ins are skipped.
 *
 *   npm start                      everything on the default ports (Functions on 7071)
 *   npm start -- --ports auto      free ports (tests, parallel stacks)
 *   npm start -- --no-functions    stand-ins only, for `func start` with .local/local.settings.json
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CatalogClient } from '@backstage/catalog-client';
import { parseAllDocuments } from 'yaml';
import { CosmosClient } from '@azure/cosmos';
import { createCosmosClient } from '../shared/platform/cosmos';
import { getRuntime, resetRuntime } from '../shared/runtime';
import { BACKSTAGE_AUDIENCE, freePort, startBackstage, type BackstageStandIn } from './backstage';
import { startCosmosEmulator, type CosmosEmulator } from './cosmos';
import { ensureCosmosResources } from './cosmos-setup';
import { startFunctionsHost, type FunctionsHost } from './functions-host';
import { startIdentityServer, type IdentityServer } from './identity';
import { DEFAULT_STATE_PATH, writeStackState, type StackState } from './stack-state';
import { LocalServiceBus } from './servicebus/broker';
import { loadEmulatorConfig } from './servicebus/config';

const ROOT = resolve(__dirname, '..');
const API_AUDIENCE = 'api://backstage-cosmos-sync-local';
const BACKSTAGE_CLIENT_ID = 'backstage-local';
const HARNESS_TOKEN = 'local-admin-static-token';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ports: { type: 'string', default: 'default' },
      'no-functions': { type: 'boolean', default: false },
      state: { type: 'string', default: DEFAULT_STATE_PATH },
      'module-interval': { type: 'string', default: '5' },
      'processing-interval': { type: 'string', default: '5' },
      quiet: { type: 'boolean', default: false },
      'backstage-logs': { type: 'boolean', default: false },
    },
  });
  const auto = values.ports === 'auto';
  const port = async (fixed: number) => (auto ? freePort() : fixed);
  const env = process.env;
  const started = Date.now();
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const stops: Array<() => Promise<unknown> | unknown> = [];
  const pids: number[] = [];
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    say('\nStopping…');
    for (const fn of stops.reverse()) {
      try {
        await fn();
      } catch {
        // keep stopping the rest
      }
    }
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    const realCosmos = Boolean(env.CosmosDBConnection__accountEndpoint || env.CosmosDBConnection);
    const realServiceBus = Boolean(env.ServiceBusConnection__fullyQualifiedNamespace || env.ServiceBusConnection);
    const realBackstage = Boolean(env.BACKSTAGE_BASE_URL);
    const realAuth = Boolean(env.AUTH_ISSUER);
    const useLocalManagedIdentity = !realCosmos && !realServiceBus;

    // Identity first: everything local authenticates with it.
    let identity: IdentityServer | undefined;
    if (!realCosmos || !realBackstage || !realAuth) {
      identity = await startIdentityServer({ port: await port(7300) });
      stops.push(() => identity!.close());
      identity.setClientBehaviour(BACKSTAGE_CLIENT_ID, { roles: ['Events.Send'] });
      // The local managed-identity endpoint only serves local resources: with a real Cosmos account or Service Bus
      // namespace the developer's own Azure credentials are needed instead.
      if (useLocalManagedIdentity) {
        env.IDENTITY_ENDPOINT = identity.identityEndpoint;
        env.IDENTITY_HEADER = identity.identityHeader;
      }
    }

    let cosmos: CosmosEmulator | undefined;
    if (!realCosmos) {
      cosmos = await startCosmosEmulator({ port: await port(8081) });
      stops.push(() => cosmos!.close());
    }
    let broker: LocalServiceBus | undefined;
    if (!realServiceBus) {
      broker = await LocalServiceBus.start({ queues: loadEmulatorConfig(join(__dirname, 'servicebus', 'Config.json')), port: await port(5672) });
      stops.push(() => broker!.stop());
    }
    const azurite = await startAzurite(auto ? [await freePort(), await freePort(), await freePort()] : [10000, 10001, 10002]);
    stops.push(() => stopChild(azurite.child));
    pids.push(azurite.child.pid!);

    const functionsPort = await port(7071);
    const functionsUrl = `http://127.0.0.1:${functionsPort}`;

    // A real Backstage with the example catalog (a working copy, so edits never touch the repository).
    let backstage: BackstageStandIn | undefined;
    let catalogDir: string | undefined;
    const locations: Record<string, string> = {};
    if (!realBackstage) {
      catalogDir = join(dirname(values.state), 'catalog');
      rmSync(catalogDir, { recursive: true, force: true });
      mkdirSync(catalogDir, { recursive: true });
      cpSync(join(__dirname, 'example-catalog'), catalogDir, { recursive: true });
      backstage = await startBackstage({
        port: await port(7007),
        ...(identity && { jwks: { url: identity.jwksUri, issuer: identity.issuer, audience: BACKSTAGE_AUDIENCE } }),
        staticToken: HARNESS_TOKEN,
        // Backstage has its own identity: the module gets its tokens from the local identity, whatever the app uses.
        ...(identity && { env: { IDENTITY_ENDPOINT: identity.identityEndpoint, IDENTITY_HEADER: identity.identityHeader } }),
        ...(values['backstage-logs'] && { output: 'inherit' as const }),
        processingIntervalSeconds: Number(values['processing-interval']),
        extraConfig: {
          catalog: {
            changeEvents: {
              schedule: { frequency: { seconds: Number(values['module-interval']) }, timeout: { minutes: 2 }, initialDelay: { seconds: 2 } },
              source: 'http://backstage.local',
              endpoints: [
                {
                  name: 'backstage-cosmos-sync',
                  url: `${functionsUrl}/api/catalog/events`,
                  auth: { type: 'entra', scope: `${API_AUDIENCE}/.default`, clientId: BACKSTAGE_CLIENT_ID },
                },
              ],
            },
          },
        },
      });
      stops.push(() => backstage!.stop());
      pids.push(...backstage.pids());
      const admin = new CatalogClient({ discoveryApi: { getBaseUrl: async (id) => `${backstage!.baseUrl}/api/${id}` } });
      for (const file of readdirSync(catalogDir).filter((f) => f.endsWith('.yaml')).sort()) {
        const added = await admin.addLocation({ type: 'file', target: join(catalogDir, file) }, { token: HARNESS_TOKEN });
        locations[file] = added.location.id;
      }
      // Wait until Backstage has ingested the example catalog, so the first reconcile mirrors all of it (the
      // change-events module records what exists when it first runs as its baseline and publishes changes after).
      await waitForCatalog(admin, expectedRefs(catalogDir), { timeoutInMs: 120_000 });
    }
    const backstageUrl = env.BACKSTAGE_BASE_URL ?? backstage!.baseUrl;

    // The app's settings: what a deployment sets, pointed at whatever runs locally.
    const settings: Record<string, string> = {
      APP_MODE: 'local',
      LOG_LEVEL: env.LOG_LEVEL ?? 'warn',
      ...(cosmos
        ? { CosmosDBConnection__accountEndpoint: cosmos.endpoint, COSMOS_CA_CERT_PATH: cosmos.certificatePath }
        : pick(env, ['CosmosDBConnection__accountEndpoint', 'CosmosDBConnection', 'COSMOS_CA_CERT_PATH'])),
      ...(broker ? { ServiceBusConnection: broker.connectionString } : pick(env, ['ServiceBusConnection__fullyQualifiedNamespace', 'ServiceBusConnection'])),
      BACKSTAGE_BASE_URL: backstageUrl,
      // The local Backstage trusts the local issuer; without the local managed-identity endpoint the app cannot get
      // a token from it, so it uses Backstage's static token (accepted in local mode only).
      ...(backstage && !useLocalManagedIdentity
        ? { BACKSTAGE_STATIC_TOKEN: HARNESS_TOKEN }
        : { BACKSTAGE_TOKEN_SCOPE: env.BACKSTAGE_TOKEN_SCOPE ?? `${BACKSTAGE_AUDIENCE}/.default` }),
      AUTH_ISSUER: env.AUTH_ISSUER ?? identity!.issuer,
      AUTH_AUDIENCE: env.AUTH_AUDIENCE ?? API_AUDIENCE,
      RECONCILE_SCHEDULE: env.RECONCILE_SCHEDULE ?? '0 */30 * * * *',
      QUEUE_RETRY_BASE_DELAY_MS: env.QUEUE_RETRY_BASE_DELAY_MS ?? '1000',
      ...pick(env, ['APPLICATIONINSIGHTS_CONNECTION_STRING', 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', 'AZURE_CLIENT_ID', 'COSMOS_DATABASE_NAME']),
    };
    Object.assign(env, settings);
    const databaseName = env.COSMOS_DATABASE_NAME ?? 'catalog';

    // Containers: infrastructure creates them in Azure; locally we do.
    if (cosmos) {
      const setup = new CosmosClient({ endpoint: cosmos.endpoint, aadCredentials: localCredential(identity!), agent: tlsAgent(cosmos.certificatePem), connectionPolicy: { enableEndpointDiscovery: false } });
      await ensureCosmosResources(setup, { databaseName, entitiesContainer: 'entities', edgesContainer: 'edges', leasesContainer: 'leases' });
      setup.dispose();
    }

    const identityEnv = useLocalManagedIdentity ? { IDENTITY_ENDPOINT: env.IDENTITY_ENDPOINT!, IDENTITY_HEADER: env.IDENTITY_HEADER! } : undefined;
    writeLocalSettings(join(dirname(values.state), 'local.settings.json'), { ...settings, ...identityEnv }, azurite.ports);

    let host: FunctionsHost | undefined;
    if (!values['no-functions']) {
      const runtime = getRuntime();
      stops.push(() => resetRuntime());
      host = await startFunctionsHost({
        functionsDir: join(ROOT, 'functions'),
        hostJsonPath: join(ROOT, 'host.json'),
        port: functionsPort,
        connections: {
          serviceBus: () =>
            runtime.config.serviceBus.connectionString ?? { fullyQualifiedNamespace: runtime.config.serviceBus.fullyQualifiedNamespace!, credential: runtime.credential },
          cosmos: () => createCosmosClient(runtime.config.cosmos, runtime.credential, { mode: runtime.config.mode }),
        },
        log: values.quiet ? () => undefined : printer(say),
      });
      stops.push(() => host!.stop());
    }

    const tokens = identity
      ? {
          read: await identity.mint({ audience: API_AUDIENCE, subject: 'local-reader', roles: ['Catalog.Read'], lifetimeInSeconds: 12 * 3600 }),
          admin: await identity.mint({ audience: API_AUDIENCE, subject: 'local-admin', roles: ['Catalog.Admin', 'Catalog.Read'], lifetimeInSeconds: 12 * 3600 }),
        }
      : undefined;
    const state: StackState = {
      ...(host && { functionsUrl: host.url }),
      backstageUrl,
      ...(identity && { identityUrl: identity.baseUrl }),
      ...(catalogDir && { catalogDir, locations, backstageAdminToken: HARNESS_TOKEN }),
      cosmos: { endpoint: settings.CosmosDBConnection__accountEndpoint ?? '', ...(cosmos && { caPath: cosmos.certificatePath }), databaseName },
      settings,
      ...(identityEnv && { identityEnv }),
      ...(tokens && { tokens }),
      pids: [process.pid, ...pids],
    };
    writeStackState(values.state, state);

    banner(say, state, { cosmos: !!cosmos, broker: !!broker, backstage: !!backstage, identity: !!identity, azurite: azurite.ports }, host);
    if (host) {
      // The first full sync now, instead of waiting for the timer.
      const first = Date.now();
      await host.runTimer('reconcileCatalog');
      say(`Initial reconcile finished in ${((Date.now() - first) / 1000).toFixed(1)} s (${((Date.now() - started) / 1000).toFixed(1)} s after start). Watching for changes…`);
    }
    say('READY');
  } catch (error) {
    const inUse = (error as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE' || /EADDRINUSE|port is in use/.test(String(error));
    process.stderr.write(`npm start failed: ${error instanceof Error ? error.message : String(error)}\n`);
    if (inUse) process.stderr.write('Another process holds that port (a previous `npm start` or `func start`?). Stop it, or run `npm start -- --ports auto`.\n');
    else if (error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    await stop(1);
  }
}

/** The refs the catalog files declare (`kind:namespace/name`, lower case). */
function expectedRefs(dir: string): string[] {
  const refs: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      const entity = doc.toJS() as { kind?: string; metadata?: { name?: string; namespace?: string } } | null;
      if (entity?.kind && entity.metadata?.name) refs.push(`${entity.kind}:${entity.metadata.namespace ?? 'default'}/${entity.metadata.name}`.toLowerCase());
    }
  }
  return refs;
}

async function waitForCatalog(catalog: CatalogClient, refs: string[], options: { timeoutInMs: number }): Promise<void> {
  const deadline = Date.now() + options.timeoutInMs;
  for (;;) {
    const { items } = await catalog.getEntitiesByRefs({ entityRefs: refs, fields: ['kind'] }, { token: HARNESS_TOKEN });
    const missing = refs.filter((_, i) => !items[i]);
    if (missing.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`Backstage did not ingest the example catalog within ${options.timeoutInMs / 1000} s; missing ${missing.slice(0, 5).join(', ')}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

function pick(env: NodeJS.ProcessEnv, keys: string[]): Record<string, string> {
  return Object.fromEntries(keys.filter((k) => env[k]).map((k) => [k, env[k]!]));
}

function localCredential(identity: IdentityServer) {
  return {
    getToken: async (scopes: string | string[]) => {
      const scope = Array.isArray(scopes) ? scopes[0]! : scopes;
      const token = await identity.mint({ audience: scope.replace(/\/\.default$/, ''), subject: identity.managedIdentityObjectId });
      return { token, expiresOnTimestamp: Date.now() + 3600_000 };
    },
  };
}

function tlsAgent(ca: string) {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const https = require('node:https') as typeof import('node:https');
  return new https.Agent({ ca, keepAlive: true });
}

async function startAzurite(ports: number[]): Promise<{ child: ChildProcess; ports: number[] }> {
  const [blob, queue, table] = ports as [number, number, number];
  const bin = require.resolve('azurite/dist/src/azurite.js');
  const child = spawn(
    process.execPath,
    [bin, '--inMemoryPersistence', '--disableTelemetry', '--skipApiVersionCheck', '--blobPort', String(blob), '--queuePort', String(queue), '--tablePort', String(table)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  await new Promise<void>((resolveStart, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`Azurite did not start: ${output}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (/Table service is successfully listening/.test(output)) {
        clearTimeout(timer);
        resolveStart();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Azurite exited with ${code}: ${output}`));
    });
  });
  child.stdout!.resume();
  return { child, ports };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** `.local/local.settings.json`: the same settings for `func start` users (Core Tools), Azurite for the host. */
function writeLocalSettings(path: string, settings: Record<string, string>, azurite: number[]): void {
  const values: Record<string, string> = {
    FUNCTIONS_WORKER_RUNTIME: 'node',
    AzureWebJobsStorage: `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:${azurite[0]}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:${azurite[1]}/devstoreaccount1;TableEndpoint=http://127.0.0.1:${azurite[2]}/devstoreaccount1;`,
    ...settings,
  };
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify({ IsEncrypted: false, Values: values }, null, 2));
}

function banner(
  say: (line: string) => void,
  state: StackState,
  running: { cosmos: boolean; broker: boolean; backstage: boolean; identity: boolean; azurite: number[] },
  host: FunctionsHost | undefined,
): void {
  const lines = [
    '',
    'backstage-cosmos-sync — local stack',
    '',
    `  Backstage          ${state.backstageUrl}${running.backstage ? '   (real catalog backend, example catalog in .local/catalog)' : ''}`,
    state.functionsUrl ? `  Functions          ${state.functionsUrl}/api   (local dev host)` : '  Functions          not started (--no-functions); run `func start` with .local/local.settings.json',
    `  Cosmos DB          ${state.cosmos.endpoint || '(from settings)'}${running.cosmos ? '   (emulator)' : ''}`,
    `  Service Bus        ${running.broker ? 'local broker' : 'from settings'}`,
    `  Azurite            blob ${running.azurite[0]}, queue ${running.azurite[1]}, table ${running.azurite[2]}`,
    ...(running.identity ? [`  Identity           ${state.identityUrl}   (OIDC issuer + managed-identity endpoint)`] : []),
    '',
    ...(host ? describeFunctions(host) : []),
  ];
  if (state.functionsUrl && state.tokens) {
    lines.push(
      '  Try:',
      `    curl -s -H "Authorization: Bearer ${state.tokens.read}" \\`,
      `      "${state.functionsUrl}/api/graph/component/default/web-shop?depth=3&format=mermaid"`,
      '    npm run graph -- component:default/checkout-service',
      '    npm run reconcile',
      '',
    );
  }
  for (const line of lines) say(line);
}

/** The functions and their triggers, the way `func start` lists them. */
function describeFunctions(host: FunctionsHost): string[] {
  const lines = ['  Functions:'];
  for (const f of host.functions) {
    const t = f.trigger;
    const what =
      t.type === 'httpTrigger'
        ? `[${((t.methods as string[] | undefined) ?? ['GET', 'POST']).join(',')}] ${host.url}/api/${String(t.route)}`
        : t.type === 'serviceBusTrigger'
          ? `serviceBusTrigger  queue ${String(t.queueName)} (sessions)`
          : t.type === 'cosmosDBTrigger'
            ? `cosmosDBTrigger    ${String(t.databaseName)}/${String(t.containerName)} change feed`
            : t.type === 'timerTrigger'
              ? `timerTrigger       ${String(t.schedule)}`
              : t.type;
    lines.push(`    ${f.name.padEnd(26)} ${what}`);
  }
  lines.push('');
  return lines;
}

/** One short line per sync, projection and reconcile; warnings and errors as they come. */
function printer(say: (line: string) => void) {
  return (fn: string, level: string, message: string) => {
    const time = new Date().toISOString().slice(11, 19);
    const [text, json] = splitMessage(message);
    const p = json ?? {};
    if (text === 'Entity synced') return say(`${time}  sync     ${String(p.entityRef)} → ${String(p.outcome)} (${String(p.durationInMs)} ms, attempt ${String(p.attempt)})`);
    if (text === 'Edges projected') {
      if (Number(p.edgesAdded) + Number(p.edgesRemoved) + Number(p.drifted) + Number(p.failed) === 0) return;
      return say(`${time}  edges    +${String(p.edgesAdded)} −${String(p.edgesRemoved)} (${String(p.documents)} documents${Number(p.drifted) ? `, ${String(p.drifted)} drifted` : ''}${Number(p.failed) ? `, ${String(p.failed)} failed` : ''})`);
    }
    if (text === 'Scheduled reconcile finished') {
      return say(`${time}  reconcile seen ${String(p.seen)}: +${String(p.created)} ~${String(p.updated)} −${String(p.tombstoned)}, ${String(p.unchanged)} unchanged, ${String(p.failed)} failed (${String(p.durationInMs)} ms)`);
    }
    if (text === 'Catalog events accepted') return say(`${time}  events   ${String(p.accepted)} accepted, ${String(p.enqueued)} queued`);
    if (level === 'warning' || level === 'error' || level === 'critical') say(`${time}  ${level.padEnd(8)} ${fn}: ${message.slice(0, 500)}`);
  };
}

function splitMessage(message: string): [string, Record<string, unknown> | undefined] {
  const brace = message.indexOf(' {');
  if (brace < 0) return [message, undefined];
  try {
    return [message.slice(0, brace), JSON.parse(message.slice(brace + 1)) as Record<string, unknown>];
  } catch {
    return [message, undefined];
  }
}

if (require.main === module) void main();
export { main };
