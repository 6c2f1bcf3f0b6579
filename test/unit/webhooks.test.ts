import { Webhook } from 'standardwebhooks';
import { WebhookVerifier } from '../../shared/intake/webhooks';
import { WebhookSignatureError } from '../../shared/platform/errors';

const secret = `whsec_${Buffer.from('a-secret-of-enough-length!').toString('base64')}`;
const rotated = `whsec_${Buffer.from('the-next-secret-of-length!').toString('base64')}`;
const body = Buffer.from('{"hello":"world"}');

function headersFor(s: string, options: { id?: string; at?: number; payload?: Buffer } = {}) {
  const at = options.at ?? Date.now();
  const id = options.id ?? 'msg_1';
  const map: Record<string, string> = {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at / 1000)),
    'webhook-signature': new Webhook(s).sign(id, new Date(at), (options.payload ?? body).toString()),
  };
  return { get: (name: string) => map[name] ?? null };
}

test('verifies with any configured secret', () => {
  const verifier = new WebhookVerifier([rotated, secret], { toleranceInSeconds: 300 });
  expect(verifier.verify(body, headersFor(secret, { id: 'a' }))).toBe('a');
  expect(verifier.verify(body, headersFor(rotated, { id: 'b' }))).toBe('b');
});

test('several signatures in the header: one valid is enough', () => {
  const verifier = new WebhookVerifier([secret], { toleranceInSeconds: 300 });
  const valid = headersFor(secret);
  const combined = { get: (n: string) => (n === 'webhook-signature' ? `v1,AAAA ${valid.get(n)}` : valid.get(n)) };
  expect(verifier.verify(body, combined)).toBe('msg_1');
});

test('rejects a tampered body, an unknown secret, a bad timestamp and missing headers', () => {
  const verifier = new WebhookVerifier([secret], { toleranceInSeconds: 60 });
  expect(() => verifier.verify(Buffer.from('{"hello":"mars"}'), headersFor(secret))).toThrow(WebhookSignatureError);
  expect(() => verifier.verify(body, headersFor(rotated))).toThrow(/does not match/);
  expect(() => verifier.verify(body, headersFor(secret, { at: Date.now() - 120_000 }))).toThrow(/away from now; at most 60 s/);
  expect(() => verifier.verify(body, headersFor(secret, { at: Date.now() + 120_000 }))).toThrow(/away from now/);
  const noTimestamp = headersFor(secret);
  expect(() => verifier.verify(body, { get: (n) => (n === 'webhook-timestamp' ? null : noTimestamp.get(n)) })).toThrow(/all required/);
  expect(() => verifier.verify(body, { get: (n) => (n === 'webhook-timestamp' ? '12abc' : noTimestamp.get(n)) })).toThrow(/Unix seconds/);
});

test('an accepted webhook-id is remembered for longer than a replay could pass the timestamp check', () => {
  const verifier = new WebhookVerifier([secret], { toleranceInSeconds: 300 });
  expect(verifier.replayWindowInSeconds).toBeGreaterThan(2 * 300);
});

test('isSigned detects Standard Webhooks requests', () => {
  expect(WebhookVerifier.isSigned(headersFor(secret))).toBe(true);
  expect(WebhookVerifier.isSigned({ get: () => null })).toBe(false);
});
