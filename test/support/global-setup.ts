/**
 * Starts the stand-ins every test worker shares — the identity stand-in (OIDC issuer + managed-identity
 * endpoint) and the Cosmos emulator, through the local stack (local/stack.ts) — and publishes their addresses
 * through environment variables, which the workers inherit. Tests isolate themselves with unique database names
 * and client ids. Backstage and the Service Bus broker are started per test file (see ./backstage.ts and ./stack.ts)
 * because tests change their state.
 */
import { startLocalStack } from '../../local/stack';

export default async function globalSetup(): Promise<void> {
  const stack = await startLocalStack({ identity: true, cosmos: true });
  const identity = stack.identity!;
  const cosmos = stack.cosmos!;
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
  (globalThis as Record<string, unknown>).__LOCAL_STACK__ = stack;
}
