/**
 * The catalog event contract (CloudEvents 1.0, structured JSON mode) and what one event becomes on the queue.
 *
 * An event only names an entity; the sync reads Backstage's current state (level-triggered). So events for the
 * same entity in one request are coalesced: the newest one (by `time`, then position) is enqueued.
 */
import { z } from 'zod';
import { InvalidEntityRefError } from '../platform/errors';
import { formatEntityRef, parseEntityRef, toDocumentId } from '../model/refs';

export const EVENT_TYPES = {
  upserted: 'io.backstage.catalog.entity.upserted',
  deleted: 'io.backstage.catalog.entity.deleted',
} as const;

export type CatalogEventType = (typeof EVENT_TYPES)[keyof typeof EVENT_TYPES];

export interface CatalogEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: CatalogEventType;
  subject: string;
  time: string;
  datacontenttype?: string;
  data: { entityRef: string; uid?: string; etag?: string };
  [extension: string]: unknown;
}

/** One problem with one event of a request, for the 400 problem's `errors` list. */
export interface EventValidationError {
  /** Position in the batch (0 for a single event). */
  index: number;
  /** JSON pointer-ish path inside the event, e.g. `data.entityRef`. */
  path: string;
  message: string;
}

const printable = (max: number) =>
  z
    .string({ error: 'must be a string' })
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`)
    .refine((v) => !/\p{Cc}/u.test(v), 'must not contain control characters')
    .refine((v) => !/\p{Cs}/u.test(v), 'must not contain unpaired surrogates');

const entityRefString = printable(200).superRefine((value, ctx) => {
  try {
    parseEntityRef(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: error instanceof InvalidEntityRefError ? error.message : 'is not an entity reference' });
  }
});

/** CloudEvents extension attribute names: lower-case letters and digits, at most 20. */
const EXTENSION_NAME = /^[a-z0-9]{1,20}$/;
const CORE_ATTRIBUTES = new Set(['specversion', 'id', 'source', 'type', 'subject', 'time', 'datacontenttype', 'dataschema', 'data']);

const eventSchema = z
  .object({
    specversion: z.literal('1.0', { error: "must be '1.0'" }),
    // Service Bus message ids are at most 128 characters; the event id becomes the message id.
    id: printable(128),
    source: printable(1024).refine(isUriReference, 'must be a URI reference'),
    type: z.enum([EVENT_TYPES.upserted, EVENT_TYPES.deleted], {
      error: `must be ${EVENT_TYPES.upserted} or ${EVENT_TYPES.deleted}`,
    }),
    subject: entityRefString,
    time: z.iso.datetime({ offset: true, error: 'must be an RFC 3339 timestamp' }),
    datacontenttype: z.literal('application/json', { error: "must be 'application/json' when present" }).optional(),
    dataschema: printable(1024).refine(isUriReference, 'must be a URI').optional(),
    data: z.strictObject(
      {
        entityRef: entityRefString,
        uid: printable(128).optional(),
        etag: printable(256).optional(),
      },
      { error: 'must be an object with entityRef (and optionally uid, etag)' },
    ),
  })
  .catchall(z.union([z.string().max(1024), z.number(), z.boolean()], { error: 'extension attributes must be strings, numbers or booleans' }))
  .superRefine((event, ctx) => {
    for (const key of Object.keys(event)) {
      if (!CORE_ATTRIBUTES.has(key) && !EXTENSION_NAME.test(key)) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'is not a valid CloudEvents attribute name (a-z, 0-9, at most 20)' });
      }
    }
    try {
      if (toDocumentId(event.subject) !== toDocumentId(event.data.entityRef)) {
        ctx.addIssue({ code: 'custom', path: ['subject'], message: 'must name the same entity as data.entityRef' });
      }
    } catch {
      // reported by the field validators
    }
  });

/** Validates one parsed JSON value as a catalog event. */
export function validateEvent(value: unknown, index: number): { event?: CatalogEvent; errors: EventValidationError[] } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { errors: [{ index, path: '', message: 'an event must be a JSON object' }] };
  }
  // JSON.parse makes `__proto__` an own key, which schema parsing skips; name it here.
  const errors: EventValidationError[] = [];
  const data = (value as { data?: unknown }).data;
  for (const [prefix, object] of [['', value], ['data.', data]] as const) {
    if (typeof object !== 'object' || object === null) continue;
    if (Object.keys(object).includes('__proto__')) errors.push({ index, path: `${prefix}__proto__`, message: 'is not an allowed attribute name' });
  }
  const result = eventSchema.safeParse(value);
  if (!result.success) {
    for (const issue of result.error.issues) {
      errors.push({
        index,
        path: issue.path.map(String).join('.'),
        message: issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : issue.message,
      });
    }
  }
  if (result.success && errors.length === 0) return { event: result.data, errors };
  return { errors: errors.slice(0, 20) };
}

/** What the sync trigger receives: the body of an `entity-sync` queue message. */
export interface SyncMessageBody {
  entityRef: string;
  type: 'upserted' | 'deleted';
  etag?: string;
  uid?: string;
  eventId: string;
  eventTime: string;
  source: string;
}

export const syncMessageBodySchema = z.strictObject({
  entityRef: entityRefString,
  type: z.enum(['upserted', 'deleted']),
  etag: printable(256).optional(),
  uid: printable(128).optional(),
  eventId: printable(128),
  eventTime: z.iso.datetime({ offset: true }),
  source: printable(1024),
});

/** The subject of a batch message: several entities' events, synced together (a burst; see intake.ts). */
export const SYNC_BATCH_SUBJECT = 'sync-batch';

/** Entities per batch message (and per `by-refs` request of its sync). */
export const MAX_SYNC_BATCH_ENTITIES = 100;

export const syncBatchBodySchema = z.strictObject({
  entities: z.array(syncMessageBodySchema).min(1).max(MAX_SYNC_BATCH_ENTITIES),
});

export type SyncBatchBody = z.infer<typeof syncBatchBodySchema>;

export interface QueuedEvent {
  /** The Service Bus message id: the CloudEvent id (so a re-delivered webhook is dropped as a duplicate). */
  messageId: string;
  /** The Service Bus session: the entity's document id, so one entity's events are processed in order. */
  sessionId: string;
  body: SyncMessageBody;
}

/**
 * Keeps the newest event per entity (by `time`; on a tie, the later one in the request) and turns each into
 * its queue message.
 */
export function coalesceEvents(events: readonly CatalogEvent[]): QueuedEvent[] {
  const newest = new Map<string, { event: CatalogEvent; time: number }>();
  for (const event of events) {
    const id = toDocumentId(event.data.entityRef);
    const time = Date.parse(event.time);
    const current = newest.get(id);
    if (!current || time >= current.time) newest.set(id, { event, time });
  }
  return [...newest.entries()].map(([sessionId, { event }]) => ({
    messageId: event.id,
    sessionId,
    body: {
      entityRef: formatEntityRef(parseEntityRef(event.data.entityRef)),
      type: event.type === EVENT_TYPES.deleted ? 'deleted' : 'upserted',
      ...(event.data.etag !== undefined && { etag: event.data.etag }),
      ...(event.data.uid !== undefined && { uid: event.data.uid }),
      eventId: event.id,
      eventTime: new Date(event.time).toISOString(),
      source: event.source,
    },
  }));
}

function isUriReference(value: string): boolean {
  if (/\s/.test(value)) return false;
  try {
    new URL(value, 'http://relative.invalid/');
    return true;
  } catch {
    return false;
  }
}
