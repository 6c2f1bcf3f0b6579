/**
 * How long the Backstage stand-in takes to ingest a generated catalog — every entity processed and stitched and the
 * catalog settled — loaded the two ways it can be: through a `file` location, which the processing loop reads (and,
 * with a short processing interval, reads again and again), and through the stand-in's provider in one full mutation
 * (what tests and benchmarks use for large catalogs). Each run gets a fresh Backstage; both ways are measured in the
 * same run, with the same wait (local/stack.ts waitForCatalog, polled every second).
 *
 *   npm run bench:ingest -- [--sizes 2000,10000] [--ways file:2,file:3600,provider:3600] [--seed 42]
 *
 * A way is `file:<processing interval s>` or `provider:<processing interval s>`. Prints one line per run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateCatalog, toYaml } from '../local/catalog-generator';
import { catalogClient, startLocalStack, waitForCatalog } from '../local/stack';

const STATIC_TOKEN = 'bench-ingest-static-token';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '2000,10000' },
      ways: { type: 'string', default: 'file:2,file:3600,provider:3600' },
      seed: { type: 'string', default: '42' },
    },
  });
  const sizes = values.sizes.split(',').map(Number);
  const ways = values.ways.split(',').map((w) => {
    const [how, interval] = w.split(':');
    if ((how !== 'file' && how !== 'provider') || !Number(interval)) throw new Error(`--ways: ${w} is not file:<s> or provider:<s>`);
    return { how, intervalInSeconds: Number(interval) } as const;
  });
  const identityStack = await startLocalStack({ identity: true });
  const identity = identityStack.identity!;
  try {
    for (const size of sizes) {
      const generated = generateCatalog(size, Number(values.seed));
      for (const way of ways) {
        const dir = mkdtempSync(join(tmpdir(), 'bench-ingest-'));
        const stack = await startLocalStack({
          backstage: { trust: { jwksUri: identity.jwksUri, issuer: identity.issuer }, staticToken: STATIC_TOKEN, processingIntervalSeconds: way.intervalInSeconds },
        });
        const backstage = stack.backstage!;
        try {
          const started = performance.now();
          if (way.how === 'file') {
            writeFileSync(join(dir, 'catalog.yaml'), toYaml(generated));
            await catalogClient(backstage.baseUrl).addLocation({ type: 'file', target: join(dir, 'catalog.yaml') }, { token: STATIC_TOKEN });
          } else {
            await backstage.loadCatalog(generated);
          }
          // A file location adds its Location entity.
          const count = generated.length + (way.how === 'file' ? 1 : 0);
          await waitForCatalog(backstage, { count, settled: true }, { timeoutInMs: 15 * 60_000, pollIntervalInMs: 1_000, what: `${count} entities` });
          const seconds = (performance.now() - started) / 1000;
          process.stdout.write(`${String(size).padStart(6)} entities  ${`${way.how}, processing every ${way.intervalInSeconds} s`.padEnd(36)} ${seconds.toFixed(1).padStart(6)} s  (${(size / seconds).toFixed(0)} entities/s)\n`);
        } finally {
          await stack.stop();
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    await identityStack.stop();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
