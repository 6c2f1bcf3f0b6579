/**
 * Starts the local Backstage stand-in (./server.ts) as a child process: a real catalog backend from npm
 * with an in-memory SQLite database, trusting the local identity issuer through
 * `backend.auth.externalAccess` (type `jwks`) — the way a real Backstage trusts Entra.
 *
 * Catalogs come in two ways: `file` locations (config or runtime), which the processing loop reads again every
 * processing interval — right for small catalogs that tests edit as YAML; and the stand-in's catalog file
 * (`catalogFile`, see ./bulk-provider.ts), applied in one full mutation by `loadCatalog(entities)` — right for large
 * generated catalogs, which are then processed once and left alone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { freePort, track } from '../processes';

export interface BackstageStandInOptions {
  port?: number;
  /** Trust tokens from this issuer (the local identity stand-in or Entra). */
  jwks?: { url: string; issuer: string; audience: string };
  /** A static external-access token (for test harnesses and the dev stack's admin calls). */
  staticToken?: string;
  /** Catalog locations registered from config (files). Runtime `file` locations are allowed too. */
  locations?: string[];
  /**
   * The file the stand-in's entity provider reads (a JSON array of entities), applied at start when it exists and
   * again on `loadCatalog()`. Defaults to a file in the stand-in's temporary directory.
   */
  catalogFile?: string;
  /** Seconds between processing passes; short for tests. */
  processingIntervalSeconds?: number;
  /** Extra app-config merged last (e.g. events, the change-events module's settings). */
  extraConfig?: Record<string, unknown>;
  /** Where the backend's logs go: 'inherit' shows them, a function receives them, default keeps the last lines. */
  output?: 'inherit' | ((line: string) => void);
  startupTimeoutInMs?: number;
  /** Environment variables for the backend process on top of this one's (e.g. its own managed-identity endpoint). */
  env?: Record<string, string>;
  /** The entry script; defaults to ./server.ts. */
  entry?: string;
  /** Gives up starting (the process is killed) when aborted. */
  abortSignal?: AbortSignal;
  /**
   * Keep the databases (one SQLite file per plugin) in this directory, so that a restart (`stop()`, then `start()`)
   * finds the catalog and the modules' tables as they were. Default: in memory, gone with the process.
   */
  databaseDirectory?: string;
}

export interface BackstageStandIn {
  baseUrl: string;
  /** The static external-access token, when one was configured. */
  staticToken: string | undefined;
  /** The provider's catalog file (see {@link BackstageStandInOptions.catalogFile}). */
  catalogFile: string;
  /**
   * Writes `entities` to the catalog file and has the provider apply them as one full mutation (entities it gave
   * before and that are not in `entities` are deleted). Resolves once the catalog has taken the mutation; processing
   * and stitching follow (wait with `waitForCatalog` of ../stack). Needs `staticToken`.
   */
  loadCatalog(entities: readonly object[], options?: { abortSignal?: AbortSignal }): Promise<number>;
  /** The most recent log lines (for error messages). */
  recentLogs(): string[];
  /** The backend's process id (for "nothing left behind" checks). */
  pids(): number[];
  /** SIGTERM, then SIGKILL after `killAfterInMs` (default 10 s); resolves when the process has exited. */
  stop(options?: { killAfterInMs?: number }): Promise<void>;
  /** Starts the backend again after `stop()`, same port and config (see `databaseDirectory`); resolves when it is ready. */
  start(options?: { abortSignal?: AbortSignal }): Promise<void>;
}

export const BACKSTAGE_AUDIENCE = 'api://backstage-local';
/** The stand-in's route (under /api/catalog) that has its provider re-read the catalog file (./bulk-provider.ts). */
export const CATALOG_RELOAD_PATH = '/stand-in/catalog/reload';

