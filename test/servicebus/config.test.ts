import { join } from 'node:path';
import { loadEmulatorConfig, parseEmulatorConfig, parseIsoDuration } from '../../local/servicebus/config';

test('the repository Config.json declares entity-sync as the infrastructure does', () => {
  expect(loadEmulatorConfig(join(__dirname, '..', '..', 'local', 'servicebus', 'Config.json'))).toEqual([
    {
      name: 'entity-sync',
      lockDurationInMs: 60_000,
      maxDeliveryCount: 10,
      requiresSession: true,
      requiresDuplicateDetection: true,
      duplicateDetectionWindowInMs: 600_000,
      deadLetteringOnMessageExpiration: true,
      defaultMessageTimeToLiveInMs: 86_400_000,
      maxMessageSizeInBytes: 262_144,
    },
  ]);
});

test('defaults for properties a queue leaves out', () => {
  const [queue] = parseEmulatorConfig({ UserConfig: { Namespaces: [{ Queues: [{ Name: 'q' }] }] } });
  expect(queue).toMatchObject({ name: 'q', lockDurationInMs: 60_000, maxDeliveryCount: 10, requiresSession: false });
});

test('bad files are reported', () => {
  expect(() => parseEmulatorConfig({})).toThrow(/Namespaces/);
  expect(() => parseEmulatorConfig({ UserConfig: { Namespaces: [{ Queues: [{}] }] } })).toThrow(/no Name/);
});

test('ISO 8601 durations', () => {
  expect(parseIsoDuration('PT1M')).toBe(60_000);
  expect(parseIsoDuration('PT20S')).toBe(20_000);
  expect(parseIsoDuration('PT0.5S')).toBe(500);
  expect(parseIsoDuration('P1DT2H')).toBe(26 * 3600_000);
  expect(parseIsoDuration('P14D')).toBe(14 * 86_400_000);
  expect(() => parseIsoDuration('1 minute')).toThrow();
  expect(() => parseIsoDuration('PT')).toThrow();
});
