/**
 * The production credential is the managed identity and nothing else: with a client secret in the environment (the
 * variables `DefaultAzureCredential` would turn into a service principal), the token still comes from the
 * managed-identity endpoint. Runs against the identity stand-in, whose endpoint the global setup exports.
 */
import { DefaultAzureCredential } from '@azure/identity';
import { createCredential } from '../../shared/platform/identity';
import { identityAdmin, uniqueName } from '../support/stack';

const secretVariables = { AZURE_TENANT_ID: '72f988bf-0000-4000-8000-000000000000', AZURE_CLIENT_SECRET: 'a-client-secret-nobody-should-use' };

beforeAll(() => {
  Object.assign(process.env, secretVariables);
});
afterAll(() => {
  for (const name of Object.keys(secretVariables)) delete process.env[name];
});

test('production: the managed identity answers, even with a client secret in the environment', async () => {
  const clientId = uniqueName('mi');
  process.env.AZURE_CLIENT_ID = clientId;
  const before = await identityAdmin().tokenRequests(clientId);
  const token = await createCredential({ mode: 'production', managedIdentityClientId: clientId }).getToken('https://cosmos.example/.default');
  expect(token?.token).toEqual(expect.any(String));
  expect(await identityAdmin().tokenRequests(clientId)).toBe(before + 1);
});

test('what production avoids: DefaultAzureCredential tries the client secret first and never reaches the managed identity', async () => {
  const clientId = uniqueName('mi');
  process.env.AZURE_CLIENT_ID = clientId;
  const credential = new DefaultAzureCredential({ managedIdentityClientId: clientId });
  // The secret is sent to Entra (unreachable here), and that failure ends the chain.
  await expect(credential.getToken('https://cosmos.example/.default')).rejects.toThrow();
  expect(await identityAdmin().tokenRequests(clientId)).toBe(0);
});
