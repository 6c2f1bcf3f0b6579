import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth';
import { TokenAcquisitionError } from '../../shared/platform/errors';
import { EntraTokenProvider, InstrumentedCredential, StaticTokenProvider } from '../../shared/platform/identity';
import { createJsonLogger } from '../../shared/platform/logger';
import { InMemoryMetrics } from '../../shared/platform/metrics';
import { tokenFacts } from '../../shared/self-check';

/** A credential that hands out numbered tokens with a chosen lifetime; records the scopes asked for. */
class CountingCredential implements TokenCredential {
  calls: string[] = [];
  constructor(
    private readonly clock: { now: number },
    private readonly lifetimeInMs: number,
    private readonly extra: Partial<AccessToken> = {},
  ) {}
  async getToken(scopes: string | string[], _options?: GetTokenOptions): Promise<AccessToken> {
    this.calls.push(String(scopes));
    await new Promise((r) => setImmediate(r));
    return { token: `token-${this.calls.length}`, expiresOnTimestamp: this.clock.now + this.lifetimeInMs, tokenType: 'Bearer', ...this.extra };
  }
}

const scope = 'api://backstage/.default';

test('caches the token until the refresh margin before expiry, then asks the credential again', async () => {
  const clock = { now: 0 };
  const credential = new CountingCredential(clock, 60 * 60_000);
  const provider = new EntraTokenProvider(credential, scope, { now: () => clock.now, refreshMarginInMs: 5 * 60_000 });

  expect(await provider.getToken()).toBe('token-1');
  clock.now = 54 * 60_000; // 6 minutes left
  expect(await provider.getToken()).toBe('token-1');
  clock.now = 55 * 60_000 + 1; // inside the 5-minute margin: refresh before expiry
  expect(await provider.getToken()).toBe('token-2');
  expect(credential.calls).toEqual([scope, scope]);
});

test('short-lived tokens (60 s) are kept for half their life, not refetched on every call', async () => {
  const clock = { now: 0 };
  const credential = new CountingCredential(clock, 60_000);
  const provider = new EntraTokenProvider(credential, scope, { now: () => clock.now, refreshMarginInMs: 5 * 60_000 });
  expect(await provider.getToken()).toBe('token-1');
  clock.now = 29_000;
  expect(await provider.getToken()).toBe('token-1');
  clock.now = 30_000; // half-life: refresh while 30 s remain
  expect(await provider.getToken()).toBe('token-2');
  clock.now = 59_000;
  expect(await provider.getToken()).toBe('token-2');
  clock.now = 60_000;
  expect(await provider.getToken()).toBe('token-3');
  expect(credential.calls).toHaveLength(3);
});

test('honours refreshAfterTimestamp when the credential gives one', async () => {
  const clock = { now: 0 };
  const credential = new CountingCredential(clock, 60 * 60_000, { refreshAfterTimestamp: 30 * 60_000 });
  const provider = new EntraTokenProvider(credential, scope, { now: () => clock.now });
  await provider.getToken();
  clock.now = 30 * 60_000;
  expect(await provider.getToken()).toBe('token-2');
});

test('concurrent callers share one request', async () => {
  const clock = { now: 0 };
  const credential = new CountingCredential(clock, 60 * 60_000);
  const provider = new EntraTokenProvider(credential, scope, { now: () => clock.now });
  const tokens = await Promise.all(Array.from({ length: 10 }, () => provider.getToken()));
  expect(new Set(tokens)).toEqual(new Set(['token-1']));
  expect(credential.calls).toHaveLength(1);
});

test('forceRefresh drops the cached token (used once after a 401)', async () => {
  const clock = { now: 0 };
  const credential = new CountingCredential(clock, 60 * 60_000);
  const provider = new EntraTokenProvider(credential, scope, { now: () => clock.now });
  await provider.getToken();
  expect(await provider.getToken({ forceRefresh: true })).toBe('token-2');
});

