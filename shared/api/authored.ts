/**
 * `GET`, `PUT` and `DELETE /api/authored/{kind}/{namespace}/{name}` — the authoring API (role `Catalog.Write`): producers
 * that should not hold Cosmos DB rights write entities into the `authored` container, which the Backstage entity
 * provider turns into catalog entities. Every write is validated first (validate.ts) and refused with a problem that
 * changes nothing: invalid entity 400, policy 403, an entity the catalog has from another source 409, a stale
 * `If-Match` 412. See docs/authoring.md.
 */
import { formatEntityRef, toDocumentId } from '../model/refs';
import type { AuthoredDocument } from '../model/documents';
import { withoutSystemProperties } from '../model/documents';
import type { EndpointCall, Endpoints } from '../http/endpoint';
import { json, problem, ProblemType, readBodyUpTo, strongEtag, type ApiRequest, type ApiResponse } from '../http/problem';
import { entityParams } from '../http/request';
import { CosmosOperationError, EntityOwnedElsewhereError, NotFoundError, PreconditionFailedError } from '../platform/errors';
import { abortOnly, type OperationOptions } from '../platform/options';
import type { CatalogReader } from '../sync/catalog-reader';
import type { AuthoredStore, StoredAuthoredDocument } from '../authored/authored-store';
import { validateAuthoredEntity, type AuthoringPolicy } from '../authored/validate';

export interface AuthoredApiOptions {
  endpoints: Endpoints;
  store: AuthoredStore;
  catalog: CatalogReader;
  policy: AuthoringPolicy;
  roles: { write: string };
  /** The `backstage.io/managed-by-location` the entity provider gives authored entities ({@link authoredLocation}). */
  location: string;
  tombstoneTtlInSeconds: number;
  now?: () => Date;
}

/** The location of authored entities in the catalog: `cosmosdb:<account host>/<database>/<container>`. */
export function authoredLocation(accountEndpoint: string, database: string, container: string): string {
  return `cosmosdb:${new URL(accountEndpoint).host}/${database}/${container}`;
}

const MEDIA_TYPE = 'application/json';

export class AuthoredApi {
  constructor(private readonly options: AuthoredApiOptions) {}

  async get(request: ApiRequest, options: OperationOptions = {}): Promise<ApiResponse> {
    return this.options.endpoints.authorized(request, options, [this.options.roles.write], async (call) => {
      const { doc, etag } = await this.live(request, call);
      if (request.headers.get('if-none-match') === etag) return { status: 304, headers: { etag } };
      return json(200, withoutSystemProperties(doc), { etag });
    });
  }

