/**
 * Checks of infra/ we can run without the Bicep compiler (not installable here; `.ci/run` compiles when a `bicep`
 * CLI is on the PATH): keyless everywhere, local auth disabled on every data-plane resource, a role assignment for
 * every service the code uses, the containers and queue the code expects, the Function App's app settings equal
 * to what the code reads, and private networking by default: under main.bicep's parameter defaults (followed through
 * the module calls by a small evaluator at the end of this file) no data service accepts public traffic, every private
 * endpoint registers in a DNS zone linked to the VNet, and the app's internet traffic leaves from one static IP.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LOCAL_ONLY_SETTINGS, settingDefaults, settingNames } from '../../shared/platform/settings';

const defaults = settingDefaults();
const DEFAULT_QUEUE_NAME = String(defaults.SERVICEBUS_QUEUE_NAME);
import { loadEmulatorConfig } from '../../local/servicebus/config';
import { heapArgsFor, WORKER_SEMI_SPACE_IN_MB } from '../../bench/scale';

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
  // Maintenance runs are read by id and carry their own ttl.
  const runsName = String(defaults.COSMOS_RUNS_CONTAINER);
  expect(partitionOf(runsName)).toBe('/id');
  expect(containers.find((b) => b.includes(`id: '${runsName}'`))).toMatch(/defaultTtl: -1/);
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
    /^AzureWebJobsStorage__/.test(name) || /^(CosmosDBConnection|ServiceBusConnection)__(credential|clientId)$/.test(name) || ['FUNCTIONS_REQUEST_BODY_SIZE_LIMIT', 'languageWorkers__node__arguments'].includes(name);
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

test('Flex Consumption on Node 22 with the user-assigned identity; private networking behind one parameter, on by default', () => {
  const app = ofType('Microsoft.Web/sites')[0]!.body;
  expect(app).toMatch(/runtime:\s*\{\s*name:\s*'node',\s*version:\s*'22'\s*\}/);
  expect(app).toMatch(/type:\s*'UserAssigned'/);
  expect(app).toMatch(/type:\s*'UserAssignedIdentity'/);
  expect(ofType('Microsoft.Web/serverfarms')[0]!.body).toMatch(/name:\s*'FC1',\s*tier:\s*'FlexConsumption'/);
  expect(app).toMatch(/virtualNetworkSubnetId: empty\(integrationSubnetId\) \? null : integrationSubnetId/);
  const endpoints = ofType('Microsoft.Network/privateEndpoints');
  expect(endpoints.map((e) => `${e.file}#${e.name}`).sort()).toEqual([
    'app/cosmos.bicep#endpoint',
    'app/keyvault.bicep#endpoint',
    'app/private-link-scope.bicep#endpoint',
    'app/servicebus.bicep#endpoint',
    'app/storage.bicep#blobEndpoint',
    'app/storage.bicep#queueEndpoint',
    'app/storage.bicep#tableEndpoint',
  ]);
  // Every private endpoint (by its own condition or its module's) and the network module exist when privateNetworking is on.
  for (const endpoint of endpoints) {
    const condition = resourceCondition(endpoint.file, endpoint.name) ?? moduleCall(endpoint.file).condition;
    expect({ endpoint: `${endpoint.file}#${endpoint.name}`, condition }).toEqual({ endpoint: `${endpoint.file}#${endpoint.name}`, condition: 'privateNetworking' });
  }
  expect(moduleCall('app/network.bicep').condition).toBe('privateNetworking');
  expect(sources.get('main.bicep')).toMatch(/^param privateNetworking bool = true$/m);
  expect(all).not.toMatch(/enableVnet|ENABLE_VNET/);
  // The Standard tier has no private endpoints: Premium whenever the namespace is private.
  expect(evaluatePath('app/servicebus.bicep', `{${ofType('Microsoft.ServiceBus/namespaces')[0]!.body}`, ['sku', 'name'])).toEqual({ kind: 'string', value: 'Premium' });
});

/** What the default deployment must hold for every resource of these types: the property path and its value. */
const PRIVATE_BY_DEFAULT: Array<[string, string[], string]> = [
  ['Microsoft.DocumentDB/databaseAccounts', ['properties', 'publicNetworkAccess'], 'Disabled'],
  ['Microsoft.DocumentDB/databaseAccounts', ['properties', 'networkAclBypass'], 'None'],
  ['Microsoft.ServiceBus/namespaces', ['properties', 'publicNetworkAccess'], 'Disabled'],
  ['Microsoft.Storage/storageAccounts', ['properties', 'publicNetworkAccess'], 'Disabled'],
  ['Microsoft.Storage/storageAccounts', ['properties', 'networkAcls', 'defaultAction'], 'Deny'],
  ['Microsoft.Storage/storageAccounts', ['properties', 'networkAcls', 'bypass'], 'None'],
  ['Microsoft.KeyVault/vaults', ['properties', 'publicNetworkAccess'], 'Disabled'],
  ['Microsoft.KeyVault/vaults', ['properties', 'networkAcls', 'defaultAction'], 'Deny'],
  ['Microsoft.KeyVault/vaults', ['properties', 'networkAcls', 'bypass'], 'None'],
  ['Microsoft.Insights/components', ['properties', 'publicNetworkAccessForIngestion'], 'Disabled'],
  ['Microsoft.OperationalInsights/workspaces', ['properties', 'publicNetworkAccessForIngestion'], 'Disabled'],
];

