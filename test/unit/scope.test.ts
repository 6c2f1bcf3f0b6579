import type { Entity } from '@backstage/catalog-model';
import { computeSyncHash, toEntityDocument } from '../../shared/model/documents';
import { evaluateDeletionGuard } from '../../shared/sync/guard';
import { omitPath, parseOmitFields, SCOPE_ANNOTATIONS, SyncScope } from '../../shared/sync/scope';

const NOW = new Date('2026-01-01T00:00:00Z');

function entity(kind: string, name: string, extra: { namespace?: string; annotations?: Record<string, string>; spec?: Entity["spec"] } = {}): Entity {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind,
    metadata: {
      name,
      namespace: extra.namespace ?? 'default',
      uid: `uid-${name}`,
      etag: `etag-${name}`,
      description: 'A private description',
      labels: { tier: 'internal' },
      ...(extra.annotations && { annotations: extra.annotations }),
    },
    spec: extra.spec ?? { type: 'service', lifecycle: 'production', owner: 'group:default/payments-team' },
    relations: [{ type: 'ownedBy', targetRef: 'group:default/payments-team' }],
  };
}

const everything = { includeKinds: [], excludeKinds: [], includeNamespaces: [], excludeNamespaces: [] };

describe('settings', () => {
  test('no settings: everything, whole, and no predicate to send', () => {
    const scope = new SyncScope();
    expect(scope.predicate).toBeUndefined();
    expect(scope.restricted).toBe(false);
    expect(scope.decide(entity('User', 'alice'))).toEqual({ inScope: true, publication: { form: 'full' } });
  });

  test('kinds and namespaces, included and excluded, case-insensitively; from the ref alone', () => {
    const scope = new SyncScope({ ...everything, includeKinds: ['Component', 'API'], excludeNamespaces: ['Sandbox'] });
    expect(scope.includesRef({ kind: 'component', namespace: 'default' })).toBe(true);
    expect(scope.includesRef({ kind: 'API', namespace: 'payments' })).toBe(true);
    expect(scope.includesRef({ kind: 'User', namespace: 'default' })).toBe(false);
    expect(scope.includesRef({ kind: 'Component', namespace: 'sandbox' })).toBe(false);
    expect(scope.decide(entity('Group', 'g'))).toEqual({ inScope: false, reason: 'setting' });
    expect(scope.decide(entity('Component', 'c', { namespace: 'SANDBOX' }))).toEqual({ inScope: false, reason: 'setting' });
  });

  test('the settings compile into one Backstage predicate, the catalog filter included', () => {
    const scope = new SyncScope({
      includeKinds: ['Component'],
      excludeKinds: ['User'],
      includeNamespaces: [],
      excludeNamespaces: ['sandbox'],
      catalogFilter: { 'spec.lifecycle': { $in: ['production'] } },
    });
    expect(scope.predicate).toEqual({
      $all: [
        { kind: { $in: ['Component'] } },
        { $not: { kind: { $in: ['User'] } } },
        { $not: { 'metadata.namespace': { $in: ['sandbox'] } } },
        { 'spec.lifecycle': { $in: ['production'] } },
      ],
    });
    expect(scope.restricted).toBe(true);
  });

  test('the catalog filter needs the entity: evaluated with the catalog predicate semantics (case-insensitive values)', () => {
    const scope = new SyncScope({ ...everything, catalogFilter: { 'spec.lifecycle': 'PRODUCTION' } });
    expect(scope.includesRef({ kind: 'Component', namespace: 'default' })).toBe(true);
    expect(scope.decide(entity('Component', 'a')).inScope).toBe(true);
    expect(scope.decide(entity('Component', 'b', { spec: { lifecycle: 'experimental' } }))).toEqual({ inScope: false, reason: 'setting' });
  });

  test('settings win over annotations', () => {
    const scope = new SyncScope({ ...everything, excludeKinds: ['Component'] });
    expect(scope.decide(entity('Component', 'a', { annotations: { [SCOPE_ANNOTATIONS.exclude]: 'true' } }))).toEqual({ inScope: false, reason: 'setting' });
  });
});

describe('annotations', () => {
  const scope = new SyncScope();
  test('exclude, envelope-only and omit-fields; only "true" counts', () => {
    expect(scope.decide(entity('Component', 'a', { annotations: { [SCOPE_ANNOTATIONS.exclude]: ' TRUE ' } }))).toEqual({ inScope: false, reason: 'annotation' });
    expect(scope.decide(entity('Component', 'a', { annotations: { [SCOPE_ANNOTATIONS.exclude]: 'yes' } })).inScope).toBe(true);
    expect(scope.decide(entity('Component', 'a', { annotations: { [SCOPE_ANNOTATIONS.envelopeOnly]: 'true' } }))).toEqual({ inScope: true, publication: { form: 'envelope' } });
    expect(scope.decide(entity('Component', 'a', { annotations: { [SCOPE_ANNOTATIONS.omitFields]: 'spec.secrets, metadata.description' } }))).toEqual({
      inScope: true,
      publication: { form: 'omit', paths: ['spec.secrets', 'metadata.description'] },
    });
  });

  test('identity fields cannot be omitted', () => {
    expect(parseOmitFields('kind, metadata.name, Metadata.Namespace, metadata.uid, metadata, apiVersion, spec.x, spec.x,')).toEqual(['spec.x']);
  });

  test('omitPath follows keys that contain dots and does not enter arrays', () => {
    const target = { metadata: { annotations: { 'vault.io/path': 'secret/x', 'github.com/project-slug': 'o/r' } }, spec: { list: [{ a: 1 }], Secrets: { k: 'v' } } };
    omitPath(target, 'metadata.annotations.vault.io/path');
    omitPath(target, 'spec.secrets');
    omitPath(target, 'spec.list.a');
    expect(target).toEqual({ metadata: { annotations: { 'github.com/project-slug': 'o/r' } }, spec: { list: [{ a: 1 }] } });
  });
});

