/**
 * `npm run graph -- <entity-ref> [--direction downstream|upstream|both] [--depth N] [--format mermaid|dot|json]`
 *
 * Prints an entity's dependency graph from the graph API (Mermaid by default — paste it into a Markdown file or
 * https://mermaid.live). Talks to the local stack from `npm start`, or to a deployed app when SYNC_API_URL and
 * SYNC_API_SCOPE are set (the token then comes from your Azure sign-in, e.g. `az login`).
 */
import { parseArgs } from 'node:util';
import { createCredential } from '../shared/platform/identity';
import { parseEntityRef } from '../shared/model/refs';
import { readStackState } from '../local/stack-state';

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
  const { baseUrl, token } = await target(values.state);
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

async function target(statePath: string | undefined): Promise<{ baseUrl: string; token: string }> {
  const deployed = process.env.SYNC_API_URL;
  if (deployed) {
    const scope = process.env.SYNC_API_SCOPE;
    if (!scope) throw new Error('SYNC_API_SCOPE must be set with SYNC_API_URL (the API app ID URI + /.default, e.g. api://backstage-cosmos-sync/.default)');
    const token = await createCredential({ mode: 'local' }).getToken(scope);
    if (!token) throw new Error(`No token for ${scope}; sign in with \`az login\` first`);
    return { baseUrl: deployed.replace(/\/$/, ''), token: token.token };
  }
  const state = readStackState(statePath);
  if (!state.functionsUrl || !state.tokens) throw new Error('The local stack runs without the Functions dev host (--no-functions); set SYNC_API_URL instead');
  return { baseUrl: state.functionsUrl, token: state.tokens.read };
}

function describeProblem(body: string): string {
  try {
    const problem = JSON.parse(body) as { title?: string; detail?: string };
    return [problem.title, problem.detail].filter(Boolean).join(': ');
  } catch {
    return body.slice(0, 500);
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
