/**
 * The history, read (docs/history.md), read role:
 * - `GET /api/entities/{kind}/{namespace}/{name}/history` — the entity's versions, newest first, a page at a time.
 *   `?since=` an ISO 8601 time (versions synced at or after it), `?include=` what each record carries besides its
 *   facts (`diff` by default; `entity`, `diff,entity`, or `none`), `?pageSize=` 1–100 (default 20), `?continuation=`
 *   the previous page's token. An entity without history answers an empty page (it may be outside the sync scope, or
 *   older than the retention).
 * - `GET /api/changes` — the change log: every record of every entity as it is recorded, from `?after=` a cursor
 *   (the previous page's), else `?since=` a time, else the beginning; `?include=` (`entity` by default), `?pageSize=`
 *   1–1000 (default 100). Every page answers the cursor to go on from, also an empty one (nothing new yet).
 */
import { z } from 'zod';
import type { Endpoints } from '../http/endpoint';
import { json, type ApiRequest, type ApiResponse } from '../http/problem';
import { entityParams, parseQuery, queryInteger } from '../http/request';
import type { HistoryStore } from '../history/history-store';
import type { HistoryRecord } from '../history/record';
import { withoutSystemProperties, type SystemProperties } from '../model/documents';
import { formatEntityRef, toDocumentId } from '../model/refs';
import { CosmosOperationError, InvalidRequestError } from '../platform/errors';
import type { OperationOptions } from '../platform/options';

export interface HistoryApiOptions {
  endpoints: Endpoints;
  store: HistoryStore;
  roles: { read: string; admin: string };
}

const INCLUDE = ['diff', 'entity'] as const;
type Include = (typeof INCLUDE)[number];

const isoTime = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/, 'must be an ISO 8601 time with a zone, e.g. 2026-12-01T00:00:00Z')
  .refine((value) => !Number.isNaN(Date.parse(value)), 'must be a real time')
  .transform((value) => new Date(value).toISOString());

const includeParam = z
    .string()
    .transform((value, ctx) => {
      if (value === 'none') return [] as Include[];
      const parts = value.split(',').map((p) => p.trim());
      const unknown = parts.filter((p) => !(INCLUDE as readonly string[]).includes(p));
      if (unknown.length > 0 || parts.length === 0) {
        ctx.addIssue({ code: 'custom', message: `must be diff, entity, diff,entity or none` });
        return z.NEVER;
      }
      return [...new Set(parts)] as Include[];
    });

const historyQuery = z.object({
  since: isoTime.optional(),
  include: includeParam.optional(),
  pageSize: queryInteger(1, 100).optional(),
  continuation: z.string().min(1).max(4096).optional(),
});

const changesQuery = z
  .object({
    after: z.string().min(1).max(16_384).optional(),
    since: isoTime.optional(),
    include: includeParam.optional(),
    pageSize: queryInteger(1, 1000).optional(),
  })
  .refine((q) => !(q.after && q.since), { message: 'give either a cursor or a time to start from, not both', path: ['since'] });

/** A record as the API answers it: its facts, and its diff and entity when asked for. */
type HistoryItem = Omit<HistoryRecord, 'entityId' | 'entityRef' | 'kind' | 'namespace' | 'name' | 'ttl' | 'diff' | 'entity'> & Partial<Pick<HistoryRecord, 'diff' | 'entity'>>;

/** A record in the change log: also which entity it is of. */
type ChangeItem = HistoryItem & Pick<HistoryRecord, 'entityRef' | 'kind' | 'namespace' | 'name'>;

export class HistoryApi {
  constructor(private readonly options: HistoryApiOptions) {}

  async get(request: ApiRequest, options: OperationOptions = {}): Promise<ApiResponse> {
    const { endpoints, store, roles } = this.options;
    return endpoints.authorized(request, options, [roles.read, roles.admin], async (call) => {
      const name = entityParams(request);
      const query = parseQuery(request, historyQuery);
      const include = new Set<Include>(query.include ?? ['diff']);
      const continuation = query.continuation === undefined ? undefined : parseToken('continuation', query.continuation);
      const page = await withCallerToken('continuation', continuation, () =>
        store.page(toDocumentId(name), { pageSize: query.pageSize ?? 20, ...(query.since && { since: query.since }), ...(continuation && { continuation }) }, call),
      );
      const items = page.records.map((record) => item(record, include));
      return json(200, {
        entityRef: formatEntityRef(name),
        items,
        ...(page.continuation && { continuation: Buffer.from(page.continuation, 'utf8').toString('base64url') }),
      });
    });
  }

  async changes(request: ApiRequest, options: OperationOptions = {}): Promise<ApiResponse> {
    const { endpoints, store, roles } = this.options;
    return endpoints.authorized(request, options, [roles.read, roles.admin], async (call) => {
      const query = parseQuery(request, changesQuery);
      const include = new Set<Include>(query.include ?? ['entity']);
      const after = query.after === undefined ? undefined : feedOf(parseToken('after', query.after));
      const page = await withCallerToken('after', after, () =>
        store.changes({ pageSize: query.pageSize ?? 100, ...(after && { continuation: after }), ...(query.since && { since: query.since }) }, call),
      );
      const items: ChangeItem[] = page.records.map((record) => ({
        entityRef: record.entityRef,
        kind: record.kind,
        namespace: record.namespace,
        name: record.name,
        ...item(record, include),
      }));
      return json(200, { items, cursor: encodeCursor(page.continuation) });
    });
  }
}

/** The change log's cursor: Cosmos DB's change-feed continuation, versioned, base64url (opaque to callers). */
function encodeCursor(continuation: string): string {
  return Buffer.from(JSON.stringify({ v: 1, feed: continuation }), 'utf8').toString('base64url');
}

/** The continuation inside a cursor {@link encodeCursor} made. */
function feedOf(cursor: string): string {
  const { v, feed } = (JSON.parse(cursor) ?? {}) as { v?: unknown; feed?: unknown };
  if (v !== 1 || typeof feed !== 'string' || feed.length === 0) throw notOurs('after');
  return feed;
}

/** The JSON text of a token this API gave out in `parameter` (base64url of Cosmos DB's own token, or of a cursor). */
function parseToken(parameter: string, value: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(value)) throw notOurs(parameter);
  const text = Buffer.from(value, 'base64url').toString('utf8');
  try {
    JSON.parse(text);
  } catch {
    throw notOurs(parameter);
  }
  return text;
}

/** Reads with a token the caller handed back: Cosmos DB refusing it (400) is the caller's mistake, not ours. */
async function withCallerToken<T>(parameter: string, token: string | undefined, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (token && error instanceof CosmosOperationError && error.statusCode === 400) throw notOurs(parameter, error);
    throw error;
  }
}

function notOurs(parameter: string, cause?: unknown): InvalidRequestError {
  return new InvalidRequestError(`'${parameter}' is not a ${parameter === 'after' ? 'cursor' : 'token'} this endpoint gave out`, cause === undefined ? undefined : { cause });
}

function item(record: HistoryRecord, include: ReadonlySet<Include>): HistoryItem {
  const { entityId: _e, entityRef: _r, kind: _k, namespace: _n, name: _m, ttl: _t, diff, entity, ...facts } = withoutSystemProperties(record as HistoryRecord & SystemProperties);
  return { ...facts, ...(include.has('diff') && diff && { diff }), ...(include.has('entity') && entity && { entity }) };
}
