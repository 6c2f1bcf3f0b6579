import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth';
import { TokenAcquisitionError } from '../../shared/platform/errors';
import { EntraTokenProvider, StaticTokenProvider } from '../../shared/platform/identity';

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
