/**
 * The local stack: starts the stand-ins a caller asks for — the identity (OIDC issuer + managed-identity endpoint),
 * the Cosmos DB emulator, the Service Bus broker, Azurite, a real Backstage, and the Functions app in the dev host —
 * builds the app settings a deployment would have, pointed at them, and stops all of it in reverse order, each step
 * within a deadline. `npm start` (./start.ts), the benchmarks (bench/) and the test support (test/support/) all start
 * their stand-ins here.
 *
 *   const stack = await startLocalStack({ identity: true, cosmos: true, serviceBus: true, backstage: { staticToken } });
 *   Object.assign(process.env, stack.settings({ COSMOS_DATABASE_NAME: 'x' }));
 *   await stack.backstage!.loadCatalog(entities);
 *   await waitForCatalog(stack.backstage!, { count: entities.length, settled: true });
 *   await stack.stop();
 *
 * A stand-in left out is not started; its settings then come from `external` (settings for real services).
 */
import { randomUUID } from 'node:crypto';
import * as https from 'node:https';
import { join, resolve } from 'node:path';
import { CosmosClient } from '@azure/cosmos';
import { CatalogClient } from '@backstage/catalog-client';
import type { Entity } from '@backstage/catalog-model';
import { BACKSTAGE_AUDIENCE, deepMerge, startBackstage, type BackstageStandIn, type BackstageStandInOptions } from './backstage';
import { startCatalogFileServer, type CatalogFileServer } from './catalog-files';
import { startCosmosEmulator, type CosmosEmulator } from './cosmos';
import { ensureCosmosResources, provisionerCredential } from './cosmos-setup';
import type { FunctionsHost } from './functions-host';
import type * as FunctionsAppModule from './functions-host/app';
import { startIdentityServer, type IdentityServer } from './identity';
import { alive, killSpawned, portChooser, runStopSteps, startAzurite, stopChild, type StopOptions, type StopStep } from './processes';
import { settingDefaults } from '../shared/platform/settings';
import { LocalServiceBus } from './servicebus/broker';
import { loadEmulatorConfig, type QueueOptions } from './servicebus/config';

export { BACKSTAGE_AUDIENCE } from './backstage';
export type { StopOptions, StopOutcome, StopStep } from './processes';

/** The audience of the app's own API in local tokens (`AUTH_AUDIENCE`). */
export const LOCAL_API_AUDIENCE = 'api://backstage-cosmos-sync-local';
/** The client id the local Backstage's change-events module gets its Entra-style tokens for. */
const LOCAL_BACKSTAGE_CLIENT_ID = 'backstage-local';
/** The ports `npm start` uses unless told `--ports auto`. */
const DEFAULT_PORTS = { identity: 7300, cosmos: 8081, serviceBus: 5672, azurite: [10000, 10001, 10002], backstage: 7007, functions: 7071 } as const;

type Settings = Record<string, string>;
type FunctionsApp = typeof FunctionsAppModule;

export interface LocalBackstageOptions extends Omit<BackstageStandInOptions, 'port' | 'jwks' | 'env' | 'staticToken' | 'abortSignal'> {
  /** The harness's static external-access token (tests, benches, the dev stack's admin calls). */
  staticToken: string;
  /** The issuer Backstage trusts; the stack's own identity by default. */
  trust?: { jwksUri: string; issuer: string };
  /** `file` locations registered once Backstage is up; their ids are in `stack.locations`, by path. */
  fileLocations?: string[];
  /**
   * Register this repository's own catalog-info.yaml, served over HTTP as a `url` location (local/catalog-files.ts), so
   * the service appears in its own catalog with its API definition resolved; its id is `stack.locations['catalog-info.yaml']`.
   */
  repositoryCatalog?: boolean;
  /** Run this repository's change-events module, posting to the stack's Functions host every `intervalInSeconds`. */
  changeEvents?: { intervalInSeconds: number };
  /**
   * Run this repository's authored-entities provider against the emulator's `authored` container (needs `cosmos` with
   * `provision`): Backstage reads it with its own identity, held to the `backstage` roles of infra/app/cosmos-roles.json.
   */
  authoredEntities?: { intervalInSeconds?: number; fullMutationInterval?: string };
}

