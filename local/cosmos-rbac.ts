/**
 * Cosmos DB data-plane RBAC for the local stand-in, from the same roles file the Bicep deploys
 * (infra/app/cosmos-roles.json): a principal assigned a kind (`app`, `backstage`, `readers`) may perform only the
 * data actions that kind's roles grant, on their containers; anything else is answered as Cosmos DB answers it — 403,
 * substatus 5301, naming the principal, the action and the resource. Principals nobody assigned keep full access:
 * they stand in for the deployer and ARM, which create databases and containers (the data plane cannot).
 *
 * The principal is the token's `oid`, read from Cosmos's `authorization: type=aad&ver=1.0&sig=<token>` header. The
 * signature is not checked: the emulator trusts its local issuer, as it trusts everything else.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type * as http from 'node:http';
import { join } from 'node:path';

export interface CosmosRoleDefinition {
  name: string;
  principal: string;
  container: string;
  /** Relative to Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/. */
  dataActions: string[];
}

export interface CosmosDenial {
  principal: string;
  action: string;
  resource: string;
}

const ACCOUNT_ACTIONS = 'Microsoft.DocumentDB/databaseAccounts';
const CONTAINER_ACTIONS = `${ACCOUNT_ACTIONS}/sqlDatabases/containers`;
const ROLES_FILE = join(__dirname, '..', 'infra', 'app', 'cosmos-roles.json');

export function loadCosmosRoles(path = ROLES_FILE): CosmosRoleDefinition[] {
  return (JSON.parse(readFileSync(path, 'utf8')) as { roles: CosmosRoleDefinition[] }).roles;
}

/** The data action a request needs, and the resource it acts on (`dbs/<db>/colls/<container>`, or coarser). */
export function requiredAction(method: string, url: string, headers: http.IncomingHttpHeaders): { action: string; resource: string; container?: string } {
  const path = decodeURIComponent(url.split('?')[0]!).replace(/^\/+|\/+$/g, '');
  const docs = /^dbs\/([^/]+)\/colls\/([^/]+)\/docs(?:\/([^/]+))?$/.exec(path);
  if (!docs) {
    // Account, database and container metadata: reads need readMetadata; creating or changing them is not data-plane.
    const resource = path.split('/').slice(0, 4).join('/') || '/';
    if (method === 'GET' || method === 'HEAD') return { action: `${ACCOUNT_ACTIONS}/readMetadata`, resource };
    return { action: `${ACCOUNT_ACTIONS}/sqlDatabases/write`, resource };
  }
  const [, database, container, id] = docs;
  const resource = `dbs/${database}/colls/${container}`;
  const item = (verb: string) => ({ action: `${CONTAINER_ACTIONS}/items/${verb}`, resource, container: container! });
  const containerAction = (verb: string) => ({ action: `${CONTAINER_ACTIONS}/${verb}`, resource, container: container! });
  if (method === 'GET') {
    if (headers['a-im']) return containerAction('readChangeFeed');
    return id === undefined ? containerAction('executeQuery') : item('read');
  }
  if (method === 'POST') {
    if (headers['x-ms-documentdb-isquery'] || headers['x-ms-cosmos-is-query-plan-request']) return containerAction('executeQuery');
    const upsert = String(headers['x-ms-documentdb-is-upsert'] ?? '').toLowerCase() === 'true';
    return item(upsert ? 'upsert' : 'create');
  }
  if (method === 'PUT' || method === 'PATCH') return item('replace');
  if (method === 'DELETE') return item('delete');
  return item(method.toLowerCase());
}

/** A batch request's operation types and the item action each needs. */
const BATCH_VERBS: Readonly<Record<string, string>> = { Create: 'create', Upsert: 'upsert', Read: 'read', Replace: 'replace', Delete: 'delete', Patch: 'replace' };

/** A bulk or transactional batch request: one POST to a container's docs carrying many operations. */
export function isBatchRequest(headers: http.IncomingHttpHeaders): boolean {
  return headers['x-ms-cosmos-is-batch-request'] !== undefined || headers['x-ms-cosmos-batch-atomic'] !== undefined;
}

/** Principals of recent `authorization` headers: a client sends the same token for an hour, so decode it once. */
const principals = new Map<string, string | undefined>();

