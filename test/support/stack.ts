/**
 * Test helpers over the shared stand-ins started by global-setup.ts, and the per-file ones (a broker), all started
 * through the local stack (local/stack.ts).
 */
import { randomUUID } from 'node:crypto';
import type { CosmosClient } from '@azure/cosmos';
import { ensureCosmosResources, provisionerCredential } from '../../local/cosmos-setup';
import { IdentityAdminClient } from '../../local/identity';
import type { LocalServiceBus } from '../../local/servicebus/broker';
import type { QueueOptions } from '../../local/servicebus/config';
import { BACKSTAGE_AUDIENCE, LOCAL_API_AUDIENCE, localAppSettings, startLocalStack } from '../../local/stack';
import { loadConfig, type AppConfig, type Environment } from '../../shared/platform/config';
import { createCosmosClient } from '../../shared/platform/cosmos';

export const API_AUDIENCE = LOCAL_API_AUDIENCE;
export const BACKSTAGE_SCOPE = `${BACKSTAGE_AUDIENCE}/.default`;

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run tests through jest (global-setup starts the stand-ins)`);
  return value;
}

export const standins = {
  get identityUrl() {
    return required('TEST_IDENTITY_URL');
  },
  get issuer() {
    return required('TEST_ISSUER');
  },
  get jwksUri() {
    return required('TEST_JWKS_URI');
  },
  get cosmosEndpoint() {
    return required('TEST_COSMOS_ENDPOINT');
  },
  get cosmosCaPath() {
    return required('TEST_COSMOS_CA_PATH');
  },
};

export function identityAdmin(): IdentityAdminClient {
  return new IdentityAdminClient(standins.identityUrl);
}

/** A unique name for databases and client ids, so test files never share state. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/**
 * The settings a deployment would have, pointed at the shared stand-ins (the local stack's settings), with a unique
 * database and managed-identity client id.
 */
export function testEnvironment(overrides: Environment = {}): Environment {
  const local = localAppSettings({
    identity: { issuer: standins.issuer, identityEndpoint: required('IDENTITY_ENDPOINT'), identityHeader: required('IDENTITY_HEADER') },
    cosmos: { endpoint: standins.cosmosEndpoint, certificatePath: standins.cosmosCaPath },
    // Replaced by tests that start a broker; the client does not connect until first used.
    serviceBusConnection: 'Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;',
    backstage: { baseUrl: 'http://127.0.0.1:1' }, // replaced by tests that start Backstage
  });
  return {
    ...local,
    AZURE_CLIENT_ID: uniqueName('mi'),
    COSMOS_DATABASE_NAME: uniqueName('catalog'),
    BACKSTAGE_TOKEN_SCOPE: BACKSTAGE_SCOPE,
    BACKSTAGE_RETRY_BASE_DELAY_MS: '50',
    BACKSTAGE_RETRY_MAX_DELAY_MS: '500',
    ...overrides,
  };
}

/** A local Service Bus broker of this test file, with the queues of local/servicebus/Config.json (optionally adjusted). */
export async function startBroker(adjust: Partial<QueueOptions> = {}): Promise<LocalServiceBus> {
  return (await startLocalStack({ serviceBus: { queues: adjust } })).broker!;
}

/** Creates the database and containers for `config` (what infrastructure does in Azure). */
export async function provisionCosmos(config: AppConfig): Promise<CosmosClient> {
  // As the deployer, not as the app: the app's identity may not create containers (nor do what a test sets up).
  const client = createCosmosClient(config.cosmos, provisionerCredential((o) => identityAdmin().mint(o)), { mode: config.mode });
  await ensureCosmosResources(client, config.cosmos);
  return client;
}

export function testConfig(overrides: Environment = {}): AppConfig {
  return loadConfig(testEnvironment(overrides));
}

/** A user token from the local issuer, for calling the HTTP endpoints. */
export async function userToken(options: { roles?: string[]; audience?: string; lifetimeInSeconds?: number; foreignKey?: boolean; issuer?: string } = {}): Promise<string> {
  return identityAdmin().mint({ audience: options.audience ?? API_AUDIENCE, subject: uniqueName('user'), ...options });
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutInMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, what: string, timeoutInMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutInMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const detail = lastError instanceof Error ? lastError.message : lastError === undefined ? '' : JSON.stringify(lastError);
  throw new Error(`Timed out after ${timeoutInMs} ms waiting for ${what}${detail ? `: ${detail}` : ''}`);
}
