import { coalesceEvents, EVENT_TYPES, validateEvent, type CatalogEvent } from '../../shared/intake/events';

const base = (overrides: Partial<CatalogEvent> & Record<string, unknown> = {}): CatalogEvent => ({
  specversion: '1.0',
  id: 'e-1',
  source: 'https://backstage.example.com',
  type: EVENT_TYPES.upserted,
  subject: 'component:default/a',
  time: '2026-11-28T10:00:00Z',
  data: { entityRef: 'component:default/a' },
  ...overrides,
});

test('a valid event passes, with extensions', () => {
  expect(validateEvent(base({ traceparent: '00-abc', partitionkey: 'x', retries: 2 }), 0)).toMatchObject({ errors: [] });
});

test.each([
  [{ specversion: '0.3' }, 'specversion'],
  [{ id: '' }, 'id'],
  [{ id: 'x'.repeat(129) }, 'id'],
  [{ id: 'a\u0000b' }, 'id'],
  [{ source: 'not a uri' }, 'source'],
  [{ time: '28/11/2026' }, 'time'],
  [{ time: '2026-11-28T10:00:00' }, 'time'], // no offset
  [{ datacontenttype: 'text/plain' }, 'datacontenttype'],
  [{ data: { entityRef: 'component:default/a', extra: 1 } }, 'data'],
  [{ data: 'component:default/a' }, 'data'],
  [{ 'Bad-Name': 'x' }, 'Bad-Name'],
  [{ nested: { a: 1 } }, 'nested'],
  [{ __proto__x: 1 }, '__proto__x'],
])('%j is rejected at %s', (overrides, path) => {
  const { errors } = validateEvent({ ...base(), ...overrides }, 3);
  expect(errors.length).toBeGreaterThan(0);
  expect(errors.map((e) => e.path)).toContain(path);
  expect(errors.every((e) => e.index === 3)).toBe(true);
});

test('a __proto__ key from JSON is an unknown attribute, not a prototype', () => {
  const parsed = JSON.parse('{"specversion":"1.0","__proto__":{"polluted":true}}');
  const { errors } = validateEvent(parsed, 0);
  expect(errors.map((e) => e.path)).toContain('__proto__');
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
});

test('non-objects are rejected whole', () => {
  for (const value of [null, 'x', 1, [base()]]) expect(validateEvent(value, 0).errors).toEqual([{ index: 0, path: '', message: 'an event must be a JSON object' }]);
});

test('coalescing keeps the newest event per entity, ties to the later one, and normalizes refs', () => {
  const events = [
    base({ id: '1', time: '2026-11-28T10:00:01Z', subject: 'Component:default/A', data: { entityRef: 'Component:default/A', etag: 'old' } }),
    base({ id: '2', time: '2026-11-28T10:00:03Z', type: EVENT_TYPES.deleted }),
    base({ id: '3', time: '2026-11-28T10:00:02Z' }),
    base({ id: '4', time: '2026-11-28T12:00:03+02:00', subject: 'api:default/b', data: { entityRef: 'api:default/b' } }),
    base({ id: '5', time: '2026-11-28T10:00:03Z', subject: 'api:default/b', data: { entityRef: 'api:default/b', etag: 'new' } }),
  ];
  const queued = coalesceEvents(events);
  expect(queued).toEqual([
    {
      messageId: '2',
      sessionId: 'component:default:a',
      body: { entityRef: 'component:default/a', type: 'deleted', eventId: '2', eventTime: '2026-11-28T10:00:03.000Z', source: 'https://backstage.example.com' },
    },
    {
      messageId: '5',
      sessionId: 'api:default:b',
      body: { entityRef: 'api:default/b', type: 'upserted', etag: 'new', eventId: '5', eventTime: '2026-11-28T10:00:03.000Z', source: 'https://backstage.example.com' },
    },
  ]);
});
