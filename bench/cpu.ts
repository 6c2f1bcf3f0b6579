/**
 * CPU time over a benchmark's measured section: the machine's (every core, whatever ran) and that of named processes
 * (all their threads), read from Linux's `/proc` in clock ticks (USER_HZ: 100 a second on every Linux architecture
 * Node supports). The stand-ins share the machine's cores with the app, so a section whose processes need more CPU
 * than the cores give in its wall time cannot go faster, whatever the code; `floorMs` says how much that is.
 */
import { readFileSync } from 'node:fs';

const TICK_IN_MS = 10;

export interface CpuSnapshot {
  cores: number;
  busyTicks: number;
  totalTicks: number;
  /** Ticks of each named process group; a group none of whose processes could be read is left out. */
  processTicks: Record<string, number>;
}

export interface CpuUse {
  /** Cores of the machine. */
  cores: number;
  /** Share of all cores' time that was busy over the section (0–1). */
  machineBusy: number;
  /** CPU time of each named process group over the section, in ms (10 ms resolution). */
  processMs: Record<string, number>;
  /** The named groups' CPU time spread over every core: no schedule finishes the section in less wall time. */
  floorMs: number;
}

/** The first line of `/proc/stat` as busy and total ticks (idle and iowait are not busy), and the number of cores. */
export function parseProcStat(text: string): { cores: number; busyTicks: number; totalTicks: number } {
  const lines = text.split('\n');
  const fields = lines[0]!.trim().split(/\s+/);
  if (fields[0] !== 'cpu') throw new Error(`not a /proc/stat: ${lines[0]}`);
  // user nice system idle iowait irq softirq steal (guest time is counted in user already)
  const ticks = fields.slice(1, 9).map(Number);
  const totalTicks = ticks.reduce((a, b) => a + b, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { cores: lines.filter((l) => /^cpu\d+\s/.test(l)).length, busyTicks: totalTicks - idle, totalTicks };
}

/** utime + stime of a `/proc/<pid>/stat` line (the command name, in parentheses, may itself hold spaces). */
export function parsePidStat(text: string): number {
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  return Number(rest[11]) + Number(rest[12]);
}

/** Now, for `processes` (a label → its pids); undefined where `/proc` cannot be read (not Linux). */
export function snapshotCpu(processes: Record<string, readonly number[]>): CpuSnapshot | undefined {
  let machine: ReturnType<typeof parseProcStat>;
  try {
    machine = parseProcStat(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return undefined;
  }
  const processTicks: Record<string, number> = {};
  for (const [label, pids] of Object.entries(processes)) {
    let ticks: number | undefined;
    for (const pid of pids) {
      try {
        ticks = (ticks ?? 0) + parsePidStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        // gone: it counts as nothing
      }
    }
    if (ticks !== undefined) processTicks[label] = ticks;
  }
  return { ...machine, processTicks };
}

/** What happened between two snapshots. */
export function cpuUse(before: CpuSnapshot, after: CpuSnapshot): CpuUse {
  const processMs: Record<string, number> = {};
  for (const [label, ticks] of Object.entries(after.processTicks)) {
    const start = before.processTicks[label];
    if (start !== undefined) processMs[label] = (ticks - start) * TICK_IN_MS;
  }
  const total = after.totalTicks - before.totalTicks;
  const sum = Object.values(processMs).reduce((a, b) => a + b, 0);
  return {
    cores: after.cores,
    machineBusy: total > 0 ? Math.round(((after.busyTicks - before.busyTicks) / total) * 100) / 100 : 0,
    processMs,
    floorMs: after.cores > 0 ? Math.round(sum / after.cores) : sum,
  };
}
