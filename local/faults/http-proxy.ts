/**
 * A scriptable HTTP(S) fault proxy: forwards to a target — the Backstage stand-in, the Cosmos emulator, the identity
 * endpoint — and, on cue, answers with an error status instead, resets the connection, hangs, or adds latency.
 * Tests put it between the service and a stand-in and point the service's setting at {@link FaultProxy.url}.
 *
 * For an HTTPS target (the Cosmos emulator) the proxy serves HTTPS itself with the certificate it is given — the
 * emulator's own, so clients that trust the emulator trust the proxy — and trusts `targetCa` upstream.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { listen } from '../listen';

export interface Fault {
  /** Answer with this status (and optional headers/body) instead of forwarding. */
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Never answer (the client's timeout must fire). */
  hang?: boolean;
  /** Destroy the connection without answering (ECONNRESET at the client); the target never sees the request. */
  reset?: boolean;
  /** Forward the request, then destroy the connection instead of relaying the answer: the target acted, the client
   *  cannot know (an ambiguous write). */
  dropResponse?: boolean;
  /** Delay before forwarding or answering. */
  delayInMs?: number;
  /**
   * A Cosmos DB batch request (its body a JSON array of operations): its first `count` operations — all but the last
   * one at most — are not forwarded and are answered 429 in the batch's answer, each with `retryAfterMs`, as Cosmos
   * answers the operations of a batch it throttled; the others are forwarded and answered by the target.
   */
  throttleOperations?: { count: number; retryAfterMs: number };
}

/** Which requests a scripted fault applies to. */
export interface FaultMatch {
  /** Tested against the request path and query. */
  path?: RegExp;
  /** Upper-case HTTP methods. */
  methods?: string[];
  /**
   * Request headers (lower-case names): each must match its pattern, or be absent where the pattern is null — e.g.
   * `{ 'x-ms-documentdb-isquery': null }` for Cosmos DB writes, which share their path with queries.
   */
  headers?: Record<string, RegExp | null>;
}

export interface FaultProxy {
  url: string;
  /** Requests seen (forwarded or faulted). */
  readonly requests: number;
  /** Faults injected so far (requests answered, reset, hung or delayed by the script). */
  readonly faultsInjected: number;
  /** Responses by status code: the target's answers, and the injected ones. */
  statuses(): Record<number, number>;
  /** The next `count` requests (matching `match`, if given) get `fault`. */
  failNext(count: number, fault: Fault, match?: RegExp | FaultMatch): void;
  /** Every matching request gets `fault` until {@link FaultProxy.heal}. */
  failAll(fault: Fault, match?: RegExp | FaultMatch): void;
  /** Drops every scripted fault; hanging requests stay hung until their clients give up. */
  heal(): void;
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  port?: number;
  /** Serve HTTPS with this certificate (PEM) and key. */
  tls?: { cert: string; key: string };
  /** CA (PEM) to trust for an HTTPS target. */
  targetCa?: string;
}

interface ScriptEntry {
  remaining: number;
  fault: Fault;
  match: FaultMatch;
}

