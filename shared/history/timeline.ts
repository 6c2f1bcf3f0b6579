/**
 * An entity's history as a person reads it (`npm run history`): one block per version, newest first — when, what
 * happened, which life (uid) and trace — and its changes one per line (`+` added, `-` removed, `~` replaced). Backstage's
 * own bookkeeping (`metadata.etag`, `metadata.generation`) is left out of the changes. Pure.
 */
import type { Operation } from 'rfc6902';
import type { HistoryOperation } from './record';

/** A version as the history API answers it (with its diff). */
export interface TimelineItem {
  operation: HistoryOperation;
  syncedAt: string;
  uid: string | null;
  traceId?: string;
  diff?: Operation[];
}

const BOOKKEEPING = new Set(['/metadata/etag', '/metadata/generation']);
const SIGN: Record<Operation['op'], string> = { add: '+', remove: '-', replace: '~', move: '>', copy: '=', test: '?' };

export function formatTimeline(entityRef: string, items: readonly TimelineItem[], options: { more?: boolean; valueWidth?: number } = {}): string {
  const width = options.valueWidth ?? 100;
  const lines = [`${entityRef} — ${items.length} version${items.length === 1 ? '' : 's'}, newest first${options.more ? ' (more with --limit)' : ''}`, ''];
  if (items.length === 0) lines.push('  no history: never mirrored, outside the sync scope, or older than the retention');
  for (const item of items) {
    const when = item.syncedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
    const facts = [`uid ${item.uid ?? '–'}`, ...(item.traceId ? [`trace ${item.traceId}`] : [])].join('  ');
    lines.push(`${when}  ${item.operation.padEnd(9)}  ${facts}`);
    for (const change of (item.diff ?? []).filter((c) => !BOOKKEEPING.has(c.path))) {
      const value = 'value' in change ? ` ${truncate(JSON.stringify(change.value), width)}` : 'from' in change ? ` from ${change.from}` : '';
      lines.push(`    ${SIGN[change.op]} ${change.path}${value}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

function truncate(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, width - 1)}…` : text;
}
