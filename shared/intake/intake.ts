/**
 * `POST /api/catalog/events`: catalog change events in, queue messages out.
 *
 * Order of checks, each answered with its own RFC 9457 problem and **nothing enqueued**:
 * content type (415) → body size (413) → authentication on the raw bytes (401/403; Standard Webhooks
 * signatures are verified before anything is parsed) → UTF-8, nesting depth and JSON (400) → every event of the
 * request, ids unique within it (400 lists each problem) → replayed webhook-id (409). Then events are coalesced
 * per entity and enqueued; a queue that cannot be reached answers 503 with `Retry-After`.
 */
import { randomBytes } from 'node:crypto';
import type { TokenValidator } from '../http/auth';
import type { IntakeConfig } from '../platform/config';
import { coalesceEvents, MAX_SYNC_BATCH_ENTITIES, validateEvent, type CatalogEvent, type EventValidationError } from './events';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import { json, problem, ProblemType, readBodyUpTo, toProblem, type ApiRequest, type ApiResponse } from '../http/problem';
import { QueueUnavailableError, WebhookReplayError, WebhookSignatureError } from '../platform/errors';
import { type EventQueue, toServiceBusMessage, toSyncBatchMessage } from '../queue/queue';
import { chunk } from '../platform/collections';
import { parseEntityRef } from '../model/refs';
import type { SyncScope } from '../sync/scope';
import { WebhookVerifier } from './webhooks';
import type { WebhookDeliveryStore } from './delivery-store';
import { currentTraceparent, trackEvent } from '../platform/telemetry';
import { abortOnly } from '../platform/options';

const MEDIA_TYPE_SINGLE = 'application/cloudevents+json';
const MEDIA_TYPE_BATCH = 'application/cloudevents-batch+json';

export interface IntakeOptions {
  config: IntakeConfig;
  senderRole: string;
  validator: TokenValidator;
  queue: EventQueue;
  logger: Logger;
  metrics?: Metrics;
  webhookVerifier?: WebhookVerifier;
  /** The shared replay guard; required when Standard Webhooks are accepted. */
  deliveries?: WebhookDeliveryStore;
  /** Events for kinds and namespaces outside it are acknowledged, counted and not queued; everything by default. */
  scope?: SyncScope;
}

export class EventIntake {
  private readonly verifier: WebhookVerifier | undefined;

  constructor(private readonly options: IntakeOptions) {
    const { config } = options;
    this.verifier =
      options.webhookVerifier ??
      (config.authModes.includes('standard-webhooks')
        ? new WebhookVerifier(config.webhookSecrets, { toleranceInSeconds: config.webhookToleranceInSeconds })
        : undefined);
    if (this.verifier && !options.deliveries) throw new Error('EventIntake: Standard Webhooks need the shared delivery store (the replay guard)');
  }

