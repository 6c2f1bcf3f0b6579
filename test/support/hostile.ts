/**
 * Building blocks for the hostile-input corpus (test/integration/hostile-input.test.ts): forged bearer tokens,
 * byte sequences that are not UTF-8, deeply nested JSON, and a guard that notices prototype pollution.
 * Everything here is plain data; the requests still go through the real function handlers.
 */
import { createHmac } from 'node:crypto';

const b64url = (value: string | Buffer) => Buffer.from(value).toString('base64url');
const decodePart = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;

function parts(token: string): [string, string, string] {
  const [header, payload, signature] = token.split('.');
  if (!header || !payload || signature === undefined) throw new Error('not a compact JWS');
  return [header, payload, signature];
}

/** The token's claims, unsigned, with `alg: none` (RFC 7519 §6 "unsecured JWT"). */
export function algNone(token: string): string {
  const [, payload] = parts(token);
  return `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${payload}.`;
}

/** The token's claims re-signed with HS256 and `secret` (the classic RS256 → HS256 key-confusion attack). */
export function hs256(token: string, secret: string): string {
  const [header, payload] = parts(token);
  const forgedHeader = b64url(JSON.stringify({ ...decodePart(header), alg: 'HS256' }));
  const signature = createHmac('sha256', secret).update(`${forgedHeader}.${payload}`).digest('base64url');
  return `${forgedHeader}.${payload}.${signature}`;
}

/** `token`'s header and signature around other claims (e.g. roles the signer never granted). */
export function tampered(token: string, claims: Record<string, unknown>): string {
  const [header, payload, signature] = parts(token);
  return `${header}.${b64url(JSON.stringify({ ...decodePart(payload), ...claims }))}.${signature}`;
}

/** `token` with a `kid` the issuer does not publish (signature unchanged). */
export function unknownKid(token: string): string {
  const [header, payload, signature] = parts(token);
  return `${b64url(JSON.stringify({ ...decodePart(header), kid: 'not-a-published-key' }))}.${payload}.${signature}`;
}

/** `depth` nested arrays: `[[[…]]]`. */
export const nestedArrays = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

/** `depth` nested objects: `{"a":{"a":…1…}}`. */
export const nestedObjects = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

/** `text` as UTF-8 with `bytes` spliced in where `marker` stands (once). */
export function withBytes(text: string, marker: string, bytes: number[]): Uint8Array {
  const at = text.indexOf(marker);
  if (at < 0) throw new Error(`marker ${marker} not in text`);
  return Uint8Array.from([...Buffer.from(text.slice(0, at)), ...bytes, ...Buffer.from(text.slice(at + marker.length))]);
}

/** Invalid UTF-8: each is rejected by a fatal decoder. */
export const INVALID_UTF8 = {
  /** 0xFF never occurs in UTF-8. */
  ff: [0xff],
  /** An overlong encoding of '/' (a classic filter bypass). */
  overlongSlash: [0xc0, 0xaf],
  /** A UTF-16 surrogate (U+D800) encoded as if it were a character. */
  encodedSurrogate: [0xed, 0xa0, 0x80],
  /** The first two bytes of a three-byte sequence, then an ASCII quote. */
  truncated: [0xe2, 0x82],
  /** A code point above U+10FFFF. */
  beyondUnicode: [0xf4, 0x90, 0x80, 0x80],
} as const;

/** What the global prototypes hold now; compare before and after to detect pollution. */
export function prototypeFingerprint(): string {
  const names = (o: object) => Object.getOwnPropertyNames(o).sort().join(',');
  return JSON.stringify({
    object: names(Object.prototype),
    array: names(Array.prototype),
    function: names(Function.prototype),
    string: names(String.prototype),
    probe: Object.keys({}).length,
    // the keys hostile payloads try to plant
    planted: ['polluted', 'isAdmin', 'roles', 'max', 'force', 'ids', 'sequenceNumbers'].filter((k) => k in {}),
  });
}
