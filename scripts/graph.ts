/**
 * `npm run graph -- <entity-ref> [--direction downstream|upstream|both] [--depth N] [--format mermaid|dot|json]`
 *
 * Prints an entity's dependency graph from the graph API (Mermaid by default — paste it into a Markdown file or
 * https://mermaid.live). Talks to the local stack from `npm start`, or to a deployed app when SYNC_API_URL and
 * SYNC_API_SCOPE are set (the token then comes from your Azure sign-in, e.g. `az login`).
 */
import { parseArgs } from 'node:util';
import { parseEntityRef } from '../shared/model/refs';
import { apiTarget, describeProblem, runCli } from './api-client';

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      direction: { type: 'string', default: 'downstream' },
      depth: { type: 'string', default: '3' },
      format: { type: 'string', default: 'mermaid' },
      relations: { type: 'string' },
      state: { type: 'string' },
    },
  });
  if (positionals.length !== 1) {
    process.stderr.write('usage: npm run graph -- <kind:namespace/name> [--direction downstream|upstream|both] [--depth 1-10] [--format mermaid|dot|json]\n');
    return 2;
  }
  const ref = parseEntityRef(positionals[0]);
  const { baseUrl, token } = await apiTarget(values.state);
  const url = new URL(`${baseUrl}/api/graph/${encodeURIComponent(ref.kind)}/${encodeURIComponent(ref.namespace)}/${encodeURIComponent(ref.name)}`);
  url.searchParams.set('direction', values.direction);
  url.searchParams.set('depth', values.depth);
  url.searchParams.set('format', values.format);
  if (values.relations) url.searchParams.set('relations', values.relations);
  const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  const body = await response.text();
  if (!response.ok) {
    process.stderr.write(`${response.status} ${describeProblem(body)}\n`);
    return 1;
  }
  process.stdout.write(body.endsWith('\n') ? body : `${body}\n`);
  return 0;
}

runCli(main);
