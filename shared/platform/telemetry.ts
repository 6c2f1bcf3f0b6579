/**
 * Telemetry: Application Insights through its OpenTelemetry distro (`applicationinsights` 3.x), started once per
 * process when `APPLICATIONINSIGHTS_CONNECTION_STRING` is set — with the process credential when ingestion is
 * Entra-authenticated (`APPLICATIONINSIGHTS_AUTHENTICATION_STRING=…Authorization=AAD`).
 *
 * One trace follows a change: the webhook request → the queue message (`traceparent`) → the sync (which stamps the
 * trace on the document it writes) → the edge projection of that document. Azure SDK calls become dependencies
 * automatically. Custom metrics go through an OpenTelemetry meter, custom events through the logs API. Without a
 * connection string every call here is a cheap no-op.
 */
import type { TokenCredential } from '@azure/core-auth';
import { context, metrics as otelMetrics, propagation, SpanKind, SpanStatusCode, trace, type Context, type Counter, type Histogram, type Span } from '@opentelemetry/api';
import { logs, SeverityNumber } from '@opentelemetry/api-logs';
import type * as ApplicationInsights from 'applicationinsights';
import { telemetrySettings, type Environment, type TelemetrySettings } from './config';
import type { Dimensions, Metrics } from './metrics';
import { VERSION } from './version';

const SERVICE = 'backstage-cosmos-sync';
let started = false;
let distro: typeof ApplicationInsights | undefined;

/** The distro is loaded only when telemetry is configured: it is large, and cold starts matter. */
function loadDistro(): typeof ApplicationInsights {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  distro ??= require('applicationinsights') as typeof ApplicationInsights;
  return distro;
}

/**
 * Starts Application Insights as early as possible — before the Azure SDKs are loaded, so their calls are traced —
 * from the telemetry settings alone. The process credential does not exist yet, so ingestion authenticates
 * through `credential()`, called only when the exporter first needs a token. Full validation of these settings
 * happens with the rest of the configuration; an invalid value here simply leaves telemetry off.
 */
export function bootstrapTelemetry(env: Environment, credential: () => TokenCredential): boolean {
  const settings = telemetrySettings(env);
  if (!settings.connectionString) return false;
  const lazy: TokenCredential = { getToken: (scopes, options) => credential().getToken(scopes, options) };
  return startTelemetry(settings, lazy);
}

/** Starts Application Insights once per process; returns whether telemetry is exported. */
export function startTelemetry(config: TelemetrySettings, credential: TokenCredential): boolean {
  if (started || !config.connectionString) return started;
  process.env.OTEL_SERVICE_NAME ??= SERVICE;
  loadDistro().useAzureMonitor({
    azureMonitorExporterOptions: {
      connectionString: config.connectionString,
      ...(config.entraAuthentication && { credential }),
    },
    samplingRatio: config.samplingRatio,
    tracesPerSecond: config.tracesPerSecond,
    enableLiveMetrics: false,
    // Only what this app uses. The distro's defaults also patch MongoDB, MySQL, PostgreSQL and Redis clients, which
    // it has none of; disabled, their instrumentations are neither constructed nor loaded (scripts/bundle.ts).
    instrumentationOptions: {
      azureSdk: { enabled: true },
      http: { enabled: true },
      mongoDb: { enabled: false },
      mySql: { enabled: false },
      postgreSql: { enabled: false },
      redis: { enabled: false },
      redis4: { enabled: false },
    },
  });
  started = true;
  return true;
}

export async function stopTelemetry(): Promise<void> {
  if (!started) return;
  await loadDistro().flushAzureMonitor();
  await loadDistro().shutdownAzureMonitor();
  started = false;
}

function tracer() {
  return trace.getTracer(SERVICE, VERSION);
}

/** The context a W3C `traceparent` (and `tracestate`) describes, on top of the active one. */
export function contextFrom(traceparent?: string | null, tracestate?: string | null): Context {
  if (!traceparent) return context.active();
  return propagation.extract(context.active(), { traceparent, ...(tracestate && { tracestate }) });
}

/**
 * The parent for work arriving from outside: the active span when something (e.g. the HTTP instrumentation) already
 * started one, otherwise the trace the caller sent.
 */
export function parentContext(traceparent?: string | null, tracestate?: string | null): Context {
  return trace.getActiveSpan() ? context.active() : contextFrom(traceparent, tracestate);
}

/** Adds the active trace (`traceparent`, `tracestate`) to outgoing HTTP headers. */
export function injectTraceContext(headers: Headers): void {
  propagation.inject(context.active(), headers, { set: (carrier, key, value) => carrier.set(key, value) });
}

/** The active span as a `traceparent`, when a propagator and a recording span are active. */
export function currentTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}

export interface SpanOptions {
  kind?: SpanKind;
  parent?: Context;
  attributes?: Record<string, string | number | boolean | undefined>;
}

/** Runs `fn` in a new active span; an exception marks the span failed and is rethrown. */
export async function inSpan<T>(name: string, options: SpanOptions, fn: (span: Span) => Promise<T>): Promise<T> {
  const attributes = Object.fromEntries(Object.entries(options.attributes ?? {}).filter(([, v]) => v !== undefined)) as Record<string, string | number | boolean>;
  return tracer().startActiveSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes }, options.parent ?? context.active(), async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      span.recordException(error as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
      throw error;
    } finally {
      span.end();
    }
  });
}

/**
 * A custom event (Application Insights `customEvents`) in the active trace. Properties must never hold tokens,
 * secrets or entity bodies.
 */
export function trackEvent(name: string, properties: Record<string, string | number | boolean | undefined> = {}): void {
  const attributes = Object.fromEntries(Object.entries(properties).filter(([, v]) => v !== undefined)) as Record<string, string | number | boolean>;
  logs.getLogger(SERVICE, VERSION).emit({
    severityNumber: SeverityNumber.INFO,
    body: name,
    attributes: { 'microsoft.custom_event.name': name, ...attributes },
    context: context.active(),
  });
}

/** {@link Metrics} over an OpenTelemetry meter: counters and histograms, created on first use. */
export class OpenTelemetryMetrics implements Metrics {
  private readonly meter = otelMetrics.getMeter(SERVICE, VERSION);
  private readonly counters = new Map<string, Counter>();
  private readonly histograms = new Map<string, Histogram>();

  increment(name: string, value = 1, dimensions?: Dimensions): void {
    let counter = this.counters.get(name);
    if (!counter) this.counters.set(name, (counter = this.meter.createCounter(name)));
    counter.add(value, dimensions);
  }

  record(name: string, value: number, dimensions?: Dimensions): void {
    let histogram = this.histograms.get(name);
    if (!histogram) this.histograms.set(name, (histogram = this.meter.createHistogram(name)));
    histogram.record(value, dimensions);
  }
}

export { SpanKind };
