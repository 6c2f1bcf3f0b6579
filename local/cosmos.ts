/**
 * Local Cosmos DB stand-in: `@vercel/cosmosdb-server` over HTTPS with a certificate generated at start
 * (the package's bundled one expired in 2021). HTTPS matters: `@azure/cosmos` only sends Entra tokens
 * over TLS, so the managed-identity path needs it. The server keeps data in memory and checks no auth.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHttpsServer } from '@vercel/cosmosdb-server';
import { generate } from 'selfsigned';

export interface CosmosEmulator {
  /** e.g. https://127.0.0.1:PORT/ */
  endpoint: string;
  /** PEM of the self-signed certificate; trust it as a CA. */
  certificatePem: string;
  /** The same PEM on disk (for COSMOS_CA_CERT_PATH / NODE_EXTRA_CA_CERTS). */
  certificatePath: string;
  close(): Promise<void>;
}

export async function startCosmosEmulator(options: { port?: number; host?: string } = {}): Promise<CosmosEmulator> {
  const host = options.host ?? '127.0.0.1';
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 7 * 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  const server = createHttpsServer({ cert: pems.cert, key: pems.private, keepAlive: true } as never);
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, host, resolve));
  const { port } = server.address() as AddressInfo;
  const dir = mkdtempSync(join(tmpdir(), 'cosmos-emulator-'));
  const certificatePath = join(dir, 'cert.pem');
  writeFileSync(certificatePath, pems.cert);
  return {
    endpoint: `https://${host}:${port}/`,
    certificatePem: pems.cert,
    certificatePath,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
