/**
 * `npm run catalog:deployment` — azd's `postprovision` hook (azure.yaml): writes `catalog-info.deployment.yaml`, the
 * entities of `catalog-info.yaml` carrying what was deployed as annotations — endpoints and names, the app's identity,
 * every role assignment with its data actions and scope, whether public network access is off — so a reader of the
 * catalog sees who may talk to what. Generated, ignored by git; see docs/deploy.md ("The service in your catalog").
 *
 * Reads the azd environment (azd passes every value, Bicep outputs included, to its hooks as environment variables)
 * and the role definitions Bicep itself deploys (infra/app/cosmos-roles.json). Writes nothing when a value it needs
 * is missing, and says which.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Entity } from '@backstage/catalog-model';
import { parseAllDocuments, stringify } from 'yaml';

const ROOT = join(__dirname, '..');
export const SOURCE = join(ROOT, 'catalog-info.yaml');
export const TARGET = join(ROOT, 'catalog-info.deployment.yaml');
const PREFIX = 'backstage-cosmos-sync';

/** The azd values this hook reads (the Bicep outputs of infra/main.bicep, and two parameters). */
export const REQUIRED = [
  'FUNCTION_APP_URL',
  'MANAGED_IDENTITY_CLIENT_ID',
  'MANAGED_IDENTITY_PRINCIPAL_ID',
  'COSMOS_ENDPOINT',
  'COSMOS_ACCOUNT_ID',
  'COSMOS_DATABASE_NAME',
  'SERVICEBUS_NAMESPACE',
  'SERVICEBUS_NAMESPACE_ID',
  'SERVICEBUS_QUEUE_NAME',
  'PUBLIC_NETWORK_ACCESS',
] as const;

type Values = Record<(typeof REQUIRED)[number], string> & { BACKSTAGE_PRINCIPAL_ID?: string; MIRROR_READER_PRINCIPAL_IDS?: string; AUTHORED_WRITER_PRINCIPAL_IDS?: string };

interface CosmosRole {
  name: string;
  principal: 'app' | 'backstage' | 'readers' | 'authors';
  container: string;
  dataActions: string[];
}

/** One role assignment as a reader of the catalog sees it. */
export interface RoleAssignmentFact {
  principal: string;
  principalId: string;
  role: string;
  dataActions: string[];
  scope: string;
}

const SERVICE_BUS_ROLES = {
  'Azure Service Bus Data Sender': ['Microsoft.ServiceBus/*/send/action'],
  'Azure Service Bus Data Receiver': ['Microsoft.ServiceBus/*/receive/action'],
} as const;

/** Every role assignment Bicep makes on the data planes, from the deployed values and the roles file. */
export function roleAssignments(values: Values, cosmosRoles: CosmosRole[]): RoleAssignmentFact[] {
  const principals: Record<CosmosRole['principal'], Array<{ name: string; id: string }>> = {
    app: [{ name: 'the app (user-assigned managed identity)', id: values.MANAGED_IDENTITY_PRINCIPAL_ID }],
    backstage: values.BACKSTAGE_PRINCIPAL_ID ? [{ name: "the Backstage backend's identity", id: values.BACKSTAGE_PRINCIPAL_ID }] : [],
    readers: parseIds(values.MIRROR_READER_PRINCIPAL_IDS).map((id) => ({ name: 'a mirror reader', id })),
    authors: parseIds(values.AUTHORED_WRITER_PRINCIPAL_IDS).map((id) => ({ name: 'a producer of authored entities', id })),
  };
  const facts: RoleAssignmentFact[] = [];
  for (const role of cosmosRoles) {
    for (const principal of principals[role.principal]) {
      facts.push({
        principal: principal.name,
        principalId: principal.id,
        role: role.name,
        dataActions: ['Microsoft.DocumentDB/databaseAccounts/readMetadata', ...role.dataActions.map((a) => `Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/${a}`)],
        scope: `${values.COSMOS_ACCOUNT_ID}/dbs/${values.COSMOS_DATABASE_NAME}/colls/${role.container}`,
      });
    }
  }
  for (const [role, dataActions] of Object.entries(SERVICE_BUS_ROLES)) {
    facts.push({
      principal: 'the app (user-assigned managed identity)',
      principalId: values.MANAGED_IDENTITY_PRINCIPAL_ID,
      role,
      dataActions: [...dataActions],
      scope: `${values.SERVICEBUS_NAMESPACE_ID}/queues/${values.SERVICEBUS_QUEUE_NAME}`,
    });
  }
  return facts;
}

