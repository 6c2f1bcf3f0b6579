/**
 * What the local stack (./stack.ts) needs to run things and stop them on time: free ports, Azurite as a child
 * process, stopping a child process (SIGTERM, then SIGKILL), killing by pid, running stop steps each within a
 * deadline, and a registry of every child process the stand-ins started, for a last-resort kill.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { resolve } from 'node:path';

/** A port the OS says is free right now. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolvePort(port));
    });
  });
}

/** Hands out the fixed ports, or free ones — never the same one twice (the OS may offer again a port it just gave). */
export function portChooser(mode: 'fixed' | 'auto'): { next(fixed: number): Promise<number> } {
  const given = new Set<number>();
  return {
    async next(fixed) {
      if (mode === 'fixed') return fixed;
      for (;;) {
        const port = await freePort();
        if (!given.has(port)) {
          given.add(port);
          return port;
        }
      }
    },
  };
}

/** Azurite (the real one, from npm) in memory on the given blob, queue and table ports. */
export async function startAzurite(ports: number[], options: { startupTimeoutInMs?: number } = {}): Promise<ChildProcess> {
  const [blob, queue, table] = ports as [number, number, number];
  const bin = require.resolve('azurite/dist/src/azurite.js', { paths: [resolve(__dirname, '..')] });
  const child = track(spawn(
    process.execPath,
    [bin, '--inMemoryPersistence', '--disableTelemetry', '--skipApiVersionCheck', '--blobPort', String(blob), '--queuePort', String(queue), '--tablePort', String(table)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  ));
  const timeoutInMs = options.startupTimeoutInMs ?? 30_000;
  await new Promise<void>((resolveStart, reject) => {
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`Azurite did not start within ${timeoutInMs / 1000} s: ${output}`));
    }, timeoutInMs);
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
  child.stderr!.resume();
  return child;
}

/** The child's pid while it runs, else nothing. */
export function alive(child: ChildProcess): number[] {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null ? [child.pid] : [];
}

/** SIGTERM, SIGKILL after `killAfterInMs`; resolves once the process is gone. */
export async function stopChild(child: ChildProcess, options: { killAfterInMs: number }): Promise<void> {
  if (alive(child).length === 0) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.killAfterInMs);
  await exited;
  clearTimeout(timer);
}

/** SIGKILLs each pid that still runs; returns those it killed. */
function killAll(pids: number[]): number[] {
  const killed: number[] = [];
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // already gone
    }
  }
  return killed;
}

export interface StopStep {
  name: string;
  /** The processes this step stops: SIGKILLed when it misses its deadline. */
  pids: () => number[];
  run: () => Promise<unknown>;
}

export type StopOutcome = 'done' | 'timed out' | 'failed';

export interface StopOptions {
  /** Deadline of each step; after it, the step's processes are killed and the next step starts. Default 5 s. */
  stepTimeoutInMs?: number;
  /** Told about each step as it ends. */
  onStep?: (name: string, outcome: StopOutcome, elapsedInMs: number, error?: unknown) => void;
}

/** Runs `steps` one after the other; none waits longer than its deadline. */
export async function runStopSteps(steps: StopStep[], options: StopOptions = {}): Promise<void> {
  const stepTimeoutInMs = options.stepTimeoutInMs ?? 5_000;
  for (const step of steps) {
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    let failure: unknown;
    const deadline = new Promise<'timed out'>((r) => (timer = setTimeout(() => r('timed out'), stepTimeoutInMs)));
    const run = Promise.resolve()
      .then(() => step.run())
      .then(
        () => 'done' as const,
        (error: unknown) => {
          failure = error;
          return 'failed' as const;
        },
      );
    const outcome = await Promise.race([run, deadline]);
    clearTimeout(timer);
    if (outcome === 'timed out') killAll(step.pids());
    options.onStep?.(step.name, outcome, Date.now() - started, failure);
  }
}

/** Every child process the local stand-ins started and that still runs, so a last resort can kill them all. */
const spawned = new Set<ChildProcess>();

/** Registers `child` for {@link killSpawned} until it exits. */
export function track(child: ChildProcess): ChildProcess {
  spawned.add(child);
  child.once('exit', () => spawned.delete(child));
  return child;
}

/** The pids of the tracked children that still run. */
function spawnedPids(): number[] {
  return [...spawned].flatMap(alive);
}

/** SIGKILLs every tracked child now (the last resort when stopping overruns its deadline); returns their pids. */
export function killSpawned(): number[] {
  return killAll(spawnedPids());
}
