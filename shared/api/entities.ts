/**
 * `GET /api/entities/{kind}/{namespace}/{name}` — read role: the mirror document with its `ETag`; `304` for a
 * matching `If-None-Match`; `404` when the mirror has no such entity or only its tombstone.
 */
import type { Endpoints } from '../http/endpoint';
import { json, problem, ProblemType, strongEtag, type ApiRequest, type ApiResponse } from '../http/problem';
import { entityParams } from '../http/request';
import { isTombstone, withoutSystemProperties } from '../model/documents';
import { formatEntityRef, toDocumentId } from '../model/refs';
import type { OperationOptions } from '../platform/options';
import type { EntityStore } from '../sync/entity-store';

export interface EntitiesApiOptions {
  endpoints: Endpoints;
  store: EntityStore;
  roles: { read: string; admin: string };
}

export class EntitiesApi {
  constructor(private readonly options: EntitiesApiOptions) {}

  async get(request: ApiRequest, options: OperationOptions = {}): Promise<ApiResponse> {
    const { endpoints, store, roles } = this.options;
    return endpoints.authorized(request, options, [roles.read, roles.admin], async (call) => {
      const name = entityParams(request);
      const doc = await store.read(toDocumentId(name), call);
      if (!doc || isTombstone(doc)) {
        return problem(404, ProblemType.notFound, 'Entity not found', `The mirror has no entity ${formatEntityRef(name)}`);
      }
      const etag = doc._etag ? strongEtag(doc._etag) : undefined;
      if (etag && request.headers.get('if-none-match') === etag) return { status: 304, headers: { etag } };
      return json(200, withoutSystemProperties(doc), etag ? { etag } : {});
    });
  }
}
