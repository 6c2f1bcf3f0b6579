/**
 * `npm run history -- <entity-ref> [--since 2026-12-01T00:00:00Z] [--limit 20] [--json]`
 *
 * Prints an entity's history from the history API: one block per version, newest first, with its changes. Talks to
 * the local stack from `npm start`, or to a deployed app when SYNC_API_URL and SYNC_API_SCOPE are set (see
 * ./api-client.ts). `--json` prints the API's records instead.
 */
import { parseArgs } from 'node:util';
import { parseEntityRef } from '../shared/model/refs';
import { formatTimeline, type TimelineItem } from '../shared/history/timeline';
import { apiTarget, describeProblem, runCli } from './api-client';

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      since: { type: 'string' },
      limit: { type: 'string', default: '20' },
      json: { type: 'boolean', default: false },
      state: { type: 'string' },
    },
  });
  const limit = Number(values.limit);
  if (positionals.length !== 1 || !Number.isInteger(limit) || limit < 1 || limit > 1000) {
    process.stderr.write('usage: npm run history -- <kind:namespace/name> [--since <ISO 8601 time>] [--limit 1-1000] [--json]\n');
    return 2;
  }
  const ref = parseEntityRef(positionals[0]);
  const { baseUrl, token } = await apiTarget(values.state);
  const items: TimelineItem[] = [];
  let continuation: string | undefined;
  do {
    const url = new URL(`${baseUrl}/api/entities/${encodeURIComponent(ref.kind)}/${encodeURIComponent(ref.namespace)}/${encodeURIComponent(ref.name)}/history`);
    url.searchParams.set('pageSize', String(Math.min(100, limit - items.length)));
    if (values.since) url.searchParams.set('since', values.since);
    if (continuation) url.searchParams.set('continuation', continuation);
    const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    const body = await response.text();
    if (!response.ok) {
      process.stderr.write(`${response.status} ${describeProblem(body)}\n`);
      return 1;
    }
    const page = JSON.parse(body) as { items: TimelineItem[]; continuation?: string };
    items.push(...page.items);
    continuation = page.continuation;
  } while (continuation && items.length < limit);
  process.stdout.write(values.json ? `${JSON.stringify(items, null, 2)}\n` : formatTimeline(`${ref.kind}:${ref.namespace}/${ref.name}`, items, { more: Boolean(continuation) }));
  return 0;
}

runCli(main);
