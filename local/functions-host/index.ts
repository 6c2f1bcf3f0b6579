/**
 * The local Functions dev host: loads the app's function files, captures what they register with `@azure/functions`
 * — exactly the metadata the real host receives (names, routes, queue names, schedules, retry options) — and runs
 * each function with its real trigger kind:
 *
 * - HTTP triggers on a local port under `/api` (./http.ts);
 * - Service Bus session-queue triggers as session receivers with the host.json concurrency (./service-bus.ts);
 * - Cosmos DB triggers as change-feed readers with a lease/checkpoint, batch size and poll delay as declared
 *   (./cosmos.ts);
 * - timer triggers on their NCRONTAB schedules (croner), with the declared retry policy.
 *
 * A development tool — the real host cannot run on machines without the Functions Core Tools. It is not a
 * reimplementation of the host: no scaling, one instance, no function keys.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import Module from 'node:module';
import { dirname, join } from 'node:path';
import type { TokenCredential } from '@azure/core-auth';
import type { CosmosClient } from '@azure/cosmos';
import { InvocationContext } from '@azure/functions';
import { Cron } from 'croner';
import { startChangeFeedTrigger, type ChangeFeedTrigger } from './cosmos';
import { startHttpHost, type HttpHost } from './http';
import { pause } from './pause';
import { startSessionTrigger, timeSpanToMs, type SessionTrigger } from './service-bus';

type Binding = Record<string, unknown> & { type: string; direction: string };

export interface FunctionRegistration {
  name: string;
  trigger: Binding;
  retryOptions?: { retryStrategy?: string; maxRetryCount?: number; delayInterval?: { seconds: number }; minimumInterval?: { seconds: number }; maximumInterval?: { seconds: number } };
  handler: (...args: unknown[]) => Promise<unknown>;
}

export interface FunctionsHostOptions {
  /**
   * What to load: every function file of `functionsDir` (`functions/*.ts` under tsx, or `dist/functions/*.js`), in
   * name order, or `files` in the order given — e.g. the deployed bundle, `dist-bundle/main.js` (`package.json`
   * `main`). Exactly one of the two.
   */
  functionsDir?: string;
  files?: string[];
  hostJsonPath: string;
  port?: number;
  /** Resolves a trigger's connection setting prefix to what the runners need. */
  connections: {
    serviceBus: (prefix: string) => string | { fullyQualifiedNamespace: string; credential: TokenCredential };
    cosmos: (prefix: string) => CosmosClient;
  };
  /** Receives every log line of every invocation: (function, level, message). */
  log: (functionName: string, level: string, message: string) => void;
  /** Skip these trigger kinds (e.g. timers in tests that drive reconciles themselves). */
  disable?: string[];
}

export interface FunctionsHost {
  url: string;
  functions: FunctionRegistration[];
  /** Invokes a timer function now (e.g. the initial reconcile). */
  runTimer(name: string): Promise<void>;
  /**
   * Stops the timers, the HTTP server and the triggers. Invocations in flight get `drainTimeoutInMs` (default 30 s) to
   * finish, as in the host's graceful shutdown; after a third of it the app's `appTerminate` hooks run (the worker is
   * going away), and what still runs at the end is left behind (see SessionTrigger.stop).
   */
  stop(options?: { drainTimeoutInMs?: number }): Promise<void>;
}

