import { readSchedulerServiceTaskScheduleDefinitionFromConfig, type RootConfigService, type SchedulerServiceTaskScheduleDefinition } from '@backstage/backend-plugin-api';
import { durationToMilliseconds, type HumanDuration } from '@backstage/types';

export type EndpointAuth = { type: 'entra'; scope: string; clientId?: string } | { type: 'standardWebhooks'; secret: string };

export interface EndpointSettings {
  name: string;
  url: string;
  timeoutInMs: number;
  auth: EndpointAuth;
}

export interface ChangeEventsSettings {
  schedule: SchedulerServiceTaskScheduleDefinition;
  batchSize: number;
  pageSize: number;
  maxAgeInMs: number;
  retry: { initialDelayInMs: number; maxDelayInMs: number };
  source: string;
  endpoints: EndpointSettings[];
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
  const problems: string[] = [];
  const attempt = <T>(key: string, read: () => T, fallback: T): T => {
    try {
      return read();
    } catch (error) {
      problems.push(`${KEY}.${key}: ${(error as Error).message}`);
      return fallback;
    }
  };
  const duration = (key: string, fallback: HumanDuration) =>
    attempt(
      key,
      () => {
        if (!section.has(key)) return durationToMilliseconds(fallback);
        const value = section.get(key);
        const ms = typeof value === 'string' ? parseDurationString(value) : durationToMilliseconds(value as HumanDuration);
        if (!Number.isFinite(ms) || ms <= 0) throw new Error('must be a positive duration');
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

  const schedule = attempt(
    'schedule',
    () =>
      section.has('schedule')
        ? readSchedulerServiceTaskScheduleDefinitionFromConfig(section.getConfig('schedule'))
        : { frequency: { seconds: 30 }, timeout: { minutes: 5 }, initialDelay: { seconds: 10 } },
    { frequency: { seconds: 30 }, timeout: { minutes: 5 } },
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
      try {
        const parsed = new URL(url);
        if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new Error();
      } catch {
        problems.push(`${KEY}.${at}.url: must be an absolute http(s) URL`);
      }
    }
    const timeoutInMs = attempt(
      `${at}.timeout`,
      () => {
        if (!endpoint.has('timeout')) return 10_000;
        const value = endpoint.get('timeout');
        return typeof value === 'string' ? parseDurationString(value) : durationToMilliseconds(value as HumanDuration);
      },
      10_000,
    );
    const type = attempt(`${at}.auth.type`, () => endpoint.getString('auth.type'), '');
    let auth: EndpointAuth | undefined;
    if (type === 'entra') {
      const scope = attempt(`${at}.auth.scope`, () => endpoint.getString('auth.scope'), '');
      if (scope && !scope.endsWith('/.default')) problems.push(`${KEY}.${at}.auth.scope: must end with /.default, e.g. api://<app-id>/.default`);
      const clientId = endpoint.getOptionalString('auth.clientId');
      auth = { type: 'entra', scope, ...(clientId && { clientId }) };
    } else if (type === 'standardWebhooks') {
      const secret = attempt(`${at}.auth.secret`, () => endpoint.getString('auth.secret'), '');
      if (secret && !/^whsec_[A-Za-z0-9+/]{24,}={0,2}$/.test(secret)) problems.push(`${KEY}.${at}.auth.secret: must be whsec_ followed by at least 18 bytes of base64`);
      auth = { type: 'standardWebhooks', secret };
    } else if (type) {
      problems.push(`${KEY}.${at}.auth.type: must be 'entra' or 'standardWebhooks'`);
    }
    if (auth) endpoints.push({ name, url, timeoutInMs, auth });
  });

  const settings: ChangeEventsSettings = {
    schedule,
    batchSize: integer('batchSize', 100, 1, 500),
    pageSize: integer('pageSize', 500, 1, 10_000),
    maxAgeInMs: duration('maxAge', { hours: 24 }),
    retry: { initialDelayInMs: duration('retry.initialDelay', { seconds: 5 }), maxDelayInMs: duration('retry.maxDelay', { minutes: 10 }) },
    source,
    endpoints,
  };
  if (problems.length > 0) throw new ChangeEventsConfigError(problems);
  return settings;
}

/** ISO 8601 durations (`PT30S`) or the short human forms `500ms`, `30s`, `5m`, `24h`, `7d`. */
function parseDurationString(value: string): number {
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
