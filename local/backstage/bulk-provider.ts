/**
 * A catalog module of the Backstage stand-in that loads a whole catalog in one go: an entity provider that reads the
 * JSON file named by `localStandIn.catalogFile` (an array of entities) and hands all of it to the catalog as one
 * `full` mutation — at start, and again each time the harness asks (`POST /api/catalog/stand-in/catalog/reload`,
 * authenticated like every catalog route; it answers once the mutation is applied). A full mutation replaces what the
 * provider gave before, so an entity left out of the file is deleted at once, without waiting for orphan clean-up.
 *
 * Why: a `file` location is read by the processing loop, which with a short processing interval reprocesses every
 * entity again and again (100 % of a core with thousands of entities). Entities from a provider are processed once
 * and then left alone until the processing interval comes round, which large catalogs set long.
 *
 * As a provider must, it sets `backstage.io/managed-by-location` and `backstage.io/managed-by-origin-location` on each
 * entity (to `file:<catalogFile>`, unless the entity brings its own).
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { coreServices, createBackendModule, type HttpRouterService } from '@backstage/backend-plugin-api';
import { ANNOTATION_LOCATION, ANNOTATION_ORIGIN_LOCATION, type Entity } from '@backstage/catalog-model';
import { catalogProcessingExtensionPoint, type EntityProvider, type EntityProviderConnection } from '@backstage/plugin-catalog-node';
import { CATALOG_RELOAD_PATH } from './index';
const PROVIDER_NAME = 'local-stand-in-catalog-file';

type Handler = Parameters<HttpRouterService['use']>[0];

class CatalogFileProvider implements EntityProvider {
  private connection: EntityProviderConnection | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly file: string | undefined) {}

  getProviderName(): string {
    return PROVIDER_NAME;
  }

  connect(connection: EntityProviderConnection): Promise<void> {
    this.connection = connection;
    // Not awaited: a large file should not hold up the backend's start; `reload()` waits for it.
    this.reload().catch(() => undefined);
    return Promise.resolve();
  }

  /** Reads the file and applies it as one full mutation; reloads run one after the other. Resolves to the count. */
  reload(): Promise<number> {
    const next = this.queue.then(() => this.apply());
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async apply(): Promise<number> {
    if (!this.connection) throw new Error('the catalog has not connected the provider yet');
    const entities = this.file ? await readEntities(this.file) : [];
    const location = `file:${this.file ?? ''}`;
    await this.connection.applyMutation({
      type: 'full',
      entities: entities.map((entity) => ({
        locationKey: location,
        entity: {
          ...entity,
          metadata: {
            ...entity.metadata,
            annotations: { [ANNOTATION_LOCATION]: location, [ANNOTATION_ORIGIN_LOCATION]: location, ...entity.metadata.annotations },
          },
        },
      })),
    });
    return entities.length;
  }
}

async function readEntities(file: string): Promise<Entity[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const parsed = JSON.parse(text) as unknown;
  if (!Array.isArray(parsed)) throw new Error(`${file}: expected a JSON array of entities`);
  return parsed as Entity[];
}

export const catalogFileProviderModule = createBackendModule({
  pluginId: 'catalog',
  moduleId: 'local-stand-in-catalog-file',
  register(env) {
    env.registerInit({
      deps: { config: coreServices.rootConfig, processing: catalogProcessingExtensionPoint, router: coreServices.httpRouter, logger: coreServices.logger },
      init({ config, processing, router, logger }) {
        const file = config.getOptionalString('localStandIn.catalogFile');
        const provider = new CatalogFileProvider(file && resolve(file));
        processing.addEntityProvider(provider);
        const handler: Handler = (req, res, next) => {
          if (req.method !== 'POST' || req.path !== CATALOG_RELOAD_PATH) return next();
          provider.reload().then(
            (entities) => res.status(200).json({ entities }),
            (error: unknown) => {
              logger.error(`Reloading ${file ?? '(no catalog file)'} failed`, error as Error);
              res.status(500).json({ error: error instanceof Error ? error.message : String(error) });
            },
          );
        };
        router.use(handler);
        return Promise.resolve();
      },
    });
  },
});