export interface LocalStackOptions {
  /** `fixed`: the well-known ports of {@link DEFAULT_PORTS} (npm start). `auto` (default): free ports. */
  ports?: 'fixed' | 'auto';
  identity?: boolean;
  /**
   * The emulator; with `provision`, the database of that name and its containers are created (infrastructure's job).
   * The app's managed identity is held to its data-plane roles (infra/app/cosmos-roles.json) unless `appRoles` is
   * false — for benchmarks whose baselines do what the app may not (bulk upserts into scratch containers).
   */
  cosmos?: boolean | { provision?: string; appRoles?: boolean };
  /** The broker with the queues of local/servicebus/Config.json, each adjusted by `queues`. */
  serviceBus?: boolean | { queues?: Partial<QueueOptions> };
  azurite?: boolean;
  backstage?: LocalBackstageOptions;
  /** Reserve a port for the Functions host (the change-events module posts to it); start the host with startFunctions. */
  functions?: boolean;
  /** Settings for services that are not started here (real Azure, a real Backstage) and the developer's own. */
  external?: Settings;
  /** Stops starting: what was started is stopped and the promise rejects. */
  abortSignal?: AbortSignal;
}

export interface LocalStack {
  identity: IdentityServer | undefined;
  cosmos: CosmosEmulator | undefined;
  broker: LocalServiceBus | undefined;
  azurite: { ports: number[] } | undefined;
  backstage: BackstageStandIn | undefined;
  /** Location ids of `backstage.fileLocations`, by path. */
  locations: Record<string, string>;
  /** The Functions host's URL (with `functions`). */
  functionsUrl: string | undefined;
  /** The object id of Backstage's own identity (tokens its modules get from the local identity), with `identity`. */
  backstagePrincipalId: string | undefined;
  /**
   * The app settings a deployment would have, pointed at this stack — `APP_MODE=local`, the Cosmos endpoint and CA,
   * the Service Bus connection, Backstage's URL and token scope, issuer and audience, the managed-identity endpoint —
   * then `overrides`.
   */
  settings(overrides?: Settings): Settings;
  /**
   * Runs the Functions app in the dev host at `functionsUrl`: puts `settings(overrides)` into this process's
   * environment (the app reads its settings there, as in Azure), builds the runtime and starts every function with
   * its trigger. stop() stops it first, then closes the runtime's clients.
   */
  startFunctions(options: {
    log: (functionName: string, level: string, message: string) => void;
    overrides?: Settings;
    /** How long stop() lets invocations in flight finish before leaving them behind; default 3 s. */
    drainTimeoutInMs?: number;
  }): Promise<FunctionsHost>;
  /** Adds a stop step for something started on top of the stack; it is stopped before what is already there. */
  adopt(step: StopStep): void;
  /** The stack's child processes that still run (Azurite, Backstage). */
  pids(): number[];
  /** Stops everything in reverse order of start, each step within its deadline (default 5 s). Idempotent. */
  stop(options?: StopOptions): Promise<void>;
}

