/**
 * Local Cosmos DB stand-in: `@vercel/cosmosdb-server` over HTTPS with a certificate generated at start
 * (the package's bundled one expired in 2021). HTTPS matters: `@azure/cosmos` only sends Entra tokens
 * over TLS, so the managed-identity path needs it. The server keeps data in memory; on top of it, the data-plane
 * roles of infra/app/cosmos-roles.json are enforced for the principals the stack assigns (./cosmos-rbac.ts).
 */
import type * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { createHttpsServer } from '@vercel/cosmosdb-server';
import { generateLocalCertificate } from './tls';
import { listen } from './listen';
import { CosmosRbac, isBatchRequest, type CosmosDenial } from './cosmos-rbac';

/** What kind of operation an HTTP request to the emulator is, for counting. */
export type CosmosRequestKind = 'read' | 'query' | 'create' | 'upsert' | 'replace' | 'delete' | 'patch' | 'batch' | 'changefeed' | 'metadata';

export type CosmosRequestCounts = Record<CosmosRequestKind, number> & { total: number };

export interface CosmosEmulator {
  /** Requests served so far, by kind (benchmarks and request-count tests). */
  requests(): CosmosRequestCounts;
  /** The same, per container id (document requests only). */
  requestsByContainer(): Record<string, CosmosRequestCounts>;
  resetRequests(): void;
  /** e.g. https://127.0.0.1:PORT/ */
  endpoint: string;
  /** PEM of the self-signed certificate; trust it as a CA. */
  certificatePem: string;
  /** The same PEM on disk (for COSMOS_CA_CERT_PATH / NODE_EXTRA_CA_CERTS). */
  certificatePath: string;
  /** The certificate and key, for a fault proxy that should look like the emulator to its clients. */
  tls: { cert: string; key: string };
  /** Data-plane RBAC: assign principals to the role kinds of infra/app/cosmos-roles.json; see what was refused. */
  rbac: CosmosRbac;
  close(): Promise<void>;
}

export async function startCosmosEmulator(options: { port?: number; host?: string; onDenied?: (denial: CosmosDenial) => void } = {}): Promise<CosmosEmulator> {
  const host = options.host ?? '127.0.0.1';
  const certificate = await generateLocalCertificate('cosmos-emulator');
  const server = createHttpsServer({ cert: certificate.cert, key: certificate.key, keepAlive: true });
  // RBAC answers before the emulator sees a request it refuses.
  const rbac = new CosmosRbac(undefined, options.onDenied);
  const handlers = server.listeners('request') as Array<(req: http.IncomingMessage, res: http.ServerResponse) => void>;
  server.removeAllListeners('request');
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (rbac.refuse(req, res)) return;
    if (!rbac.needsBatchBody(req)) {
      for (const handler of handlers) handler.call(server, req, res);
      return;
    }
    // A batch is authorized per operation: read its body, then hand the emulator the same request with that body.
    void readAll(req).then(
      (body) => {
        let operations: unknown;
        try {
          operations = JSON.parse(body.toString('utf8'));
        } catch {
          operations = undefined;
        }
        if (rbac.refuseBatch(req, res, operations)) return;
        const replay = Object.assign(Readable.from([body]), { headers: req.headers, method: req.method, url: req.url, httpVersion: req.httpVersion, socket: req.socket });
        for (const handler of handlers) handler.call(server, replay as unknown as http.IncomingMessage, res);
      },
      () => res.destroy(),
    );
  });
  const counts = emptyCounts();
  let byContainer: Record<string, CosmosRequestCounts> = {};
  server.on('request', (req) => {
    const kind = classify(req.method ?? 'GET', req.url ?? '/', req.headers);
    counts[kind] += 1;
    counts.total += 1;
    const container = /\/colls\/([^/?]+)\/docs/.exec(req.url ?? '')?.[1];
    if (container !== undefined) {
      const id = decodeURIComponent(container);
      const forContainer = (byContainer[id] ??= emptyCounts());
      forContainer[kind] += 1;
      forContainer.total += 1;
    }
  });
  await listen(server, options.port ?? 0, host);
  const { port } = server.address() as AddressInfo;
  return {
    requests: () => ({ ...counts }),
    requestsByContainer: () => structuredClone(byContainer),
    resetRequests: () => {
      Object.assign(counts, emptyCounts());
      byContainer = {};
    },
    endpoint: `https://${host}:${port}/`,
    certificatePem: certificate.cert,
    certificatePath: certificate.path,
    tls: { cert: certificate.cert, key: certificate.key },
    rbac,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function emptyCounts(): CosmosRequestCounts {
  return { read: 0, query: 0, create: 0, upsert: 0, replace: 0, delete: 0, patch: 0, batch: 0, changefeed: 0, metadata: 0, total: 0 };
}

function classify(method: string, url: string, headers: Record<string, string | string[] | undefined>): CosmosRequestKind {
  const path = url.split('?')[0]!;
  const isDocs = /\/docs(\/[^/]+)?$/.test(path);
  if (!isDocs) return 'metadata';
  const single = /\/docs\/[^/]+$/.test(path);
  if (method === 'GET') return headers['a-im'] ? 'changefeed' : single ? 'read' : 'query';
  if (method === 'POST') {
    if (headers['x-ms-documentdb-isquery'] || headers['x-ms-cosmos-is-query-plan-request']) return 'query';
    if (isBatchRequest(headers)) return 'batch';
    return headers['x-ms-documentdb-is-upsert'] === 'True' || headers['x-ms-documentdb-is-upsert'] === 'true' ? 'upsert' : 'create';
  }
  if (method === 'PUT') return 'replace';
  if (method === 'PATCH') return 'patch';
  if (method === 'DELETE') return 'delete';
  return 'metadata';
}

function readAll(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}