  async put(request: ApiRequest, options: OperationOptions = {}): Promise<ApiResponse> {
    const { endpoints, policy, roles, store, catalog } = this.options;
    return endpoints.authorized(request, options, [roles.write], async (call) => {
      const name = entityParams(request);
      const mediaType = (request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (mediaType !== MEDIA_TYPE) {
        return problem(415, ProblemType.unsupportedMediaType, 'Unsupported media type', `Content-Type must be ${MEDIA_TYPE}`, {}, { accept: MEDIA_TYPE });
      }
      const raw = await readBodyUpTo(request, policy.maxBytes);
      if (!raw) return problem(413, ProblemType.payloadTooLarge, 'Entity too large', `An authored entity may be at most ${policy.maxBytes} bytes (AUTHORED_MAX_BYTES)`);
      let body: unknown;
      try {
        body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
      } catch {
        return problem(400, ProblemType.invalidJson, 'Invalid JSON', 'The body must be UTF-8 JSON: a Backstage entity');
      }
      const entity = await validateAuthoredEntity(body, name, policy);

      const id = toDocumentId(name);
      const current = await store.read(id, call);
      const live = current && !current.deleted ? current : undefined;
      this.checkPreconditions(request, live);
      const entityRef = formatEntityRef({ kind: entity.kind, namespace: entity.metadata.namespace ?? 'default', name: entity.metadata.name });
      // Never a silent take-over: an entity the catalog has from another source stays that source's.
      const existing = await catalog.getEntityByRef(entityRef, abortOnly(call));
      const owner = existing?.metadata.annotations?.['backstage.io/managed-by-location'];
      if (existing && owner !== this.options.location) throw new EntityOwnedElsewhereError(entityRef, owner ?? 'an unknown location');

      const doc: AuthoredDocument = {
        id,
        entityRef,
        kind: entity.kind,
        namespace: entity.metadata.namespace ?? 'default',
        name: entity.metadata.name,
        entity,
        authoredBy: authoredBy(call),
        updatedAt: this.now().toISOString(),
      };
      const etag = await this.write(doc, current, call);
      call.logger.info('Authored entity written', { entityRef, created: !live, subject: doc.authoredBy.subject });
      return json(live ? 200 : 201, doc, { etag: strongEtag(etag) });
    });
  }

  async delete(request: ApiRequest, options: OperationOptions = {}): Promise<ApiResponse> {
    return this.options.endpoints.authorized(request, options, [this.options.roles.write], async (call) => {
      const { doc } = await this.live(request, call);
      this.checkPreconditions(request, doc);
      const { entity: _withdrawn, ...identity } = withoutSystemProperties(doc);
      const deleted: AuthoredDocument = { ...identity, authoredBy: authoredBy(call), updatedAt: this.now().toISOString(), deleted: true, ttl: this.options.tombstoneTtlInSeconds };
      await this.write(deleted, doc, call);
      call.logger.info('Authored entity deleted', { entityRef: doc.entityRef, subject: deleted.authoredBy.subject });
      return { status: 204, headers: { 'cache-control': 'no-store' } };
    });
  }

  /** The live document the path names, or a 404. */
  private async live(request: ApiRequest, call: EndpointCall): Promise<{ doc: StoredAuthoredDocument; etag: string }> {
    const name = entityParams(request);
    const doc = await this.options.store.read(toDocumentId(name), call);
    if (!doc || doc.deleted) throw new NotFoundError(`No authored entity ${formatEntityRef(name)}`);
    return { doc, etag: strongEtag(doc._etag!) };
  }

  /** `If-Match` (a version, or `*` for "exists") and `If-None-Match: *` ("does not exist yet"). */
  private checkPreconditions(request: ApiRequest, live: StoredAuthoredDocument | undefined): void {
    const ifMatch = request.headers.get('if-match');
    if (ifMatch !== null) {
      const current = live ? strongEtag(live._etag!) : undefined;
      const ok = current !== undefined && ifMatch.split(',').some((tag) => tag.trim() === '*' || tag.trim() === current);
      if (!ok) throw new PreconditionFailedError(live ? 'If-Match names a version this entity no longer has; read it again' : 'If-Match was given but there is no such authored entity');
    }
    if (request.headers.get('if-none-match')?.trim() === '*' && live) throw new PreconditionFailedError('If-None-Match: * but the authored entity exists');
  }

  /** Creates, or replaces the version that was read; another writer in between is a 412. */
  private async write(doc: AuthoredDocument, current: StoredAuthoredDocument | undefined, call: EndpointCall): Promise<string> {
    try {
      return current ? await this.options.store.replace(doc, current._etag!, call) : await this.options.store.create(doc, call);
    } catch (error) {
      if (error instanceof CosmosOperationError && (error.statusCode === 409 || error.statusCode === 412)) {
        throw new PreconditionFailedError('Another write to this entity happened at the same time; read it again');
      }
      throw error;
    }
  }

  private now(): Date {
    return (this.options.now ?? (() => new Date()))();
  }
}

function authoredBy(call: EndpointCall): AuthoredDocument['authoredBy'] {
  const { subject, appId, issuer } = call.principal;
  return { subject, ...(appId && { clientId: appId }), issuer };
}
