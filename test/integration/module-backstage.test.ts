/**
 * The change-events module inside the real Backstage catalog backend (the stand-in in local/): adding, changing and
 * removing entities in the fixture catalog produces the matching events at a local receiver.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import type { CatalogEvent } from '../../backstage/src';
import { startFixtureCatalog, type FixtureCatalog } from '../support/backstage';
import { eventually } from '../support/stack';

jest.setTimeout(120_000);

const SECRET = `whsec_${Buffer.from('stand-in-secret-of-32-bytes-long').toString('base64')}`;
const HARNESS = { token: 'test-harness-static-token' };

let fixture: FixtureCatalog;
let server: http.Server;
const arrivals: Array<{ at: number; event: CatalogEvent }> = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      try {
        new Webhook(SECRET).verify(body, req.headers as Record<string, string>);
      } catch {
        res.writeHead(401).end();
        return;
      }
      for (const event of JSON.parse(body) as CatalogEvent[]) arrivals.push({ at: Date.now(), event });
      res.writeHead(202).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/catalog/events`;
  fixture = await startFixtureCatalog({
    extraConfig: {
      catalog: {
        changeEvents: {
          schedule: { frequency: { seconds: 1 }, timeout: { seconds: 30 }, initialDelay: { seconds: 1 } },
          deletionCheckInterval: '1s',
          endpoints: [{ name: 'receiver', url, auth: { type: 'standardWebhooks', secret: SECRET } }],
          // Users never leave Backstage (a predicate the catalog evaluates); nor does an entity annotated out.
          filter: { $not: { kind: 'User' } },
        },
      },
    },
  });
  await eventually(async () => fixture.backstage.recentLogs().some((l) => l.includes('Recorded the baseline')), 'the module to record its baseline', 30_000);
});

afterAll(async () => {
  await fixture?.stop();
  server?.closeAllConnections();
  await new Promise<void>((r) => server?.close(() => r()));
});

const of = (subject: string, type: string) => arrivals.filter((a) => a.event.subject.toLowerCase() === subject && a.event.type.endsWith(type));

test('the baseline is not published; every entity the catalog stitched after it is; nothing is deleted', async () => {
  // The module may record its baseline before the fixture's locations are ingested: whatever it did not see then is
  // new to it and published as created — the entities it saw are not.
  const line = fixture.backstage.recentLogs().find((l) => l.includes('Recorded the baseline'))!;
  const baseline = Number(/baseline of (\d+) entities/.exec(line)![1]);
  const inScope = (await fixture.entities()).filter((e) => e.kind !== 'User');
  const published = () => new Set(arrivals.filter((a) => a.event.type.endsWith('upserted')).map((a) => a.event.subject.toLowerCase()));
  await eventually(async () => published().size >= inScope.length - baseline, `${inScope.length - baseline} entities published after the baseline`);
  expect(published().size).toBe(inScope.length - baseline);
  expect(arrivals.filter((a) => a.event.type.endsWith('deleted'))).toEqual([]);
  expect(fixture.backstage.recentLogs().some((l) => l.includes("Detecting catalog changes from the catalog's publication generations"))).toBe(true);
});

test('changing an entity emits one upserted event with its new etag', async () => {
  await fixture.editFile(
    'catalog-info.yaml',
    (t) => t.replace('description: Takes payments', 'description: Takes payments, now in EUR'),
    async () => (await fixture.admin.getEntityByRef('component:default/payments-service', HARNESS))?.metadata.description === 'Takes payments, now in EUR',
  );
  const entity = await fixture.admin.getEntityByRef('component:default/payments-service', HARNESS);
  const [arrival] = await eventually(async () => {
    const found = of('component:default/payments-service', 'upserted').filter((a) => a.event.data.etag === entity!.metadata.etag);
    return found.length > 0 && found;
  }, 'the upserted event');
  expect(arrival!.event).toMatchObject({ source: fixture.baseUrl, data: { entityRef: 'Component:default/payments-service', uid: entity!.metadata.uid } });
});

test('adding an entity emits created, removing it emits deleted', async () => {
  const file = join(fixture.dir, 'new-service.yaml');
  writeFileSync(
    file,
    'apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: new-service\nspec:\n  type: service\n  lifecycle: experimental\n  owner: platform-team\n',
  );
  const location = await fixture.admin.addLocation({ type: 'file', target: file }, HARNESS);
  await eventually(async () => of('component:default/new-service', 'upserted').length > 0, 'the created event');
  await fixture.admin.removeLocationById(location.location.id, HARNESS);
  const [deleted] = await eventually(async () => {
    const found = of('component:default/new-service', 'deleted');
    return found.length > 0 && found;
  }, 'the deleted event');
  expect(deleted!.event.data).toEqual({ entityRef: 'Component:default/new-service', uid: expect.any(String) });
});

test('the filter keeps users in Backstage; the exclude annotation keeps an entity in, and publishes it as deleted when added', async () => {
  const file = join(fixture.dir, 'scoped.yaml');
  const component = (description: string, annotations = '') =>
    `apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: scoped-service\n  description: ${description}\n${annotations}spec:\n  type: service\n  lifecycle: experimental\n  owner: platform-team\n`;
  const user = 'apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: intern\nspec:\n  memberOf: [platform-team]\n';
  writeFileSync(file, `${component('first')}---\n${user}`);
  const location = await fixture.admin.addLocation({ type: 'file', target: file }, HARNESS);
  await eventually(async () => (await fixture.admin.getEntityByRef('user:default/intern', HARNESS))?.metadata.etag, 'the user in the catalog');
  await eventually(async () => of('component:default/scoped-service', 'upserted').length > 0, 'the component published');

  // A change made after the user is in the catalog: once it is published, the diff that saw the user has run.
  writeFileSync(file, `${component('second')}---\n${user}`);
  const second = await eventually(async () => {
    const entity = await fixture.admin.getEntityByRef('component:default/scoped-service', HARNESS);
    return entity?.metadata.description === 'second' && entity;
  }, 'the second description in the catalog');
  await eventually(async () => of('component:default/scoped-service', 'upserted').some((a) => a.event.data.etag === second.metadata.etag), 'the second version published');
  expect(of('user:default/intern', 'upserted')).toEqual([]);

  writeFileSync(file, `${component('second', '  annotations:\n    backstage-cosmos-sync/exclude: "true"\n')}---\n${user}`);
  await eventually(async () => of('component:default/scoped-service', 'deleted').length > 0, 'the annotated entity published as deleted');
  expect(await fixture.admin.getEntityByRef('component:default/scoped-service', HARNESS)).toBeDefined();
  await fixture.admin.removeLocationById(location.location.id, HARNESS);
});
