/**
 * How long the local stack takes to be useful, measured from the outside the way a user meets it:
 *
 * - `npm start` → the first complete sync (the process is spawned exactly as the npm script runs it; npm itself
 *   adds a few hundred milliseconds on top);
 * - a catalog file edit → the new dependency edge answered by the graph API, repeated `--edits` times.
 *
 *   npm run bench:local-stack -- [--edits 3] [--module-interval 1] [--processing-interval 5]
 *
 * The edit latency is dominated by two polling intervals, Backstage's processing loop and the change-events
 * module's poll (5 s and 1 s by default, as `npm start` uses), plus the change feed's poll delay (2 s): the figures
 * are printed next to those intervals so they can be read against them.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readStackState } from '../local/stack-state';

const ROOT = resolve(__dirname, '..');

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      edits: { type: 'string', default: '3' },
      'module-interval': { type: 'string', default: '1' },
      'processing-interval': { type: 'string', default: '5' },
    },
  });
  const dir = mkdtempSync(join(tmpdir(), 'bench-local-stack-'));
  const statePath = join(dir, 'stack.json');
  const started = performance.now();
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'local', 'start.ts'), '--ports', 'auto', '--state', statePath,
      '--module-interval', values['module-interval'], '--processing-interval', values['processing-interval']],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS: '' } },
  );
  const exited = new Promise((r) => child.once('exit', r));
  let text = '';
  await new Promise<void>((resolveReady, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (/^READY$/m.test(text)) resolveReady();
    });
    void exited.then(() => reject(new Error(`npm start exited:\n${text}`)));
  });
  const readyInMs = performance.now() - started;
  const seen = /reconcile seen (\d+)/.exec(text)?.[1];

  const state = readStackState(statePath);
  const file = join(state.catalogDir!, 'platform.yaml');
  const latencies: number[] = [];
  for (let i = 0; i < Number(values.edits); i += 1) {
    const target = `resource:default/bench-dependency-${i}`;
    writeFileSync(
      file,
      `${readFileSync(file, 'utf8').replace(/\n?$/, '\n')}---\napiVersion: backstage.io/v1alpha1\nkind: Resource\nmetadata: { name: bench-dependency-${i} }\nspec: { type: queue, owner: platform, dependencyOf: [component:default/auth-service] }\n`,
    );
    const edited = performance.now();
    for (;;) {
      const response = await fetch(`${state.functionsUrl}/api/graph/component/default/auth-service?depth=1&format=json`, {
        headers: { authorization: `Bearer ${state.tokens!.read}` },
      });
      const graph = (await response.json()) as { nodes: Array<{ ref: string; missing?: boolean }> };
      if (graph.nodes.some((n) => n.ref.toLowerCase() === target && !n.missing)) break;
      if (performance.now() - edited > 120_000) throw new Error(`no edge to ${target} after 120 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
    latencies.push(performance.now() - edited);
  }

  child.kill('SIGINT');
  await exited;
  rmSync(dir, { recursive: true, force: true });

  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  process.stdout.write(
    [
      `npm start → first complete sync (${seen ?? '?'} entities):  ${s(readyInMs)}`,
      `catalog file edit → edge in the graph API:            ${latencies.map(s).join(', ')} (median ${s(latencies.sort((a, b) => a - b)[Math.floor(latencies.length / 2)]!)})`,
      `  polling intervals in play: Backstage processing ${values['processing-interval']} s, change-events module ${values['module-interval']} s, change feed 2 s`,
      '',
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
