/**
 * A storm on its own: every entity of a generated catalog changed at once (as after a re-stitch of the catalog), its
 * events posted to the intake 100 to a request, synced through the broker and the session trigger with host.json's
 * settings — as batch messages (the default), then one message per entity (`INTAKE_BATCH_SYNC_MIN_EVENTS=0`) — each
 * against a reconcile of the same entities. Backstage requests, retries and wall time. `npm run bench` runs the same
 * scenario on 2 000 entities of its 10k catalog.
 *
 *   npm run bench:storm [-- --size 2000 --count 2000] [--no-write]
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { generateCatalog } from '../local/catalog-generator';
import { LOCAL_API_AUDIENCE, startLocalStack, waitForCatalog } from '../local/stack';
import { runScenario, writeResults } from './harness';
import type { ScenarioArgs, ScenarioName, ScenarioResult } from './scenario';

const ROOT = resolve(__dirname, '..');
const STATIC_TOKEN = 'bench-storm-static-token';

export interface StormBenchResult {
  size: number;
  batched: ScenarioResult<'storm'>;
  perEntity: ScenarioResult<'storm'>;
}

export async function measureStorm(options: { size: number; count: number; seed: number; log: (line: string) => void }): Promise<StormBenchResult> {
  const local = await startLocalStack({ identity: true, cosmos: { appRoles: false }, serviceBus: true });
  try {
    const identity = local.identity!;
    const generated = generateCatalog(options.size, options.seed);
    const backstageStack = await startLocalStack({
      backstage: { trust: { jwksUri: identity.jwksUri, issuer: identity.issuer }, staticToken: STATIC_TOKEN, processingIntervalSeconds: 3600 },
    });
    try {
      const backstage = backstageStack.backstage!;
      options.log(`storm: loading ${generated.length} entities into Backstage`);
      await backstage.loadCatalog(generated);
      await waitForCatalog(backstage, { count: generated.length, settled: true }, { timeoutInMs: Math.max(300_000, generated.length * 200), pollIntervalInMs: 1_000 });
      const env = local.settings({ LOG_LEVEL: 'error', AZURE_CLIENT_ID: 'bench-app', COSMOS_DATABASE_NAME: `bench-storm-${Date.now()}`, BACKSTAGE_BASE_URL: backstage.baseUrl });
      const run = <K extends ScenarioName>(name: K, args: ScenarioArgs<K>, overrides: Record<string, string> = {}) => {
        options.log(`storm: ${name}${overrides.BENCH_LABEL ? ` (${overrides.BENCH_LABEL})` : ''}`);
        return runScenario(name, args, { env: { ...env, ...overrides }, emulator: local.cosmos! });
      };
      await run('provision', {});
      await run('reconcile', {});
      const hostJson = JSON.parse(readFileSync(join(ROOT, 'host.json'), 'utf8')) as { extensions: { serviceBus: { maxConcurrentSessions: number; sessionIdleTimeout: string } } };
      const args = {
        count: Math.min(options.count, generated.length),
        brokerConnection: local.broker!.connectionString,
        sessions: hostJson.extensions.serviceBus,
        senderToken: await identity.mint({ audience: LOCAL_API_AUDIENCE, roles: ['Events.Send'] }),
      };
      const batched = await run('storm', args);
      const perEntity = await run('storm', args, { INTAKE_BATCH_SYNC_MIN_EVENTS: '0', BENCH_LABEL: 'one message per entity' });
      return { size: generated.length, batched: batched.result, perEntity: perEntity.result };
    } finally {
      await backstageStack.stop();
    }
  } finally {
    await local.stop();
  }
}

export function formatStorm(result: StormBenchResult): string[] {
  const { batched, perEntity } = result;
  const row = (label: string, ms: number, b: { requests: number; retries: number }, messages: string) =>
    `| ${label} | ${(ms / 1000).toFixed(1)} | ${b.requests} | ${b.retries} | ${messages} |`;
  return [
    `Storm: ${batched.count} of ${result.size} entities changed at once, their events posted 100 to a request.`,
    '',
    '| path | wall s | Backstage requests | retries | messages |',
    '| --- | ---: | ---: | ---: | ---: |',
    row('event path, batches (default)', batched.storm.ms, batched.storm.backstage, `${batched.storm.batchMessages} batches`),
    row('event path, one message per entity', perEntity.storm.ms, perEntity.storm.backstage, `${perEntity.count} (reads coalesced to ${perEntity.storm.singleReads.meanRefs.toFixed(1)} refs per request)`),
    row('reconcile of the same entities', batched.reconcile.ms, batched.reconcile.backstage, '–'),
  ];
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '2000' },
      count: { type: 'string' },
      seed: { type: 'string', default: '42' },
      'no-write': { type: 'boolean', default: false },
      out: { type: 'string', default: join(ROOT, 'bench', 'results') },
    },
  });
  const startedAt = new Date().toISOString();
  measureStorm({
    size: Number(values.size),
    count: Number(values.count ?? values.size),
    seed: Number(values.seed),
    log: (line) => process.stderr.write(`[bench] ${line}\n`),
  })
    .then((result) => {
      process.stdout.write(`${formatStorm(result).join('\n')}\n`);
      if (!values['no-write']) {
        const file = writeResults(values.out, startedAt, 'storm', { kind: 'storm', startedAt, machine: { node: process.version }, result });
        process.stderr.write(`[bench] wrote ${file}\n`);
      }
    })
    .catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    });
}
