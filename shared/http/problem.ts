/**
 * Framework-neutral HTTP shapes for the core's endpoints, RFC 9457 problem details, and the one mapping from the
 * core's typed errors to problems ({@link toProblem}). The Functions adapters (functions/lib/http.ts) translate to
 * and from `@azure/functions`.
 */
import {
  AuthenticationError,
  AuthorizationError,
  AuthoringPolicyError,
  AuthUnavailableError,
  EntityOwnedElsewhereError,
  InvalidEntityError,
  InvalidEntityRefError,
  InvalidRequestError,
  isTimeout,
  NotFoundError,
  OperationAbortedError,
  PreconditionFailedError,
  SyncServiceError,
} from '../platform/errors';
import type { Logger } from '../platform/logger';

export interface ApiRequest {
  method: string;
  url: string;
  headers: { get(name: string): string | null };
  params: Readonly<Record<string, string | undefined>>;
  query: URLSearchParams;
  /** The raw body as text; read the body at most once (this, {@link ApiRequest.arrayBuffer} or the stream). */
  text(): Promise<string>;
  /** The raw body as bytes. */
  arrayBuffer(): Promise<ArrayBuffer>;
  /** The body as a stream, when the host gives one (read it with {@link readBodyUpTo} to bound what is buffered). */
  body?: ReadableStream<Uint8Array> | null;
}

/**
 * The body's bytes, or `undefined` as soon as it exceeds `maxBytes` — read from the stream chunk by chunk, so a body
 * without a `Content-Length` is cut off there rather than buffered whole.
 */
export async function readBodyUpTo(request: Pick<ApiRequest, 'body' | 'arrayBuffer'>, maxBytes: number): Promise<Buffer | undefined> {
  if (!request.body) {
    const whole = Buffer.from(await request.arrayBuffer());
    return whole.length > maxBytes ? undefined : whole;
  }
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string>;
  /** Serialized JSON (or empty). */
  body?: string;
}

/** Problem `type` URIs. Stable: clients may switch on them. Documented in docs/api.md. */
export const ProblemType = {
  unauthorized: 'urn:backstage-cosmos-sync:problem:unauthorized',
  forbidden: 'urn:backstage-cosmos-sync:problem:forbidden',
  notFound: 'urn:backstage-cosmos-sync:problem:not-found',
  invalidRequest: 'urn:backstage-cosmos-sync:problem:invalid-request',
  invalidEntityRef: 'urn:backstage-cosmos-sync:problem:invalid-entity-ref',
  invalidSignature: 'urn:backstage-cosmos-sync:problem:invalid-signature',
  duplicateDelivery: 'urn:backstage-cosmos-sync:problem:duplicate-delivery',
  unsupportedMediaType: 'urn:backstage-cosmos-sync:problem:unsupported-media-type',
  payloadTooLarge: 'urn:backstage-cosmos-sync:problem:payload-too-large',
  invalidJson: 'urn:backstage-cosmos-sync:problem:invalid-json',
  invalidEvent: 'urn:backstage-cosmos-sync:problem:invalid-event',
  queueUnavailable: 'urn:backstage-cosmos-sync:problem:queue-unavailable',
  unavailable: 'urn:backstage-cosmos-sync:problem:unavailable',
  misconfigured: 'urn:backstage-cosmos-sync:problem:misconfigured',
  selfCheckFailed: 'urn:backstage-cosmos-sync:problem:self-check-failed',
  invalidEntity: 'urn:backstage-cosmos-sync:problem:invalid-entity',
  authoringNotAllowed: 'urn:backstage-cosmos-sync:problem:authoring-not-allowed',
  ownedElsewhere: 'urn:backstage-cosmos-sync:problem:owned-elsewhere',
  preconditionFailed: 'urn:backstage-cosmos-sync:problem:precondition-failed',
  internal: 'urn:backstage-cosmos-sync:problem:internal',
} as const;

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  [extension: string]: unknown;
}

export function problem(
  status: number,
  type: string,
  title: string,
  detail?: string,
  extensions: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): ApiResponse {
  const body: ProblemDetails = { type, title, status, ...(detail !== undefined && { detail }), ...extensions };
  return {
    status,
    headers: { 'content-type': 'application/problem+json', 'cache-control': 'no-store', ...headers },
    body: JSON.stringify(body),
  };
}

/** A Cosmos `_etag` as an HTTP strong entity tag: its inner quotes removed, wrapped in quotes. */
export function strongEtag(etag: string): string {
  return `"${etag.replace(/"/g, '')}"`;
}

export function json(status: number, value: unknown, headers: Record<string, string> = {}): ApiResponse {
  return {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers },
    body: JSON.stringify(value),
  };
}

export function text(body: string, contentType: string, status = 200): ApiResponse {
  return { status, headers: { 'content-type': contentType, 'cache-control': 'no-store' }, body };
}

/**
 * Maps an error to its problem response: auth errors to 401/403, invalid input to 400; transient dependency failures,
 * timeouts of any kind (wrapped or not) and work cut short because the worker is stopping to 503 with `Retry-After`;
 * anything else is logged and answered 500 without detail.
 */
export function toProblem(error: unknown, logger: Logger): ApiResponse {
  if (error instanceof AuthenticationError) {
    return problem(401, ProblemType.unauthorized, 'Unauthorized', error.message, {}, { 'www-authenticate': error.wwwAuthenticate });
  }
  if (error instanceof AuthorizationError) {
    return problem(403, ProblemType.forbidden, 'Forbidden', error.message, { requiredRoles: error.requiredRoles });
  }
  if (error instanceof InvalidEntityRefError) {
    return problem(400, ProblemType.invalidEntityRef, 'Invalid entity reference', error.message);
  }
  if (error instanceof InvalidRequestError) {
    return problem(400, ProblemType.invalidRequest, 'Invalid request', error.message);
  }
  if (error instanceof InvalidEntityError) {
    return problem(400, ProblemType.invalidEntity, 'Invalid entity', `${error.problems.length} problem(s) with the entity; nothing was written`, { errors: error.problems.slice(0, 50) });
  }
  if (error instanceof AuthoringPolicyError) {
    return problem(403, ProblemType.authoringNotAllowed, 'Authoring not allowed', error.message);
  }
  if (error instanceof EntityOwnedElsewhereError) {
    return problem(409, ProblemType.ownedElsewhere, 'Entity owned elsewhere', error.message, { entityRef: error.entityRef, ownerLocation: error.ownerLocation });
  }
  if (error instanceof NotFoundError) {
    return problem(404, ProblemType.notFound, 'Not found', error.message);
  }
  if (error instanceof PreconditionFailedError) {
    return problem(412, ProblemType.preconditionFailed, 'Precondition failed', error.message);
  }
  if (error instanceof AuthUnavailableError || (error instanceof SyncServiceError && error.transient) || error instanceof OperationAbortedError || isTimeout(error)) {
    logger.warn('Request failed on a dependency', { error });
    return problem(503, ProblemType.unavailable, 'Service unavailable', 'A dependency is unavailable; try again later.', {}, { 'retry-after': '5' });
  }
  logger.error('Request failed', { error });
  return problem(500, ProblemType.internal, 'Internal error', 'The request failed; the error was logged.');
}