/** Loads the function files with a stand-in for `@azure/functions-core` that records registrations and hooks. */
function loadRegistrations(load: Pick<FunctionsHostOptions, 'functionsDir' | 'files'>): { functions: FunctionRegistration[]; hooks: Map<string, Array<(context: unknown) => unknown>> } {
  const functions: FunctionRegistration[] = [];
  const hooks = new Map<string, Array<(context: unknown) => unknown>>();
  const core = {
    setProgrammingModel: () => undefined,
    getProgrammingModel: () => undefined,
    registerFunction: (metadata: { name: string; bindings: Record<string, Binding>; retryOptions?: FunctionRegistration['retryOptions'] }, handler: FunctionRegistration['handler']) => {
      const trigger = Object.values(metadata.bindings).find((b) => /trigger$/i.test(b.type))!;
      functions.push({ name: metadata.name, trigger, ...(metadata.retryOptions && { retryOptions: metadata.retryOptions }), handler });
      return { dispose: () => undefined };
    },
    registerHook: (name: string, callback: (context: unknown) => unknown) => {
      hooks.set(name, [...(hooks.get(name) ?? []), callback]);
      return { dispose: () => undefined };
    },
    log: () => undefined,
  };
  if ((load.functionsDir === undefined) === (load.files === undefined)) throw new Error('the dev host needs either functionsDir or files');
  const files = load.functionsDir
    ? readdirSync(load.functionsDir)
        .filter((f) => /\.(ts|js)$/.test(f) && !f.endsWith('.d.ts') && !f.endsWith('.test.ts'))
        .sort()
        .map((f) => join(load.functionsDir!, f))
    : load.files!;
  if (files.length === 0) throw new Error(`no function files to load${load.functionsDir ? ` in ${load.functionsDir}` : ''}`);
  const sentinel = join(load.functionsDir ?? dirname(files[0]!), '__azure_functions_core_stand_in__.js');
  const moduleApi = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string; _cache: Record<string, unknown> };
  const original = moduleApi._resolveFilename;
  moduleApi._resolveFilename = function (request: string, ...rest: unknown[]) {
    if (request === '@azure/functions-core') return sentinel;
    return original.call(this, request, ...rest);
  };
  const cached = { id: sentinel, filename: sentinel, loaded: true, exports: core };
  moduleApi._cache[sentinel] = cached;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- the stand-in is wired into CommonJS resolution for this synchronous loop only; each file must load and register inside it, in order
    for (const file of files) require(file);
  } finally {
    moduleApi._resolveFilename = original;
  }
  return { functions, hooks };
}

