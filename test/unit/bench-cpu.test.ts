import { cpuUse, parseProcStat, parsePidStat, snapshotCpu } from '../../bench/cpu';

const PROC_STAT = [
  'cpu  1000 10 500 8000 200 0 50 0 0 0',
  'cpu0 500 5 250 4000 100 0 25 0 0 0',
  'cpu1 500 5 250 4000 100 0 25 0 0 0',
  'intr 12345',
  'ctxt 67890',
].join('\n');

test('/proc/stat: busy is everything but idle and iowait; cores are the cpuN lines', () => {
  expect(parseProcStat(PROC_STAT)).toEqual({ cores: 2, busyTicks: 1000 + 10 + 500 + 50, totalTicks: 9760 });
  expect(() => parseProcStat('intr 1')).toThrow(/not a \/proc\/stat/);
});

test('/proc/<pid>/stat: utime + stime, also when the command name holds spaces and parentheses', () => {
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime …
  const line = '4242 (node (bench) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 731 69 0 0 20 0 11 0 100 0 0';
  expect(parsePidStat(line)).toBe(800);
});

test('a section: each group’s CPU in ms, the machine’s busy share, the floor the cores set', () => {
  const before = { cores: 2, busyTicks: 1000, totalTicks: 10_000, processTicks: { app: 100, bench: 50, backstage: 10 } };
  const after = { cores: 2, busyTicks: 1150, totalTicks: 10_200, processTicks: { app: 160, bench: 90, backstage: 60 } };
  expect(cpuUse(before, after)).toEqual({ cores: 2, machineBusy: 0.75, processMs: { app: 600, bench: 400, backstage: 500 }, floorMs: 750 });
  // A group that was not there at the start (a process started during the section) is left out, not counted whole.
  expect(cpuUse({ ...before, processTicks: { app: 100 } }, after).processMs).toEqual({ app: 600 });
});

const linux = process.platform === 'linux' ? test : test.skip;

linux('a real snapshot: this process’s CPU time grows with the work it does; a pid that is gone is left out', () => {
  const before = snapshotCpu({ self: [process.pid], gone: [2 ** 22 + 1] })!;
  expect(before.cores).toBeGreaterThan(0);
  expect(before.processTicks.gone).toBeUndefined();
  const until = process.cpuUsage();
  let spins = 0;
  // Busy for at least 200 ms of CPU (not of wall time: the machine may be shared).
  while ((process.cpuUsage(until).user + process.cpuUsage(until).system) / 1000 < 200) spins += 1;
  const use = cpuUse(before, snapshotCpu({ self: [process.pid], gone: [2 ** 22 + 1] })!);
  expect(spins).toBeGreaterThan(0);
  expect(use.processMs.self).toBeGreaterThanOrEqual(150);
  expect(use.machineBusy).toBeGreaterThan(0);
  expect(use.floorMs).toBe(Math.round(use.processMs.self! / use.cores));
});
