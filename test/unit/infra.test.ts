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

test('the app identity has a role on every service the code uses, and only data-plane roles', () => {
  const assignments = ofType('Microsoft.Authorization/roleAssignments').map((r) => r.body);
  const roles = {
    'Storage Blob Data Owner (host storage)': 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
    'Azure Service Bus Data Sender': '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39',
    'Azure Service Bus Data Receiver': '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0',
    'Monitoring Metrics Publisher': '3913510d-42f4-4e42-8a64-420c390055eb',
  };
  for (const [role, id] of Object.entries(roles)) {
    expect({ role, assigned: assignments.some((body) => all.includes(`'${id}'`) && /principalId:\s*principalId/.test(body)) }).toEqual({ role, assigned: true });
  }
  // Owner, Contributor and friends never appear.
  expect(all).not.toMatch(/8e3af657-a8ff-443c-a75c-2fe8c4bcb635|b24988ac-6180-42a0-ab88-20f7382dd24c|18d7d88d-d35e-4fb5-a5c3-7773c20a72d9/);
  // Service Bus rights are scoped to the queue, not the namespace.
  for (const body of ofType('Microsoft.Authorization/roleAssignments').filter((r) => r.file === 'app/servicebus.bicep').map((r) => r.body)) {
    expect(body).toMatch(/scope:\s*queue/);
  }
  // Cosmos DB: a custom data-plane role with exactly the actions the code performs, assigned at database scope.
  const role = ofType('Microsoft.DocumentDB/databaseAccounts/sqlRoleDefinitions')[0]!.body;
  const actions = [...role.matchAll(/'Microsoft\.DocumentDB\/databaseAccounts\/([^']+)'/g)].map((m) => m[1]).sort();
  expect(actions).toEqual(
    [
      'readMetadata',
      'sqlDatabases/containers/executeQuery',
      'sqlDatabases/containers/items/create',
      'sqlDatabases/containers/items/delete',
      'sqlDatabases/containers/items/read',
      'sqlDatabases/containers/items/replace',
      'sqlDatabases/containers/items/upsert',
      'sqlDatabases/containers/readChangeFeed',
    ].sort(),
  );
  expect(role).not.toMatch(/\*'/);
  expect(ofType('Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments')[0]!.body).toMatch(/scope:\s*'\$\{account\.id\}\/dbs\/\$\{databaseName\}'/);
});

test('the database declares the containers the code uses, leases included', () => {
  const containers = ofType('Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers').map((r) => r.body);
  const partitionOf = (id: string) => containers.find((b) => b.includes(`id: '${id}'`))?.match(/paths:\s*\['([^']+)'\]/)?.[1];
  // The Function App leaves the container names at the code's defaults, so the declared containers must carry them.
  const [entitiesName, edgesName, leasesName] = ['COSMOS_ENTITIES_CONTAINER', 'COSMOS_EDGES_CONTAINER', 'COSMOS_LEASES_CONTAINER'].map((k) => String(defaults[k]));
  expect({ entities: partitionOf(entitiesName!), edges: partitionOf(edgesName!), leases: partitionOf(leasesName!) }).toEqual({ entities: '/id', edges: '/source', leases: '/id' });
  const entities = containers.find((b) => b.includes("id: 'entities'"))!;
  expect(entities).toMatch(/defaultTtl:\s*defaultTtl/);
  expect(sources.get('app/cosmos.bicep')).toMatch(/param defaultTtl int = -1/);
  expect(entities).toMatch(/excludedPaths:[^\]]*'\/entity\/\*'/);
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
    /^AzureWebJobsStorage__/.test(name) || /^(CosmosDBConnection|ServiceBusConnection)__(credential|clientId)$/.test(name);
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
  expect(endpoints.map((e) => e.file).sort()).toEqual(['app/cosmos.bicep', 'app/servicebus.bicep', 'app/storage.bicep']);
  for (const [file, text] of sources) {
    if (/privateEndpoints@/.test(text)) expect({ file, conditional: /privateEndpoints@[^=]+=\s*if\s*\(enableVnet\)/.test(text) }).toEqual({ file, conditional: true });
  }
  expect(sources.get('main.bicep')).toMatch(/param enableVnet bool = false/);
});

test('outputs are names and endpoints, never secrets', () => {
  const outputs = [...(sources.get('main.bicep') ?? '').matchAll(/^output\s+(\w+)\s+\w+\s*=\s*(.+)$/gm)].map((m) => `${m[1]} = ${m[2]}`);
  expect(outputs.length).toBeGreaterThan(3);
  for (const output of outputs) expect(output).not.toMatch(/connectionString|key|secret|password|sas/i);
  const lines = (sources.get('main.bicep') ?? '').split('\n');
  const secret = lines.findIndex((l) => l.startsWith('param webhookSecrets'));
  expect(lines.slice(Math.max(0, secret - 3), secret)).toContain('@secure()');
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
