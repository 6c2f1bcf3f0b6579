import { InvalidEntityRefError } from '../../shared/platform/errors';
import { formatEntityRef, fromDocumentId, normalizeEntityRef, parseEntityRef, toDocumentId } from '../../shared/model/refs';

describe('ref → id', () => {
  test.each([
    ['component:default/payments-service', 'component:default:payments-service'],
    ['Component:Default/Payments-Service', 'component:default:payments-service'],
    ['API:team-a/orders_v2.internal', 'api:team-a:orders_v2.internal'],
    ['group:platform-team', 'group:default:platform-team'], // namespace defaults to `default`
  ])('%s → %s', (ref, id) => {
    expect(toDocumentId(ref)).toBe(id);
  });

  test('the id holds no character Cosmos forbids in ids', () => {
    expect(toDocumentId('resource:ns-1/db.primary_x')).not.toMatch(/[/\\?#]/);
  });

  test('casing variants of one ref map to one id, and parse keeps the original casing', () => {
    expect(toDocumentId('Component:default/Foo')).toBe(toDocumentId('component:DEFAULT/foo'));
    expect(parseEntityRef('Component:default/Foo')).toEqual({ kind: 'Component', namespace: 'default', name: 'Foo' });
    expect(formatEntityRef(parseEntityRef('Component:default/Foo'))).toBe('Component:default/Foo');
    expect(normalizeEntityRef('Component:Default/Foo')).toBe('component:default/foo');
  });
});

describe('id → ref', () => {
  test('round-trips (up to case)', () => {
    for (const ref of ['component:default/a', 'api:ns/b-c.d_e', 'user:default/alice']) {
      expect(formatEntityRef(fromDocumentId(toDocumentId(ref)))).toBe(ref);
    }
  });

  test.each([['component:default'], ['a:b:c:d'], ['Component:default:Foo'], ['component::foo']])('rejects %s', (id) => {
    expect(() => fromDocumentId(id)).toThrow(InvalidEntityRefError);
  });
});

describe('invalid refs', () => {
  test.each([
    ['', /must not be empty/],
    ['payments-service', /expected kind:namespace\/name/],
    [':default/x', /expected kind:namespace\/name/],
    ['component:default/', /name "" is not valid/],
    ['component:default/has space', /name "has space" is not valid/],
    ['component:default/a/b', /name "a\/b" is not valid/],
    ['component:../x', /namespace|name/],
    ['component:default/-leading-dash', /name/],
    ['comp-onent:default/x', /kind "comp-onent" is not valid/],
    ['1component:default/x', /kind/],
    ['component:Name Space/x', /namespace "Name Space" is not valid/],
    [`component:default/${'x'.repeat(64)}`, /name/],
    ['component:default/x\u0000', /name/],
    ['component:default/naïve', /name/],
    [`component:default/${'x'.repeat(300)}`, /longer than/],
  ])('%j', (ref, message) => {
    expect(() => parseEntityRef(ref)).toThrow(InvalidEntityRefError);
    expect(() => parseEntityRef(ref)).toThrow(message);
  });

  test('non-strings', () => {
    expect(() => parseEntityRef(42)).toThrow(/must be a string/);
    expect(() => parseEntityRef(undefined)).toThrow(/must be a string/);
  });
});