test('private by default: under main.bicep\'s defaults no data service can be reached publicly', () => {
  const found = [];
  const wanted = [];
  for (const [type, path, value] of PRIVATE_BY_DEFAULT) {
    const instances = ofType(type);
    expect({ type, declared: instances.length > 0 }).toEqual({ type, declared: true });
    for (const resource of instances) {
      const where = `${resource.file}#${resource.name} ${path.join('.')}`;
      let result: string;
      try {
        const evaluated = evaluatePath(resource.file, `{${resource.body}`, path);
        result = evaluated.kind === 'string' ? evaluated.value : `cannot evaluate: ${evaluated.kind === 'expr' ? evaluated.text : String(evaluated.value)}`;
      } catch (error) {
        result = `cannot evaluate: ${(error as Error).message}`;
      }
      found.push({ where, value: result });
      wanted.push({ where, value });
    }
  }
  expect(found).toEqual(wanted);
  // Query stays open (portal, workbook, log alerts); ingestion is what is private.
  for (const type of ['Microsoft.Insights/components', 'Microsoft.OperationalInsights/workspaces']) {
    expect(evaluatePath(ofType(type)[0]!.file, `{${ofType(type)[0]!.body}`, ['properties', 'publicNetworkAccessForQuery'])).toEqual({ kind: 'string', value: 'Enabled' });
  }
  // azd's default for the parameter agrees with the Bicep default.
  const parameters = JSON.parse(readFileSync(join(INFRA, 'main.parameters.json'), 'utf8')) as { parameters: Record<string, { value: unknown }> };
  const azd = /^\$\{(\w+)=(true|false)\}$/.exec(String(parameters.parameters.privateNetworking?.value));
  expect({ variable: azd?.[1], default: azd?.[2] }).toEqual({ variable: 'PRIVATE_NETWORKING', default: 'true' });
  expect(evaluate('main.bicep', 'privateNetworking')).toEqual({ kind: 'bool', value: true });
  expect(JSON.stringify(parameters)).not.toMatch(/ENABLE_VNET|enableVnet/);
});

test('the evaluator follows defaults through module arguments, and refuses what it cannot evaluate', () => {
  expect(evaluate('app/cosmos.bicep', 'privateNetworking ? \'Disabled\' : \'Enabled\'')).toEqual({ kind: 'string', value: 'Disabled' });
  expect(evaluate('app/cosmos.bicep', '!privateNetworking ? \'Disabled\' : \'Enabled\'')).toEqual({ kind: 'string', value: 'Enabled' });
  expect(evaluate('app/cosmos.bicep', '(!(!privateNetworking))')).toEqual({ kind: 'bool', value: true });
  expect(evaluate('app/storage.bicep', 'privateEndpointSubnetId')).toEqual({ kind: 'expr', file: 'main.bicep', text: 'network!.outputs.privateEndpointSubnetId' });
  expect(() => evaluate('main.bicep', 'location')).toThrow(/no default/);
  expect(() => evaluate('app/cosmos.bicep', 'noSuchName')).toThrow(/cannot resolve/);
  expect(() => evaluate('main.bicep', "empty(alertEmail) ? 'a' : 'b'")).toThrow(/not a boolean/);
  expect(evaluate('main.bicep', "'x-${token}'").kind).toBe('expr');
});

