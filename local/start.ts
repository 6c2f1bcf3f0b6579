/**
 * `npm start`: the whole system on one machine, in one process tree — the Cosmos DB emulator (with its working change
 * feed), the Service Bus broker, Azurite, the local identity (OIDC issuer + managed-identity endpoint), a real
 * Backstage backend with the example catalog and the change-events module pointed at the local intake, and the
 * Functions app itself in the local dev host. Ctrl+C stops everything within seconds; a second Ctrl+C exits at once.
 *
 * With settings for real services in the environment (CosmosDBConnection__accountEndpoint,
 * ServiceBusConnection__fullyQualifiedNamespace, BACKSTAGE_BASE_URL, AUTH_ISSUER) the matching stand-ins are skipped.
 *
 *   npm start                      everything on the default ports (Functions on 7071)
 *   npm start -- --ports auto      free ports (tests, parallel stacks)
 *   npm start -- --no-functions    stand-ins only, for `func start` with .local/local.settings.json
 *
 * This file is the command line: arguments, the banner, log lines and signals. The stack itself is ./stack.ts.
 */
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { REPOSITORY_ROOT } from './catalog-files';
import type { FunctionsHost } from './functions-host';
import { killLocalProcesses, LOCAL_API_AUDIENCE, startLocalStack, waitForCatalog, type LocalStack } from './stack';
import { DEFAULT_STATE_PATH, writeStackState, type StackState } from './stack-state';

