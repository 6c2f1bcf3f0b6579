import { readSchedulerServiceTaskScheduleDefinitionFromConfig, type RootConfigService, type SchedulerServiceTaskScheduleDefinition } from '@backstage/backend-plugin-api';
import { readOptionalFilterPredicateFromConfig, type FilterPredicate } from '@backstage/filter-predicates';
import { durationToMilliseconds, type HumanDuration } from '@backstage/types';

/**
 * How an endpoint authenticates the module's requests:
 * - `entra`: Entra access tokens for `scope` from the backend's own identity — workload identity (AKS federation) when
 *   its variables are present, then managed identity; `credential: 'default'` opts into `DefaultAzureCredential`
 *   (a developer's sign-in), nothing else is tried unless configured;
 * - `serviceAccountToken`: a projected Kubernetes service-account token read from `tokenPath` (re-read when the
 *   kubelet rotates it), for a receiver that trusts the cluster's issuer — no secret and no Azure identity;
 * - `standardWebhooks`: an HMAC signature with a shared secret.
 */
export type EndpointAuth =
  | { type: 'entra'; scope: string; clientId?: string; credential: 'workload-or-managed' | 'default' }
  | { type: 'serviceAccountToken'; tokenPath: string }
  | { type: 'standardWebhooks'; secret: string };

export interface EndpointSettings {
  name: string;
  url: string;
  timeoutInMs: number;
  auth: EndpointAuth;
}

export interface ChangeEventsSettings {
  schedule: SchedulerServiceTaskScheduleDefinition;
  /**
   * `generations` (default): what the catalog published since the last run, from its database, where the catalog
   * has publication generations (catalog-backend ≥ 4.0.3), else the diff; `diff`: always the catalog API diff.
   */
  detection: 'generations' | 'diff';
  /** How often the whole catalog is diffed; absent: every 10 minutes with generations, every 30 seconds without. */
  fullDiffIntervalInMs?: number;
  /** With generations: how often the snapshot is checked for entities the catalog no longer has. Default 30 s. */
  deletionCheckIntervalInMs: number;
  batchSize: number;
  pageSize: number;
  maxAgeInMs: number;
  retry: { initialDelayInMs: number; maxDelayInMs: number };
  source: string;
  endpoints: EndpointSettings[];
  /** Only entities matching this predicate are published (pushed into the catalog query). */
  filter?: FilterPredicate;
}

/** Thrown at start-up for a configuration that cannot work; the message names each bad key. */
export class ChangeEventsConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`catalog.changeEvents is invalid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ChangeEventsConfigError';
  }
}

const KEY = 'catalog.changeEvents';

/** Reads and validates `catalog.changeEvents`; undefined when the section is absent (the module stays idle). */
export function readChangeEventsSettings(config: RootConfigService): ChangeEventsSettings | undefined {
  const section = config.getOptionalConfig(KEY);
  if (!section) return undefined;
  const { problems, attempt, duration, integer } = sectionReader(section, KEY);

  const schedule = attempt(
    'schedule',
    () =>
      section.has('schedule')
        ? readSchedulerServiceTaskScheduleDefinitionFromConfig(section.getConfig('schedule'))
        : { frequency: { seconds: 1 }, timeout: { minutes: 5 }, initialDelay: { seconds: 10 } },
    { frequency: { seconds: 1 }, timeout: { minutes: 5 } },
  );
  const source = attempt(
    'source',
    () => section.getOptionalString('source') ?? config.getOptionalString('backend.baseUrl') ?? 'backstage',
    'backstage',
  );

  const endpoints: EndpointSettings[] = [];
  const endpointConfigs = attempt('endpoints', () => section.getConfigArray('endpoints'), []);
  if (endpointConfigs.length === 0 && !problems.some((p) => p.includes('.endpoints:'))) problems.push(`${KEY}.endpoints: at least one endpoint is required`);
  const names = new Set<string>();
  endpointConfigs.forEach((endpoint, index) => {
    const at = `endpoints[${index}]`;
    const name = attempt(`${at}.name`, () => endpoint.getString('name'), '');
    if (name && !/^[A-Za-z0-9._-]{1,100}$/.test(name)) problems.push(`${KEY}.${at}.name: letters, digits, '.', '_' and '-' only, at most 100`);
    if (names.has(name)) problems.push(`${KEY}.${at}.name: '${name}' is used twice`);
    names.add(name);
    const url = attempt(`${at}.url`, () => endpoint.getString('url'), '');
    if (url) {
      const problem = endpointUrlProblem(url);
      if (problem) problems.push(`${KEY}.${at}.url: ${problem}`);
    }
    const timeoutInMs = attempt(`${at}.timeout`, () => readDurationInMs(endpoint, 'timeout') ?? 10_000, 10_000);
    const type = attempt(`${at}.auth.type`, () => endpoint.getString('auth.type'), '');
    let auth: EndpointAuth | undefined;
    if (type === 'entra') {
      const scope = attempt(`${at}.auth.scope`, () => endpoint.getString('auth.scope'), '');
      if (scope && !scope.endsWith('/.default')) problems.push(`${KEY}.${at}.auth.scope: must end with /.default, e.g. api://<app-id>/.default`);
      const clientId = endpoint.getOptionalString('auth.clientId');
      const credential = attempt(`${at}.auth.credential`, () => endpoint.getOptionalString('auth.credential') ?? 'workload-or-managed', 'workload-or-managed');
      if (credential !== 'workload-or-managed' && credential !== 'default') {
        problems.push(`${KEY}.${at}.auth.credential: must be 'workload-or-managed' (the default) or 'default' (DefaultAzureCredential, e.g. a developer's sign-in)`);
      }
      auth = { type: 'entra', scope, credential: credential === 'default' ? 'default' : 'workload-or-managed', ...(clientId && { clientId }) };
    } else if (type === 'serviceAccountToken') {
      const tokenPath = attempt(`${at}.auth.tokenPath`, () => endpoint.getString('auth.tokenPath'), '');
      auth = { type: 'serviceAccountToken', tokenPath };
    } else if (type === 'standardWebhooks') {
      const secret = attempt(`${at}.auth.secret`, () => endpoint.getString('auth.secret'), '');
      if (secret && !/^whsec_[A-Za-z0-9+/]{24,}={0,2}$/.test(secret)) problems.push(`${KEY}.${at}.auth.secret: must be whsec_ followed by at least 18 bytes of base64`);
      auth = { type: 'standardWebhooks', secret };
    } else if (type) {
      problems.push(`${KEY}.${at}.auth.type: must be 'entra', 'serviceAccountToken' or 'standardWebhooks'`);
    }
    if (auth) endpoints.push({ name, url, timeoutInMs, auth });
  });

  const detection = attempt('detection', () => section.getOptionalString('detection') ?? 'generations', 'generations');
  if (detection !== 'generations' && detection !== 'diff') problems.push(`${KEY}.detection: must be 'generations' (the default) or 'diff'`);
  const settings: ChangeEventsSettings = {
    schedule,
    detection: detection === 'diff' ? 'diff' : 'generations',
    deletionCheckIntervalInMs: duration('deletionCheckInterval', { seconds: 30 }, { value: 0, message: 'must be a duration of 0 or more (0: every run)' }),
    batchSize: integer('batchSize', 100, 1, 500),
    pageSize: integer('pageSize', 500, 1, 10_000),
    maxAgeInMs: duration('maxAge', { hours: 24 }),
    retry: { initialDelayInMs: duration('retry.initialDelay', { seconds: 5 }), maxDelayInMs: duration('retry.maxDelay', { minutes: 10 }) },
    source,
    endpoints,
  };
  if (section.has('fullDiffInterval')) {
    settings.fullDiffIntervalInMs = duration('fullDiffInterval', { minutes: 10 }, { value: 0, message: 'must be a duration of 0 or more (0: every run)' });
  }
  const filter = attempt('filter', () => readOptionalFilterPredicateFromConfig(section, { key: 'filter' }), undefined);
  if (filter) settings.filter = filter;
  if (problems.length > 0) throw new ChangeEventsConfigError(problems);
  return settings;
}

