/**
 * Starts the stand-ins every test worker shares — the identity stand-in (OIDC issuer + managed-identity
 * endpoint) and the Cosmos emulator — and publishes their addresses through environment variables, which
 * the workers inherit. Tests isolate themselves with unique database names and client ids.
 * Backstage is started per test file (see ./backstage.ts) because tests change its catalog.
 */
import { startCosmosEmulator } from '../../local/cosmos';
import { startIdentityServer } from '../../local/identity';

export default async function globalSetup(): Promise<void> {
  const identity = await startIdentityServer();
  const cosmos = await startCosmosEmulator();
  Object.assign(process.env, {
    // DefaultAzureCredential → ManagedIdentityCredential (App Service protocol) → the local endpoint.
    IDENTITY_ENDPOINT: identity.identityEndpoint,
    IDENTITY_HEADER: identity.identityHeader,
    TEST_IDENTITY_URL: identity.baseUrl,
    TEST_ISSUER: identity.issuer,
    TEST_JWKS_URI: identity.jwksUri,
    TEST_COSMOS_ENDPOINT: cosmos.endpoint,
    TEST_COSMOS_CA_PATH: cosmos.certificatePath,
  });
  (globalThis as Record<string, unknown>).__STANDINS__ = { identity, cosmos };
}