/** The private DNS zone (by its key in network.bicep's `zones`) each endpoint's group id must register in. */
const ZONES_BY_GROUP: Record<string, string[]> = {
  Sql: ['cosmos'],
  namespace: ['serviceBus'],
  vault: ['keyVault'],
  blob: ['blob'],
  queue: ['queue'],
  table: ['table'],
  azuremonitor: ['agentService', 'blob', 'monitor', 'ods', 'oms'],
};

test('every private endpoint has a DNS zone group, and each zone it points at is linked to the VNet', () => {
  const network = sources.get('app/network.bicep')!;
  const zones = topLevelEntries(balancedAt(network, network.indexOf('{', network.search(/^var zones = \{/m))));
  expect(zones.size).toBeGreaterThan(0);
  // The zones are one loop over `zones`, each linked to the VNet by a second loop over the same list...
  const vnet = ofType('Microsoft.Network/virtualNetworks').filter((r) => r.file === 'app/network.bicep');
  expect(vnet).toHaveLength(1);
  const dnsLoop = /^resource (\w+) 'Microsoft\.Network\/privateDnsZones@[^']+' = \[\s*for (\w+) in items\(zones\): \{/m.exec(network);
  const dns = declared.find((r) => r.file === 'app/network.bicep' && r.name === dnsLoop?.[1]);
  expect(dns && evaluate('app/network.bicep', topLevelEntries(`{${dns.body}`).get('name') ?? '')).toEqual({ kind: 'expr', file: 'app/network.bicep', text: `${dnsLoop?.[2]}.value` });
  const linked = new Set<string>();
  for (const link of ofType('Microsoft.Network/privateDnsZones/virtualNetworkLinks')) {
    const loop = new RegExp(`^resource ${link.name} '[^']+' = \\[\\s*for \\((\\w+), (\\w+)\\) in items\\(zones\\): \\{`, 'm').exec(sources.get(link.file)!);
    const entries = topLevelEntries(`{${link.body}`);
    const linksVnet = evaluatePath(link.file, `{${link.body}`, ['properties', 'virtualNetwork', 'id']);
    if (link.file === 'app/network.bicep' && loop && entries.get('parent') === `${dns?.name}[${loop[2]}]` && linksVnet.kind === 'expr' && linksVnet.text === `${vnet[0]!.name}.id`) {
      for (const key of zones.keys()) linked.add(key);
    }
  }
  // ...and main.bicep reaches a zone only through network.bicep's dnsZoneIds output, the zone ids of that same list.
  expect(network).toMatch(/^output dnsZoneIds object = toObject\(items\(zones\), (\w+) => \1\.key, (\w+) => resourceId\('Microsoft\.Network\/privateDnsZones', \2\.value\)\)$/m);

  const problems: string[] = [];
  const registered: Record<string, string[]> = {};
  const wanted: Record<string, string[]> = {};
  for (const endpoint of ofType('Microsoft.Network/privateEndpoints')) {
    const where = `${endpoint.file}#${endpoint.name}`;
    const groupIds = arrayElements(topLevelEntries(`{${endpoint.body}`).get('properties') ?? '{}', 'privateLinkServiceConnections').flatMap((connection) =>
      arrayElements(topLevelEntries(topLevelEntries(connection).get('properties') ?? '{}').get('groupIds') ?? '[]').map((id) => evaluate(endpoint.file, id)),
    );
    const subnet = evaluatePath(endpoint.file, `{${endpoint.body}`, ['properties', 'subnet', 'id']);
    if (subnet.kind !== 'expr' || subnet.text !== 'network!.outputs.privateEndpointSubnetId') problems.push(`${where}: not in the VNet's private endpoint subnet`);
    const groups = ofType('Microsoft.Network/privateEndpoints/privateDnsZoneGroups').filter((g) => g.file === endpoint.file && topLevelEntries(`{${g.body}`).get('parent') === endpoint.name);
    if (groups.length === 0) problems.push(`${where}: no privateDnsZoneGroup`);
    const keys: string[] = [];
    for (const group of groups) {
      const configs = arrayElements(topLevelEntries(`{${group.body}`).get('properties') ?? '{}', 'privateDnsZoneConfigs');
      for (const config of configs) {
        let zone: Value | undefined;
        try {
          zone = evaluatePath(group.file, config, ['properties', 'privateDnsZoneId']);
        } catch (error) {
          problems.push(`${where}: cannot evaluate its zone (${(error as Error).message})`);
          continue;
        }
        const key = zone.kind === 'expr' && zone.file === 'main.bicep' ? /^network!?\.outputs\.dnsZoneIds\.(\w+)$/.exec(zone.text)?.[1] : undefined;
        if (!key || !zones.has(key)) problems.push(`${where}: points at ${JSON.stringify(zone)}, not a zone of network.bicep`);
        else if (!linked.has(key)) problems.push(`${where}: zone ${key} has no virtualNetworkLinks to the VNet`);
        else keys.push(key);
      }
    }
    registered[where] = keys.sort();
    wanted[where] = [...new Set(groupIds.flatMap((id) => (id.kind === 'string' ? (ZONES_BY_GROUP[id.value] ?? [`unknown group ${id.value}`]) : [`unknown group ${JSON.stringify(id)}`])))].sort();
  }
  expect({ problems, registered }).toEqual({ problems: [], registered: wanted });
});

