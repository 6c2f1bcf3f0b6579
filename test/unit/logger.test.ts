import { createJsonLogger, createSinkLogger, sanitize } from '../../shared/platform/logger';
import { BackstageAuthError } from '../../shared/platform/errors';

test('JSON lines with level threshold and child properties', () => {
  const lines: string[] = [];
  const logger = createJsonLogger({ level: 'info', write: (l) => lines.push(l), base: { service: 's' } });
  logger.debug('hidden');
  logger.child({ entityRef: 'component:default/a' }).info('synced', { outcome: 'updated' });
  expect(lines).toHaveLength(1);
  expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'info', message: 'synced', service: 's', entityRef: 'component:default/a', outcome: 'updated' });
});

test('secrets are redacted by key, at any depth', () => {
  const out = sanitize({
    token: 'eyJhbGciOi',
    headers: { Authorization: 'Bearer abc', accept: 'json' },
    nested: [{ clientSecret: 's3cr3t', password: 'p' }],
    connectionString: 'AccountKey=x',
    key: 'k',
    keyCount: 3,
  });
  expect(JSON.stringify(out)).not.toMatch(/eyJhbGciOi|Bearer abc|s3cr3t|AccountKey|"k"/);
  expect(out).toMatchObject({ headers: { accept: 'json' }, keyCount: 3 });
});

test('errors are flattened with code, status and cause', () => {
  const error = new BackstageAuthError('rejected', 401, new Error('inner'));
  expect(sanitize({ error })).toEqual({
    error: { name: 'BackstageAuthError', message: 'rejected', code: 'BackstageUnauthorized', statusCode: 401, cause: { name: 'Error', message: 'inner' } },
  });
});

test('a sink logger (the Functions context) gets message plus JSON properties', () => {
  const calls: string[] = [];
  const sink = { debug: (m: unknown) => calls.push(`d ${String(m)}`), info: (m: unknown) => calls.push(`i ${String(m)}`), warn: (m: unknown) => calls.push(`w ${String(m)}`), error: (m: unknown) => calls.push(`e ${String(m)}`) };
  const logger = createSinkLogger(sink, { invocationId: '1' });
  logger.warn('slow', { token: 'x', ms: 5 });
  logger.child({ entityRef: 'a' }).info('plain');
  expect(calls).toEqual(['w slow {"invocationId":"1","token":"[redacted]","ms":5}', 'i plain {"invocationId":"1","entityRef":"a"}']);
});
