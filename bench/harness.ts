/**
 * Runs each benchmark scenario in a fresh child process (so its wall time and peak RSS are its own, not the
 * stand-ins') and counts the Cosmos requests of exactly its measured section: the child asks the parent to reset
 * the emulator's counters when the section starts and to snapshot them when it ends — and, on Linux, the CPU time
 * the section took of the machine, of the scenario's process, of this one and of the stand-ins' processes.
 *
 * Parent: `runScenario(name, args, { env, emulator })`. Child: `measured(() => work)` inside `bench/scenario.ts`.
 */
import { fork } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServiceBusReceivedMessage } from '@azure/service-bus';
import type { CosmosEmulator, CosmosRequestCounts } from '../local/cosmos';
import { SYNC_BATCH_SUBJECT } from '../shared/intake/events';
import { toDocumentId } from '../shared/model/refs';
import { cpuUse, snapshotCpu, type CpuSnapshot, type CpuUse } from './cpu';
import type { ScenarioArgs, ScenarioName, ScenarioResult } from './scenario';

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;

/** Count, p50, p95, p99 and max of `values` (nearest rank). */
export function summarize(values: number[]): { count: number; p50: number; p95: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), max: sorted.at(-1) ?? NaN };
}
export type Summary = ReturnType<typeof summarize>;

/**
 * The entities a sync invocation synced: an entity's own message is in its session; a batch message (a burst the
 * intake queued together) names its entities in its body.
 */
export function syncedIds(messages: ServiceBusReceivedMessage | ServiceBusReceivedMessage[]): string[] {
  return (Array.isArray(messages) ? messages : [messages]).flatMap((message) =>
    message.subject === SYNC_BATCH_SUBJECT
      ? ((message.body as { entities?: Array<{ entityRef: string }> }).entities ?? []).map((e) => toDocumentId(e.entityRef))
      : typeof message.sessionId === 'string'
        ? [message.sessionId]
        : [],
  );
}

/** Requests the emulator served: all of them by kind, and per container. */
export interface CosmosCounts {
  all: CosmosRequestCounts;
  byContainer: Record<string, CosmosRequestCounts>;
}

interface ToParent {
  type: 'begin' | 'end' | 'result' | 'error';
  id?: number;
  value?: unknown;
  error?: string;
}

interface ToChild {
  type: 'run' | 'ack';
  id?: number;
  scenario?: string;
  args?: unknown;
  counts?: CosmosCounts;
}

export interface ScenarioReport<T> {
  result: T;
  /** Peak resident set of the child process over its whole life (includes loading the app). */
  peakRssMb: number;
  /**
   * CPU time of each measured section, in order (Linux only): the scenario's process (`app`), this one (`bench`: the
   * Cosmos emulator and the other stand-ins that run in it) and the processes `cpuOf` names.
   */
  cpu?: CpuUse[];
}