test('limited, known outbound: the integration subnet leaves through a NAT gateway with one static IP, which main.bicep outputs', () => {
  const network = sources.get('app/network.bicep')!;
  const outputs = new Map([...network.matchAll(/^output (\w+) \w+ = (.+)$/gm)].map((m) => [m[1]!, m[2]!]));
  const vnet = ofType('Microsoft.Network/virtualNetworks').find((r) => r.file === 'app/network.bicep')!;
  const index = new RegExp(`^${vnet.name}\\.properties\\.subnets\\[(\\d+)\\]\\.id$`).exec(outputs.get('integrationSubnetId') ?? '')?.[1];
  const subnet = arrayElements(topLevelEntries(`{${vnet.body}`).get('properties') ?? '{}', 'subnets')[Number(index)];
  expect(subnet).toBeDefined();
  // The Function App's integration subnet (delegated to Flex Consumption), with a NAT gateway...
  const delegations = arrayElements(topLevelEntries(subnet!).get('properties') ?? '{}', 'delegations').map((d) => evaluatePath('app/network.bicep', d, ['properties', 'serviceName']));
  expect(delegations).toEqual([{ kind: 'string', value: 'Microsoft.App/environments' }]);
  const natRef = evaluatePath('app/network.bicep', subnet!, ['properties', 'natGateway', 'id']);
  const nat = ofType('Microsoft.Network/natGateways').find((r) => r.file === 'app/network.bicep' && natRef.kind === 'expr' && natRef.text === `${r.name}.id`);
  expect(nat).toBeDefined();
  expect(evaluatePath(nat!.file, `{${nat!.body}`, ['sku', 'name'])).toEqual({ kind: 'string', value: 'Standard' });
  // ...whose one public IP is Standard and static...
  const ips = arrayElements(topLevelEntries(`{${nat!.body}`).get('properties') ?? '{}', 'publicIpAddresses').map((ip) => evaluatePath(nat!.file, ip, ['id']));
  expect(ips).toHaveLength(1);
  const ip = ofType('Microsoft.Network/publicIPAddresses').find((r) => r.file === 'app/network.bicep' && ips[0]!.kind === 'expr' && ips[0]!.text === `${r.name}.id`);
  expect(ip).toBeDefined();
  expect(evaluatePath(ip!.file, `{${ip!.body}`, ['sku', 'name'])).toEqual({ kind: 'string', value: 'Standard' });
  expect(evaluatePath(ip!.file, `{${ip!.body}`, ['properties', 'publicIPAllocationMethod'])).toEqual({ kind: 'string', value: 'Static' });
  // ...the Function App is integrated with that subnet by default...
  expect(evaluate('app/function.bicep', 'integrationSubnetId')).toEqual({ kind: 'expr', file: 'main.bicep', text: 'network!.outputs.integrationSubnetId' });
  // ...and main.bicep outputs that IP as OUTBOUND_IP_ADDRESS.
  expect(outputs.get('outboundIpAddress')).toBe(`${ip!.name}.properties.ipAddress`);
  const main = /^output OUTBOUND_IP_ADDRESS string = (.+)$/m.exec(sources.get('main.bicep')!);
  expect(main && evaluate('main.bicep', main[1]!)).toEqual({ kind: 'expr', file: 'main.bicep', text: 'network!.outputs.outboundIpAddress' });
  // The catalog hook's public-network-access fact follows the same parameter.
  const publicAccess = /^output PUBLIC_NETWORK_ACCESS string = (.+)$/m.exec(sources.get('main.bicep')!);
  expect(publicAccess && evaluate('main.bicep', publicAccess[1]!)).toEqual({ kind: 'string', value: 'Disabled' });
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

test("the worker's heap limit is half the instance's memory, which is a parameter with 512 MB among its values; its semi-space the benchmark's", () => {
  const fn = sources.get('app/function.bicep')!;
  expect(fn).toMatch(/scaleAndConcurrency: \{ maximumInstanceCount: maximumInstanceCount, instanceMemoryMB: instanceMemoryMB \}/);
  const workerArguments = fn.match(/^\s{4}languageWorkers__node__arguments: '(.*)'$/m)?.[1];
  expect(workerArguments).toBe(`--max-heap-size=\${instanceMemoryMB / 2} --max-semi-space-size=${WORKER_SEMI_SPACE_IN_MB}`);
  // The benchmark's processes get the same flags as the worker on the instance they emulate.
  expect(heapArgsFor(512)).toEqual(['--max-heap-size=256', `--max-semi-space-size=${WORKER_SEMI_SPACE_IN_MB}`]);
  const main = sources.get('main.bicep')!;
  expect(main).toMatch(/@allowed\(\[512, 2048, 4096\]\)\nparam instanceMemoryMB int = 2048$/m);
  expect(main).toMatch(/^\s{4}instanceMemoryMB: instanceMemoryMB$/m);
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

/*
 * A small evaluator of Bicep expressions under main.bicep's parameter defaults, for the networking tests. It follows a
 * value from a module's param through the module call's argument in main.bicep to main.bicep's param default, and
 * evaluates string and boolean literals, `!x`, `x ? a : b` and parentheses. Anything else is returned as an
 * expression (`kind: 'expr'`) for the caller to recognise, or refused: a parameter without a default, an identifier
 * it cannot resolve, a condition that is not a boolean.
 */
type Value = { kind: 'string'; value: string } | { kind: 'bool'; value: boolean } | { kind: 'expr'; file: string; text: string };

/** Index of the quote that closes the string opening at `start` (a `'`), past `${…}` interpolations. */
function endOfString(text: string, start: number): number {
  if (text.startsWith("'''", start)) {
    const end = text.indexOf("'''", start + 3);
    return end < 0 ? text.length : end + 2;
  }
  let i = start + 1;
  while (i < text.length && text[i] !== "'") {
    if (text[i] === '\\') i += 2;
    else if (text.startsWith('${', i)) {
      let depth = 0;
      for (i += 1; i < text.length; i += 1) {
        if (text[i] === "'") i = endOfString(text, i);
        else if (text[i] === '{') depth += 1;
        else if (text[i] === '}' && --depth === 0) break;
      }
      i += 1;
    } else i += 1;
  }
  return i;
}

/** `text` with its comments blanked out (strings kept as they are). */
function withoutComments(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i += 1) {
    if (text[i] === "'") {
      const end = endOfString(text, i);
      out += text.slice(i, end + 1);
      i = end;
    } else if (text.startsWith('//', i)) {
      const end = text.indexOf('\n', i);
      out += ' '.repeat((end < 0 ? text.length : end) - i);
      i = (end < 0 ? text.length : end) - 1;
    } else out += text[i];
  }
  return out;
}

/** Calls `visit` with every character outside strings and the bracket depth it is at; stops when it returns true. */
function scan(text: string, visit: (i: number, depth: number) => boolean | void): void {
  let depth = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i]!;
    if (c === "'") {
      i = endOfString(text, i);
      continue;
    }
    if (c === ')' || c === ']' || c === '}') depth -= 1;
    if (visit(i, depth) === true) return;
    if (c === '(' || c === '[' || c === '{') depth += 1;
  }
}

/** The bracketed text that opens at `open` (a `{`, `[` or `(`), brackets included. */
function balancedAt(text: string, open: number): string {
  const code = withoutComments(text);
  let end = -1;
  scan(code.slice(open), (i, depth) => {
    if (i > 0 && depth === 0 && ')]}'.includes(code[open + i]!)) {
      end = open + i;
      return true;
    }
  });
  if (end < 0) throw new Error(`unbalanced brackets at ${text.slice(open, open + 40)}`);
  return text.slice(open, end + 1);
}

/** The items of a bracketed list (`{…}` or `[…]`), split at top-level commas and line breaks. */
function items(bracketed: string): string[] {
  const inner = withoutComments(bracketed.trim()).slice(1, -1);
  const out: string[] = [];
  let from = 0;
  scan(inner, (i, depth) => {
    if (depth === 0 && (inner[i] === ',' || inner[i] === '\n')) {
      out.push(inner.slice(from, i));
      from = i + 1;
    }
  });
  out.push(inner.slice(from));
  return out.map((item) => item.trim()).filter(Boolean);
}

/** The top-level properties of an object literal: key → expression text. */
function topLevelEntries(object: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const item of items(object)) {
    const m = /^(\w+|'[^']*')\s*:\s*([\s\S]+)$/.exec(item);
    if (!m) throw new Error(`not an object property: ${item}`);
    entries.set(m[1]!.replace(/^'|'$/g, ''), m[2]!.trim());
  }
  return entries;
}

