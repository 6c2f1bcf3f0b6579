import { AuthoringPolicyError, InvalidEntityError } from '../../shared/platform/errors';
import { validateAuthoredEntity, type AuthoringPolicy } from '../../shared/authored/validate';

const policy: AuthoringPolicy = { kinds: ['Component', 'API', 'Resource', 'System'], namespaces: [], maxBytes: 65536 };
const path = { kind: 'component', namespace: 'default', name: 'provisioned-service' };
const valid = () => ({
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: { name: 'provisioned-service', annotations: { 'example.com/pipeline': 'p-1' } },
  spec: { type: 'service', lifecycle: 'experimental', owner: 'group:default/platform' },
});

async function problems(body: unknown, p: AuthoringPolicy = policy, name = path): Promise<string[]> {
  try {
    await validateAuthoredEntity(body, name, p);
  } catch (error) {
    if (error instanceof InvalidEntityError) return error.problems;
    throw error;
  }
  throw new Error('expected InvalidEntityError');
}

test('a valid entity is accepted, its namespace made explicit', async () => {
  const entity = await validateAuthoredEntity(valid(), path, policy);
  expect(entity).toMatchObject({ kind: 'Component', metadata: { name: 'provisioned-service', namespace: 'default' } });
});

test("what Backstage computes or the provider sets is refused, each named", async () => {
  const body = { ...valid(), relations: [], status: {}, metadata: { ...valid().metadata, uid: 'u', etag: 'e', annotations: { 'backstage.io/managed-by-location': 'url:x' } } };
  expect(await problems(body)).toEqual([
    'relations: computed by Backstage; leave it out',
    'status: computed by Backstage; leave it out',
    'metadata.uid: set by Backstage; leave it out',
    'metadata.etag: set by Backstage; leave it out',
    'metadata.annotations.backstage.io/managed-by-location: set by the entity provider; leave it out',
  ]);
});

test("Backstage's own validators: envelope, field formats, the kind's schema", async () => {
  expect(await problems([valid()])).toEqual(['the body must be a JSON object: a Backstage entity']);
  expect((await problems({ ...valid(), apiVersion: undefined }))[0]).toMatch(/apiVersion/);
  expect((await problems({ ...valid(), metadata: { name: 'Not A Valid Name!' } }, policy, { ...path, name: 'Not A Valid Name!' }))[0]).toMatch(/metadata\.name/);
  expect((await problems({ ...valid(), spec: { type: 'service' } }))[0]).toMatch(/lifecycle|owner/);
  expect((await problems({ ...valid(), unexpected: 1 }))[0]).toMatch(/unexpected/);
});

test('the body names the entity of the path', async () => {
  expect(await problems({ ...valid(), metadata: { name: 'other' } })).toEqual(['metadata.name other is not the path\'s provisioned-service']);
  expect(await problems(valid(), policy, { ...path, kind: 'resource' })).toEqual(["kind Component is not the path's resource"]);
});

test('the policy: kinds and namespaces', async () => {
  await expect(validateAuthoredEntity({ ...valid(), kind: 'Group', spec: { type: 'team', children: [] } }, { ...path, kind: 'group' }, policy)).rejects.toThrow(AuthoringPolicyError);
  const narrow = { ...policy, namespaces: ['provisioned'] };
  await expect(validateAuthoredEntity(valid(), path, narrow)).rejects.toThrow(/Namespace default may not be authored here; AUTHORED_NAMESPACES allows provisioned/);
  const inNamespace = { ...valid(), metadata: { name: 'provisioned-service', namespace: 'provisioned' } };
  await expect(validateAuthoredEntity(inNamespace, { ...path, namespace: 'provisioned' }, narrow)).resolves.toBeDefined();
});
