import type { Entity } from '@backstage/catalog-model';
import fc from 'fast-check';
import { deriveEdges, diffEdges, sameEdge } from '../../shared/edges/derive';
import type { EdgeDocument } from '../../shared/model/documents';

const now = new Date('2026-03-01T12:00:00.000Z');
const later = new Date('2026-03-02T08:30:00.000Z');
const source = { id: 'component:default:web-shop', entityRef: 'Component:default/Web-Shop', kind: 'Component' };

/** An entity whose relations are whatever the test says, including shapes the type does not allow. */
function entityWith(relations: unknown[]): Entity {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: { name: 'Web-Shop', namespace: 'default' },
    relations: relations as Entity['relations'],
  };
}

function edge(type: string, target: string, overrides: Partial<EdgeDocument> = {}): EdgeDocument {
  const [kind, namespace, name] = target.split(':') as [string, string, string];
  return {
    id: `${type}:${target}`,
    source: source.id,
    sourceRef: 'component:default/web-shop',
    type,
    targetRef: `${kind}:${namespace}/${name}`,
    target,
    sourceKind: 'component',
    targetKind: kind,
    updatedAt: now.toISOString(),
    ...overrides,
  };
}

describe('deriveEdges', () => {
  test('one relation becomes one edge: lower-cased refs and kinds, id <type>:<target id>, stamped with now', () => {
    const edges = deriveEdges(source, entityWith([{ type: 'dependsOn', targetRef: 'Resource:Payments/Orders-DB' }]), now);
    expect(edges).toEqual([
      {
        id: 'dependsOn:resource:payments:orders-db',
        source: 'component:default:web-shop',
        sourceRef: 'component:default/web-shop',
        type: 'dependsOn',
        targetRef: 'resource:payments/orders-db',
        target: 'resource:payments:orders-db',
        sourceKind: 'component',
        targetKind: 'resource',
        updatedAt: '2026-03-01T12:00:00.000Z',
      },
    ]);
  });

  test('a target without a namespace is in `default`', () => {
    const [only] = deriveEdges(source, entityWith([{ type: 'ownedBy', targetRef: 'group:Platform-Team' }]), now);
    expect(only).toMatchObject({ id: 'ownedBy:group:default:platform-team', target: 'group:default:platform-team', targetRef: 'group:default/platform-team' });
  });

  test('the relation type keeps its casing (Backstage types are case-sensitive)', () => {
    const edges = deriveEdges(source, entityWith([{ type: 'dependsOn', targetRef: 'resource:default/db' }, { type: 'DependsOn', targetRef: 'resource:default/db' }]), now);
    expect(edges.map((e) => e.id).sort()).toEqual(['DependsOn:resource:default:db', 'dependsOn:resource:default:db']);
  });

  test('duplicates (also differing only in the casing of the ref) become one edge', () => {
    const edges = deriveEdges(
      source,
      entityWith([
        { type: 'dependsOn', targetRef: 'resource:default/db' },
        { type: 'dependsOn', targetRef: 'Resource:Default/DB' },
        { type: 'dependsOn', targetRef: 'resource:db' },
        { type: 'dependencyOf', targetRef: 'resource:default/db' },
        { type: 'dependsOn', targetRef: 'resource:default/cache' },
      ]),
      now,
    );
    expect(edges.map((e) => e.id).sort()).toEqual(['dependencyOf:resource:default:db', 'dependsOn:resource:default:cache', 'dependsOn:resource:default:db']);
    expect(edges.find((e) => e.id === 'dependsOn:resource:default:db')?.targetRef).toBe('resource:default/db');
  });

  test.each<[string, unknown]>([
    ['a relation without a type', { targetRef: 'resource:default/db' }],
    ['a numeric type', { type: 42, targetRef: 'resource:default/db' }],
    ['an empty type', { type: '', targetRef: 'resource:default/db' }],
    ['a type starting with a digit', { type: '1dependsOn', targetRef: 'resource:default/db' }],
    ['a type with a space', { type: 'depends on', targetRef: 'resource:default/db' }],
    ['a type with a colon', { type: 'x:y', targetRef: 'resource:default/db' }],
    ['a type of 64 characters', { type: `a${'b'.repeat(63)}`, targetRef: 'resource:default/db' }],
    ['a relation without a targetRef', { type: 'dependsOn' }],
    ['a targetRef object', { type: 'dependsOn', targetRef: { kind: 'resource', name: 'db' } }],
    ['a targetRef without a kind', { type: 'dependsOn', targetRef: 'default/db' }],
    ['a targetRef with an empty name', { type: 'dependsOn', targetRef: 'resource:default/' }],
    ['a targetRef with an invalid name', { type: 'dependsOn', targetRef: 'resource:default/-db-' }],
    ['a targetRef with too many slashes', { type: 'dependsOn', targetRef: 'resource:a/b/c' }],
    ['null instead of a relation', null],
    ['a string instead of a relation', 'dependsOn resource:default/db'],
  ])('%s: skipped, the others kept', (_label, bad) => {
    const edges = deriveEdges(source, entityWith([bad, { type: 'partOf', targetRef: 'system:default/shop' }]), now);
    expect(edges.map((e) => e.id)).toEqual(['partOf:system:default:shop']);
  });

  test('relation types may use letters, digits, _ . - and be 63 characters long', () => {
    const long = `a${'b'.repeat(62)}`;
    const edges = deriveEdges(
      source,
      entityWith([
        { type: long, targetRef: 'resource:default/db' },
        { type: 'custom.rel_v2-x', targetRef: 'resource:default/db' },
      ]),
      now,
    );
    expect(edges.map((e) => e.type).sort()).toEqual([long, 'custom.rel_v2-x'].sort());
  });

  test('no entity (a tombstone) or no relations: no edges', () => {
    expect(deriveEdges(source, undefined, now)).toEqual([]);
    const withoutRelations: Entity = { apiVersion: 'backstage.io/v1alpha1', kind: 'Component', metadata: { name: 'web-shop' } };
    expect(deriveEdges(source, withoutRelations, now)).toEqual([]);
    expect(deriveEdges(source, entityWith([]), now)).toEqual([]);
  });
});