const HARNESS_TOKEN = 'local-admin-static-token';
/** How long one stop step may take (the dev host finishing in-flight invocations, Backstage's own shutdown…). */
const STOP_STEP_TIMEOUT_IN_MS = 4_000;
/** How long stopping may take in all; then whatever is left is killed. */
const STOP_TIMEOUT_IN_MS = 10_000;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ports: { type: 'string', default: 'default' },
      'no-functions': { type: 'boolean', default: false },
      state: { type: 'string', default: DEFAULT_STATE_PATH },
      'module-interval': { type: 'string', default: '1' },
      'processing-interval': { type: 'string', default: '5' },
      quiet: { type: 'boolean', default: false },
      'backstage-logs': { type: 'boolean', default: false },
    },
  });
  const env = process.env;
  const started = Date.now();
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const starting = new AbortController();
  let stack: LocalStack | undefined;
  let stopping = false;

  const exit = (code: number, message?: string) => {
    if (message) process.stderr.write(`${message}\n`);
    process.exit(code);
  };
  const stop = async (code: number) => {
    if (stopping) {
      // A second Ctrl+C (or SIGTERM): no more waiting.
      const killed = killLocalProcesses();
      return exit(130, `Stopped at once${killed.length ? `; killed process ${killed.join(', ')}` : ''}.`);
    }
    stopping = true;
    say('\nStopping… (Ctrl+C again to stop at once)');
    starting.abort();
    const deadline = setTimeout(() => {
      const killed = killLocalProcesses();
      exit(1, `Stopping took longer than ${STOP_TIMEOUT_IN_MS / 1000} s${killed.length ? `; killed process ${killed.join(', ')}` : ''}. Exiting.`);
    }, STOP_TIMEOUT_IN_MS);
    await stack?.stop({
      stepTimeoutInMs: STOP_STEP_TIMEOUT_IN_MS,
      onStep: (name, outcome, elapsedInMs) => {
        if (outcome !== 'done') say(`  ${name}: ${outcome} after ${(elapsedInMs / 1000).toFixed(1)} s${outcome === 'timed out' ? ', left behind' : ''}`);
      },
    });
    clearTimeout(deadline);
    const left = killLocalProcesses();
    exit(code, left.length ? `Killed process ${left.join(', ')}, which had not stopped.` : undefined);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    const realCosmos = Boolean(env.CosmosDBConnection__accountEndpoint || env.CosmosDBConnection);
    const realServiceBus = Boolean(env.ServiceBusConnection__fullyQualifiedNamespace || env.ServiceBusConnection);
    const realBackstage = Boolean(env.BACKSTAGE_BASE_URL);
    const realAuth = Boolean(env.AUTH_ISSUER);
    const databaseName = env.COSMOS_DATABASE_NAME ?? 'catalog';

    // The example catalog, as a working copy, so edits never touch the repository.
    const catalogDir = realBackstage ? undefined : join(dirname(values.state), 'catalog');
    const catalogFiles: string[] = [];
    if (catalogDir) {
      rmSync(catalogDir, { recursive: true, force: true });
      mkdirSync(catalogDir, { recursive: true });
      cpSync(join(__dirname, 'example-catalog'), catalogDir, { recursive: true });
      catalogFiles.push(...readdirSync(catalogDir).filter((f) => f.endsWith('.yaml')).sort().map((f) => join(catalogDir, f)));
    }

    stack = await startLocalStack({
      ports: values.ports === 'auto' ? 'auto' : 'fixed',
      identity: !realCosmos || !realBackstage || !realAuth,
      ...(!realCosmos && { cosmos: { provision: databaseName } }),
      serviceBus: !realServiceBus,
      azurite: true,
      // The Functions host's port, also with --no-functions: `func start` listens there and the module posts to it.
      functions: true,
      ...(catalogDir && {
        backstage: {
          staticToken: HARNESS_TOKEN,
          processingIntervalSeconds: Number(values['processing-interval']),
          fileLocations: catalogFiles,
          // This service itself, from the repository's catalog-info.yaml (a url location, so its API definition resolves).
          repositoryCatalog: true,
          changeEvents: { intervalInSeconds: Number(values['module-interval']) },
          // Entities authored in the emulator's `authored` container, read with Backstage's own identity.
          ...(!realCosmos && { authoredEntities: {} }),
          ...(values['backstage-logs'] && { output: 'inherit' as const }),
        },
      }),
      external: {
        ...pick(env, ['CosmosDBConnection__accountEndpoint', 'CosmosDBConnection', 'COSMOS_CA_CERT_PATH', 'ServiceBusConnection__fullyQualifiedNamespace', 'ServiceBusConnection']),
        ...pick(env, ['BACKSTAGE_BASE_URL', 'BACKSTAGE_TOKEN_SCOPE', 'AUTH_ISSUER', 'AUTH_AUDIENCE', 'LOG_LEVEL', 'AZURE_CLIENT_ID', 'COSMOS_DATABASE_NAME']),
        ...pick(env, ['APPLICATIONINSIGHTS_CONNECTION_STRING', 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING']),
      },
      abortSignal: starting.signal,
    });
    if (stack.backstage) {
      // Wait until Backstage has ingested the example catalog, so the first reconcile mirrors all of it (the
      // change-events module records what exists when it first runs as its baseline and publishes changes after).
      await waitForCatalog(stack.backstage, { refs: expectedRefs([...catalogFiles, join(REPOSITORY_ROOT, 'catalog-info.yaml')]) }, { timeoutInMs: 120_000, what: 'the example catalog', abortSignal: starting.signal });
    }

    // The app's settings: what a deployment sets, pointed at whatever runs locally.
    const settings = stack.settings({
      RECONCILE_SCHEDULE: env.RECONCILE_SCHEDULE ?? '0 */30 * * * *',
      QUEUE_RETRY_BASE_DELAY_MS: env.QUEUE_RETRY_BASE_DELAY_MS ?? '1000',
    });
    const { IDENTITY_ENDPOINT, IDENTITY_HEADER, ...appSettings } = settings;
    const identityEnv = IDENTITY_ENDPOINT && IDENTITY_HEADER ? { IDENTITY_ENDPOINT, IDENTITY_HEADER } : undefined;
    writeLocalSettings(join(dirname(values.state), 'local.settings.json'), settings, stack.azurite!.ports);

    const host = values['no-functions'] ? undefined : await stack.startFunctions({ log: values.quiet ? () => undefined : printer(say), overrides: settings });
    const identity = stack.identity;
    const tokens = identity
      ? {
          read: await identity.mint({ audience: LOCAL_API_AUDIENCE, subject: 'local-reader', roles: ['Catalog.Read'], lifetimeInSeconds: 12 * 3600 }),
          admin: await identity.mint({ audience: LOCAL_API_AUDIENCE, subject: 'local-admin', roles: ['Catalog.Admin', 'Catalog.Read'], lifetimeInSeconds: 12 * 3600 }),
          write: await identity.mint({ audience: LOCAL_API_AUDIENCE, subject: 'local-producer', roles: ['Catalog.Write'], lifetimeInSeconds: 12 * 3600 }),
        }
      : undefined;
    const state: StackState = {
      ...(host && { functionsUrl: host.url }),
      backstageUrl: appSettings.BACKSTAGE_BASE_URL ?? '',
      ...(identity && { identityUrl: identity.baseUrl }),
      ...(catalogDir && { catalogDir, locations: Object.fromEntries(Object.entries(stack.locations).map(([path, id]) => [relative(catalogDir, path), id])), backstageAdminToken: HARNESS_TOKEN }),
      cosmos: { endpoint: appSettings.CosmosDBConnection__accountEndpoint ?? '', ...(stack.cosmos && { caPath: stack.cosmos.certificatePath }), databaseName },
      settings: appSettings,
      ...(identityEnv && { identityEnv }),
      ...(tokens && { tokens }),
      pids: [process.pid, ...stack.pids()],
    };
    writeStackState(values.state, state);

    banner(say, state, values.state, { cosmos: !!stack.cosmos, broker: !!stack.broker, backstage: !!stack.backstage, identity: !!identity, azurite: stack.azurite!.ports }, host);
    if (host) {
      // The first full sync now, instead of waiting for the timer.
      const first = Date.now();
      await host.runTimer('reconcileCatalog');
      if (stopping) return;
      say(`Initial reconcile finished in ${((Date.now() - first) / 1000).toFixed(1)} s (${((Date.now() - started) / 1000).toFixed(1)} s after start). Watching for changes…`);
    }
    say('READY');
  } catch (error) {
    if (stopping) return; // Ctrl+C while starting: stop() exits
    const inUse = (error as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE' || /EADDRINUSE|port is in use/.test(String(error));
    process.stderr.write(`npm start failed: ${error instanceof Error ? error.message : String(error)}\n`);
    if (inUse) process.stderr.write('Another process holds that port (a previous `npm start` or `func start`?). Stop it, or run `npm start -- --ports auto`.\n');
    else if (error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    await stop(1);
  }
}

/** The refs the catalog files declare (`kind:namespace/name`, lower case). */
function expectedRefs(files: string[]): string[] {
  const refs: string[] = [];
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      const entity = doc.toJS() as { kind?: string; metadata?: { name?: string; namespace?: string } } | null;
      if (entity?.kind && entity.metadata?.name) refs.push(`${entity.kind}:${entity.metadata.namespace ?? 'default'}/${entity.metadata.name}`.toLowerCase());
    }
  }
  return refs;
}

function pick(env: NodeJS.ProcessEnv, keys: string[]): Record<string, string> {
  return Object.fromEntries(keys.filter((k) => env[k]).map((k) => [k, env[k]!]));
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
  statePath: string,
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
      // The token (≈ 900 characters) stays in the state file; the command reads it from there.
      `    curl -s -H "Authorization: Bearer $(node -p "require('${shellPath(statePath)}').tokens.read")" \\`,
      `      "${state.functionsUrl}/api/graph/component/default/web-shop?depth=3&format=mermaid"`,
      '    npm run graph -- component:default/checkout-service',
      '    npm run reconcile',
      // An entity authored through the API: it appears in Backstage, then in the mirror and the graph.
      `    curl -X PUT -H "Authorization: Bearer $(node -p "require('${shellPath(statePath)}').tokens.write")" -H 'Content-Type: application/json' \\`,
      `      "${state.functionsUrl}/api/authored/component/default/provisioned-service" -d @local/example-authored/provisioned-service.json`,
      '',
    );
  }
  for (const line of lines) say(line);
}

/** `statePath` as `require()` in `node -p` finds it from the current directory. */
function shellPath(statePath: string): string {
  const path = relative(process.cwd(), statePath);
  return isAbsolute(path) || path.startsWith('..') ? statePath : `./${path}`;
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
    if (text === 'Authored entity written') return say(`${time}  authored ${String(p.entityRef)} ${p.created ? 'created' : 'replaced'} by ${String(p.subject)}`);
    if (text === 'Authored entity deleted') return say(`${time}  authored ${String(p.entityRef)} deleted by ${String(p.subject)}`);
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
