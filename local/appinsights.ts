/**
 * Local Application Insights ingestion endpoint: an HTTPS server that accepts what the exporter POSTs to
 * `/v2.1/track` (JSON arrays of envelopes, gzip or not) and keeps it for inspection. Point a connection string's
 * `IngestionEndpoint` at it and trust its certificate with NODE_EXTRA_CA_CERTS (read at process start).
 */
import { randomUUID } from 'node:crypto';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { generateLocalCertificate } from './tls';

export interface Envelope {
  name: string;
  time: string;
  iKey?: string;
  tags?: Record<string, string>;
  data?: { baseType?: string; baseData?: Record<string, unknown> };
}

export interface IngestionEndpoint {
  connectionString: string;
  certificatePath: string;
  envelopes: Envelope[];
  /** The Authorization header of each ingestion request (Entra-authenticated ingestion), never logged. */
  authorizations: Array<string | undefined>;
  close(): Promise<void>;
}

export async function startIngestionEndpoint(options: { port?: number } = {}): Promise<IngestionEndpoint> {
  const certificate = await generateLocalCertificate('appinsights-ingestion');
  const envelopes: Envelope[] = [];
  const authorizations: Array<string | undefined> = [];
  const server = https.createServer({ cert: certificate.cert, key: certificate.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || !/\/v2(\.1)?\/track/.test(req.url ?? '')) {
        res.writeHead(404).end();
        return;
      }
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      const text = body.toString('utf8').trim();
      const items = text.startsWith('[') ? (JSON.parse(text) as Envelope[]) : text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Envelope);
      envelopes.push(...items);
      authorizations.push(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ itemsReceived: items.length, itemsAccepted: items.length, errors: [] }));
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const base = `https://127.0.0.1:${port}/`;
  return {
    connectionString: `InstrumentationKey=${randomUUID()};IngestionEndpoint=${base};LiveEndpoint=${base}`,
    certificatePath: certificate.path,
    envelopes,
    authorizations,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