/** The elements of the array literal at `key` of an object literal (or of `array` itself when no key is given). */
function arrayElements(objectOrArray: string, key?: string): string[] {
  const array = key === undefined ? objectOrArray : topLevelEntries(objectOrArray).get(key);
  if (array === undefined || !array.startsWith('[')) throw new Error(`no array literal${key ? ` at ${key}` : ''}`);
  return items(array);
}

/** The expression of a declaration starting at `start`: up to the first top-level line break. */
function expressionAt(text: string, start: number): string {
  const code = withoutComments(text);
  let end = code.length;
  scan(code.slice(start), (i, depth) => {
    if (depth === 0 && code[start + i] === '\n') {
      end = start + i;
      return true;
    }
  });
  return code.slice(start, end).trim();
}

/** main.bicep's call of a module file: its condition (if any) and its params. */
function moduleCall(file: string): { condition: string | undefined; params: Map<string, string> } {
  const main = sources.get('main.bicep')!;
  const m = new RegExp(`^module \\w+ '${file.replace(/[.]/g, '\\.')}' = (?:if \\((.+)\\) )?\\{`, 'm').exec(main);
  if (!m) throw new Error(`main.bicep does not call ${file}`);
  const body = balancedAt(main, m.index + m[0].length - 1);
  const params = topLevelEntries(body).get('params');
  return { condition: m[1], params: params ? topLevelEntries(params) : new Map() };
}