export async function startFaultProxy(target: string, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const targetUrl = new URL(target);
  const secureTarget = targetUrl.protocol === 'https:';
  const upstreamAgent = secureTarget
    ? new https.Agent({ keepAlive: true, ...(options.targetCa && { ca: options.targetCa }) })
    : new http.Agent({ keepAlive: true });
  const script: ScriptEntry[] = [];
  let requests = 0;
  let faultsInjected = 0;
  const statusCounts: Record<number, number> = {};
  const count = (status: number) => {
    statusCounts[status] = (statusCounts[status] ?? 0) + 1;
  };
  const hanging = new Set<http.ServerResponse>();
  const sockets = new Set<Socket>();

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    requests += 1;
    const entry = script.find((s) => s.remaining > 0 && matches(s.match, req));
    if (entry) {
      entry.remaining -= 1;
      faultsInjected += 1;
    }
    const fault = entry?.fault;
    const act = () => {
      if (fault?.hang) {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      if (fault?.reset) {
        req.socket.destroy();
        return;
      }
      if (fault?.status) {
        req.resume();
        count(fault.status);
        res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
        res.end(fault.body ?? JSON.stringify({ code: 'InjectedFault', message: `injected ${fault.status}` }));
        return;
      }
      if (fault?.throttleOperations) {
        throttleBatch(req, res, fault.throttleOperations);
        return;
      }
      const upstream = toTarget(req, res, {}, (answer) => {
        count(answer.statusCode ?? 502);
        if (fault?.dropResponse) {
          answer.resume();
          answer.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      req.pipe(upstream);
    };
    if (fault?.delayInMs) setTimeout(act, fault.delayInMs);
    else act();
  };

  /** A request to the target like `req` (its headers, with `headers` over them); a failure answers 502. */
  const toTarget = (req: http.IncomingMessage, res: http.ServerResponse, headers: http.OutgoingHttpHeaders, onAnswer: (answer: http.IncomingMessage) => void) => {
    const request = secureTarget ? https.request : http.request;
    const upstream = request(
      { hostname: targetUrl.hostname, port: targetUrl.port, method: req.method, path: req.url, headers: { ...req.headers, host: targetUrl.host, ...headers }, agent: upstreamAgent },
      onAnswer,
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    return upstream;
  };

  /** Forwards a batch without its first operations, then answers them 429 in front of the target's answers. */
  const throttleBatch = (req: http.IncomingMessage, res: http.ServerResponse, throttle: { count: number; retryAfterMs: number }) => {
    void readBody(req).then((body) => {
      const operations = JSON.parse(body.toString('utf8')) as unknown[];
      const throttled = Math.min(throttle.count, operations.length - 1);
      const forwarded = Buffer.from(JSON.stringify(operations.slice(throttled)));
      const upstream = toTarget(req, res, { 'content-length': String(forwarded.length) }, (answer) => {
        void readBody(answer).then((answered) => {
          const status = answer.statusCode ?? 502;
          count(status);
          let results: unknown[];
          try {
            results = JSON.parse(answered.toString('utf8')) as unknown[];
          } catch {
            res.writeHead(status, answer.headers).end(answered);
            return;
          }
          const merged = Buffer.from(
            JSON.stringify([...Array.from({ length: throttled }, () => ({ statusCode: 429, subStatusCode: 3200, requestCharge: 0, retryAfterMilliseconds: throttle.retryAfterMs })), ...results]),
          );
          res.writeHead(status === 200 ? 207 : status, { ...answer.headers, 'content-length': String(merged.length) }).end(merged);
        });
      });
      upstream.end(forwarded);
    });
  };

  const server = options.tls ? https.createServer({ cert: options.tls.cert, key: options.tls.key, keepAlive: true }, onRequest) : http.createServer(onRequest);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await listen(server, options.port ?? 0, '127.0.0.1');
  const { port } = server.address() as AddressInfo;
  const add = (remaining: number, fault: Fault, match?: RegExp | FaultMatch) =>
    script.push({ remaining, fault, match: match instanceof RegExp ? { path: match } : (match ?? {}) });
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}${options.tls ? '/' : ''}`,
    get requests() {
      return requests;
    },
    get faultsInjected() {
      return faultsInjected;
    },
    statuses: () => ({ ...statusCounts }),
    failNext: (count, fault, match) => add(count, fault, match),
    failAll: (fault, match) => add(Number.POSITIVE_INFINITY, fault, match),
    heal: () => {
      script.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of hanging) res.destroy();
        for (const socket of sockets) socket.destroy();
        upstreamAgent.destroy();
        server.close(() => resolve());
      }),
  };
}

function readBody(stream: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

function matches(match: FaultMatch, req: http.IncomingMessage): boolean {
  if (match.path && !match.path.test(req.url ?? '')) return false;
  if (match.methods && !match.methods.includes(req.method ?? 'GET')) return false;
  for (const [name, pattern] of Object.entries(match.headers ?? {})) {
    const value = req.headers[name];
    if (pattern === null ? value !== undefined : value === undefined || !pattern.test(String(value))) return false;
  }
  return true;
}