/** The entities of catalog-info.yaml with the deployment's facts as annotations. */
export function withDeploymentFacts(entities: Entity[], values: Values, cosmosRoles: CosmosRole[]): Entity[] {
  const assignments = roleAssignments(values, cosmosRoles);
  const on = (scope: string) => assignments.filter((a) => a.scope === scope);
  const cosmosScope = (container: string) => `${values.COSMOS_ACCOUNT_ID}/dbs/${values.COSMOS_DATABASE_NAME}/colls/${container}`;
  const queueScope = `${values.SERVICEBUS_NAMESPACE_ID}/queues/${values.SERVICEBUS_QUEUE_NAME}`;
  const api = `${values.FUNCTION_APP_URL.replace(/\/$/, '')}/api`;
  const containerOf = (name: string) => /^backstage-cosmos-sync-(entities|edges|leases|webhook-deliveries|authored)$/.exec(name)?.[1];

  return entities.map((entity) => {
    const name = entity.metadata.name;
    let facts: Record<string, string> | undefined;
    if (entity.kind === 'Component') {
      facts = {
        'function-app-url': values.FUNCTION_APP_URL,
        'managed-identity-client-id': values.MANAGED_IDENTITY_CLIENT_ID,
        'managed-identity-principal-id': values.MANAGED_IDENTITY_PRINCIPAL_ID,
        'public-network-access': values.PUBLIC_NETWORK_ACCESS,
        'role-assignments': JSON.stringify(compact(assignments.filter((a) => a.principalId === values.MANAGED_IDENTITY_PRINCIPAL_ID))),
      };
    } else if (entity.kind === 'API') {
      facts = { 'base-url': api, 'openapi-url': `${api}/openapi.json` };
    } else if (name === 'backstage-cosmos-sync-cosmos') {
      facts = {
        'account-endpoint': values.COSMOS_ENDPOINT,
        'account-id': values.COSMOS_ACCOUNT_ID,
        database: values.COSMOS_DATABASE_NAME,
        'public-network-access': values.PUBLIC_NETWORK_ACCESS,
        'local-auth': 'disabled',
      };
    } else if (containerOf(name)) {
      const container = containerOf(name)!;
      facts = {
        'account-endpoint': values.COSMOS_ENDPOINT,
        database: values.COSMOS_DATABASE_NAME,
        container,
        scope: cosmosScope(container),
        'role-assignments': JSON.stringify(compact(on(cosmosScope(container)))),
      };
    } else if (name === 'backstage-cosmos-sync-servicebus') {
      facts = { 'fully-qualified-namespace': values.SERVICEBUS_NAMESPACE, 'namespace-id': values.SERVICEBUS_NAMESPACE_ID, 'public-network-access': values.PUBLIC_NETWORK_ACCESS, 'local-auth': 'disabled' };
    } else if (name === 'backstage-cosmos-sync-queue') {
      facts = { 'fully-qualified-namespace': values.SERVICEBUS_NAMESPACE, queue: values.SERVICEBUS_QUEUE_NAME, scope: queueScope, 'role-assignments': JSON.stringify(compact(on(queueScope))) };
    }
    if (!facts) return entity;
    const annotations = Object.fromEntries(Object.entries(facts).map(([key, value]) => [`${PREFIX}/${key}`, value]));
    return { ...entity, metadata: { ...entity.metadata, annotations: { ...entity.metadata.annotations, ...annotations } } };
  });
}

/** The compact form of a role assignment in an annotation. */
function compact(assignments: RoleAssignmentFact[]): Array<Omit<RoleAssignmentFact, 'principal'>> {
  return assignments.map(({ principalId, role, dataActions, scope }) => ({ principalId, role, dataActions, scope }));
}

function parseIds(value: string | undefined): string[] {
  if (!value) return [];
  const trimmed = value.trim();
  if (trimmed.startsWith('[')) return (JSON.parse(trimmed) as string[]).filter(Boolean);
  return trimmed.split(',').map((s) => s.trim()).filter(Boolean);
}

/** What the hook writes for `env`: the YAML text, or the names of the values it lacks. */
export function renderDeploymentCatalog(env: Record<string, string | undefined>): { yaml: string } | { missing: string[] } {
  const missing = REQUIRED.filter((name) => !env[name]);
  if (missing.length > 0) return { missing };
  const entities = parseAllDocuments(readFileSync(SOURCE, 'utf8')).map((doc) => doc.toJS() as Entity);
  const { roles } = JSON.parse(readFileSync(join(ROOT, 'infra', 'app', 'cosmos-roles.json'), 'utf8')) as { roles: CosmosRole[] };
  const header = '# Generated by the azd postprovision hook (scripts/catalog-deployment.ts) from catalog-info.yaml and the deployment.\n# Do not edit; it is rewritten by every `azd provision`.\n';
  return { yaml: header + withDeploymentFacts(entities, env as Values, roles).map((e) => `---\n${stringify(e, { lineWidth: 0 })}`).join('') };
}

if (require.main === module) {
  const result = renderDeploymentCatalog(process.env);
  if ('missing' in result) {
    console.error(`catalog-info.deployment.yaml not written: the azd environment lacks ${result.missing.join(', ')} (run azd provision first)`);
    process.exit(1);
  }
  writeFileSync(TARGET, result.yaml);
  console.log(`wrote ${TARGET}`);
}
