/**
 * The change feed's poll delay, traded off: latency of the edges against what polling costs when nothing changes.
 *
 *   npm run bench:feed-poll [-- --delays 250,500,1000,2000,5000 --writes 20 --idle-window 30] [--no-write]
 *
 * For each delay, the edge projection's change-feed trigger (the local stand-in of the host's, running the function's
 * real handler against the Cosmos DB stand-in) first sits idle for `--idle-window` seconds — the emulator counts its
 * change-feed requests, each a poll that finds nothing — then `--writes` mirror documents are rewritten one at a time,
 * each at a random moment of the poll cycle, timed from the write's answer to the projection's handler returning with
 * the edges written. The same scenario runs in `npm run bench` on the benchmark's 10k mirror; docs/performance.md
 * has the figures and the choice they support.
 *
 * What the emulator cannot tell: the request charge of an empty poll (it answers 1 RU for everything). The requests
 * per hour are exact; the bill is that number times what the account charges for a change-feed read that finds
 * nothing.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startLocalStack } from '../local/stack';
import { ENTITY_FEED_PROCESSORS } from '../shared/monitoring/backlogs';
import { runScenario, writeResults } from './harness';
import type { ScenarioResult } from './scenario';

export type FeedPollResult = ScenarioResult<'feedPoll'>;

/** The delays `npm run bench` and `bench:feed-poll` compare (the Functions host's default is 5 000 ms). */
export const FEED_POLL_CANDIDATES_IN_MS = [250, 500, 1_000, 2_000, 5_000];

/** Change-feed processors reading the mirror (`entities`) in a deployment, each polling on its own lease. */
export const ENTITY_FEED_PROCESSOR_COUNT = Object.keys(ENTITY_FEED_PROCESSORS).length;

export interface FeedPollBenchOptions {
  delaysInMs: number[];
  writes: number;
  idleWindowInMs: number;
  seed: number;
  log?: (line: string) => void;
}

/** The feedPoll scenario on a stack of its own (the identity and Cosmos DB stand-ins). */
export async function measureFeedPoll(options: FeedPollBenchOptions): Promise<FeedPollResult> {
  const stack = await startLocalStack({ identity: true, cosmos: { appRoles: false }, serviceBus: true });
  try {
    const env = stack.settings({ LOG_LEVEL: 'error', AZURE_CLIENT_ID: 'bench-app', COSMOS_DATABASE_NAME: `bench-feed-poll-${Date.now()}`, BACKSTAGE_BASE_URL: 'http://127.0.0.1:9' });
    await runScenario('provision', {}, { env, emulator: stack.cosmos! });
    options.log?.(`feed poll: delays ${options.delaysInMs.join(', ')} ms, ${options.writes} writes each`);
    const { result } = await runScenario('feedPoll', { delaysInMs: options.delaysInMs, writes: options.writes, idleWindowInMs: options.idleWindowInMs, seed: options.seed }, { env, emulator: stack.cosmos! });
    return result;
  } finally {
    await stack.stop();
  }
}

/** The trade-off as a Markdown table. */
export function formatFeedPoll(result: FeedPollResult, processors: number): string[] {
  const lines = [
    `| feedPollDelay | idle polls per hour, one processor | … all ${processors} on the mirror | mirror write → edges p50 | p95 | max |`,
    '| ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const row of result.rows) {
    const l = row.mirrorToEdgesMs;
    lines.push(`| ${row.feedPollDelayInMs} ms | ${row.idle.pollsPerHour.toLocaleString('en')} | ${(row.idle.pollsPerHour * processors).toLocaleString('en')} | ${Math.round(l.p50)} ms | ${Math.round(l.p95)} ms | ${Math.round(l.max)} ms |`);
  }
  return lines;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      delays: { type: 'string', default: FEED_POLL_CANDIDATES_IN_MS.join(',') },
      writes: { type: 'string', default: '20' },
      'idle-window': { type: 'string', default: '30' },
      seed: { type: 'string', default: '42' },
      'no-write': { type: 'boolean', default: false },
      out: { type: 'string', default: join(resolve(__dirname, '..'), 'bench', 'results') },
    },
  });
  const startedAt = new Date().toISOString();
  const result = await measureFeedPoll({
    delaysInMs: values.delays.split(',').map((d) => Number(d.trim())),
    writes: Number(values.writes),
    idleWindowInMs: Number(values['idle-window']) * 1000,
    seed: Number(values.seed),
    log: (line) => process.stderr.write(`[bench] ${line}\n`),
  });
  process.stdout.write(`${formatFeedPoll(result, 1).join('\n')}\n`);
  if (!values['no-write']) {
    const file = writeResults(values.out, startedAt, 'feed-poll', { kind: 'feed-poll', startedAt, machine: { node: process.version }, result });
    process.stderr.write(`[bench] wrote ${file}\n`);
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
