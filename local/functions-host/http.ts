/**
 * Serves HTTP functions the way the Functions host does: routes under `/api` with `{param}` templates, the
 * request turned into an `HttpRequest` (method, URL, headers, query, route params, raw body), the function's
 * `HttpResponseInit` written back. A development tool; the real host adds its own front end (limits, TLS, keys).
 */
import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { listen } from '../listen';

export interface HttpRoute {
  functionName: string;
  /** Without the `/api` prefix, e.g. `graph/{kind}/{namespace}/{name}`. */
  route: string;
  methods: string[];
  handler: (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>;
}

export interface HttpHost {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startHttpHost(options: {
  routes: HttpRoute[];
  port?: number;
  host?: string;
  routePrefix?: string;
  logHandler?: (level: string, ...args: unknown[]) => void;
  /** Largest body accepted; by default FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, as the host reads it, or its 100 MB. */
  maxBodyBytes?: number;
}): Promise<HttpHost> {
  const prefix = `/${options.routePrefix ?? 'api'}`;
  const compiled = options.routes.map((route) => ({ ...route, pattern: compile(`${prefix}/${route.route}`) }));
  const fromSetting = Number(process.env.FUNCTIONS_REQUEST_BODY_SIZE_LIMIT);
  const maxBody = options.maxBodyBytes ?? (Number.isSafeInteger(fromSetting) && fromSetting > 0 ? fromSetting : 100 * 1024 * 1024);

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
    const matches = compiled.map((r) => ({ route: r, params: r.pattern(url.pathname) })).filter((m) => m.params !== undefined);
    const match = matches.find((m) => m.route.methods.includes(req.method ?? 'GET'));
    if (!match) {
      res.writeHead(matches.length > 0 ? 405 : 404).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBody) {
        res.writeHead(413).end();
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const [key, value] of Object.entries(req.headers)) if (value !== undefined) headers[key] = Array.isArray(value) ? value.join(', ') : value;
      const request = new HttpRequest({
        method: req.method ?? 'GET',
        url: url.href,
        headers,
        query: Object.fromEntries(url.searchParams),
        params: match.params!,
        body: { bytes: Buffer.concat(chunks) },
      });
      const context = new InvocationContext({
        invocationId: randomUUID(),
        functionName: match.route.functionName,
        ...(options.logHandler && { logHandler: options.logHandler }),
      });
      match.route
        .handler(request, context)
        .then((response) => {
          const body = response.jsonBody !== undefined ? JSON.stringify(response.jsonBody) : responseBody(response.body);
          res.writeHead(response.status ?? 200, (response.headers ?? {}) as http.OutgoingHttpHeaders);
          res.end(body);
        })
        .catch((error: unknown) => {
          context.error(`Function ${match.route.functionName} failed: ${String(error)}`);
          if (!res.headersSent) res.writeHead(500).end();
        });
    });
  });
  await listen(server, options.port ?? 0, options.host ?? '127.0.0.1');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * What the host writes for a response `body`: the app's functions answer strings (functions/lib/http.ts); bytes are
 * written as they are. Streams, blobs and form data would need the host's own conversions, which this host lacks.
 */
function responseBody(body: HttpResponseInit['body']): string | Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new Error(`the dev host does not write a ${body.constructor.name} response body`);
}

/** `/api/graph/{kind}/{name}` → a matcher returning the decoded params. */
function compile(template: string): (path: string) => Record<string, string> | undefined {
  const names: string[] = [];
  const source = template
    .split('/')
    .map((segment) => {
      const param = /^\{(\w+)\??\}$/.exec(segment);
      if (param) {
        names.push(param[1]!);
        return '([^/]+)';
      }
      return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  const regex = new RegExp(`^${source}/?$`, 'i');
  return (path) => {
    const m = regex.exec(path);
    if (!m) return undefined;
    try {
      return Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(m[i + 1]!)]));
    } catch {
      return undefined;
    }
  };
}