describe('sameEdge', () => {
  const desired = edge('dependsOn', 'resource:default:db');

  test('ignores when the edge was written', () => {
    const stored: EdgeDocument = { ...desired, updatedAt: later.toISOString() };
    expect(sameEdge(stored, desired)).toBe(true);
  });

  test.each<[keyof EdgeDocument, string]>([
    ['sourceRef', 'component:default/other'],
    ['targetRef', 'resource:default/db2'],
    ['type', 'dependencyOf'],
    ['target', 'resource:default:db2'],
    ['sourceKind', 'api'],
    ['targetKind', 'component'],
  ])('differs when %s differs', (field, value) => {
    expect(sameEdge({ ...desired, [field]: value }, desired)).toBe(false);
  });
});

describe('diffEdges', () => {
  test('unchanged edges need no write, even when written at another time', () => {
    const current = [edge('dependsOn', 'resource:default:db', { updatedAt: '2020-01-01T00:00:00.000Z' }), edge('partOf', 'system:default:shop')];
    const desired = [edge('dependsOn', 'resource:default:db', { updatedAt: later.toISOString() }), edge('partOf', 'system:default:shop', { updatedAt: later.toISOString() })];
    expect(diffEdges(current, desired)).toEqual({ upserts: [], deletes: [] });
  });

  test('new and changed edges are upserted, gone ones deleted by id', () => {
    const keep = edge('partOf', 'system:default:shop');
    const changedBefore = edge('ownedBy', 'group:default:team-a', { targetRef: 'group:default/Team-A' });
    const changedAfter = edge('ownedBy', 'group:default:team-a');
    const added = edge('dependsOn', 'resource:default:cache');
    const gone = edge('dependsOn', 'resource:default:legacy-db');
    const diff = diffEdges([keep, changedBefore, gone], [keep, changedAfter, added]);
    expect(diff.upserts).toEqual([changedAfter, added]);
    expect(diff.deletes).toEqual([gone.id]);
  });

  test('no desired edges (a tombstoned entity) deletes every stored one; nothing stored upserts every desired one', () => {
    const a = edge('dependsOn', 'resource:default:db');
    const b = edge('partOf', 'system:default:shop');
    expect(diffEdges([a, b], [])).toEqual({ upserts: [], deletes: [a.id, b.id] });
    expect(diffEdges([], [a, b])).toEqual({ upserts: [a, b], deletes: [] });
    expect(diffEdges([], [])).toEqual({ upserts: [], deletes: [] });
  });

  test('property: applying the diff to what is stored gives what is desired, and writes nothing unchanged', () => {
    const types = ['dependsOn', 'partOf', 'ownedBy'];
    const targets = ['resource:default:db', 'system:default:shop', 'group:default:team-a'];
    const anEdge = fc
      .record({ type: fc.constantFrom(...types), target: fc.constantFrom(...targets), upper: fc.boolean(), stamp: fc.boolean() })
      .map(({ type, target, upper, stamp }) => {
        const e = edge(type, target, { updatedAt: stamp ? now.toISOString() : later.toISOString() });
        return upper ? { ...e, targetRef: e.targetRef.toUpperCase() } : e;
      });
    const edgeSet = fc.uniqueArray(anEdge, { selector: (e) => e.id, maxLength: 9 });
    fc.assert(
      fc.property(edgeSet, edgeSet, (current, desired) => {
        const { upserts, deletes } = diffEdges(current, desired);
        const result = new Map(current.map((e) => [e.id, e]));
        for (const id of deletes) result.delete(id);
        for (const e of upserts) result.set(e.id, e);
        expect([...result.keys()].sort()).toEqual(desired.map((e) => e.id).sort());
        for (const e of desired) expect(sameEdge(result.get(e.id)!, e)).toBe(true);
        const stored = new Map(current.map((e) => [e.id, e]));
        for (const e of upserts) {
          const before = stored.get(e.id);
          expect(before === undefined || !sameEdge(before, e)).toBe(true);
        }
        expect(new Set(deletes).size).toBe(deletes.length);
      }),
      { numRuns: 200 },
    );
  });
});
