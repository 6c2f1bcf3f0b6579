import { readSchedulerServiceTaskScheduleDefinitionFromConfig, type RootConfigService, type SchedulerServiceTaskScheduleDefinition } from '@backstage/backend-plugin-api';
import { sectionReader } from '../config';

/** Where the provider reads authored entities, how often, and as whom. */
export interface CosmosAuthoredSettings {
  /** The account endpoint, e.g. https://<account>.documents.azure.com:443/ */
  endpoint: string;
  database: string;
  container: string;
  /** `workload-or-managed` (default): AKS workload identity, then managed identity. `default`: DefaultAzureCredential. */
  credential: 'workload-or-managed' | 'default';
  clientId?: string;
  /** How often the change feed is read (each run drains it). */
  schedule: SchedulerServiceTaskScheduleDefinition;
  /** How often a full mutation replaces everything the provider gave the catalog. */
  fullMutationIntervalInMs: number;
  /** Documents per change-feed page and per query page. */
  pageSize: number;
  /** The `backstage.io/managed-by-location` of every entity: `cosmosdb:<account host>/<database>/<container>`. */
  location: string;
}

/** Thrown at start-up for a configuration that cannot work; the message names each bad key. */
export class CosmosAuthoredConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`${KEY} is invalid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'CosmosAuthoredConfigError';
  }
}

export const KEY = 'catalog.providers.cosmosAuthored';

const DEFAULT_SCHEDULE: SchedulerServiceTaskScheduleDefinition = { frequency: { seconds: 2 }, timeout: { minutes: 5 }, initialDelay: { seconds: 1 } };

/**
 * The location every authored entity carries, and that the authoring API treats as its own when it checks for a
 * take-over: `cosmosdb:<account host>/<database>/<container>`.
 */
export function authoredLocation(endpoint: string, database: string, container: string): string {
  return `cosmosdb:${new URL(endpoint).host}/${database}/${container}`;
}

/** Reads and validates `catalog.providers.cosmosAuthored`; undefined when the section is absent (no provider). */
export function readCosmosAuthoredSettings(config: RootConfigService): CosmosAuthoredSettings | undefined {
  const section = config.getOptionalConfig(KEY);
  if (!section) return undefined;
  const { problems, attempt, duration, integer } = sectionReader(section, KEY);

  const endpoint = attempt('endpoint', () => section.getString('endpoint'), '');
  if (endpoint) {
    let url: URL | undefined;
    try {
      url = new URL(endpoint);
    } catch {
      problems.push(`${KEY}.endpoint: must be an absolute https URL, e.g. https://<account>.documents.azure.com:443/`);
    }
    // The Cosmos DB SDK sends Entra tokens over TLS only.
    if (url && url.protocol !== 'https:') problems.push(`${KEY}.endpoint: must be https (Entra tokens are sent over TLS only)`);
  }
  const name = (key: string, fallback?: string) =>
    attempt(
      key,
      () => {
        const value = fallback === undefined ? section.getString(key) : (section.getOptionalString(key) ?? fallback);
        if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$/.test(value)) throw new Error('letters, digits, "_" and "-" only, at most 255');
        return value;
      },
      '',
    );
  const database = name('database');
  const container = name('container', 'authored');
  const credential = attempt('credential', () => section.getOptionalString('credential') ?? 'workload-or-managed', 'workload-or-managed');
  if (credential !== 'workload-or-managed' && credential !== 'default') {
    problems.push(`${KEY}.credential: must be 'workload-or-managed' (the default) or 'default' (DefaultAzureCredential, e.g. a developer's sign-in)`);
  }
  const clientId = attempt('clientId', () => section.getOptionalString('clientId'), undefined);
  const schedule = attempt(
    'schedule',
    () => (section.has('schedule') ? readSchedulerServiceTaskScheduleDefinitionFromConfig(section.getConfig('schedule')) : DEFAULT_SCHEDULE),
    DEFAULT_SCHEDULE,
  );
  const fullMutationIntervalInMs = duration('fullMutationInterval', { minutes: 30 }, { value: 60_000, message: 'must be a duration of at least one minute' });
  const pageSize = integer('pageSize', 100, 1, 1000);
  if (problems.length > 0) throw new CosmosAuthoredConfigError(problems);
  return {
    endpoint,
    database,
    container,
    credential: credential === 'default' ? 'default' : 'workload-or-managed',
    ...(clientId && { clientId }),
    schedule,
    fullMutationIntervalInMs,
    pageSize,
    location: authoredLocation(endpoint, database, container),
  };
}