/** The condition of a resource (`= if (…) {`), if it has one. */
function resourceCondition(file: string, name: string): string | undefined {
  return new RegExp(`^resource ${name} '[^']+' = (?:\\[\\s*for [^:]+: )?if \\((.+)\\) \\{`, 'm').exec(sources.get(file)!)?.[1];
}

/** The index of the top-level `?` of a conditional expression (not `?.`, `.?` or `??`), or -1. */
function ternaryAt(text: string): number {
  let at = -1;
  scan(text, (i, depth) => {
    if (depth === 0 && text[i] === '?' && text[i + 1] !== '?' && text[i + 1] !== '.' && text[i - 1] !== '?' && text[i - 1] !== '.') {
      at = i;
      return true;
    }
  });
  return at;
}

function evaluate(file: string, expression: string): Value {
  const text = withoutComments(expression).trim();
  if (text.startsWith('(') && balancedAt(text, 0).length === text.length) return evaluate(file, text.slice(1, -1));
  const question = ternaryAt(text);
  if (question >= 0) {
    let colon = -1;
    let nested = 0;
    scan(text.slice(question + 1), (i, depth) => {
      const c = text[question + 1 + i];
      if (depth !== 0) return;
      if (c === '?') nested += 1;
      else if (c === ':' && nested-- === 0) {
        colon = question + 1 + i;
        return true;
      }
    });
    if (colon < 0) throw new Error(`malformed conditional: ${text}`);
    const condition = evaluate(file, text.slice(0, question));
    if (condition.kind !== 'bool') throw new Error(`not a boolean: ${text.slice(0, question).trim()}`);
    return evaluate(file, condition.value ? text.slice(question + 1, colon) : text.slice(colon + 1));
  }
  if (text.startsWith('!') && !text.startsWith('!=')) {
    const operand = evaluate(file, text.slice(1));
    if (operand.kind !== 'bool') throw new Error(`not a boolean: ${text.slice(1)}`);
    return { kind: 'bool', value: !operand.value };
  }
  if (text === 'true' || text === 'false') return { kind: 'bool', value: text === 'true' };
  if (/^'[^'\\$]*'$/.test(text)) return { kind: 'string', value: text.slice(1, -1) };
  if (/^[A-Za-z_]\w*$/.test(text)) return resolve(file, text);
  return { kind: 'expr', file, text };
}