/** A config section (the type `RootConfigService` hands out, from the module's peer dependency). */
type Config = NonNullable<ReturnType<RootConfigService['getOptionalConfig']>>;

/**
 * Reads one config section and collects every problem, each named `<prefix>.<key>: …`, so that start-up can report
 * all of them at once: `attempt` reads a key (a failure is recorded and `fallback` used), `duration` and `integer`
 * read and range-check the common kinds.
 */
export function sectionReader(section: Config, prefix: string) {
  const problems: string[] = [];
  const attempt = <T>(key: string, read: () => T, fallback: T): T => {
    try {
      return read();
    } catch (error) {
      problems.push(`${prefix}.${key}: ${(error as Error).message}`);
      return fallback;
    }
  };
  /** A duration in milliseconds, at least `minInMs` (default: any positive one); `fallback` when absent. */
  const duration = (key: string, fallback: HumanDuration, minInMs?: { value: number; message: string }) =>
    attempt(
      key,
      () => {
        const ms = readDurationInMs(section, key) ?? durationToMilliseconds(fallback);
        const min = minInMs ?? { value: Number.MIN_VALUE, message: 'must be a positive duration' };
        if (!Number.isFinite(ms) || ms < min.value) throw new Error(min.message);
        return ms;
      },
      durationToMilliseconds(fallback),
    );
  const integer = (key: string, fallback: number, min: number, max: number) =>
    attempt(
      key,
      () => {
        const value = section.getOptionalNumber(key) ?? fallback;
        if (!Number.isInteger(value) || value < min || value > max) throw new Error(`must be a whole number from ${min} to ${max}`);
        return value;
      },
      fallback,
    );
  return { problems, attempt, duration, integer };
}

/** A duration key — a HumanDuration object, or a string such as `30s` or `PT30S` — in milliseconds; undefined when absent. */
export function readDurationInMs(config: Config, key: string): number | undefined {
  if (!config.has(key)) return undefined;
  const value = config.get(key);
  return typeof value === 'string' ? parseDurationString(value) : durationToMilliseconds(value as HumanDuration);
}

/** ISO 8601 durations (`PT30S`) or the short human forms `500ms`, `30s`, `5m`, `24h`, `7d`. */
export function parseDurationString(value: string): number {
  const human = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/.exec(value.trim());
  if (human) {
    const factor = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[human[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
    return Number(human[1]) * factor;
  }
  const iso = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(value.trim());
  if (iso && value.trim() !== 'P' && !value.trim().endsWith('T')) {
    const [, d, h, m, s] = iso;
    return ((Number(d ?? 0) * 24 + Number(h ?? 0)) * 60 + Number(m ?? 0)) * 60_000 + Number(s ?? 0) * 1000;
  }
  throw new Error(`'${value}' is not a duration (e.g. 30s, 5m, PT30S)`);
}

/**
 * Bearer tokens and signatures never travel in clear text: an endpoint must be https, except on the loopback
 * interface (a local receiver on the same machine).
 */
export function endpointUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'must be an absolute http(s) URL';
  }
  if (parsed.protocol === 'https:') return undefined;
  if (parsed.protocol !== 'http:') return 'must be an absolute http(s) URL';
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  return loopback ? undefined : 'must be https (plain http only to a loopback address): the request carries a token or a signature';
}
