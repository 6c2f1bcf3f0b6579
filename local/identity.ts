/**
 * Local identity stand-in: an OIDC issuer (signing key, discovery document, JWKS) and a managed-identity
 * endpoint speaking the App Service protocol (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), so that
 * `DefaultAzureCredential` runs its real managed-identity code path and gets tokens this issuer signed.
 *
 * Minted tokens look like Entra v2 access tokens by default (`iss` = `<base>/<tenant>/v2.0`, `aud`, `sub`/`oid`, `tid`,
 * `azp`, `ver`, `roles`); other profiles mint Entra v1 access tokens, Entra ID tokens, or plain OpenID tokens (what a
 * Kubernetes service-account issuer or Okta signs), so a second instance can stand in for a federated issuer.
 * Admin endpoints (loopback only) let tests and the dev stack mint user tokens and script per-client
 * behaviour (wrong audience, already-expired tokens, short lifetimes, failures).
 */
import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { listen } from './listen';

const LOCAL_TENANT_ID = '72f988bf-0000-4000-8000-00000000cafe';
/** The client id (`azp`) of tokens minted for users and harnesses unless a test names another. */
const LOCAL_CLIENT_ID = 'local-client-app';

/** How the managed-identity endpoint treats one client id. */
export interface ClientBehaviour {
  /** App roles put into its tokens. */
  roles?: string[];
  /** Overrides the `aud` claim (the resource asked for is used otherwise). */
  audience?: string;
  /** Lifetime of the JWT (`exp`), default 3600 s. Negative = already expired when issued. */
  tokenLifetimeInSeconds?: number;
  /** What the endpoint reports as `expires_on`, when it should differ from the JWT's real `exp`. */
  reportedLifetimeInSeconds?: number;
  /** Answer this HTTP status instead of a token, `failCount` times (default: forever). */
  failWithStatus?: number;
  failCount?: number;
  /** Delay before answering. */
  delayInMs?: number;
  /**
   * The identity's object id (`oid`/`sub`) — another principal than the app's managed identity, e.g. Backstage's own,
   * which the Cosmos DB stand-in holds to its own roles. Default: {@link IdentityServer.managedIdentityObjectId}.
   */
  objectId?: string;
}

/**
 * The shape of a minted token: `entra-access` (v2: `ver` 2.0, `azp`), `entra-v1-access` (`ver` 1.0, `appid`),
 * `entra-id` (an ID token: `ver` 2.0, `nonce`, no `azp`), `plain` (only `iss`, `sub`, `aud` and the times, plus `claims`).
 */
export type TokenProfile = 'entra-access' | 'entra-v1-access' | 'entra-id' | 'plain';

export interface MintOptions {
  audience: string;
  subject?: string;
  profile?: TokenProfile;
  /** The calling application (`azp`, or `appid` in v1 tokens); a fixed local client by default. */
  clientId?: string;
  roles?: string[];
  lifetimeInSeconds?: number;
  issuer?: string;
  claims?: Record<string, unknown>;
  /** Sign with a key the JWKS does not publish (for "unknown key" tests). */
  foreignKey?: boolean;
}

export interface IdentityServer {
  /** e.g. http://127.0.0.1:PORT */
  baseUrl: string;
  /** The `iss` of every token: `<baseUrl>/<tenant>/v2.0`. */
  issuer: string;
  jwksUri: string;
  /** Value for `IDENTITY_ENDPOINT`. */
  identityEndpoint: string;
  /** Value for `IDENTITY_HEADER`. */
  identityHeader: string;
  /** Object id (`oid`/`sub`) of the managed identity. */
  managedIdentityObjectId: string;
  mint(options: MintOptions): Promise<string>;
  setClientBehaviour(clientId: string, behaviour: ClientBehaviour): void;
  /** Managed-identity token requests served so far, by client id ('' = system-assigned). */
  tokenRequests(clientId?: string): number;
  close(): Promise<void>;
}