/** The `oid` of the bearer token in a Cosmos `authorization` header, if any. */
export function principalOf(headers: http.IncomingHttpHeaders): string | undefined {
  const raw = headers.authorization;
  if (typeof raw !== 'string') return undefined;
  if (principals.has(raw)) return principals.get(raw);
  const principal = decodePrincipal(raw);
  if (principals.size >= 256) principals.delete(principals.keys().next().value!);
  principals.set(raw, principal);
  return principal;
}

function decodePrincipal(raw: string): string | undefined {
  const signature = new URLSearchParams(decodeURIComponent(raw)).get('sig');
  const payload = signature?.split('.')[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { oid?: unknown };
    return typeof claims.oid === 'string' ? claims.oid : undefined;
  } catch {
    return undefined;
  }
}

export class CosmosRbac {
  private readonly kinds = new Map<string, string>();
  private readonly refused: CosmosDenial[] = [];

  constructor(
    private readonly roles: readonly CosmosRoleDefinition[] = loadCosmosRoles(),
    private readonly onDenied?: (denial: CosmosDenial) => void,
  ) {}

  /** Restricts the principal (`oid`) to the roles of `kind`. */
  assign(principalObjectId: string, kind: string): void {
    if (!this.roles.some((role) => role.principal === kind)) throw new Error(`No Cosmos DB role is defined for principal kind '${kind}'`);
    this.kinds.set(principalObjectId, kind);
  }

  /** Requests refused so far, oldest first. */
  denials(): CosmosDenial[] {
    return [...this.refused];
  }

  /**
   * Answers the request with Cosmos's 403 when its principal may not do it; returns whether it did. A batch request
   * (bulk or transactional) is held to the actions of all its operations — the strict reading, which a role that
   * passes here also passes on the service — and is left to {@link CosmosRbac.refuseBatch}, which needs its body.
   */
  refuse(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if (this.principalKind(req) === undefined || isBatchRequest(req.headers)) return false;
    return this.refuseUnless(req, res, [requiredAction(req.method ?? 'GET', req.url ?? '/', req.headers)]);
  }

  /** Whether a batch request's body must be read to authorize it (its principal is held to roles). */
  needsBatchBody(req: http.IncomingMessage): boolean {
    return isBatchRequest(req.headers) && this.principalKind(req) !== undefined;
  }

  /** {@link CosmosRbac.refuse} for a batch request: every operation's action must be granted (`Create` → `items/create`, …). */
  refuseBatch(req: http.IncomingMessage, res: http.ServerResponse, operations: unknown): boolean {
    const { resource, container } = requiredAction('POST', req.url ?? '/', {});
    const verbs = new Set((Array.isArray(operations) ? operations : []).map((o: { operationType?: unknown }) => BATCH_VERBS[String(o?.operationType)] ?? 'create'));
    return this.refuseUnless(req, res, [...verbs].map((verb) => ({ action: `${CONTAINER_ACTIONS}/items/${verb}`, resource, ...(container !== undefined && { container }) })));
  }

  private principalKind(req: http.IncomingMessage): string | undefined {
    const principal = principalOf(req.headers);
    return principal === undefined ? undefined : this.kinds.get(principal);
  }

  private refuseUnless(req: http.IncomingMessage, res: http.ServerResponse, needed: ReadonlyArray<{ action: string; resource: string; container?: string }>): boolean {
    const principal = principalOf(req.headers)!;
    const kind = this.principalKind(req)!;
    const roles = this.roles.filter((role) => role.principal === kind);
    const missing = needed.find(({ action, container }) =>
      action.endsWith('/readMetadata')
        ? roles.length === 0
        : container === undefined || !roles.some((role) => role.container === container && role.dataActions.some((a) => `${CONTAINER_ACTIONS}/${a}` === action)),
    );
    if (!missing) return false;
    const { action, resource } = missing;
    const denial = { principal, action, resource };
    this.refused.push(denial);
    this.onDenied?.(denial);
    req.resume();
    res.writeHead(403, { 'content-type': 'application/json', 'x-ms-substatus': '5301', 'x-ms-activity-id': randomUUID() });
    res.end(
      JSON.stringify({
        code: 'Forbidden',
        message: `Request blocked by Auth local : Request is blocked because principal [${principal}] does not have required RBAC permissions to perform action [${action}] on resource [${resource}]. Learn more: https://aka.ms/cosmos-native-rbac.`,
      }),
    );
    return true;
  }
}