  async handle(request: ApiRequest, call: { abortSignal?: AbortSignal; logger?: Logger } = {}): Promise<ApiResponse> {
    const logger = call.logger ?? this.options.logger;
    const { config } = this.options;
    const reject = (response: ApiResponse, reason: string) => {
      this.options.metrics?.increment('intake.rejected', 1, { status: response.status, reason });
      return response;
    };

    // 1. Content type.
    const mediaType = (request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (mediaType !== MEDIA_TYPE_SINGLE && mediaType !== MEDIA_TYPE_BATCH) {
      return reject(
        problem(415, ProblemType.unsupportedMediaType, 'Unsupported media type', `Content-Type must be ${MEDIA_TYPE_SINGLE} or ${MEDIA_TYPE_BATCH}`, {}, {
          accept: `${MEDIA_TYPE_SINGLE}, ${MEDIA_TYPE_BATCH}`,
        }),
        'media-type',
      );
    }

    // 2. The declared size.
    const declared = Number(request.headers.get('content-length') ?? NaN);
    if (Number.isFinite(declared) && declared > config.maxBodyBytes) return reject(tooLarge(config.maxBodyBytes), 'size');

    // 3. A bearer token, before a byte of the body is read: a caller without one never gets its body buffered.
    const signed = this.verifier !== undefined && WebhookVerifier.isSigned(request.headers);
    if (!signed) {
      try {
        await this.authenticateBearer(request);
      } catch (error) {
        return reject(this.authProblem(error, logger), 'auth');
      }
    }

    // 4. The body, at most the limit (a body without Content-Length is cut off there, not read whole).
    const raw = await readBodyUpTo(request, config.maxBodyBytes);
    if (!raw) return reject(tooLarge(config.maxBodyBytes), 'size');

    // 5. A Standard Webhooks signature, over the raw bytes.
    let webhookId: string | undefined;
    if (signed && this.verifier) {
      try {
        webhookId = this.verifier.verify(raw, request.headers);
      } catch (error) {
        return reject(this.authProblem(error, logger), error instanceof WebhookReplayError ? 'replay' : 'signature');
      }
    }

    // 6. Text and JSON.
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(raw);
    } catch {
      return reject(problem(400, ProblemType.invalidJson, 'Invalid body', 'The body is not valid UTF-8'), 'utf8');
    }
    // V8's JSON.parse takes any depth, so the limit is checked here (events need 3 levels: batch, event, data).
    if (exceedsJsonDepth(text, MAX_JSON_DEPTH)) {
      return reject(problem(400, ProblemType.invalidJson, 'Invalid JSON', `The JSON is nested too deeply (at most ${MAX_JSON_DEPTH} levels)`), 'json-depth');
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      return reject(problem(400, ProblemType.invalidJson, 'Invalid JSON', `The body is not valid JSON: ${(error as Error).message}`), 'json');
    }

    // 7. The events.
    const values: unknown[] = mediaType === MEDIA_TYPE_BATCH ? (Array.isArray(parsed) ? parsed : [undefined]) : [parsed];
    if (mediaType === MEDIA_TYPE_BATCH && !Array.isArray(parsed)) {
      return reject(problem(400, ProblemType.invalidEvent, 'Invalid batch', `A ${MEDIA_TYPE_BATCH} body must be a JSON array of events`), 'batch-shape');
    }
    if (values.length === 0) return reject(problem(400, ProblemType.invalidEvent, 'Empty batch', 'The batch holds no events'), 'empty');
    if (values.length > config.maxBatchEvents) {
      return reject(
        problem(413, ProblemType.payloadTooLarge, 'Batch too large', `A batch may hold at most ${config.maxBatchEvents} events; this one has ${values.length}`),
        'batch-length',
      );
    }
    const events: CatalogEvent[] = [];
    const errors: EventValidationError[] = [];
    // The event id becomes the queue message id: a second event with the same id would be dropped by duplicate detection.
    const firstWithId = new Map<string, number>();
    values.forEach((value, index) => {
      const result = validateEvent(value, index);
      if (result.event) {
        const first = firstWithId.get(result.event.id);
        if (first === undefined) firstWithId.set(result.event.id, index);
        else errors.push({ index, path: 'id', message: `must be unique in the batch (event ${first} has the same id)` });
        events.push(result.event);
      }
      errors.push(...result.errors);
    });
    if (errors.length > 0) {
      return reject(
        problem(400, ProblemType.invalidEvent, 'Invalid event', `${new Set(errors.map((e) => e.index)).size} of ${values.length} events are invalid; nothing was accepted`, {
          errors: errors.slice(0, 100),
        }),
        'event',
      );
    }

    // 8. A signed delivery claims its webhook-id, shared by every instance: exactly one copy gets past this.
    const { deliveries } = this.options;
    const verifier = this.verifier;
    if (webhookId !== undefined && deliveries && verifier) {
      try {
        await deliveries.claim(webhookId, { ttlInSeconds: verifier.replayWindowInSeconds, ...abortOnly(call) });
      } catch (error) {
        if (error instanceof WebhookReplayError) return reject(this.authProblem(error, logger), 'replay');
        return reject(toProblem(error, logger), 'replay-guard');
      }
    }

    // 9. Coalesce and enqueue.
    // The active span when telemetry runs (so the sync continues this request's trace), else the caller's trace.
    const traceparent = currentTraceparent() ?? validTraceparent(request.headers.get('traceparent')) ?? newTraceparent();
    const inScope = this.options.scope ? events.filter((event) => this.options.scope!.includesRef(parseEntityRef(event.data.entityRef))) : events;
    const outOfScope = events.length - inScope.length;
    const queued = coalesceEvents(inScope);
    // A burst (a re-stitch, a renamed owner: the module sends its events 100 to a request) is synced a batch at a
    // time, as the reconcile syncs; a few entities keep a message each, in their own sessions.
    const minBatch = this.options.config.batchSyncMinEvents;
    const messages =
      minBatch > 0 && queued.length >= minBatch
        ? chunk(queued, MAX_SYNC_BATCH_ENTITIES).map((events) => toSyncBatchMessage(events, { attempt: 1, traceparent }))
        : queued.map((event) => toServiceBusMessage(event, { attempt: 1, traceparent }));
    try {
      if (messages.length > 0) await this.options.queue.enqueue(messages, call.abortSignal ? { abortSignal: call.abortSignal } : {});
    } catch (error) {
      // Nothing was enqueued: give the webhook-id back, so the sender's retry is accepted.
      if (webhookId !== undefined && deliveries) {
        await deliveries.release(webhookId).catch((releaseError: unknown) => logger.warn('Could not release a webhook delivery claim', { webhookId, error: releaseError }));
      }
      if (error instanceof QueueUnavailableError) {
        logger.error('Could not enqueue catalog events', { error, events: events.length });
        return reject(
          problem(503, ProblemType.queueUnavailable, 'Queue unavailable', 'The events could not be queued; send them again later.', {}, { 'retry-after': '10' }),
          'queue',
        );
      }
      throw error;
    }
    this.options.metrics?.increment('intake.events', events.length);
    this.options.metrics?.increment('intake.enqueued', queued.length);
    if (messages.length < queued.length) this.options.metrics?.increment('intake.batches', messages.length);
    if (outOfScope > 0) this.options.metrics?.increment('intake.out_of_scope', outOfScope);
    logger.info('Catalog events accepted', { operation: 'intake', accepted: events.length, enqueued: queued.length, outOfScope });
    trackEvent('CatalogEventsAccepted', { accepted: events.length, enqueued: queued.length, outOfScope });
    return json(202, { accepted: events.length, enqueued: queued.length, outOfScope });
  }