export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const ports = portChooser(options.ports ?? 'auto');
  const steps: StopStep[] = [];
  const external = options.external ?? {};
  const parts: LocalParts = {};
  const abortSignal = options.abortSignal;
  let stopping: Promise<void> | undefined;
  let functionsPort: number | undefined;
  const stack: LocalStack = {
    identity: undefined,
    cosmos: undefined,
    broker: undefined,
    azurite: undefined,
    backstage: undefined,
    locations: {},
    functionsUrl: undefined,
    backstagePrincipalId: undefined,
    settings: (overrides = {}) => ({ ...localAppSettings(parts, external), ...overrides }),
    startFunctions: async ({ log, overrides, drainTimeoutInMs }) => {
      if (functionsPort === undefined) throw new Error('start the stack with `functions: true` to run the Functions host');
      Object.assign(process.env, stack.settings(overrides));
      // Loaded only here: the app's modules are not needed by stacks without it (test set-up, benchmarks).
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { startAppInDevHost } = require('./functions-host/app') as FunctionsApp;
      const app = await startAppInDevHost({ port: functionsPort, log });
      stack.adopt({ name: 'Functions host', pids: () => [], run: () => app.stop({ drainTimeoutInMs: drainTimeoutInMs ?? 3_000 }) });
      return app.host;
    },
    adopt: (step) => void steps.push(step),
    pids: () => steps.flatMap((s) => s.pids()),
    stop: (stopOptions) => (stopping ??= runStopSteps([...steps].reverse(), stopOptions)),
  };
  const checkAborted = () => {
    if (abortSignal?.aborted) throw new Error('start-up was aborted');
  };

  try {
    if (options.identity) {
      const identity = (stack.identity = await startIdentityServer({ port: await ports.next(DEFAULT_PORTS.identity) }));
      steps.push({ name: 'identity', pids: () => [], run: () => identity.close() });
      parts.identity = identity;
      checkAborted();
    }
    if (options.cosmos) {
      const cosmos = (stack.cosmos = await startCosmosEmulator({
        port: await ports.next(DEFAULT_PORTS.cosmos),
        // A refusal of the app is a role the app lacks (or a data action the code should not need): say it loudly.
        onDenied: (d) => process.stderr.write(`Cosmos DB stand-in refused ${d.action} on ${d.resource} to principal ${d.principal} (infra/app/cosmos-roles.json)\n`),
      }));
      steps.push({ name: 'Cosmos DB emulator', pids: () => [], run: () => cosmos.close() });
      parts.cosmos = cosmos;
      // The app's managed identity gets exactly its roles in infra/app/cosmos-roles.json, as in Azure.
      const appRoles = typeof options.cosmos !== 'object' || options.cosmos.appRoles !== false;
      if (stack.identity && appRoles) cosmos.rbac.assign(stack.identity.managedIdentityObjectId, 'app');
      const database = typeof options.cosmos === 'object' ? options.cosmos.provision : undefined;
      if (database) {
        if (!stack.identity) throw new Error('provisioning the emulator needs the identity stand-in');
        await provision(cosmos, stack.identity, database);
      }
      checkAborted();
    }
    if (options.serviceBus) {
      const adjust = typeof options.serviceBus === 'object' ? (options.serviceBus.queues ?? {}) : {};
      const queues = loadEmulatorConfig(join(__dirname, 'servicebus', 'Config.json')).map((q) => ({ ...q, ...adjust }));
      const broker = (stack.broker = await LocalServiceBus.start({ queues, port: await ports.next(DEFAULT_PORTS.serviceBus) }));
      steps.push({ name: 'Service Bus broker', pids: () => [], run: () => broker.stop() });
      parts.serviceBusConnection = broker.connectionString;
      checkAborted();
    }
    if (options.azurite) {
      const blobQueueTable = [];
      for (const port of DEFAULT_PORTS.azurite) blobQueueTable.push(await ports.next(port));
      const child = await startAzurite(blobQueueTable);
      stack.azurite = { ports: blobQueueTable };
      steps.push({ name: 'Azurite', pids: () => alive(child), run: () => stopChild(child, { killAfterInMs: 3_000 }) });
      checkAborted();
    }
    if (options.functions) {
      functionsPort = await ports.next(DEFAULT_PORTS.functions);
      stack.functionsUrl = `http://127.0.0.1:${functionsPort}`;
    }
    if (options.backstage) {
      const { trust: given, fileLocations, repositoryCatalog, changeEvents, authoredEntities, staticToken, extraConfig, ...standIn } = options.backstage;
      const trust = given ?? (stack.identity && { jwksUri: stack.identity.jwksUri, issuer: stack.identity.issuer });
      let files: CatalogFileServer | undefined;
      if (repositoryCatalog) {
        const server = (files = await startCatalogFileServer());
        steps.push({ name: 'Catalog files', pids: () => [], run: () => server.stop() });
      }
      // Backstage has its own identity: another principal than the app's, with roles of its own.
      if (stack.identity) {
        const principal = (stack.backstagePrincipalId = randomUUID());
        stack.identity.setClientBehaviour(LOCAL_BACKSTAGE_CLIENT_ID, { objectId: principal, ...(changeEvents && { roles: ['Events.Send'] }) });
        stack.cosmos?.rbac.assign(principal, 'backstage');
      }
      const authoredDatabase = typeof options.cosmos === 'object' ? options.cosmos.provision : undefined;
      const config = [
        changeEvents ? changeEventsModuleConfig(stack, functionsPort, changeEvents.intervalInSeconds) : {},
        authoredEntities ? authoredProviderConfig(stack, authoredDatabase, authoredEntities) : {},
        files ? { backend: { reading: { allow: [{ host: files.host }] } } } : {},
      ].reduce(deepMerge, extraConfig ?? {});
      const backstage = (stack.backstage = await startBackstage({
        ...standIn,
        port: await ports.next(DEFAULT_PORTS.backstage),
        staticToken,
        ...(trust && { jwks: { url: trust.jwksUri, issuer: trust.issuer, audience: BACKSTAGE_AUDIENCE } }),
        // Backstage has its own identity: its modules get their tokens from the local identity, whatever the app uses;
        // it trusts the emulator's certificate as a real Backstage trusts Azure's.
        ...(stack.identity && {
          env: {
            IDENTITY_ENDPOINT: stack.identity.identityEndpoint,
            IDENTITY_HEADER: stack.identity.identityHeader,
            ...(stack.cosmos && { NODE_EXTRA_CA_CERTS: stack.cosmos.certificatePath }),
          },
        }),
        extraConfig: config,
        ...(abortSignal && { abortSignal }),
      }));
      steps.push({ name: 'Backstage', pids: () => backstage.pids(), run: () => backstage.stop({ killAfterInMs: 3_000 }) });
      parts.backstage = { baseUrl: backstage.baseUrl, staticToken };
      const admin = catalogClient(backstage.baseUrl);
      for (const target of fileLocations ?? []) {
        const { location } = await admin.addLocation({ type: 'file', target: resolve(target) }, { token: staticToken });
        stack.locations[resolve(target)] = location.id;
      }
      if (files) {
        const { location } = await admin.addLocation({ type: 'url', target: files.url('catalog-info.yaml') }, { token: staticToken });
        stack.locations['catalog-info.yaml'] = location.id;
      }
      checkAborted();
    }
    return stack;
  } catch (error) {
    await stack.stop();
    throw error;
  }
}

