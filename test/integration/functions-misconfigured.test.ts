/**
 * A worker whose settings are invalid: the HTTP functions answer a 503 problem that reveals nothing,
 * and the log names every bad setting.
 */
import { HttpRequest, InvocationContext } from '@azure/functions';
import { health } from '../../functions/health';
import { resetRuntime } from '../../shared/runtime';
import { bodyJson, bodyText } from '../support/http';

afterAll(() => resetRuntime());

test('invalid configuration: 503 misconfigured, details only in the log', async () => {
  for (const key of Object.keys(process.env)) {
    if (/^(APP_MODE|CosmosDBConnection|ServiceBusConnection|COSMOS_|BACKSTAGE_|AUTH_|RECONCILE_)/.test(key)) delete process.env[key];
  }
  Object.assign(process.env, { APP_MODE: 'production', CosmosDBConnection: 'AccountEndpoint=https://x.documents.azure.com/;AccountKey=abc;' });
  const logs: string[] = [];
  const response = await health(
    new HttpRequest({ method: 'GET', url: 'http://localhost:7071/api/health' }),
    new InvocationContext({ functionName: 'health', logHandler: (level, ...args) => logs.push(`${level} ${args.join(' ')}`) }),
  );
  expect(response.status).toBe(503);
  const problem = bodyJson<any>(response);
  expect(problem).toMatchObject({ type: 'urn:backstage-cosmos-sync:problem:misconfigured' });
  expect(bodyText(response)).not.toMatch(/CosmosDBConnection|AccountKey/);
  const log = logs.join('\n');
  expect(log).toMatch(/CosmosDBConnection: key-based connection strings are refused in production mode/);
  expect(log).toMatch(/BACKSTAGE_BASE_URL: required/);
  expect(log).not.toMatch(/AccountKey=abc/);
});
