/**
 * This repository's own catalog files over HTTP, so the local Backstage registers `catalog-info.yaml` as a `url`
 * location — the way a catalog reads it from a Git host — and resolves its `$text: ./docs/openapi.yaml` relative to it
 * (Backstage resolves placeholders only against URLs, never against `file` locations). Read-only, loopback only, and
 * only the files in {@link CATALOG_FILES}.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { listen } from './listen';

export const REPOSITORY_ROOT = resolve(__dirname, '..');

/** What may be served: the descriptor, the contract it points at, and the deployment facts when azd wrote them. */
export const CATALOG_FILES: readonly string[] = ['catalog-info.yaml', 'docs/openapi.yaml', 'catalog-info.deployment.yaml'];

export interface CatalogFileServer {
  /** `http://127.0.0.1:<port>` */
  baseUrl: string;
  /** The `host:port` Backstage must be allowed to read (`backend.reading.allow`). */
  host: string;
  /** The URL of a served file, e.g. `catalog-info.yaml`. */
  url(file: string): string;
  stop(): Promise<void>;
}

export async function startCatalogFileServer(options: { port?: number; root?: string } = {}): Promise<CatalogFileServer> {
  const root = options.root ?? REPOSITORY_ROOT;
  const server: Server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://localhost').pathname).replace(/^\/+/, '');
    if (request.method !== 'GET' || !CATALOG_FILES.includes(path)) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    readFile(join(root, path)).then(
      (content) => response.writeHead(200, { 'content-type': path.endsWith('.yaml') ? 'application/yaml' : 'application/octet-stream' }).end(content),
      () => response.writeHead(404, { 'content-type': 'text/plain' }).end('not found'),
    );
  });
  await listen(server, options.port ?? 0, '127.0.0.1');
  const { port } = server.address() as AddressInfo;
  const baseUrl = `http://127.0.0.1:${port}`;
  return {
    baseUrl,
    host: `127.0.0.1:${port}`,
    url: (file) => `${baseUrl}/${file}`,
    stop: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
