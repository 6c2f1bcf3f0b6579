/**
 * A small synthetic catalog for edge and graph tests, shaped as Backstage stitches it (every relation stored in
 * both directions when both ends exist): an API hop, a cycle, and a dangling dependency.
 *
 *   web ──dependsOn──► api-gateway
 *   web ──consumesApi──► orders-api ──apiProvidedBy──► orders ──dependsOn──► orders-db
 *                                                        └──dependsOn──► billing ⇄ ledger ──dependsOn──► missing-queue (absent)
 */
import type { Entity } from '@backstage/catalog-model';

const INVERSE: Record<string, string> = {
  dependsOn: 'dependencyOf',
  dependencyOf: 'dependsOn',
  consumesApi: 'apiConsumedBy',
  apiConsumedBy: 'consumesApi',
  providesApi: 'apiProvidedBy',
  apiProvidedBy: 'providesApi',
  ownedBy: 'ownerOf',
  ownerOf: 'ownedBy',
};

const FACTS: Array<[string, string, string]> = [
  ['Component:default/web', 'dependsOn', 'Component:default/api-gateway'],
  ['Component:default/web', 'consumesApi', 'API:default/orders-api'],
  ['Component:default/orders', 'providesApi', 'API:default/orders-api'],
  ['Component:default/orders', 'dependsOn', 'Resource:default/orders-db'],
  ['Component:default/orders', 'dependsOn', 'Component:default/billing'],
  ['Component:default/billing', 'dependsOn', 'Component:default/ledger'],
  ['Component:default/ledger', 'dependsOn', 'Component:default/billing'],
  ['Component:default/ledger', 'dependsOn', 'Resource:default/missing-queue'],
  ['Component:default/web', 'ownedBy', 'Group:default/shop'],
];

const ENTITIES = [
  'Component:default/web',
  'Component:default/api-gateway',
  'API:default/orders-api',
  'Component:default/orders',
  'Resource:default/orders-db',
  'Component:default/billing',
  'Component:default/ledger',
  'Group:default/shop',
];

export function graphFixture(): Entity[] {
  const relations = new Map<string, Array<{ type: string; targetRef: string }>>(ENTITIES.map((ref) => [ref, []]));
  for (const [source, type, target] of FACTS) {
    relations.get(source)!.push({ type, targetRef: target.toLowerCase() });
    relations.get(target)?.push({ type: INVERSE[type]!, targetRef: source.toLowerCase() });
  }
  return ENTITIES.map((ref, i) => {
    const [kind, rest] = ref.split(':') as [string, string];
    const [namespace, name] = rest.split('/') as [string, string];
    return {
      apiVersion: 'backstage.io/v1alpha1',
      kind,
      metadata: { name, namespace, uid: `uid-${i}`, etag: `etag-${i}` },
      spec: {},
      relations: relations.get(ref)!,
    };
  });
}
