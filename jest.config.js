/**
 * Two Jest projects:
 * - `unit`: pure logic and in-process Backstage module tests; starts nothing (`npm run test:unit`, seconds);
 * - `integration`: the real SDKs against the local stand-ins, which its global setup starts (test/integration,
 *   test/e2e, test/servicebus).
 * `npm test` runs both.
 */
const swc = ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' }, sourceMaps: 'inline' }];

const shared = {
  testEnvironment: 'node',
  transform: { '^.+\\.(ts|js|mjs)$': swc },
  // jose ships ESM only; let swc turn it into CommonJS for jest's module registry.
  transformIgnorePatterns: ['/node_modules/(?!(jose)/)'],
};

/** @type {import('jest').Config} */
module.exports = {
  testTimeout: 30000,
  // Two workers, also on a two-core machine: the integration tests mostly wait on the stand-ins (the Cosmos emulator and
  // the broker run in Jest's own process, Backstage in children), so two files at a time halve the wall time. Every test
  // waits for conditions, never for time, so a busy machine slows them down without failing them.
  maxWorkers: 2,
  projects: [
    {
      ...shared,
      displayName: 'unit',
      testMatch: ['<rootDir>/test/unit/**/*.test.ts', '<rootDir>/backstage/src/**/*.test.ts'],
    },
    {
      ...shared,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/{integration,e2e,servicebus}/**/*.test.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
    },
  ],
};
