/**
 * The typed error hierarchy of the core. Every error carries a stable `code` and, where it wraps
 * another failure, the original as `cause`. `transient` says whether trying again later can succeed;
 * the queue trigger and the reconciler use it to decide between retry and dead-letter.
 */
export class SyncServiceError extends Error {
  readonly code: string;
  readonly transient: boolean;

  constructor(message: string, options: { code: string; transient?: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.transient = options.transient ?? false;
  }
}

/** One problem with one setting, as reported by {@link ConfigurationError}. */
export interface ConfigurationIssue {
  setting: string;
  message: string;
}

/** The configuration is missing or invalid. Raised once, at start-up, naming every bad setting. */
export class ConfigurationError extends SyncServiceError {
  readonly issues: readonly ConfigurationIssue[];

  constructor(issues: readonly ConfigurationIssue[]) {
    super(
      `Invalid configuration (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n` +
        issues.map((i) => `  - ${i.setting}: ${i.message}`).join('\n'),
      { code: 'ConfigurationInvalid' },
    );
    this.issues = issues;
  }
}

/** A string that is not a valid Backstage entity reference (or document id). */
export class InvalidEntityRefError extends SyncServiceError {
  readonly input: string;
  constructor(input: string, reason: string) {
    super(`Invalid entity reference ${JSON.stringify(truncate(input, 200))}: ${reason}`, { code: 'InvalidEntityRef' });
    this.input = input;
  }
}

/** An authored entity breaks Backstage's rules or this API's (400 `invalid-entity`); `problems` lists each. */
export class InvalidEntityError extends SyncServiceError {
  constructor(readonly problems: string[]) {
    super(`The entity is invalid: ${problems.join('; ')}`, { code: 'InvalidEntity' });
  }
}

/** The authoring policy (kinds, namespaces) does not allow this entity here (403 `authoring-not-allowed`). */
export class AuthoringPolicyError extends SyncServiceError {
  constructor(message: string) {
    super(message, { code: 'AuthoringNotAllowed' });
  }
}

/** The catalog already has the entity from another source (409 `owned-elsewhere`): never overwritten. */
export class EntityOwnedElsewhereError extends SyncServiceError {
  constructor(
    readonly entityRef: string,
    readonly ownerLocation: string,
  ) {
    super(`${entityRef} is already in the catalog from ${ownerLocation}; the authoring API does not take over entities of another source`, { code: 'OwnedElsewhere' });
  }
}

/** The resource a request names does not exist (404 `not-found`). */
export class NotFoundError extends SyncServiceError {
  constructor(message: string) {
    super(message, { code: 'NotFound' });
  }
}

/** `If-Match` names a version the document no longer has (412 `precondition-failed`). */
export class PreconditionFailedError extends SyncServiceError {
  constructor(message: string) {
    super(message, { code: 'PreconditionFailed' });
  }
}

/** Backstage answered 401/403 even after a fresh token: a trust or permission problem, not a transient one. */
export class BackstageAuthError extends SyncServiceError {
  readonly status: number;
  constructor(message: string, status: number, cause?: unknown) {
    super(message, { code: status === 403 ? 'BackstageForbidden' : 'BackstageUnauthorized', cause });
    this.status = status;
  }
}

/** Backstage could not be reached or kept failing (429, 5xx, timeouts) after the bounded retries. */
export class BackstageUnavailableError extends SyncServiceError {
  readonly status: number | undefined;
  constructor(message: string, status: number | undefined, cause?: unknown) {
    super(message, { code: 'BackstageUnavailable', transient: true, cause });
    this.status = status;
  }
}

/** Backstage answered with an unexpected client error (e.g. 400): retrying will not help. */
export class BackstageRequestError extends SyncServiceError {
  readonly status: number;
  constructor(message: string, status: number, cause?: unknown) {
    super(message, { code: 'BackstageRequestFailed', cause });
    this.status = status;
  }
}

/** A Cosmos DB operation failed. `statusCode` is Cosmos's; 429/408/449/5xx are transient. */
export class CosmosOperationError extends SyncServiceError {
  readonly statusCode: number | undefined;
  /** What Cosmos asked us to wait (429), when it said. */
  retryAfterInMs?: number;
  constructor(message: string, statusCode: number | undefined, cause?: unknown) {
    super(message, { code: 'CosmosOperationFailed', transient: isTransientCosmosStatus(statusCode), cause });
    this.statusCode = statusCode;
  }
}

/** Optimistic concurrency kept losing: another writer changed the document every time we tried. */
export class ConcurrencyConflictError extends SyncServiceError {
  readonly entityRef: string;
  constructor(entityRef: string, attempts: number) {
    super(`Gave up syncing ${entityRef} after ${attempts} attempts: the mirror document kept changing underneath`, {
      code: 'ConcurrencyConflict',
      transient: true,
    });
    this.entityRef = entityRef;
  }
}

/** The caller's abort signal fired. */
export class OperationAbortedError extends SyncServiceError {
  constructor(message = 'The operation was aborted', cause?: unknown) {
    super(message, { code: 'Aborted', cause });
  }
}

/** The credential could not produce a token for Backstage. */
export class TokenAcquisitionError extends SyncServiceError {
  constructor(scope: string, cause: unknown) {
    super(`Could not get an Entra token for ${scope}: ${cause instanceof Error ? cause.message : String(cause)}`, {
      code: 'TokenAcquisitionFailed',
      transient: true,
      cause,
    });
  }
}

/** 401: no token, or a token we do not accept. `wwwAuthenticate` is the challenge to send back. */
export class AuthenticationError extends SyncServiceError {
  readonly wwwAuthenticate: string;
  constructor(message: string, options: { error?: 'invalid_token' | 'invalid_request'; cause?: unknown } = {}) {
    super(message, { code: 'Unauthenticated', cause: options.cause });
    const error = options.error;
    this.wwwAuthenticate = error
      ? `Bearer error="${error}", error_description="${message.replace(/["\\]/g, "'")}"`
      : 'Bearer';
  }
}

/** 403: a valid token without the role this endpoint requires (or holding it from a client not allowed to). */
export class AuthorizationError extends SyncServiceError {
  readonly requiredRoles: readonly string[];
  constructor(requiredRoles: readonly string[], principal: { subject: string; appId?: string }, refusedBecause?: string) {
    const who = principal.appId ?? principal.subject;
    const roles = requiredRoles.map((r) => `'${r}'`).join(' or ');
    super(refusedBecause ? `The token of ${who} holds the app role ${roles}, but ${who} ${refusedBecause}` : `The token of ${who} lacks the app role ${roles}`, {
      code: 'Forbidden',
    });
    this.requiredRoles = requiredRoles;
  }
}

/** The signing keys could not be fetched: our problem, not the caller's (503). */
export class AuthUnavailableError extends SyncServiceError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'AuthUnavailable', transient: true, cause });
  }
}

