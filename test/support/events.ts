/** Catalog change events as the Backstage module sends them, for tests that post to the intake. */
import { randomUUID } from 'node:crypto';

/** One valid `upserted` CloudEvent for `ref` (a fresh id each time); `overrides` replace top-level attributes. */
export function catalogEvent(overrides: Record<string, unknown> = {}, ref = 'component:default/payments-service') {
  return {
    specversion: '1.0',
    id: randomUUID(),
    source: 'https://backstage.example.com',
    type: 'io.backstage.catalog.entity.upserted',
    subject: ref,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data: { entityRef: ref, uid: 'uid-1', etag: 'etag-1' },
    ...overrides,
  };
}
