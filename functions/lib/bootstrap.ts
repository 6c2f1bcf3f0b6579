/**
 * Imported first by every function file: starts Application Insights before the Azure SDKs load, so Cosmos DB and
 * Service Bus calls are traced. Ingestion authenticates with the process credential, which the runtime creates later
 * (hence the lazy require: importing the runtime here would load the SDKs first).
 */
import { bootstrapTelemetry } from '../../shared/platform/telemetry';
import type * as RuntimeModule from '../../shared/runtime';

bootstrapTelemetry(process.env, () => {
  // A require at call time, not an import: the runtime's module graph holds the SDKs, which must load after telemetry.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { getRuntime } = require('../../shared/runtime') as typeof RuntimeModule;
  return getRuntime().credential;
});