/** A param (main.bicep: its default; a module: main.bicep's argument, else its default) or a var. */
function resolve(file: string, name: string): Value {
  const source = sources.get(file)!;
  const param = new RegExp(`^param ${name} \\w+(?: = (.+))?$`, 'm').exec(source);
  if (param) {
    if (file !== 'main.bicep') {
      const argument = moduleCall(file).params.get(name);
      if (argument !== undefined) return evaluate('main.bicep', argument);
    }
    if (param[1] === undefined) throw new Error(`${file}: param ${name} has no default`);
    return evaluate(file, param[1]);
  }
  const variable = new RegExp(`^var ${name} = `, 'm').exec(source);
  if (variable) return evaluate(file, expressionAt(source, variable.index + variable[0].length));
  throw new Error(`${file}: cannot resolve ${name}`);
}

/** The value at `path` of an object expression (following conditionals into object literals). */
function evaluatePath(file: string, expression: string, path: string[]): Value {
  const value = evaluate(file, expression);
  if (path.length === 0) return value;
  if (value.kind !== 'expr' || !value.text.startsWith('{')) throw new Error(`${file}: not an object literal at ${path[0]}: ${JSON.stringify(value)}`);
  const property = topLevelEntries(value.text).get(path[0]!);
  if (property === undefined) throw new Error(`${value.file}: no property ${path[0]}`);
  return evaluatePath(value.file, property, path.slice(1));
}

test('the workbook and the alerts read only metrics the code emits, and show every dependency and backlog signal', () => {
  const walk = (dir: string): string[] =>
    readdirSync(join(__dirname, '..', '..', dir), { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory() ? walk(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(__dirname, '..', '..', dir, entry.name)] : [],
    );
  const code = ['shared', 'functions']
    .flatMap(walk)
    .map((file) => readFileSync(file, 'utf8'))
    .join('\n');
  const monitoring = `${sources.get('app/workbook.bicep')}\n${sources.get('app/alerts.bicep')}`;
  // Metric names in the queries: `name == "x"` and `name in ("x", "y")` (escaped quotes inside Bicep strings too).
  const names = new Set<string>();
  for (const m of monitoring.matchAll(/name\s*==\s*\\?"([a-z_.]+)\\?"/g)) names.add(m[1]!);
  for (const m of monitoring.matchAll(/name in \(([^)]*)\)/g)) for (const n of m[1]!.matchAll(/"([a-z_.]+)\\?"/g)) names.add(n[1]!);
  const customEvents = new Set(['reconcileCatalog', 'ReconcileCompleted']);
  const metricNames = [...names].filter((n) => !customEvents.has(n));
  expect(metricNames.length).toBeGreaterThan(10);
  const missing = metricNames.filter((n) => !code.includes(`'${n}'`) && !code.includes(`"${n}"`) && !new RegExp(`= '${n.replace(/\./g, '\\.')}'`).test(code));
  expect(missing).toEqual([]);
  for (const signal of ['dependency.duration', 'dependency.calls', 'cosmos.throttled', 'cosmos.throttle_wait_ms', 'changefeed.estimated_backlog', 'queue.oldest_message_age_ms', 'queue.dead_letters']) {
    expect({ signal, shown: sources.get('app/workbook.bicep')!.includes(signal) }).toEqual({ signal, shown: true });
  }
  for (const signal of ['dependency.calls', 'changefeed.estimated_backlog', 'queue.oldest_message_age_ms']) {
    expect({ signal, alerted: sources.get('app/alerts.bicep')!.includes(signal) }).toEqual({ signal, alerted: true });
  }
});
