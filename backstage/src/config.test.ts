/**
 * The module's configuration: every problem named at start-up, including the transport and authentication rules.
 */
import { ConfigReader } from '@backstage/config';
import type { JsonObject } from '@backstage/types';
import { ChangeEventsConfigError, readChangeEventsSettings } from './config';

function problems(endpoints: JsonObject[]): string[] {
  try {
    readChangeEventsSettings(new ConfigReader({ catalog: { changeEvents: { endpoints } } }));
  } catch (error) {
    if (error instanceof ChangeEventsConfigError) return error.problems;
    throw error;
  }
  return [];
}

test('service-account tokens, and the Entra credential choice, are read and checked', () => {
  const settings = readChangeEventsSettings(
    new ConfigReader({
      catalog: {
        changeEvents: {
          endpoints: [
            { name: 'in-cluster', url: 'https://sync.example.com/api/catalog/events', auth: { type: 'serviceAccountToken', tokenPath: '/var/run/secrets/tokens/sync' } },
            { name: 'entra', url: 'https://sync.example.com/api/catalog/events', auth: { type: 'entra', scope: 'api://sync/.default' } },
            { name: 'workstation', url: 'http://localhost:7071/api/catalog/events', auth: { type: 'entra', scope: 'api://sync/.default', credential: 'default' } },
          ],
        },
      },
    }),
  );
  expect(settings?.endpoints.map((e) => e.auth)).toEqual([
    { type: 'serviceAccountToken', tokenPath: '/var/run/secrets/tokens/sync' },
    { type: 'entra', scope: 'api://sync/.default', credential: 'workload-or-managed' },
    { type: 'entra', scope: 'api://sync/.default', credential: 'default' },
  ]);
});

test('a token file that is not named, an unknown credential, and clear-text http off loopback are each named', () => {
  expect(
    problems([
      { name: 'a', url: 'https://sync.example.com/', auth: { type: 'serviceAccountToken' } },
      { name: 'b', url: 'https://sync.example.com/', auth: { type: 'entra', scope: 'api://sync/.default', credential: 'environment' } },
      { name: 'c', url: 'http://sync.internal/api/catalog/events', auth: { type: 'entra', scope: 'api://sync/.default' } },
      { name: 'd', url: 'https://sync.example.com/', auth: { type: 'basic' } },
    ]),
  ).toEqual([
    expect.stringMatching(/^catalog\.changeEvents\.endpoints\[0\]\.auth\.tokenPath: /),
    expect.stringMatching(/^catalog\.changeEvents\.endpoints\[1\]\.auth\.credential: must be 'workload-or-managed'/),
    expect.stringMatching(/^catalog\.changeEvents\.endpoints\[2\]\.url: must be https \(plain http only to a loopback address\)/),
    "catalog.changeEvents.endpoints[3].auth.type: must be 'entra', 'serviceAccountToken' or 'standardWebhooks'",
  ]);
});
