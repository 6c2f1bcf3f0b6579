/**
 * Checks of infra/ we can run without the Bicep compiler (not installable here; `.ci/run` compiles when a `bicep`
 * CLI is on the PATH): keyless everywhere, local auth disabled on every data-plane resource, a role assignment for
 * every service the code uses, the containers and queue the code expects, and the Function App's app settings equal
 * to what the code reads.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LOCAL_ONLY_SETTINGS, settingDefaults, settingNames } from '../../shared/platform/settings';

const defaults = settingDefaults();
const DEFAULT_QUEUE_NAME = String(defaults.SERVICEBUS_QUEUE_NAME);
import { loadEmulatorConfig } from '../../local/servicebus/config';

const INFRA = join(__dirname, '..', '..', 'infra');
const files = [join(INFRA, 'main.bicep'), ...readdirSync(join(INFRA, 'app')).filter((f) => f.endsWith('.bicep')).map((f) => join(INFRA, 'app', f))];
const sources = new Map(files.map((f) => [f.slice(INFRA.length + 1), readFileSync(f, 'utf8')]));
const all = [...sources.values()].join('\n');

/** Every `resource <name> '<type>@<version>' = …{…}` with its body (brace-matched), across the files. */
function resources(): Array<{ file: string; name: string; type: string; body: string }> {
  const out = [];
  for (const [file, text] of sources) {
    const pattern = /^resource\s+(\w+)\s+'([^'@]+)@[^']+'\s*=\s*(?:\[\s*)?[^{]*\{/gm;
    for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
      let depth = 1;
      let i = pattern.lastIndex;
      while (depth > 0 && i < text.length) {
        if (text[i] === '{') depth += 1;
        else if (text[i] === '}') depth -= 1;
        i += 1;
      }
      out.push({ file, name: m[1]!, type: m[2]!, body: text.slice(pattern.lastIndex, i) });
    }
  }
  return out;
}

const declared = resources();
const ofType = (type: string) => declared.filter((r) => r.type === type);

test('the parser sees the resources', () => {
  expect(declared.length).toBeGreaterThan(20);
  expect(ofType('Microsoft.Web/sites')).toHaveLength(1);
});

test('no keys, key lookups, key-bearing connection strings or SAS anywhere', () => {
  for (const [file, text] of sources) {
    expect({ file, hits: text.match(/listKeys\(|listConnectionStrings\(|listAccountSas\(|listServiceSas\(|AccountKey|SharedAccessKey|DefaultEndpointsProtocol|SharedAccessSignature|primaryMasterKey|sig=/gi) }).toEqual({ file, hits: null });
  }
  // The one connection string is Application Insights': it names the resource, and with local auth disabled grants nothing.
  const connectionStrings = all.match(/\w*connection_?string\w*/gi) ?? [];
  expect(new Set(connectionStrings)).toEqual(new Set(['appInsightsConnectionString', 'ConnectionString', 'connectionString', 'APPLICATIONINSIGHTS_CONNECTION_STRING']));
});

test('every data-plane resource refuses local (key) authentication', () => {
  const expectations: Array<[string, RegExp[]]> = [
    ['Microsoft.DocumentDB/databaseAccounts', [/disableLocalAuth:\s*true/, /disableKeyBasedMetadataWriteAccess:\s*true/]],
    ['Microsoft.ServiceBus/namespaces', [/disableLocalAuth:\s*true/]],
    ['Microsoft.Storage/storageAccounts', [/allowSharedKeyAccess:\s*false/]],
    ['Microsoft.Insights/components', [/DisableLocalAuth:\s*true/]],
    ['Microsoft.OperationalInsights/workspaces', [/disableLocalAuth:\s*true/]],
  ];
  for (const [type, patterns] of expectations) {
    const found = ofType(type);
    expect({ type, count: found.length }).toEqual({ type, count: 1 });
    for (const pattern of patterns) expect({ type, ok: pattern.test(found[0]!.body) }).toEqual({ type, ok: true });
  }
});

/** The role matrix of docs/identity.md: principal, resource, access, why. */
const matrix = (() => {
  const text = readFileSync(join(__dirname, '..', '..', 'docs', 'identity.md'), 'utf8');
  const section = text.slice(text.indexOf('## Role matrix'), text.indexOf('\n## ', text.indexOf('## Role matrix') + 1));
  return section
    .split('\n')
    .filter((line) => /^\| (app|backstage|readers|authors) \|/.test(line))
    .map((line) => {
      const [principal, resource, access, why] = line.split(' | ').map((cell) => cell.replace(/^\| |\s*\|$/g, '').trim());
      return { principal: principal!, resource: resource!, access: access!, why: why! };
    });
})();

interface CosmosRole {
  name: string;
  roleName: string;
  principal: string;
  container: string;
  dataActions: string[];
  why: string;
}
const cosmosRoles = (JSON.parse(readFileSync(join(INFRA, 'app', 'cosmos-roles.json'), 'utf8')) as { roles: CosmosRole[] }).roles;

/** The built-in Azure roles the matrix may name, and the one resource (Bicep symbol) each may be assigned on. */
const BUILT_IN = {
  'Storage Blob Data Owner': { id: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b', file: 'app/storage.bicep', scope: 'storage' },
  'Azure Service Bus Data Sender': { id: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39', file: 'app/servicebus.bicep', scope: 'queue' },
  'Azure Service Bus Data Receiver': { id: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0', file: 'app/servicebus.bicep', scope: 'queue' },
  'Monitoring Metrics Publisher': { id: '3913510d-42f4-4e42-8a64-420c390055eb', file: 'app/monitoring.bicep', scope: 'appInsights' },
  'Key Vault Secrets User': { id: '4633458b-17de-408a-b874-0445c86b69e6', file: 'app/keyvault.bicep', scope: 'current' },
} as const;

test('the role matrix is complete: every row has a principal, a resource, an access and a reason', () => {
  expect(matrix.length).toBe(cosmosRoles.length + Object.keys(BUILT_IN).length);
  for (const row of matrix) expect(Object.values(row).every((cell) => cell.length > 0)).toBe(true);
});

test('Azure RBAC: every assignment is a row of the role matrix, at the one resource it names, to the app identity', () => {
  const assignments = ofType('Microsoft.Authorization/roleAssignments');
  const assigned = assignments.map((assignment) => {
    const variable = assignment.body.match(/roleDefinitions',\s*(\w+)\)/)?.[1];
    const id = sources.get(assignment.file)!.match(new RegExp(`^var ${variable} = '([0-9a-f-]{36})'`, 'm'))?.[1];
    const name = Object.entries(BUILT_IN).find(([, role]) => role.id === id)?.[0] ?? `unknown role ${id} in ${assignment.file}`;
    return { name, file: assignment.file, scope: assignment.body.match(/^\s*scope:\s*(\w+)\s*$/m)?.[1], principal: assignment.body.match(/principalId:\s*(\w+)/)?.[1] };
  });
  expect(assigned.sort((a, b) => a.name.localeCompare(b.name))).toEqual(
    Object.entries(BUILT_IN)
      .map(([name, role]) => ({ name, file: role.file, scope: role.scope, principal: 'principalId' }))
      .sort((a, b) => a.name.localeCompare(b.name)),
  );
  const builtInRows = matrix.filter((row) => !row.resource.startsWith('Cosmos DB'));
  expect(builtInRows.map((row) => row.access).sort()).toEqual(Object.keys(BUILT_IN).sort());
  expect(builtInRows.every((row) => row.principal === 'app')).toBe(true);
  // Owner, Contributor, User Access Administrator and the Cosmos DB built-in data roles never appear.
  expect(all).not.toMatch(/8e3af657-a8ff-443c-a75c-2fe8c4bcb635|b24988ac-6180-42a0-ab88-20f7382dd24c|18d7d88d-d35e-4fb5-a5c3-7773c20a72d9|00000000-0000-0000-0000-00000000000[12]/);
});

test('Cosmos DB: one custom role per principal and container, exactly the matrix, assignable and assigned at that container', () => {
  const cosmosRows = matrix.filter((row) => row.resource.startsWith('Cosmos DB container'));
  expect(cosmosRows).toHaveLength(cosmosRoles.length);
  for (const role of cosmosRoles) {
    const row = cosmosRows.find((r) => r.access.startsWith(`\`${role.name}\`:`));
    expect({ role: role.name, row: row && { principal: row.principal, resource: row.resource } }).toEqual({
      role: role.name,
      row: { principal: role.principal, resource: `Cosmos DB container \`${role.container}\`` },
    });
    const listed = [...row!.access.slice(row!.access.indexOf(':')).matchAll(/`([^`]+)`/g)].map((m) => m[1]).sort();
    expect({ role: role.name, actions: listed }).toEqual({ role: role.name, actions: [...role.dataActions].sort() });
    for (const action of role.dataActions) expect(action).toMatch(/^(items\/(read|create|replace|upsert|delete)|executeQuery|readChangeFeed)$/);
  }
  const bicep = sources.get('app/cosmos.bicep')!;
  expect(bicep).toContain("loadJsonContent('cosmos-roles.json').roles");
  expect(bicep).toMatch(/var containerScope = '\$\{account\.id\}\/dbs\/\$\{databaseName\}\/colls'/);
  expect(bicep).toMatch(/assignableScopes: \['\$\{containerScope\}\/\$\{role\.container\}'\]/);
  expect(bicep).toMatch(/scope: '\$\{containerScope\}\/\$\{cosmosRoles\[assignment\.role\]\.container\}'/);
  expect(bicep).toMatch(/dataActions: concat\(\['Microsoft\.DocumentDB\/databaseAccounts\/readMetadata'\], map\(role\.dataActions, action => '\$\{containerActions\}\/\$\{action\}'\)\)/);
  expect(bicep).toMatch(/var containerActions = 'Microsoft\.DocumentDB\/databaseAccounts\/sqlDatabases\/containers'/);
  // The two loops are the only Cosmos role resources.
  expect(ofType('Microsoft.DocumentDB/databaseAccounts/sqlRoleDefinitions').map((r) => r.name)).toEqual(['roles']);
  expect(ofType('Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments').map((r) => r.name)).toEqual(['roleAssignments']);
  // Every principal kind is wired to a parameter, and every container a role names is declared.
  for (const kind of new Set(cosmosRoles.map((r) => r.principal))) expect(bicep).toMatch(new RegExp(`^\\s+${kind}: `, 'm'));
  const containerIds = ofType('Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers').map((r) => r.body.match(/id: '([^']+)'/)?.[1]);
  for (const role of cosmosRoles) expect(containerIds).toContain(role.container);
});

test('the database declares the containers the code uses, leases included', () => {
  const containers = ofType('Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers').map((r) => r.body);
  const partitionOf = (id: string) => containers.find((b) => b.includes(`id: '${id}'`))?.match(/paths:\s*\['([^']+)'\]/)?.[1];
  // The Function App leaves the container names at the code's defaults, so the declared containers must carry them.
  const [entitiesName, edgesName, leasesName, deliveriesName] = ['COSMOS_ENTITIES_CONTAINER', 'COSMOS_EDGES_CONTAINER', 'COSMOS_LEASES_CONTAINER', 'COSMOS_DELIVERIES_CONTAINER'].map((k) => String(defaults[k]));
  expect({ entities: partitionOf(entitiesName!), edges: partitionOf(edgesName!), leases: partitionOf(leasesName!), deliveries: partitionOf(deliveriesName!) }).toEqual({
    entities: '/id',
    edges: '/source',
    leases: '/id',
    deliveries: '/id',
  });
  // The replay guard's records carry their own ttl, which needs TTL on for the container.
  expect(containers.find((b) => b.includes(`id: '${deliveriesName}'`))).toMatch(/defaultTtl: -1/);
  const entities = containers.find((b) => b.includes("id: 'entities'"))!;
  expect(entities).toMatch(/defaultTtl:\s*defaultTtl/);
  expect(sources.get('app/cosmos.bicep')).toMatch(/param defaultTtl int = -1/);
  expect(entities).toMatch(/excludedPaths:[^\]]*'\/entity\/\*'/);
  // One entity's history is one partition; its records carry their own ttl.
  const historyName = String(defaults.COSMOS_HISTORY_CONTAINER);
  expect(partitionOf(historyName)).toBe('/entityId');
  expect(containers.find((b) => b.includes(`id: '${historyName}'`))).toMatch(/defaultTtl: -1/);
});

test('the queue is what the code and the local broker expect', () => {
  const queue = ofType('Microsoft.ServiceBus/namespaces/queues')[0]!.body;
  expect(sources.get('app/servicebus.bicep')).toContain(`param queueName string = '${DEFAULT_QUEUE_NAME}'`);
  const local = loadEmulatorConfig(join(__dirname, '..', '..', 'local', 'servicebus', 'Config.json')).find((q) => q.name === DEFAULT_QUEUE_NAME)!;
  expect(queue).toMatch(/requiresSession:\s*true/);
  expect(queue).toMatch(/requiresDuplicateDetection:\s*true/);
  expect(queue).toMatch(/deadLetteringOnMessageExpiration:\s*true/);
  expect(queue).toContain(`maxDeliveryCount: ${local.maxDeliveryCount}`);
  expect(queue).toContain(`lockDuration: 'PT${local.lockDurationInMs / 60_000}M'`);
  expect(queue).toContain(`duplicateDetectionHistoryTimeWindow: 'PT${local.duplicateDetectionWindowInMs / 60_000}M'`);
});

test('the Function App sets every setting without a default, only settings the code reads, and never repeats a default', () => {
  const settings = declared.find((r) => r.type === 'Microsoft.Web/sites/config')!.body;
  const set = new Map([...settings.matchAll(/^\s{4}(\w+):\s*(.*)$/gm)].map((m) => [m[1]!, m[2]!.trim()]));
  const read = new Set(settingNames().filter((name) => !LOCAL_ONLY_SETTINGS.includes(name)));
  const host = (name: string) =>
    /^AzureWebJobsStorage__/.test(name) || /^(CosmosDBConnection|ServiceBusConnection)__(credential|clientId)$/.test(name) || name === 'FUNCTIONS_REQUEST_BODY_SIZE_LIMIT';
  const missing = [...read].filter((name) => !(name in defaults) && !set.has(name));
  const unread = [...set.keys()].filter((name) => !read.has(name) && !host(name));
  // A literal equal to the code's default is a second copy of it, which would silently stay behind when the default changes.
  const repeated = [...set].filter(([name, value]) => name in defaults && value === `'${String(defaults[name])}'`).map(([name]) => name);
  expect({ missing, unread, repeated }).toEqual({ missing: [], unread: [], repeated: [] });
  for (const name of LOCAL_ONLY_SETTINGS) expect(set.has(name)).toBe(false);
  // Production is the default mode; the app never sets another.
  expect(set.has('APP_MODE')).toBe(false);
  // The triggers' identity-based connections name the user-assigned identity.
  for (const prefix of ['AzureWebJobsStorage', 'CosmosDBConnection', 'ServiceBusConnection']) {
    expect(settings).toMatch(new RegExp(`${prefix}__credential: 'managedidentity'`));
    expect(settings).toMatch(new RegExp(`${prefix}__clientId: identityClientId`));
  }
});

test('Flex Consumption on Node 22 with the user-assigned identity; private networking behind one parameter', () => {
  const app = ofType('Microsoft.Web/sites')[0]!.body;
  expect(app).toMatch(/runtime:\s*\{\s*name:\s*'node',\s*version:\s*'22'\s*\}/);
  expect(app).toMatch(/type:\s*'UserAssigned'/);
  expect(app).toMatch(/type:\s*'UserAssignedIdentity'/);
  expect(ofType('Microsoft.Web/serverfarms')[0]!.body).toMatch(/name:\s*'FC1',\s*tier:\s*'FlexConsumption'/);
  const endpoints = ofType('Microsoft.Network/privateEndpoints');
  expect(endpoints.map((e) => e.file).sort()).toEqual(['app/cosmos.bicep', 'app/keyvault.bicep', 'app/servicebus.bicep', 'app/storage.bicep']);
  for (const [file, text] of sources) {
    if (/privateEndpoints@/.test(text)) expect({ file, conditional: /privateEndpoints@[^=]+=\s*if\s*\(enableVnet\)/.test(text) }).toEqual({ file, conditional: true });
  }
  expect(sources.get('main.bicep')).toMatch(/param enableVnet bool = false/);
});

test('outputs are names and endpoints, never secrets', () => {
  const outputs = [...(sources.get('main.bicep') ?? '').matchAll(/^output\s+(\w+)\s+\w+\s*=\s*(.+)$/gm)].map((m) => `${m[1]} = ${m[2]}`);
  expect(outputs.length).toBeGreaterThan(3);
  for (const output of outputs) expect(output.replace(/KEY_VAULT|keyVault/g, 'VAULT')).not.toMatch(/connectionString|key|secret|password|sas/i);
  const lines = (sources.get('main.bicep') ?? '').split('\n');
  const secret = lines.findIndex((l) => l.startsWith('param webhookSecrets'));
  expect(lines.slice(Math.max(0, secret - 3), secret)).toContain('@secure()');
});

test("the host's request-size limit sits just above the intake's own", () => {
  const fn = sources.get('app/function.bicep')!;
  expect(Number(fn.match(/^var intakeMaxBodyBytes = (\d+)$/m)?.[1])).toBe(defaults.INTAKE_MAX_BODY_BYTES);
  expect(fn).toMatch(/FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: string\(intakeMaxBodyBytes \+ 65536\)/);
});

test('no basic-auth publishing: FTP and SCM credentials are off', () => {
  const policies = ofType('Microsoft.Web/sites/basicPublishingCredentialsPolicies').map((r) => r.body);
  expect(policies.map((body) => body.match(/name: '(\w+)'/)?.[1]).sort()).toEqual(['ftp', 'scm']);
  for (const body of policies) expect(body).toMatch(/allow: false/);
});

test('webhook secrets: in Key Vault, referenced with the app identity, readable only by it, never overwritten by a provision without a value', () => {
  const fn = sources.get('app/function.bicep')!;
  expect(ofType('Microsoft.Web/sites')[0]!.body).toMatch(/keyVaultReferenceIdentity: identityId/);
  expect(fn).toMatch(/WEBHOOK_SECRETS: webhooksEnabled \? webhookSecretsReference : ''/);
  expect(fn).not.toMatch(/@secure\(\)/); // the Function App module never sees the secret's value
  const vault = sources.get('app/keyvault.bicep')!;
  expect(ofType('Microsoft.KeyVault/vaults')[0]!.body).toMatch(/enableRbacAuthorization: true/);
  expect(vault).toMatch(/output webhookSecretsReference string = '@Microsoft\.KeyVault\(VaultName=\$\{vault\.name\};SecretName=\$\{secretName\}\)'/);
  // Written only when a value is given; the role is on the secret (an existing reference), not the vault.
  expect(vault).toMatch(/resource secret 'Microsoft\.KeyVault\/vaults\/secrets@[^']+' = if \(!empty\(webhookSecrets\)\)/);
  expect(vault).toMatch(/resource current 'Microsoft\.KeyVault\/vaults\/secrets@[^']+' existing/);
  expect(vault).toMatch(/resource secretReader [^\n]+ = if \(webhooksEnabled\)/);
  // The secret reaches only the Key Vault module.
  expect(sources.get('main.bicep')).toMatch(/webhookSecrets: webhookSecrets/);
  expect([...sources].filter(([, text]) => /\bwebhookSecrets\b/.test(text)).map(([file]) => file).sort()).toEqual(['app/keyvault.bicep', 'main.bicep']);
});

test('azd wiring: azure.yaml points at infra/ and the api service is the Function App', () => {
  const azure = readFileSync(join(__dirname, '..', '..', 'azure.yaml'), 'utf8');
  expect(azure).toMatch(/host: function/);
  expect(azure).toMatch(/path: infra/);
  expect(sources.get('main.bicep')).toMatch(/'azd-service-name': 'api'/);
  const parameters = JSON.parse(readFileSync(join(INFRA, 'main.parameters.json'), 'utf8')) as { parameters: Record<string, unknown> };
  const declaredParams = [...(sources.get('main.bicep') ?? '').matchAll(/^param\s+(\w+)/gm)].map((m) => m[1]!);
  for (const name of Object.keys(parameters.parameters)) expect(declaredParams).toContain(name);
});
