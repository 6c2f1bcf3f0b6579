/**
 * A real Backstage catalog backend per test file, started through the local stack (local/stack.ts): loaded with a
 * copy of test/fixtures/catalog (file locations), which the test may edit, or with a large generated catalog (the
 * stand-in's provider, in one mutation). The harness talks to it with a static token; the service under test uses
 * Entra-style tokens from the local identity stand-in (jwks external access), as it would in production.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CatalogClient } from '@backstage/catalog-client';
import type { Entity } from '@backstage/catalog-model';
import type { BackstageStandIn } from '../../local/backstage';
import type { GeneratedEntity } from '../../local/catalog-generator';
import { allEntities, catalogClient, startLocalStack, waitForCatalog } from '../../local/stack';
import { eventually, standins } from './stack';

const FIXTURE_DIR = join(__dirname, '..', 'fixtures', 'catalog');
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
  const files = { main: join(dir, 'catalog-info.yaml'), removable: join(dir, 'removable.yaml') };
  const stack = await startLocalStack({
    backstage: {
      trust: { jwksUri: standins.jwksUri, issuer: standins.issuer },
      staticToken: HARNESS_TOKEN,
      processingIntervalSeconds: 1,
      fileLocations: [files.main, files.removable],
      ...(options.extraConfig && { extraConfig: options.extraConfig }),
    },
  });
  const backstage = stack.backstage!;
  const admin = catalogClient(backstage.baseUrl);
  const token = { token: HARNESS_TOKEN };
  const locations = { main: stack.locations[files.main]!, removable: stack.locations[files.removable]! };

  const entities = async () => (await admin.getEntities({}, token)).items;
  const expected = countDocuments(files.main) + countDocuments(files.removable) + 2;
  // Wait until every fixture entity is processed and stitched (relations included).
  await waitForCatalog(
    backstage,
    { predicate: (items) => items.length === expected && items.every((e) => e.metadata.etag && (e.kind === 'Location' || e.relations?.length)) },
    { timeoutInMs: 60_000, pollIntervalInMs: 200, what: `the ${expected} fixture entities` },
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
    stop: () => stack.stop(),
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
 * A real Backstage loaded with generated entities in one full mutation of the stand-in's provider (no file location,
 * so no Location entity: the catalog holds exactly `entities`), returned once every entity is ingested and the catalog
 * has settled. Its processing interval is an hour: nothing is reprocessed while the test runs, so Backstage is idle.
 */
export async function startGeneratedCatalog(generated: GeneratedEntity[], options: { timeoutInMs?: number } = {}): Promise<GeneratedCatalog> {
  const stack = await startLocalStack({
    backstage: { trust: { jwksUri: standins.jwksUri, issuer: standins.issuer }, staticToken: HARNESS_TOKEN, processingIntervalSeconds: 3600 },
  });
  const backstage = stack.backstage!;
  try {
    await backstage.loadCatalog(generated);
    await waitForCatalog(backstage, { count: generated.length, settled: true }, { timeoutInMs: options.timeoutInMs ?? 180_000, pollIntervalInMs: 1_000, what: `${generated.length} generated entities` });
  } catch (error) {
    await stack.stop();
    throw error;
  }
  return {
    backstage,
    baseUrl: backstage.baseUrl,
    admin: catalogClient(backstage.baseUrl),
    token: { token: HARNESS_TOKEN },
    entities: () => allEntities(backstage),
    stop: () => stack.stop(),
  };
}
