/**
 * Standard Webhooks verification (https://www.standardwebhooks.com/) for senders that cannot get an Entra
 * token: HMAC-SHA256 over `id.timestamp.body` with a shared secret, timestamps within a tolerance, several
 * secrets accepted while rotating, constant-time comparison (all in the `standardwebhooks` library), and a
 * replay guard on `webhook-id`.
 */
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { WebhookReplayError, WebhookSignatureError } from '../platform/errors';

export interface WebhookHeaders {
  get(name: string): string | null;
}

export class WebhookVerifier {
  private readonly webhooks: Webhook[];
  /** webhook-id → when it can be forgotten (a replay after that fails the timestamp check anyway). */
  private readonly seen = new Map<string, number>();
  private readonly toleranceInMs: number;

  constructor(secrets: readonly string[], options: { toleranceInSeconds: number; now?: () => number }) {
    if (secrets.length === 0) throw new Error('WebhookVerifier needs at least one secret');
    this.webhooks = secrets.map((secret) => new Webhook(secret));
    this.toleranceInMs = options.toleranceInSeconds * 1000;
    this.now = options.now ?? Date.now;
  }

  private readonly now: () => number;

  /** True when the request carries Standard Webhooks headers at all. */
  static isSigned(headers: WebhookHeaders): boolean {
    return headers.get('webhook-signature') !== null || headers.get('webhook-id') !== null;
  }

  /**
   * Verifies the raw body against the headers with every configured secret; throws
   * {@link WebhookSignatureError} naming what is wrong, or {@link WebhookReplayError} for a webhook-id already
   * accepted within the tolerance window. Returns the webhook id.
   */
  verify(rawBody: Buffer, headers: WebhookHeaders): string {
    const id = headers.get('webhook-id');
    const timestamp = headers.get('webhook-timestamp');
    const signature = headers.get('webhook-signature');
    if (!id || !timestamp || !signature) {
      throw new WebhookSignatureError('webhook-id, webhook-timestamp and webhook-signature are all required');
    }
    if (id.length > 256 || /\p{Cc}/u.test(id)) throw new WebhookSignatureError('webhook-id is malformed');
    if (!/^\d{1,12}$/.test(timestamp)) throw new WebhookSignatureError('webhook-timestamp must be Unix seconds');
    const skew = Math.abs(this.now() - Number(timestamp) * 1000);
    if (skew > this.toleranceInMs) {
      throw new WebhookSignatureError(`webhook-timestamp is ${Math.round(skew / 1000)} s away from now; at most ${this.toleranceInMs / 1000} s are accepted`);
    }
    const plain = { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signature };
    let lastError: unknown;
    for (const webhook of this.webhooks) {
      try {
        webhook.verify(rawBody, plain, { jsonParse: false });
        this.checkReplay(id);
        return id;
      } catch (error) {
        if (!(error instanceof WebhookVerificationError)) throw error;
        lastError = error;
      }
    }
    throw new WebhookSignatureError('webhook-signature does not match the body with any configured secret', lastError);
  }

  /** Remembers `id` as accepted (call after the request was enqueued). */
  remember(id: string): void {
    const now = this.now();
    this.seen.set(id, now + 2 * this.toleranceInMs);
    if (this.seen.size > 10_000) for (const [key, until] of this.seen) if (until <= now) this.seen.delete(key);
  }

  private checkReplay(id: string): void {
    const until = this.seen.get(id);
    if (until !== undefined && until > this.now()) throw new WebhookReplayError(id);
  }
}