export async function startBackstage(options: BackstageStandInOptions = {}): Promise<BackstageStandIn> {
  const port = options.port ?? (await freePort());
  const baseUrl = `http://127.0.0.1:${port}`;
  const externalAccess: unknown[] = [];
  if (options.jwks) {
    externalAccess.push({
      type: 'jwks',
      options: {
        url: options.jwks.url,
        issuer: options.jwks.issuer,
        algorithm: 'RS256',
        audience: options.jwks.audience,
        subjectPrefix: 'entra',
      },
    });
  }
  if (options.staticToken) {
    externalAccess.push({ type: 'static', options: { token: options.staticToken, subject: 'local-admin' } });
  }
  const dir = mkdtempSync(join(tmpdir(), 'backstage-standin-'));
  const catalogFile = resolve(options.catalogFile ?? join(dir, 'catalog.json'));
  const config = deepMerge({
    app: { baseUrl },
    backend: {
      baseUrl,
      listen: { port, host: '127.0.0.1' },
      database: { client: 'better-sqlite3', connection: options.databaseDirectory ? { directory: resolve(options.databaseDirectory) } : ':memory:' },
      auth: { externalAccess },
    },
    catalog: {
      rules: [{ allow: ['Component', 'System', 'API', 'Resource', 'Location', 'Domain', 'Group', 'User', 'Template'] }],
      processingInterval: { seconds: options.processingIntervalSeconds ?? 2 },
      stitchingStrategy: { mode: 'immediate' },
      locations: (options.locations ?? []).map((target) => ({ type: 'file', target: resolve(target) })),
    },
    localStandIn: { catalogFile },
  }, options.extraConfig ?? {});
  const configPath = join(dir, 'app-config.yaml');
  writeFileSync(configPath, stringify(config));

  const entry = options.entry ?? join(__dirname, 'server.ts');
  const logs: string[] = [];
  const onLine = (line: string) => {
    logs.push(line);
    if (logs.length > 200) logs.shift();
    if (options.output === 'inherit') process.stdout.write(`[backstage] ${line}\n`);
    else if (typeof options.output === 'function') options.output(line);
  };
  let child: ChildProcess | undefined;
  let exited: Promise<number | null> = Promise.resolve(null);
  const spawnBackend = () => {
    const current = (child = track(
      spawn(process.execPath, ['--import', 'tsx', entry, '--config', configPath], {
        cwd: join(__dirname, '..', '..'), // so `--import tsx` resolves from the project's node_modules
        // Its own log level (info: the tests read its log lines), whatever the caller's LOG_LEVEL says about the app.
        env: { ...process.env, LOG_LEVEL: 'info', ...options.env, NODE_ENV: 'development', NODE_OPTIONS: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    ));
    pipeLines(current, onLine);
    exited = new Promise<number | null>((resolveExit) => current.once('exit', (code) => resolveExit(code)));
  };
  const running = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;
  const stop = async (stopOptions: { killAfterInMs?: number } = {}) => {
    const current = child;
    if (!current || !running()) return;
    current.kill('SIGTERM');
    const timer = setTimeout(() => current.kill('SIGKILL'), stopOptions.killAfterInMs ?? 10_000);
    await exited;
    clearTimeout(timer);
  };
  const start = async (startOptions: { abortSignal?: AbortSignal } = {}) => {
    if (running()) return;
    spawnBackend();
    try {
      await waitForReady(baseUrl, exited, options.startupTimeoutInMs ?? 90_000, startOptions.abortSignal);
    } catch (error) {
      await stop({ killAfterInMs: 1_000 });
      throw new Error(`Backstage stand-in did not start: ${(error as Error).message}\n${logs.slice(-30).join('\n')}`, { cause: error });
    }
  };
  const loadCatalog = async (entities: readonly object[], loadOptions: { abortSignal?: AbortSignal } = {}) => {
    if (!options.staticToken) throw new Error('loadCatalog needs the stand-in to be started with a staticToken');
    writeFileSync(catalogFile, JSON.stringify(entities));
    const response = await fetch(`${baseUrl}/api/catalog${CATALOG_RELOAD_PATH}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${options.staticToken}` },
      ...(loadOptions.abortSignal && { signal: loadOptions.abortSignal }),
    });
    const body = await response.text();
    if (!response.ok) throw new Error(`Backstage stand-in did not load ${catalogFile}: ${response.status} ${body}`);
    return (JSON.parse(body) as { entities: number }).entities;
  };

  await start(options.abortSignal ? { abortSignal: options.abortSignal } : {});
  return {
    baseUrl,
    staticToken: options.staticToken,
    catalogFile,
    loadCatalog,
    recentLogs: () => [...logs],
    pids: () => (child?.pid && running() ? [child.pid] : []),
    stop,
    start,
  };
}

async function waitForReady(baseUrl: string, exited: Promise<number | null>, timeoutInMs: number, abortSignal: AbortSignal | undefined): Promise<void> {
  const deadline = Date.now() + timeoutInMs;
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`the process exited with code ${exitCode}`);
    if (abortSignal?.aborted) throw new Error('start-up was aborted');
    try {
      const response = await fetch(`${baseUrl}/.backstage/health/v1/readiness`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`not ready after ${timeoutInMs} ms`);
}

function pipeLines(child: ChildProcess, onLine: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    let buffer = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      buffer += chunk;
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        onLine(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
      }
    });
  }
}

/** Objects merged key by key; anything else in `extra` replaces what `base` had. */
export function deepMerge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key];
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object' && !Array.isArray(current)
        ? deepMerge(current as Record<string, unknown>, value as Record<string, unknown>)
        : value;
  }
  return out;
}
