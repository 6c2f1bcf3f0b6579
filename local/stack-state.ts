/**
 * What `npm start` leaves for the CLIs and tests: the URLs, the app settings, local tokens and process ids of the
 * running stack (`.local/stack.json`, never committed).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export const DEFAULT_STATE_PATH = join(resolve(__dirname, '..'), '.local', 'stack.json');

export interface StackState {
  /** The Functions dev host (absent with --no-functions). */
  functionsUrl?: string;
  backstageUrl: string;
  identityUrl?: string;
  /** The working copy of the example catalog Backstage reads (absent with a real Backstage). */
  catalogDir?: string;
  /** Catalog file → Backstage location id. */
  locations?: Record<string, string>;
  /** Backstage's static external-access token: local stand-in only. */
  backstageAdminToken?: string;
  cosmos: { endpoint: string; caPath?: string; databaseName: string };
  /** The app settings the Functions app runs with (also in local.settings.json next to this file). */
  settings: Record<string, string>;
  /** The managed-identity endpoint variables a local process needs to get tokens like the app does. */
  identityEnv?: Record<string, string>;
  /** Local API tokens (12 h), minted by the local issuer. */
  tokens?: { read: string; admin: string; write: string };
  /** The stack's own process and its child processes. */
  pids: number[];
}

export function writeStackState(path: string, state: StackState): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(state, null, 2));
}

export function readStackState(path: string = DEFAULT_STATE_PATH): StackState {
  if (!existsSync(path)) {
    throw new Error(`No running local stack (${path} not found). Start one with \`npm start\`, or set the settings for a deployed app in the environment.`);
  }
  return JSON.parse(readFileSync(path, 'utf8')) as StackState;
}