  /** Requires a bearer token with the sender role; without Entra mode, an unsigned request is refused. */
  private async authenticateBearer(request: ApiRequest): Promise<void> {
    if (!this.options.config.authModes.includes('entra')) {
      throw new WebhookSignatureError('This endpoint expects Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature)');
    }
    await this.options.validator.authenticate(request.headers.get('authorization'), [this.options.senderRole]);
  }

  private authProblem(error: unknown, logger: Logger): ApiResponse {
    if (error instanceof WebhookSignatureError) {
      return problem(401, ProblemType.invalidSignature, 'Invalid webhook signature', error.message, {}, { 'www-authenticate': 'Bearer' });
    }
    if (error instanceof WebhookReplayError) {
      return problem(409, ProblemType.duplicateDelivery, 'Already accepted', error.message, { webhookId: error.webhookId });
    }
    return toProblem(error, logger);
  }
}

/** How deeply the intake's JSON may nest; far more than an event needs. */
export const MAX_JSON_DEPTH = 32;

/** True when arrays/objects in `text` nest deeper than `max` (brackets inside strings do not count). */
export function exceedsJsonDepth(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c /* \ */) i += 1;
      else if (ch === 0x22 /* " */) inString = false;
    } else if (ch === 0x22) {
      inString = true;
    } else if (ch === 0x5b /* [ */ || ch === 0x7b /* { */) {
      depth += 1;
      if (depth > max) return true;
    } else if (ch === 0x5d /* ] */ || ch === 0x7d /* } */) {
      depth -= 1;
    }
  }
  return false;
}

function tooLarge(max: number): ApiResponse {
  return problem(413, ProblemType.payloadTooLarge, 'Body too large', `The body may be at most ${max} bytes`);
}

const TRACEPARENT = /^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;

function validTraceparent(value: string | null): string | undefined {
  return value && TRACEPARENT.test(value.trim()) ? value.trim() : undefined;
}

function newTraceparent(): string {
  return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
}