describe('restricted documents carry nothing the owner withheld', () => {
  const secret = 'hunter2-very-secret-connection';
  const withheld = (annotations: Record<string, string>, spec: NonNullable<Entity["spec"]>) =>
    entity('Component', 'vault', { annotations: { ...annotations, 'vault.io/path': secret }, spec: { ...spec, owner: 'group:default/payments-team' } });

  test('an envelope: ref, kind, owner, relations and uid; no spec, annotations, labels, text or the catalog etag', () => {
    const source = withheld({ [SCOPE_ANNOTATIONS.envelopeOnly]: 'true' }, { token: secret });
    const decision = new SyncScope().decide(source);
    if (!decision.inScope) throw new Error('expected in scope');
    const doc = toEntityDocument(source, NOW, undefined, decision.publication);
    expect(doc).toMatchObject({ entityRef: 'Component:default/vault', kind: 'Component', publication: 'envelope', owner: 'group:default/payments-team', uid: 'uid-vault' });
    expect(doc.entity).toEqual({
      apiVersion: 'backstage.io/v1alpha1',
      kind: 'Component',
      metadata: { name: 'vault', namespace: 'default', uid: 'uid-vault' },
      relations: [{ type: 'ownedBy', targetRef: 'group:default/payments-team' }],
    });
    const text = JSON.stringify(doc);
    for (const leak of [secret, 'etag-vault', 'private description', 'internal', 'lifecycle']) expect(text).not.toContain(leak);
    expect(doc.sourceEtag).toMatch(/^sha256:/);
  });

  test('the same envelope whatever was withheld: sourceEtag and syncHash depend only on what is published', () => {
    const envelope = { [SCOPE_ANNOTATIONS.envelopeOnly]: 'true' };
    const a = withheld(envelope, { token: 'one' });
    const b = withheld(envelope, { token: 'two' });
    b.metadata.etag = 'another-etag';
    b.metadata.description = 'Something else';
    const docA = toEntityDocument(a, NOW, undefined, { form: 'envelope' });
    const docB = toEntityDocument(b, NOW, undefined, { form: 'envelope' });
    expect(docB).toEqual(docA);
    expect(computeSyncHash(docB as unknown as Record<string, unknown>)).toBe(docA.syncHash);
  });

  test('omitted fields are gone from the entity, its etag with them; what changed elsewhere still changes the digest', () => {
    const omit = { [SCOPE_ANNOTATIONS.omitFields]: 'spec.token, metadata.annotations.vault.io/path' };
    const source = withheld(omit, { token: secret, type: 'service' });
    const doc = toEntityDocument(source, NOW, undefined, { form: 'omit', paths: parseOmitFields(omit[SCOPE_ANNOTATIONS.omitFields]) });
    expect(doc).toMatchObject({ publication: 'omit-fields', omittedFields: ['spec.token', 'metadata.annotations.vault.io/path'] });
    expect(doc.entity.spec).toEqual({ type: 'service', owner: 'group:default/payments-team' });
    expect(doc.entity.metadata).not.toHaveProperty('etag');
    expect(JSON.stringify(doc)).not.toContain(secret);
    expect(JSON.stringify(doc)).not.toContain('etag-vault');
    const changed = toEntityDocument({ ...source, spec: { ...source.spec, type: 'website' } }, NOW, undefined, { form: 'omit', paths: ['spec.token', 'metadata.annotations.vault.io/path'] });
    expect(changed.sourceEtag).not.toBe(doc.sourceEtag);
  });

  test('a whole entity keeps the document shape it always had', () => {
    const doc = toEntityDocument(entity('Component', 'a'), NOW);
    expect(doc.sourceEtag).toBe('etag-a');
    expect(doc).not.toHaveProperty('publication');
    expect(doc).not.toHaveProperty('owner');
  });
});

test('the guard says when the scope changed, and by what', () => {
  const decision = evaluateDeletionGuard({ catalogCount: 5, liveMirrorCount: 10, deleteCount: 5, leftScope: { setting: 4, annotation: 1 }, maxDeleteRatio: 0.2 });
  expect(decision).toMatchObject({ allowed: false, tripped: true });
  expect(decision.reason).toBe(
    'the sync scope changed: 5 mirrored entities left it (4 by the scope settings, 1 by their exclude annotation); would tombstone 5 of 10 mirrored entities (50 %), more than the allowed 20 %',
  );
  expect(evaluateDeletionGuard({ catalogCount: 9, liveMirrorCount: 10, deleteCount: 1, leftScope: { setting: 1, annotation: 0 }, maxDeleteRatio: 0.2 })).toEqual({ allowed: true, tripped: false, forced: false });
});
