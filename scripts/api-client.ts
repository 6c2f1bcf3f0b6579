/**
 * How the CLIs (`npm run graph`, `npm run history`) reach the API: the local stack from `npm start` (its URL and local
 * read token, from .local/stack.json), or a deployed app when SYNC_API_URL and SYNC_API_SCOPE are set (the token then
 * comes from your Azure sign-in, e.g. `az login`).
 */
import { readStackState } from '../local/stack-state';
import { createCredential } from '../shared/platform/identity';

/** The API's base URL and a token with the read role. */
export async function apiTarget(statePath: string | undefined): Promise<{ baseUrl: string; token: string }> {
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

/** A problem+json answer as one line: its title and detail. */
export function describeProblem(body: string): string {
  try {
    const problem = JSON.parse(body) as { title?: string; detail?: string };
    return [problem.title, problem.detail].filter(Boolean).join(': ');
  } catch {
    return body.slice(0, 500);
  }
}

/** Runs a CLI's `main`: exits with its code, or prints the error's message and exits 1. */
export function runCli(main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
