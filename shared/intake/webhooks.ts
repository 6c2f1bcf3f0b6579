/**
 * Standard Webhooks verification (https://www.standardwebhooks.com/) for senders that cannot get an Entra
 * token: HMAC-SHA256 over `id.timestamp.body` with a shared secret, timestamps within a tolerance, several
 * secrets accepted while rotating, constant-time comparison (all in the `standardwebhooks` library). Replays are
 * the intake's to refuse, through the shared `WebhookDeliveryStore`.
 */
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { WebhookSignatureError } from '../platform/errors';

export interface WebhookHeaders {
  get(name: string): string | null;
}

export class WebhookVerifier {
  private readonly webhooks: Webhook[];
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
   * {@link WebhookSignatureError} naming what is wrong. Returns the webhook id.
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
        return id;
      } catch (error) {
        if (!(error instanceof WebhookVerificationError)) throw error;
        lastError = error;
      }
    }
    throw new WebhookSignatureError('webhook-signature does not match the body with any configured secret', lastError);
  }

  /** How long an accepted webhook-id must be remembered: past it, a replay fails the timestamp check. */
  get replayWindowInSeconds(): number {
    return 2 * (this.toleranceInMs / 1000) + 60;
  }
}
