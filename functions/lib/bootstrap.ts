/**
 * Imported first by every function file: starts Application Insights before the Azure SDKs load, so Cosmos DB and
 * Service Bus calls are traced. Ingestion authenticates with the process credential, which the runtime creates later
 * (hence the lazy require: importing the runtime here would load the SDKs first).
 */
import { bootstrapTelemetry } from '../../shared/platform/telemetry';

bootstrapTelemetry(process.env, () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { getRuntime } = require('../../shared/runtime') as typeof import('../../shared/runtime');
  return getRuntime().credential;
});