/** SIGKILLs every child process the local stand-ins started (the last resort when stopping overruns); their pids. */
export function killLocalProcesses(): number[] {
  return killSpawned();
}

// ------------------------------------------------------------------------------------------------
// Settings

interface LocalParts {
  identity?: Pick<IdentityServer, 'issuer' | 'identityEndpoint' | 'identityHeader'>;
  cosmos?: Pick<CosmosEmulator, 'endpoint' | 'certificatePath'>;
  serviceBusConnection?: string;
  backstage?: { baseUrl: string; staticToken?: string };
}

const pick = (env: Settings, keys: string[]): Settings => Object.fromEntries(keys.filter((k) => env[k]).map((k) => [k, env[k]!]));

/**
 * The app settings for local parts — what a deployment sets, pointed at the stand-ins — and, for parts not given,
 * the settings for real services found in `external` (with the developer's own LOG_LEVEL, AZURE_CLIENT_ID,
 * COSMOS_DATABASE_NAME, Application Insights…). The local managed-identity endpoint is included only when neither
 * Cosmos DB nor Service Bus is real (it can only give tokens for local resources).
 */
export function localAppSettings(parts: LocalParts, external: Settings = {}): Settings {
  const { identity, cosmos, serviceBusConnection, backstage } = parts;
  const realCosmos = !cosmos && !!(external.CosmosDBConnection__accountEndpoint || external.CosmosDBConnection);
  const realServiceBus = !serviceBusConnection && !!(external.ServiceBusConnection__fullyQualifiedNamespace || external.ServiceBusConnection);
  const localManagedIdentity = identity && !realCosmos && !realServiceBus;
  return {
    APP_MODE: 'local',
    LOG_LEVEL: external.LOG_LEVEL ?? 'warn',
    ...(cosmos
      ? { CosmosDBConnection__accountEndpoint: cosmos.endpoint, COSMOS_CA_CERT_PATH: cosmos.certificatePath }
      : pick(external, ['CosmosDBConnection__accountEndpoint', 'CosmosDBConnection', 'COSMOS_CA_CERT_PATH'])),
    ...(serviceBusConnection ? { ServiceBusConnection: serviceBusConnection } : pick(external, ['ServiceBusConnection__fullyQualifiedNamespace', 'ServiceBusConnection'])),
    ...((backstage?.baseUrl ?? external.BACKSTAGE_BASE_URL) && { BACKSTAGE_BASE_URL: backstage?.baseUrl ?? external.BACKSTAGE_BASE_URL! }),
    // A local Backstage trusts the local issuer; without the local managed-identity endpoint the app cannot get a
    // token from it, so it uses Backstage's static token (accepted in local mode only).
    ...(backstage?.staticToken && !localManagedIdentity
      ? { BACKSTAGE_STATIC_TOKEN: backstage.staticToken }
      : { BACKSTAGE_TOKEN_SCOPE: external.BACKSTAGE_TOKEN_SCOPE ?? `${BACKSTAGE_AUDIENCE}/.default` }),
    ...((external.AUTH_ISSUER ?? identity?.issuer) && { AUTH_ISSUER: external.AUTH_ISSUER ?? identity!.issuer }),
    AUTH_AUDIENCE: external.AUTH_AUDIENCE ?? LOCAL_API_AUDIENCE,
    ...(localManagedIdentity && { IDENTITY_ENDPOINT: identity.identityEndpoint, IDENTITY_HEADER: identity.identityHeader }),
    ...pick(external, ['APPLICATIONINSIGHTS_CONNECTION_STRING', 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', 'AZURE_CLIENT_ID', 'COSMOS_DATABASE_NAME']),
    // As in Azure (infra/app/function.bicep): the host cuts off bodies just above the intake's own limit.
    FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: external.FUNCTIONS_REQUEST_BODY_SIZE_LIMIT ?? String(Number(settingDefaults().INTAKE_MAX_BODY_BYTES) + 65536),
  };
}

/** The change-events module's config: poll every `intervalInSeconds`, post to the stack's Functions host with Entra-style tokens. */
function changeEventsModuleConfig(stack: LocalStack, functionsPort: number | undefined, intervalInSeconds: number): Record<string, unknown> {
  if (!stack.identity || functionsPort === undefined) throw new Error('the change-events module needs the identity stand-in and `functions`');
  return {
    catalog: {
      changeEvents: {
        schedule: { frequency: { seconds: intervalInSeconds }, timeout: { minutes: 2 }, initialDelay: { seconds: 2 } },
        source: 'http://backstage.local',
        endpoints: [
          {
            name: 'backstage-cosmos-sync',
            url: `http://127.0.0.1:${functionsPort}/api/catalog/events`,
            auth: { type: 'entra', scope: `${LOCAL_API_AUDIENCE}/.default`, clientId: LOCAL_BACKSTAGE_CLIENT_ID },
          },
        ],
      },
    },
  };
}

/** The authored-entities provider's config: the emulator's `authored` container, read with Backstage's identity. */
function authoredProviderConfig(
  stack: LocalStack,
  database: string | undefined,
  options: NonNullable<LocalBackstageOptions['authoredEntities']>,
): Record<string, unknown> {
  if (!stack.identity || !stack.cosmos || !database) throw new Error('the authored-entities provider needs the identity stand-in and `cosmos` with `provision`');
  return {
    catalog: {
      providers: {
        cosmosAuthored: {
          endpoint: stack.cosmos.endpoint,
          database,
          container: String(settingDefaults().COSMOS_AUTHORED_CONTAINER),
          clientId: LOCAL_BACKSTAGE_CLIENT_ID,
          // The module's default schedule unless told otherwise (the benchmark measures the defaults).
          ...(options.intervalInSeconds && { schedule: { frequency: { seconds: options.intervalInSeconds }, timeout: { minutes: 2 } } }),
          ...(options.fullMutationInterval && { fullMutationInterval: options.fullMutationInterval }),
        },
      },
    },
  };
}

/** A client of the emulator with the provisioner's identity (control plane: databases and containers). */
export function provisionerClient(cosmos: CosmosEmulator, identity: IdentityServer): CosmosClient {
  return new CosmosClient({
    endpoint: cosmos.endpoint,
    aadCredentials: provisionerCredential((o) => identity.mint(o)),
    agent: new https.Agent({ ca: cosmos.certificatePem, keepAlive: true }),
    connectionPolicy: { enableEndpointDiscovery: false },
  });
}

async function provision(cosmos: CosmosEmulator, identity: IdentityServer, databaseName: string): Promise<void> {
  const client = provisionerClient(cosmos, identity);
  try {
    // The containers at the names the app's settings default to (the local app settings leave them there).
    const names = settingDefaults();
    await ensureCosmosResources(client, {
      databaseName,
      entitiesContainer: String(names.COSMOS_ENTITIES_CONTAINER),
      edgesContainer: String(names.COSMOS_EDGES_CONTAINER),
      leasesContainer: String(names.COSMOS_LEASES_CONTAINER),
      deliveriesContainer: String(names.COSMOS_DELIVERIES_CONTAINER),
      authoredContainer: String(names.COSMOS_AUTHORED_CONTAINER),
      historyContainer: String(names.COSMOS_HISTORY_CONTAINER),
      runsContainer: String(names.COSMOS_RUNS_CONTAINER),
    });
  } finally {
    client.dispose();
  }
}

// ------------------------------------------------------------------------------------------------
// Backstage's catalog

export function catalogClient(baseUrl: string): CatalogClient {
  return new CatalogClient({ discoveryApi: { getBaseUrl: (pluginId) => Promise.resolve(`${baseUrl}/api/${pluginId}`) } });
}

/** Every entity in the catalog, paged (`fields` to fetch only those). */
export async function allEntities(backstage: { baseUrl: string; staticToken: string | undefined }, fields?: string[]): Promise<Entity[]> {
  const client = catalogClient(backstage.baseUrl);
  const token = { token: backstage.staticToken ?? '' };
  const items: Entity[] = [];
  let cursor: string | undefined;
  do {
    const page = cursor
      ? await client.queryEntities({ cursor, limit: 1000, ...(fields && { fields }) }, token)
      : await client.queryEntities({ limit: 1000, ...(fields && { fields }) }, token);
    items.push(...page.items);
    cursor = page.pageInfo.nextCursor;
  } while (cursor);
  return items;
}

export interface CatalogCondition {
  /** Refs (`kind:namespace/name`) that must all be in the catalog. */
  refs?: string[];
  /** At least this many entities (Location entities count). */
  count?: number;
  /** A test over every entity (fetched whole: for small catalogs). */
  predicate?: (entities: Entity[]) => boolean;
  /**
   * And the catalog has settled: its uid/etag projection is the same two polls in a row — every entity processed and
   * stitched, relations included.
   */
  settled?: boolean;
}

/**
 * Waits until Backstage's catalog meets `until`, polling every `pollIntervalInMs` (default 500 ms; make it longer
 * than a processing batch for `settled` on large catalogs). Throws after `timeoutInMs` naming what was missing.
 */
export async function waitForCatalog(
  backstage: { baseUrl: string; staticToken: string | undefined },
  until: CatalogCondition,
  options: { timeoutInMs?: number; pollIntervalInMs?: number; what?: string; abortSignal?: AbortSignal } = {},
): Promise<void> {
  const timeoutInMs = options.timeoutInMs ?? 120_000;
  const deadline = Date.now() + timeoutInMs;
  const client = catalogClient(backstage.baseUrl);
  const token = { token: backstage.staticToken ?? '' };
  let previous: string | undefined;
  for (;;) {
    if (options.abortSignal?.aborted) throw new Error(`stopped waiting for ${options.what ?? 'the catalog'}`);
    let missing = '';
    try {
      if (until.refs?.length) {
        const { items } = await client.getEntitiesByRefs({ entityRefs: until.refs, fields: ['kind'] }, token);
        const absent = until.refs.filter((_, i) => !items[i]);
        if (absent.length > 0) missing = `missing ${absent.slice(0, 5).join(', ')}${absent.length > 5 ? ` and ${absent.length - 5} more` : ''}`;
      }
      if (!missing && until.count !== undefined) {
        // One cheap request while the catalog fills; the whole projection only once the count is there.
        const { totalItems } = await client.queryEntities({ limit: 1, fields: ['kind'] }, token);
        if (totalItems < until.count) missing = `${totalItems} of ${until.count} entities`;
      }
      if (!missing && (until.count !== undefined || until.settled)) {
        const projection = await allEntities(backstage, ['metadata.uid', 'metadata.etag']);
        const current = projection.map((e) => `${e.metadata.uid} ${e.metadata.etag}`).sort().join('\n');
        if (until.count !== undefined && projection.length < until.count) missing = `${projection.length} of ${until.count} entities`;
        else if (until.settled && current !== previous) missing = 'the catalog is still changing';
        previous = current;
      }
      if (!missing && until.predicate && !until.predicate(await allEntities(backstage))) missing = 'the condition does not hold yet';
      if (!missing) return;
    } catch (error) {
      missing = `Backstage: ${error instanceof Error ? error.message : String(error)}`;
    }
    if (Date.now() > deadline) throw new Error(`Backstage did not ingest ${options.what ?? 'the catalog'} within ${Math.round(timeoutInMs / 1000)} s; ${missing}`);
    await new Promise((r) => setTimeout(r, options.pollIntervalInMs ?? 500));
  }
}