export async function startIdentityServer(options: { port?: number; host?: string } = {}): Promise<IdentityServer> {
  const host = options.host ?? '127.0.0.1';
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const foreign = await generateKeyPair('RS256');
  const kid = randomUUID();
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const identityHeader = randomUUID();
  const managedIdentityObjectId = randomUUID();
  const behaviours = new Map<string, ClientBehaviour & { failuresServed?: number }>();
  const requestCounts = new Map<string, number>();

  let baseUrl = '';
  let issuer = '';

  const mint = async (o: MintOptions): Promise<string> => {
    const now = Math.floor(Date.now() / 1000);
    const lifetime = o.lifetimeInSeconds ?? 3600;
    const subject = o.subject ?? randomUUID();
    const clientId = o.clientId ?? LOCAL_CLIENT_ID;
    const profile = o.profile ?? 'entra-access';
    const shape: Record<string, unknown> =
      profile === 'plain'
        ? {}
        : {
            tid: LOCAL_TENANT_ID,
            oid: subject,
            ...(profile === 'entra-access' && { ver: '2.0', azp: clientId }),
            ...(profile === 'entra-v1-access' && { ver: '1.0', appid: clientId }),
            ...(profile === 'entra-id' && { ver: '2.0', nonce: randomUUID() }),
          };
    const jwt = new SignJWT({
      ...shape,
      ...(o.roles && { roles: o.roles }),
      ...o.claims,
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid })
      .setIssuer(o.issuer ?? issuer)
      .setAudience(o.audience)
      .setSubject(subject)
      .setIssuedAt(Math.min(now, now + lifetime) - 60)
      .setNotBefore(Math.min(now, now + lifetime) - 60)
      .setExpirationTime(now + lifetime);
    return jwt.sign(o.foreignKey ? foreign.privateKey : privateKey);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      sendJson(res, 500, { error: 'server_error', error_description: String(error) });
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', baseUrl);
    const path = url.pathname;
    const tenantPrefix = `/${LOCAL_TENANT_ID}`;

    if (req.method === 'GET' && path === `${tenantPrefix}/v2.0/.well-known/openid-configuration`) {
      return sendJson(res, 200, {
        issuer,
        jwks_uri: `${baseUrl}${tenantPrefix}/discovery/v2.0/keys`,
        token_endpoint: `${baseUrl}${tenantPrefix}/oauth2/v2.0/token`,
        id_token_signing_alg_values_supported: ['RS256'],
        response_types_supported: ['code', 'token'],
        subject_types_supported: ['pairwise'],
      });
    }
    if (req.method === 'GET' && path === `${tenantPrefix}/discovery/v2.0/keys`) {
      return sendJson(res, 200, { keys: [jwk] });
    }
    if (req.method === 'GET' && path === '/msi/token') {
      return managedIdentityToken(req, res, url);
    }
    if (req.method === 'POST' && path === '/admin/tokens') {
      const body = (await readJson(req)) as Partial<MintOptions>;
      if (typeof body.audience !== 'string') return sendJson(res, 400, { error: 'audience is required' });
      return sendJson(res, 200, { access_token: await mint(body as MintOptions), token_type: 'Bearer' });
    }
    const clientMatch = /^\/admin\/clients\/([^/]+)$/.exec(path);
    if (req.method === 'PUT' && clientMatch) {
      behaviours.set(decodeURIComponent(clientMatch[1]!), (await readJson(req)) as ClientBehaviour);
      return sendJson(res, 204, undefined);
    }
    if (req.method === 'GET' && path === '/admin/stats') {
      return sendJson(res, 200, { tokenRequests: Object.fromEntries(requestCounts) });
    }
    sendJson(res, 404, { error: 'not_found' });
  }

  async function managedIdentityToken(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    // The App Service protocol: secret header, api-version, resource, optional client_id.
    if (req.headers['x-identity-header'] !== identityHeader) {
      return sendJson(res, 401, { error: 'unauthorized', error_description: 'missing or wrong X-IDENTITY-HEADER' });
    }
    const resource = url.searchParams.get('resource');
    if (!url.searchParams.get('api-version') || !resource) {
      return sendJson(res, 400, { error: 'invalid_request', error_description: 'api-version and resource are required' });
    }
    const clientId = url.searchParams.get('client_id') ?? '';
    requestCounts.set(clientId, (requestCounts.get(clientId) ?? 0) + 1);
    const behaviour = behaviours.get(clientId) ?? {};
    if (behaviour.delayInMs) await new Promise((r) => setTimeout(r, behaviour.delayInMs));
    if (behaviour.failWithStatus) {
      const served = behaviour.failuresServed ?? 0;
      if (behaviour.failCount === undefined || served < behaviour.failCount) {
        behaviour.failuresServed = served + 1;
        return sendJson(res, behaviour.failWithStatus, { error: 'temporarily_unavailable', error_description: 'scripted failure' });
      }
    }
    const lifetime = behaviour.tokenLifetimeInSeconds ?? 3600;
    const reported = behaviour.reportedLifetimeInSeconds ?? lifetime;
    const accessToken = await mint({
      audience: behaviour.audience ?? resource,
      subject: behaviour.objectId ?? managedIdentityObjectId,
      lifetimeInSeconds: lifetime,
      ...(behaviour.roles && { roles: behaviour.roles }),
      clientId: clientId || managedIdentityObjectId,
      claims: { idtyp: 'app' },
    });
    sendJson(res, 200, {
      access_token: accessToken,
      expires_on: String(Math.floor(Date.now() / 1000) + reported),
      resource,
      token_type: 'Bearer',
      client_id: clientId || managedIdentityObjectId,
    });
  }

  // Idle keep-alive connections stay open for a minute (clients reuse them; the default 5 s races a busy client's pool).
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 61_000;
  await listen(server, options.port ?? 0, host);
  const { port } = server.address() as AddressInfo;
  baseUrl = `http://${host}:${port}`;
  issuer = `${baseUrl}/${LOCAL_TENANT_ID}/v2.0`;

  return {
    baseUrl,
    issuer,
    jwksUri: `${baseUrl}/${LOCAL_TENANT_ID}/discovery/v2.0/keys`,
    identityEndpoint: `${baseUrl}/msi/token`,
    identityHeader,
    managedIdentityObjectId,
    mint,
    setClientBehaviour: (clientId, behaviour) => behaviours.set(clientId, { ...behaviour }),
    tokenRequests: (clientId) =>
      clientId === undefined ? [...requestCounts.values()].reduce((a, b) => a + b, 0) : (requestCounts.get(clientId) ?? 0),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Talks to a running identity stand-in's admin endpoints from another process (tests, CLIs). */
export class IdentityAdminClient {
  constructor(readonly baseUrl: string) {}

  /**
   * One admin request on a connection of its own (no keep-alive pool): a pooled connection the server closed as idle
   * just as it was reused fails with "other side closed", and on a busy machine every idle connection of the pool can
   * be in that state at once. Returns the status and the parsed JSON body.
   */
  private send(path: string, init: { method?: string; body?: unknown } = {}): Promise<{ status: number; ok: boolean; json: unknown }> {
    const url = new URL(path, this.baseUrl);
    const body = init.body === undefined ? undefined : JSON.stringify(init.body);
    return new Promise((resolve, reject) => {
      const request = http.request(
        url,
        { method: init.method ?? 'GET', agent: false, headers: { connection: 'close', ...(body !== undefined && { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }) } },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', reject);
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = response.statusCode ?? 0;
            try {
              resolve({ status, ok: status >= 200 && status < 300, json: text ? (JSON.parse(text) as unknown) : undefined });
            } catch (error) {
              reject(error instanceof Error ? error : new Error(String(error)));
            }
          });
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  }

  async mint(options: MintOptions): Promise<string> {
    const response = await this.send('/admin/tokens', { method: 'POST', body: options });
    if (!response.ok) throw new Error(`identity stand-in refused to mint a token: ${response.status}`);
    return (response.json as { access_token: string }).access_token;
  }

  async setClientBehaviour(clientId: string, behaviour: ClientBehaviour): Promise<void> {
    const response = await this.send(`/admin/clients/${encodeURIComponent(clientId)}`, { method: 'PUT', body: behaviour });
    if (!response.ok) throw new Error(`identity stand-in refused the behaviour: ${response.status}`);
  }

  async tokenRequests(clientId: string): Promise<number> {
    const response = await this.send('/admin/stats');
    const stats = response.json as { tokenRequests: Record<string, number> };
    return stats.tokenRequests[clientId] ?? 0;
  }
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}