/** The queue could not take the messages; nothing is known to be lost (the caller should answer 503). */
export class QueueUnavailableError extends SyncServiceError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'QueueUnavailable', transient: true, cause });
  }
}

/** A Standard Webhooks request whose headers or signature do not verify (401 `invalid-signature`). */
export class WebhookSignatureError extends SyncServiceError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'InvalidWebhookSignature', cause });
  }
}

/** A `webhook-id` that was already accepted within the replay window (409 `duplicate-delivery`). */
export class WebhookReplayError extends SyncServiceError {
  readonly webhookId: string;
  constructor(webhookId: string) {
    super(`webhook-id ${JSON.stringify(webhookId)} was already accepted; a re-delivery needs no action`, { code: 'WebhookReplayed' });
    this.webhookId = webhookId;
  }
}

/** A request's query or body breaks the endpoint's schema (400 `invalid-request`); `detail` says what is wrong. */
export class InvalidRequestError extends SyncServiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: 'InvalidRequest', ...options });
  }
}

function isTransientCosmosStatus(statusCode: number | undefined): boolean {
  if (statusCode === undefined) return true; // network failure, no answer at all
  return statusCode === 408 || statusCode === 429 || statusCode === 449 || statusCode >= 500;
}

/** Error codes that mean a deadline passed: sockets, undici, the Azure SDKs. */
const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'TimeoutError', 'ServiceTimeout', 'OperationTimeoutError', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/**
 * Whether `error`, or an error it was caused by, is a timeout — a deadline of ours (`TimeoutError`), an SDK's request
 * timeout, a socket's. A dependency that did not answer in time is unavailable, never an internal error.
 */
export function isTimeout(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; current && depth < 8; depth += 1) {
    const { name, code } = current as { name?: unknown; code?: unknown };
    if (name === 'TimeoutError' || (typeof code === 'string' && TIMEOUT_CODES.has(code))) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

export function isTransient(error: unknown): boolean {
  return error instanceof SyncServiceError ? error.transient : false;
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

function truncate(value: string, max: number): string {
  return value.length > max ? `${value.slice(0, max)}…` : value;
}