export async function startFunctionsHost(options: FunctionsHostOptions): Promise<FunctionsHost> {
  const { functions, hooks } = loadRegistrations(options);
  const hostJson = JSON.parse(readFileSync(options.hostJsonPath, 'utf8')) as {
    extensions?: { http?: { routePrefix?: string }; serviceBus?: { maxConcurrentSessions?: number; sessionIdleTimeout?: string } };
  };
  const disabled = new Set(options.disable ?? []);
  const logHandlerFor = (name: string) => (level: string, ...args: unknown[]) => options.log(name, level, args.map(String).join(' '));

  // App start hooks first, as the host does (they validate the configuration).
  for (const hook of hooks.get('appStart') ?? []) await hook({ hookData: {}, appHookData: {}, functionAppDirectory: process.cwd() });

  const http = functions.filter((f) => f.trigger.type === 'httpTrigger');
  const server: HttpHost = await startHttpHost({
    port: options.port ?? 7071,
    routePrefix: hostJson.extensions?.http?.routePrefix ?? 'api',
    routes: http.map((f) => ({
      functionName: f.name,
      route: bindingString(f.trigger, 'route', f.name),
      methods: ((f.trigger.methods as string[] | undefined) ?? ['GET', 'POST']).map((m) => m.toUpperCase()),
      handler: (request, context) => f.handler(request, context) as never,
    })),
    logHandler: (level, ...args) => options.log('http', level, args.map(String).join(' ')),
  });

  const sessions: SessionTrigger[] = [];
  for (const f of functions.filter((fn) => fn.trigger.type === 'serviceBusTrigger' && !disabled.has('serviceBus'))) {
    if (!f.trigger.isSessionsEnabled) throw new Error(`${f.name}: the dev host runs session-enabled Service Bus triggers only`);
    sessions.push(
      startSessionTrigger({
        connection: options.connections.serviceBus(String(f.trigger.connection)),
        queueName: String(f.trigger.queueName),
        functionName: f.name,
        handler: (input, context) => f.handler(input, context),
        maxConcurrentSessions: hostJson.extensions?.serviceBus?.maxConcurrentSessions ?? 8,
        sessionIdleTimeoutInMs: timeSpanToMs(hostJson.extensions?.serviceBus?.sessionIdleTimeout) ?? 1_000,
        logHandler: logHandlerFor(f.name),
        onError: (error) => options.log(f.name, 'warning', `Service Bus trigger: ${(error as Error).message}`),
      }),
    );
  }

  const feeds: ChangeFeedTrigger[] = [];
  for (const f of functions.filter((fn) => fn.trigger.type === 'cosmosDBTrigger' && !disabled.has('cosmosDB'))) {
    const database = options.connections.cosmos(String(f.trigger.connection)).database(String(f.trigger.databaseName));
    feeds.push(
      startChangeFeedTrigger({
        functionName: f.name,
        monitored: database.container(String(f.trigger.containerName)),
        leases: database.container(bindingString(f.trigger, 'leaseContainerName', 'leases')),
        leaseContainerPrefix: bindingString(f.trigger, 'leaseContainerPrefix', ''),
        maxItemsPerInvocation: Number(f.trigger.maxItemsPerInvocation ?? 100),
        feedPollDelayInMs: Number(f.trigger.feedPollDelay ?? 5_000),
        startFromBeginning: Boolean(f.trigger.startFromBeginning),
        retry: retryPolicy(f),
        handler: (documents, context) => f.handler(documents, context),
        logHandler: logHandlerFor(f.name),
        onError: (error) => options.log(f.name, 'warning', `Cosmos DB trigger: ${(error as Error).message}`),
      }),
    );
  }

  const timers = functions.filter((f) => f.trigger.type === 'timerTrigger');
  const runTimer = async (name: string) => {
    const f = timers.find((t) => t.name === name);
    if (!f) throw new Error(`No timer function ${name}`);
    const retry = retryPolicy(f);
    for (let attempt = 0; ; attempt += 1) {
      const context = new InvocationContext({
        invocationId: randomUUID(),
        functionName: f.name,
        logHandler: logHandlerFor(f.name),
        ...(attempt > 0 && { retryContext: { retryCount: attempt, maxRetryCount: retry.maxRetryCount } }),
      });
      try {
        await f.handler({ isPastDue: false, scheduleStatus: { last: new Date().toISOString(), next: '', lastUpdated: new Date().toISOString() } }, context);
        return;
      } catch (error) {
        context.error(`Invocation failed: ${(error as Error).message}`);
        if (attempt >= retry.maxRetryCount) return;
        await pause(Math.min(retry.maximumIntervalInMs, retry.minimumIntervalInMs * 2 ** attempt), new AbortController().signal);
      }
    }
  };
  const crons = disabled.has('timer')
    ? []
    : timers.map((f) => {
        let running = false;
        const job = new Cron(String(f.trigger.schedule), { protect: true }, async () => {
          if (running) return; // useMonitor: one run at a time
          running = true;
          try {
            await runTimer(f.name);
          } finally {
            running = false;
          }
        });
        if (f.trigger.runOnStartup) void job.trigger();
        return job;
      });

  return {
    url: server.url,
    functions,
    runTimer,
    async stop(stopOptions = {}) {
      const drainTimeoutInMs = stopOptions.drainTimeoutInMs ?? 30_000;
      for (const job of crons) job.stop();
      await server.close();
      // The triggers stop taking work and drain; what has not finished after a third of the drain timeout is told
      // the worker is going away — the app's appTerminate hooks, as the host runs them when it shuts a worker down
      // (the app aborts its invocations' SDK calls and retry waits then). Whatever still runs after the drain timeout
      // is left behind by the triggers.
      const draining = Promise.all([...sessions.map((s) => s.stop({ drainTimeoutInMs })), ...feeds.map((f) => f.stop({ drainTimeoutInMs }))]);
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([draining.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), drainTimeoutInMs / 3)))]);
      clearTimeout(timer);
      if (!drained) {
        for (const hook of hooks.get('appTerminate') ?? []) {
          try {
            await hook({ hookData: {}, appHookData: {} });
          } catch (error) {
            options.log('host', 'warning', `appTerminate hook failed: ${error instanceof Error ? error.message : String(error)}`);
          }
        }
      }
      await draining;
    },
  };
}

/** An optional string property of a trigger binding (as @azure/functions declares them), or `fallback` when absent. */
function bindingString(binding: Binding, key: string, fallback: string): string {
  const value = binding[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'string') throw new Error(`the ${binding.type} binding's ${key} is a ${typeof value}, not a string`);
  return value;
}

function retryPolicy(f: FunctionRegistration): { maxRetryCount: number; minimumIntervalInMs: number; maximumIntervalInMs: number } {
  const r = f.retryOptions;
  if (!r) return { maxRetryCount: 0, minimumIntervalInMs: 0, maximumIntervalInMs: 0 };
  const fixed = (r.delayInterval?.seconds ?? 0) * 1000;
  return {
    maxRetryCount: r.maxRetryCount ?? 0,
    minimumIntervalInMs: r.minimumInterval ? r.minimumInterval.seconds * 1000 : fixed,
    maximumIntervalInMs: r.maximumInterval ? r.maximumInterval.seconds * 1000 : fixed,
  };
}
