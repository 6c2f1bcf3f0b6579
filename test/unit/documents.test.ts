import type { Entity } from '@backstage/catalog-model';
import { computeSyncHash, isTombstone, toEntityDocument, toTombstone, withoutSystemProperties } from '../../shared/model/documents';

const entity: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: { name: 'Payments', namespace: 'Team-A', uid: 'u-1', etag: 'e-1', annotations: { b: '2', a: '1' } },
  spec: { owner: 'payments-team', dependsOn: ['resource:db'] },
  relations: [{ type: 'ownedBy', targetRef: 'group:default/payments-team' }],
};
const now = new Date('2026-11-28T12:00:00Z');

test('a live document keeps the full entity and the ref in its original casing', () => {
  const doc = toEntityDocument(entity, now);
  expect(doc).toEqual({
    id: 'component:team-a:payments',
    entityRef: 'Component:Team-A/Payments',
    kind: 'Component',
    namespace: 'Team-A',
    name: 'Payments',
    uid: 'u-1',
    sourceEtag: 'e-1',
    entity,
    syncedAt: '2026-11-28T12:00:00.000Z',
    syncHash: expect.any(String),
  });
  expect(isTombstone(doc)).toBe(false);
});

test('the sync hash covers the content, ignores key order and system properties', () => {
  const doc = toEntityDocument(entity, now);
  expect(computeSyncHash({ ...doc })).toBe(doc.syncHash);
  const reordered = { ...doc, entity: { ...entity, metadata: { ...entity.metadata, annotations: { a: '1', b: '2' } } } };
  expect(computeSyncHash(reordered)).toBe(doc.syncHash);
  expect(computeSyncHash({ ...doc, _etag: 'x', _ts: 1, _rid: 'r' })).toBe(doc.syncHash);
  // Drift: any edit of what the sync wrote changes the hash.
  expect(computeSyncHash({ ...doc, entity: { ...entity, spec: { owner: 'someone-else' } } })).not.toBe(doc.syncHash);
  expect(computeSyncHash({ ...doc, sourceEtag: 'e-2' })).not.toBe(doc.syncHash);
  expect(computeSyncHash({ ...doc, extra: true })).not.toBe(doc.syncHash);
});

test('a tombstone drops the body, keeps the identity, and carries a TTL', () => {
  const tomb = toTombstone(toEntityDocument(entity, now), 3600, now);
  expect(tomb).toEqual({
    id: 'component:team-a:payments',
    entityRef: 'Component:Team-A/Payments',
    kind: 'Component',
    namespace: 'Team-A',
    name: 'Payments',
    uid: 'u-1',
    sourceEtag: null,
    deleted: true,
    deletedAt: '2026-11-28T12:00:00.000Z',
    ttl: 3600,
    syncedAt: '2026-11-28T12:00:00.000Z',
    syncHash: computeSyncHash({ ...tomb }),
  });
  expect(isTombstone(tomb)).toBe(true);
});

test('an entity without namespace, uid or etag', () => {
  const doc = toEntityDocument({ apiVersion: 'v1', kind: 'User', metadata: { name: 'bob' } }, now);
  expect(doc).toMatchObject({ id: 'user:default:bob', entityRef: 'User:default/bob', uid: null, sourceEtag: null });
});

test('system properties are stripped', () => {
  expect(withoutSystemProperties({ id: 'a', _etag: 'e', _ts: 1, _rid: 'r', _self: 's', value: 1 } as never)).toEqual({ id: 'a', value: 1 });
});
