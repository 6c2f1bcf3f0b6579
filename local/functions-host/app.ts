/**
 * This repository's Functions app in the dev host: the runtime built from the process environment (the app
 * settings), every file of functions/ with its trigger, the connections the triggers name resolved the way the host
 * resolves them. Started by the local stack (../stack.ts) for `npm start`.
 */
import { join, resolve } from 'node:path';
import type { CosmosClient } from '@azure/cosmos';
import { createCosmosClient } from '../../shared/platform/cosmos';
import { getRuntime, resetRuntime } from '../../shared/runtime';
import { startFunctionsHost, type FunctionsHost } from './index';

const ROOT = resolve(__dirname, '..', '..');

export async function startAppInDevHost(options: {
  port: number;
  log: (functionName: string, level: string, message: string) => void;
}): Promise<{ host: FunctionsHost; stop(options?: { drainTimeoutInMs?: number }): Promise<void> }> {
  const runtime = getRuntime();
  const cosmosClients: CosmosClient[] = [];
  let host: FunctionsHost;
  try {
    host = await startFunctionsHost({
      functionsDir: join(ROOT, 'functions'),
      hostJsonPath: join(ROOT, 'host.json'),
      port: options.port,
      connections: {
        serviceBus: () =>
          runtime.config.serviceBus.connectionString ?? { fullyQualifiedNamespace: runtime.config.serviceBus.fullyQualifiedNamespace!, credential: runtime.credential },
        cosmos: () => {
          const client = createCosmosClient(runtime.config.cosmos, runtime.credential, { mode: runtime.config.mode });
          cosmosClients.push(client);
          return client;
        },
      },
      log: options.log,
    });
  } catch (error) {
    for (const client of cosmosClients) client.dispose();
    await resetRuntime();
    throw error;
  }
  return {
    host,
    async stop(stopOptions = {}) {
      try {
        await host.stop(stopOptions);
      } finally {
        for (const client of cosmosClients) client.dispose();
        await resetRuntime();
      }
    },
  };
}