test('credential failures become a TokenAcquisitionError naming the scope, with the cause', async () => {
  const failing: TokenCredential = { getToken: async () => Promise.reject(new Error('IMDS unreachable')) };
  const error = await new EntraTokenProvider(failing, scope).getToken().catch((e: unknown) => e);
  expect(error).toBeInstanceOf(TokenAcquisitionError);
  expect((error as Error).message).toBe(`Could not get an Entra token for ${scope}: IMDS unreachable`);
  expect((error as Error).cause).toBeInstanceOf(Error);
  expect((error as TokenAcquisitionError).transient).toBe(true);
});

test('static tokens are returned as-is', async () => {
  expect(await new StaticTokenProvider('local-token').getToken({ forceRefresh: true })).toBe('local-token');
});

describe('InstrumentedCredential: token telemetry', () => {
  /** Hands out the same token until `rotate()`, and fails while `failing`. */
  class RotatingCredential implements TokenCredential {
    generation = 1;
    failing = false;
    constructor(private readonly clock: { now: number }) {}
    private readonly issuedAt = new Map<number, number>();
    getToken(): Promise<AccessToken> {
      if (this.failing) return Promise.reject(new Error('ManagedIdentityCredential: the endpoint answered 400'));
      if (!this.issuedAt.has(this.generation)) this.issuedAt.set(this.generation, this.clock.now);
      return Promise.resolve({ token: `secret-token-${this.generation}`, expiresOnTimestamp: this.issuedAt.get(this.generation)! + 3_600_000, tokenType: 'Bearer' });
    }
  }

  test('counts acquisitions, refreshes and failures per scope, records the time left, and never logs a token', async () => {
    const clock = { now: 1_000_000 };
    const inner = new RotatingCredential(clock);
    const metrics = new InMemoryMetrics();
    const lines: string[] = [];
    const logger = createJsonLogger({ level: 'debug', write: (line) => lines.push(line) });
    const credential = new InstrumentedCredential(inner, { metrics, logger, now: () => clock.now });

    await credential.getToken('https://cosmos.example/.default');
    clock.now += 600_000;
    await credential.getToken('https://cosmos.example/.default'); // the same token from the cache: not an acquisition
    inner.generation = 2;
    await credential.getToken('https://cosmos.example/.default'); // a new one: a refresh
    await credential.getToken(['api://backstage/.default']);
    inner.failing = true;
    await expect(credential.getToken('api://backstage/.default')).rejects.toThrow(/answered 400/);

    expect(credential.status()).toEqual([
      { scope: 'https://cosmos.example/.default', acquisitions: 2, refreshes: 1, failures: 0, expiresOn: new Date(clock.now + 3_600_000).toISOString() },
      { scope: 'api://backstage/.default', acquisitions: 1, refreshes: 0, failures: 1, expiresOn: new Date(clock.now + 3_600_000).toISOString() },
    ]);
    expect(metrics.counter('identity.token.acquisitions', { scope: 'https://cosmos.example/.default', refresh: 'true' })).toBe(1);
    expect(metrics.counter('identity.token.failures', { scope: 'api://backstage/.default' })).toBe(1);
    // The first token was handed out twice: with an hour left, then with 50 minutes left.
    expect(metrics.summary('identity.token.remaining_seconds')).toMatchObject({ count: 4, min: 3000, max: 3600 });
    expect(lines.some((l) => l.includes('Could not get a token') && l.includes('api://backstage/.default'))).toBe(true);
    expect(lines.join('\n')).not.toMatch(/secret-token/);
  });

  test('tokenFacts: who a token names and for what, from its claims', () => {
    const claims = { aud: 'api://backstage', iss: 'https://login.microsoftonline.com/t/v2.0', oid: 'principal-1', azp: 'client-1' };
    const jwt = `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;
    expect(tokenFacts(jwt, 1_060_000, 1_000_000)).toEqual({ audience: 'api://backstage', issuer: claims.iss, principal: 'principal-1', clientId: 'client-1', expiresInSeconds: 60 });
    expect(tokenFacts('opaque', 1_060_000, 1_000_000)).toEqual({ expiresInSeconds: 60 });
  });
});
