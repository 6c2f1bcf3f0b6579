/**
 * History records from mirror document versions (shared/history/record.ts): the operation, the diff, the ids.
 */
import type { Entity } from '@backstage/catalog-model';
import { buildHistoryRecord, historyRecordId, traceIdOf, type HistoryRecord } from '../../shared/history/record';
import { formatTimeline } from '../../shared/history/timeline';
import { toEntityDocument, toTombstone } from '../../shared/model/documents';

const NOW = new Date('2026-12-02T10:00:00.000Z');
const options = { now: NOW, ttlInSeconds: 90 * 86_400 };
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

function entity(description: string, uid = 'uid-1'): Entity {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: { name: 'checkout', namespace: 'default', uid, etag: `etag-${description}`, description },
    spec: { type: 'service', owner: 'group:default/team-a' },
    relations: [{ type: 'ownedBy', targetRef: 'group:default/team-a' }],
  };
}

const at = (seconds: number) => new Date(Date.UTC(2026, 11, 2, 9, 0, seconds));

test('the first version is created, with the whole entity, the trace and the retention', () => {
  const doc = toEntityDocument(entity('v1'), at(1), TRACEPARENT);
  const record = buildHistoryRecord(doc, undefined, options)!;
  expect(record).toMatchObject({
    id: `${doc.syncedAt}~${doc.syncHash}`,
    entityId: 'component:default:checkout',
    entityRef: 'Component:default/checkout',
    uid: 'uid-1',
    operation: 'created',
    syncedAt: doc.syncedAt,
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    entity: doc.entity,
    recordedAt: NOW.toISOString(),
    ttl: 7_776_000,
  });
  expect(record.diff).toBeUndefined();
  expect(record.previous).toBeUndefined();
});

test('a later version of the same life is updated, with an RFC 6902 patch from the version before', () => {
  const first = buildHistoryRecord(toEntityDocument(entity('v1'), at(1)), undefined, options)!;
  const second = buildHistoryRecord(toEntityDocument(entity('v2'), at(2)), first, options)!;
  expect(second).toMatchObject({ operation: 'updated', previous: first.id });
  expect(second.diff).toEqual([
    { op: 'replace', path: '/metadata/etag', value: 'etag-v2' },
    { op: 'replace', path: '/metadata/description', value: 'v2' },
  ]);
});

test('deleted, then re-created: the tombstone keeps the uid of the life it ends; the new life has its own, and no diff', () => {
  const created = buildHistoryRecord(toEntityDocument(entity('v1'), at(1)), undefined, options)!;
  const live = toEntityDocument(entity('v1'), at(1));
  const deleted = buildHistoryRecord(toTombstone(live, 3600, at(2)), created, options)!;
  expect(deleted).toMatchObject({ operation: 'deleted', uid: 'uid-1', previous: created.id });
  expect(deleted.entity).toBeUndefined();
  expect(deleted.diff).toBeUndefined();
  const again = buildHistoryRecord(toEntityDocument(entity('v1', 'uid-2'), at(3)), deleted, options)!;
  expect(again).toMatchObject({ operation: 'recreated', uid: 'uid-2', previous: deleted.id });
  expect(again.diff).toBeUndefined();
});

test('a new uid without a deletion in between is recreated, with the patch from the old life', () => {
  const created = buildHistoryRecord(toEntityDocument(entity('v1'), at(1)), undefined, options)!;
  const replaced = buildHistoryRecord(toEntityDocument(entity('v1', 'uid-2'), at(2)), created, options)!;
  expect(replaced.operation).toBe('recreated');
  expect(replaced.diff).toEqual([{ op: 'replace', path: '/metadata/uid', value: 'uid-2' }]);
});

test('no record for a version that is no change: a tombstone after a tombstone, the same content written again', () => {
  const created = buildHistoryRecord(toEntityDocument(entity('v1'), at(1)), undefined, options)!;
  // Written again later, by another trace (as after a stale sourceEtag): the same entity, so no change.
  const rewritten = toEntityDocument(entity('v1'), at(5), TRACEPARENT);
  expect(rewritten.syncHash).not.toBe(created.syncHash);
  expect(buildHistoryRecord(rewritten, created, options)).toBeUndefined();
  // Published otherwise, or another life with the same content: a change.
  expect(buildHistoryRecord(toEntityDocument(entity('v1'), at(6), undefined, { form: 'envelope' }), created, options)?.operation).toBe('updated');
  expect(buildHistoryRecord(toEntityDocument(entity('v1', 'uid-2'), at(7)), created, options)?.operation).toBe('recreated');
  const tombstone = toTombstone(rewritten, 3600, at(2));
  const deleted = buildHistoryRecord(tombstone, created, options) as HistoryRecord;
  expect(buildHistoryRecord(toTombstone(rewritten, 3600, at(3)), deleted, options)).toBeUndefined();
});

test('restricted documents are recorded as the mirror holds them', () => {
  const envelope = toEntityDocument(entity('v1'), at(1), undefined, { form: 'envelope' });
  const record = buildHistoryRecord(envelope, undefined, options)!;
  expect(record.publication).toBe('envelope');
  expect(record.entity).toEqual(envelope.entity);
  expect(record.entity?.metadata.description).toBeUndefined();
});

test('ids and trace ids', () => {
  expect(historyRecordId({ syncedAt: '2026-12-02T09:00:01.000Z', syncHash: 'abc' })).toBe('2026-12-02T09:00:01.000Z~abc');
  expect(traceIdOf(TRACEPARENT)).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  expect(traceIdOf('not a traceparent')).toBeUndefined();
  expect(traceIdOf(undefined)).toBeUndefined();
});

test('the timeline a person reads: newest first, one line per change, without Backstage bookkeeping', () => {
  const text = formatTimeline('component:default/checkout', [
    {
      operation: 'updated',
      syncedAt: '2026-12-02T01:05:38.412Z',
      uid: 'uid-1',
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      diff: [
        { op: 'replace', path: '/metadata/etag', value: 'e2' },
        { op: 'add', path: '/spec/dependsOn/-', value: 'resource:search-index' },
        { op: 'remove', path: '/metadata/tags' },
        { op: 'replace', path: '/metadata/description', value: 'x'.repeat(200) },
      ],
    },
    { operation: 'created', syncedAt: '2026-12-02T01:05:25.101Z', uid: 'uid-1' },
  ]);
  expect(text.split('\n')).toEqual([
    'component:default/checkout — 2 versions, newest first',
    '',
    '2026-12-02 01:05:38Z  updated    uid uid-1  trace 4bf92f3577b34da6a3ce929d0e0e4736',
    '    + /spec/dependsOn/- "resource:search-index"',
    '    - /metadata/tags',
    `    ~ /metadata/description "${'x'.repeat(98)}…`,
    '2026-12-02 01:05:25Z  created    uid uid-1',
    '',
  ]);
  expect(formatTimeline('component:default/gone', [])).toContain('no history');
});
