/**
 * A scriptable HTTP fault proxy: forwards to a target (e.g. the Backstage stand-in) and, on cue, answers with
 * an error status instead, hangs, or adds latency. Tests put it between the service and a stand-in.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Fault {
  /** Answer with this status (and optional headers/body) instead of forwarding. */
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Never answer (the client's timeout must fire). */
  hang?: boolean;
  /** Delay before forwarding or answering. */
  delayInMs?: number;
}

export interface FaultProxy {
  url: string;
  /** Requests seen (forwarded or faulted). */
  readonly requests: number;
  /** The next `count` requests (matching `path`, if given) get `fault`. */
  failNext(count: number, fault: Fault, path?: RegExp): void;
  /** Every request gets `fault` until {@link FaultProxy.heal}. */
  failAll(fault: Fault, path?: RegExp): void;
  heal(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string, options: { port?: number } = {}): Promise<FaultProxy> {
  const targetUrl = new URL(target);
  const script: Array<{ remaining: number; fault: Fault; path?: RegExp }> = [];
  let requests = 0;
  const hanging = new Set<http.ServerResponse>();

  const server = http.createServer((req, res) => {
    requests += 1;
    const index = script.findIndex((s) => s.remaining > 0 && (!s.path || s.path.test(req.url ?? '')));
    const entry = index >= 0 ? script[index] : undefined;
    if (entry) entry.remaining -= 1;
    const fault = entry?.fault;
    const act = () => {
      if (fault?.hang) {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      if (fault?.status) {
        req.resume();
        res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
        res.end(fault.body ?? JSON.stringify({ error: { name: 'InjectedFault', message: `injected ${fault.status}` } }));
        return;
      }
      const upstream = http.request(
        { hostname: targetUrl.hostname, port: targetUrl.port, method: req.method, path: req.url, headers: { ...req.headers, host: targetUrl.host } },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
      req.pipe(upstream);
    };
    if (fault?.delayInMs) setTimeout(act, fault.delayInMs);
    else act();
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    failNext: (count, fault, path) => script.push({ remaining: count, fault, ...(path && { path }) }),
    failAll: (fault, path) => script.push({ remaining: Number.POSITIVE_INFINITY, fault, ...(path && { path }) }),
    heal: () => {
      script.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
