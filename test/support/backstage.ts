/**
 * A real Backstage catalog backend per test file, loaded with a copy of test/fixtures/catalog, which the
 * test may edit. The harness talks to it with a static token; the service under test uses Entra-style
 * tokens from the local identity stand-in (jwks external access), as it would in production.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CatalogClient } from '@backstage/catalog-client';
import type { Entity } from '@backstage/catalog-model';
import { BACKSTAGE_AUDIENCE, startBackstage, type BackstageStandIn } from '../../local/backstage';
import { eventually, standins } from './stack';

export const FIXTURE_DIR = join(__dirname, '..', 'fixtures', 'catalog');
const HARNESS_TOKEN = 'test-harness-static-token';

export interface FixtureCatalog {
  backstage: BackstageStandIn;
  baseUrl: string;
  /** Where the fixture files were copied; edit them and call {@link FixtureCatalog.refresh}. */
  dir: string;
  /** The harness's own catalog client (static token). */
  admin: CatalogClient;
  locations: Record<'main' | 'removable', string>;
  /** Every entity currently in the catalog. */
  entities(): Promise<Entity[]>;
  /** Rewrites a fixture file with `edit` applied and waits until the catalog shows the change. */
  editFile(file: string, edit: (text: string) => string, until: () => Promise<boolean>): Promise<void>;
  removeLocation(which: 'main' | 'removable'): Promise<void>;
  stop(): Promise<void>;
}

export async function startFixtureCatalog(options: { extraConfig?: Record<string, unknown> } = {}): Promise<FixtureCatalog> {
  const dir = mkdtempSync(join(tmpdir(), 'catalog-fixture-'));
  cpSync(FIXTURE_DIR, dir, { recursive: true });
  const backstage = await startBackstage({
    jwks: { url: standins.jwksUri, issuer: standins.issuer, audience: BACKSTAGE_AUDIENCE },
    staticToken: HARNESS_TOKEN,
    processingIntervalSeconds: 1,
    ...(options.extraConfig && { extraConfig: options.extraConfig }),
  });
  const admin = new CatalogClient({
    discoveryApi: { getBaseUrl: async (pluginId) => `${backstage.baseUrl}/api/${pluginId}` },
  });
  const token = { token: HARNESS_TOKEN };
  const main = await admin.addLocation({ type: 'file', target: join(dir, 'catalog-info.yaml') }, token);
  const removable = await admin.addLocation({ type: 'file', target: join(dir, 'removable.yaml') }, token);
  const locations = { main: main.location.id, removable: removable.location.id };

  const entities = async () => (await admin.getEntities({}, token)).items;
  const expected = countDocuments(join(dir, 'catalog-info.yaml')) + countDocuments(join(dir, 'removable.yaml')) + 2;
  // Wait until every fixture entity is processed and stitched (relations included).
  await eventually(
    async () => {
      const items = await entities();
      return items.length === expected && items.every((e) => e.metadata.etag && (e.kind === 'Location' || e.relations?.length));
    },
    `${expected} fixture entities in Backstage`,
    60_000,
  );

  return {
    backstage,
    baseUrl: backstage.baseUrl,
    dir,
    admin,
    locations,
    entities,
    async editFile(file, edit, until) {
      const path = join(dir, file);
      writeFileSync(path, edit(readFileSync(path, 'utf8')));
      await eventually(async () => (await until()) || undefined, `the edit of ${file} to show in Backstage`, 30_000);
    },
    async removeLocation(which) {
      await admin.removeLocationById(locations[which], token);
    },
    stop: () => backstage.stop(),
  };
}

function countDocuments(path: string): number {
  return readFileSync(path, 'utf8')
    .split(/^---$/m)
    .filter((doc) => /^kind:/m.test(doc)).length;
}

export interface GeneratedCatalog {
  backstage: BackstageStandIn;
  baseUrl: string;
  admin: CatalogClient;
  token: { token: string };
  /** Every entity currently in the catalog (paged). */
  entities(): Promise<Entity[]>;
  stop(): Promise<void>;
}

/**
 * A real Backstage loaded with generated entities (one file location), returned once every entity is ingested and
 * the catalog has settled (the uid/etag projection is unchanged across two reads a processing cycle apart).
 */
export async function startGeneratedCatalog(yaml: string, expectedCount: number, options: { timeoutInMs?: number } = {}): Promise<GeneratedCatalog> {
  const dir = mkdtempSync(join(tmpdir(), 'catalog-generated-'));
  writeFileSync(join(dir, 'catalog.yaml'), yaml);
  const backstage = await startBackstage({
    jwks: { url: standins.jwksUri, issuer: standins.issuer, audience: BACKSTAGE_AUDIENCE },
    staticToken: HARNESS_TOKEN,
    processingIntervalSeconds: 2,
  });
  const admin = new CatalogClient({ discoveryApi: { getBaseUrl: async (pluginId) => `${backstage.baseUrl}/api/${pluginId}` } });
  const token = { token: HARNESS_TOKEN };
  await admin.addLocation({ type: 'file', target: join(dir, 'catalog.yaml') }, token);
  const projection = async () => {
    const items: string[] = [];
    let cursor: string | undefined;
    do {
      const page = cursor
        ? await admin.queryEntities({ cursor, limit: 1000, fields: ['metadata.uid', 'metadata.etag'] }, token)
        : await admin.queryEntities({ limit: 1000, fields: ['metadata.uid', 'metadata.etag'] }, token);
      items.push(...page.items.map((e) => `${e.metadata.uid} ${e.metadata.etag}`));
      cursor = page.pageInfo.nextCursor;
    } while (cursor);
    return items.sort().join('\n');
  };
  let previous = '';
  await eventually(
    async () => {
      const current = await projection();
      const settled = current.split("\n").length >= expectedCount + 1 && current === previous;
      previous = current;
      if (!settled) await new Promise((r) => setTimeout(r, 2_000));
      return settled;
    },
    `${expectedCount} generated entities in Backstage`,
    options.timeoutInMs ?? 180_000,
  );
  const entities = async () => {
    const items: Entity[] = [];
    let cursor: string | undefined;
    do {
      const page = cursor ? await admin.queryEntities({ cursor, limit: 1000 }, token) : await admin.queryEntities({ limit: 1000 }, token);
      items.push(...page.items);
      cursor = page.pageInfo.nextCursor;
    } while (cursor);
    return items;
  };
  return { backstage, baseUrl: backstage.baseUrl, admin, token, entities, stop: () => backstage.stop() };
}