/** Runs `scenario` from bench/scenario.ts in a child process with `env`; counts Cosmos requests of its measured sections. */
export function runScenario<K extends ScenarioName>(
  scenario: K,
  args: ScenarioArgs<K>,
  options: { env: Record<string, string>; emulator: CosmosEmulator; timeoutInMs?: number; nodeArgs?: string[]; cpuOf?: Record<string, () => readonly number[]> },
): Promise<ScenarioReport<ScenarioResult<K>>> {
  type T = ScenarioResult<K>;
  const child = fork(join(__dirname, 'scenario.ts'), [], {
    execArgv: [...(options.nodeArgs ?? []), '--import', 'tsx'],
    env: { ...process.env, ...options.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  // Outside the Functions host, @azure/functions warns about "test mode" for every registration; keep the rest.
  let pending = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) if (!/^WARNING: .*("@azure\/functions"|Azure Functions runtime)/.test(line)) process.stderr.write(`${line}\n`);
  });
  return new Promise<ScenarioReport<T>>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(new Error(`scenario ${scenario} did not finish within ${options.timeoutInMs} ms`));
    }, options.timeoutInMs ?? 30 * 60_000);
    const finish = (error: Error | undefined, report?: ScenarioReport<T>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(report!);
    };
    const processes = () => ({
      app: child.pid === undefined ? [] : [child.pid],
      bench: [process.pid],
      ...Object.fromEntries(Object.entries(options.cpuOf ?? {}).map(([label, pids]) => [label, pids()])),
    });
    const cpu: CpuUse[] = [];
    let sectionStart: CpuSnapshot | undefined;
    child.on('message', (raw) => {
      const message = raw as ToParent;
      if (message.type === 'begin') {
        options.emulator.resetRequests();
        sectionStart = snapshotCpu(processes());
        child.send({ type: 'ack', id: message.id } satisfies ToChild);
      } else if (message.type === 'end') {
        const sectionEnd = snapshotCpu(processes());
        if (sectionStart && sectionEnd) cpu.push(cpuUse(sectionStart, sectionEnd));
        child.send({ type: 'ack', id: message.id, counts: { all: options.emulator.requests(), byContainer: options.emulator.requestsByContainer() } } satisfies ToChild);
      } else if (message.type === 'result') {
        const report = message.value as ScenarioReport<T>;
        finish(undefined, cpu.length > 0 ? { ...report, cpu } : report);
      } else if (message.type === 'error') {
        finish(new Error(`scenario ${scenario} failed: ${message.error}`));
      }
    });
    child.once('exit', (code, signal) => finish(new Error(`scenario ${scenario} exited (${code ?? signal}) without a result`)));
    child.send({ type: 'run', scenario, args } satisfies ToChild);
  });
}

// ------------------------------------------------------------------------------------------------
// Child side

let nextId = 0;
const waiting = new Map<number, (message: ToChild) => void>();

function ask(type: 'begin' | 'end'): Promise<ToChild> {
  const id = (nextId += 1);
  return new Promise((resolve) => {
    waiting.set(id, resolve);
    process.send!({ type, id } satisfies ToParent);
  });
}

export interface Measured<T> {
  value: T;
  ms: number;
  cosmos: CosmosCounts;
}

/** Times `work` and counts the Cosmos requests it sent (the parent's emulator counts everything in between). */
export async function measured<T>(work: () => Promise<T>): Promise<Measured<T>> {
  await ask('begin');
  const started = performance.now();
  const value = await work();
  const ms = performance.now() - started;
  const { counts } = await ask('end');
  return { value, ms, cosmos: counts! };
}

/** The child's main loop: waits for the scenario to run, runs it, reports. */
export function serveScenarios(scenarios: Record<string, (args: never) => Promise<unknown>>): void {
  process.on('message', (raw) => {
    const message = raw as ToChild;
    if (message.type === 'ack') {
      waiting.get(message.id!)?.(message);
      waiting.delete(message.id!);
      return;
    }
    const run = scenarios[message.scenario!];
    if (!run) {
      process.send!({ type: 'error', error: `unknown scenario ${message.scenario}` } satisfies ToParent);
      return;
    }
    run(message.args as never).then(
      (result) => {
        const peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
        process.send!({ type: 'result', value: { result, peakRssMb } } satisfies ToParent, () => process.exit(0));
      },
      (error: unknown) => {
        process.send!({ type: 'error', error: error instanceof Error ? (error.stack ?? error.message) : String(error) } satisfies ToParent, () => process.exit(1));
      },
    );
  });
}

/**
 * Writes a run's results to `<out>/<date>-<kind>.json`, or `-2`, `-3`… when a run of that kind on that date already
 * wrote one: results are committed, and a second run the same day must not replace the first. Pass the `file` a
 * previous call returned to write the same run again (a run that writes after every step). Returns the file.
 */
export function writeResults(out: string, startedAt: string, kind: string, data: unknown, file?: string): string {
  mkdirSync(out, { recursive: true });
  const base = `${startedAt.slice(0, 10)}-${kind}`;
  let target = file;
  for (let n = 1; target === undefined; n += 1) {
    const candidate = join(out, `${base}${n === 1 ? '' : `-${n}`}.json`);
    if (!existsSync(candidate)) target = candidate;
  }
  writeFileSync(target, `${JSON.stringify(data, null, 2)}\n`);
  return target;
}
