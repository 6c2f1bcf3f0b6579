/**
 * What the authoring API accepts, checked before anything touches Cosmos DB: Backstage's own validators
 * (`@backstage/catalog-model`: the envelope, field formats, the kind's schema) and this deployment's policy (which kinds
 * and namespaces may be authored). Pure.
 */
import {
  apiEntityV1alpha1Validator,
  componentEntityV1alpha1Validator,
  DefaultNamespaceEntityPolicy,
  domainEntityV1alpha1Validator,
  EntityPolicies,
  FieldFormatEntityPolicy,
  groupEntityV1alpha1Validator,
  NoForeignRootFieldsEntityPolicy,
  resourceEntityV1alpha1Validator,
  SchemaValidEntityPolicy,
  systemEntityV1alpha1Validator,
  userEntityV1alpha1Validator,
  type Entity,
  type EntityPolicy,
  type KindValidator,
} from '@backstage/catalog-model';
import type { EntityName } from '../model/refs';
import { AuthoringPolicyError, InvalidEntityError } from '../platform/errors';

export interface AuthoringPolicy {
  /** Kinds that may be authored (case-insensitive). */
  kinds: readonly string[];
  /** Namespaces that may be authored; empty = every namespace. */
  namespaces: readonly string[];
  /** Largest request body, in bytes. */
  maxBytes: number;
}

/** Annotations the entity provider sets; an author may not. */
export const PROVIDER_ANNOTATIONS = ['backstage.io/managed-by-location', 'backstage.io/managed-by-origin-location'];

// Built on first use: reading a kind's validator loads its part of the catalog model (its JSON schema, compiled with
// ajv when first checked), which only this validation needs.
let validators: Record<string, KindValidator> | undefined;
const kindValidators = (): Record<string, KindValidator> => (validators ??= {
  api: apiEntityV1alpha1Validator,
  component: componentEntityV1alpha1Validator,
  domain: domainEntityV1alpha1Validator,
  group: groupEntityV1alpha1Validator,
  resource: resourceEntityV1alpha1Validator,
  system: systemEntityV1alpha1Validator,
  user: userEntityV1alpha1Validator,
});

let policies: EntityPolicy | undefined;
const entityPolicies = (): EntityPolicy =>
  (policies ??= EntityPolicies.allOf([new DefaultNamespaceEntityPolicy(), new NoForeignRootFieldsEntityPolicy(), new FieldFormatEntityPolicy(), new SchemaValidEntityPolicy()]));

/**
 * `body` as an authored entity named `name` (the request path), or a typed error: {@link InvalidEntityError} listing
 * every problem found, {@link AuthoringPolicyError} when the policy does not allow the kind or namespace.
 */
export async function validateAuthoredEntity(body: unknown, name: EntityName, policy: AuthoringPolicy): Promise<Entity> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidEntityError(['the body must be a JSON object: a Backstage entity']);
  const candidate = body as Record<string, unknown>;
  const problems: string[] = [];
  const hostile = hostileKeys(candidate);
  if (hostile.length > 0) throw new InvalidEntityError(hostile.map((path) => `${path}: a key no entity may have`));
  for (const field of ['relations', 'status']) if (field in candidate) problems.push(`${field}: computed by Backstage; leave it out`);
  const metadata = (candidate.metadata ?? {}) as Record<string, unknown>;
  for (const field of ['uid', 'etag', 'generation']) if (typeof metadata === 'object' && field in metadata) problems.push(`metadata.${field}: set by Backstage; leave it out`);
  const annotations = (typeof metadata === 'object' && metadata.annotations) || {};
  for (const key of PROVIDER_ANNOTATIONS) if (typeof annotations === 'object' && key in annotations) problems.push(`metadata.annotations.${key}: set by the entity provider; leave it out`);
  if (problems.length > 0) throw new InvalidEntityError(problems);

  let entity: Entity;
  try {
    entity = (await entityPolicies().enforce(structuredClone(candidate) as unknown as Entity)) ?? (candidate as unknown as Entity);
  } catch (error) {
    throw new InvalidEntityError([error instanceof Error ? error.message : String(error)]);
  }
  const kind = entity.kind.toLowerCase();
  const namespace = entity.metadata.namespace ?? 'default';
  const mismatch = [
    kind !== name.kind.toLowerCase() && `kind ${entity.kind} is not the path's ${name.kind}`,
    namespace.toLowerCase() !== name.namespace.toLowerCase() && `metadata.namespace ${namespace} is not the path's ${name.namespace}`,
    entity.metadata.name.toLowerCase() !== name.name.toLowerCase() && `metadata.name ${entity.metadata.name} is not the path's ${name.name}`,
  ].filter((p): p is string => typeof p === 'string');
  if (mismatch.length > 0) throw new InvalidEntityError(mismatch);

  if (!policy.kinds.some((k) => k.toLowerCase() === kind)) {
    throw new AuthoringPolicyError(`Kind ${entity.kind} may not be authored here; AUTHORED_KINDS allows ${policy.kinds.join(', ')}`);
  }
  if (policy.namespaces.length > 0 && !policy.namespaces.some((n) => n.toLowerCase() === namespace.toLowerCase())) {
    throw new AuthoringPolicyError(`Namespace ${namespace} may not be authored here; AUTHORED_NAMESPACES allows ${policy.namespaces.join(', ')}`);
  }
  const validator = kindValidators()[kind];
  if (!validator) throw new InvalidEntityError([`kind ${entity.kind} has no schema this API can check`]);
  try {
    if ((await validator.check(entity)) !== true) throw new Error(`not a valid ${entity.apiVersion} ${entity.kind}`);
  } catch (error) {
    throw new InvalidEntityError([error instanceof Error ? error.message : String(error)]);
  }
  return { ...entity, metadata: { ...entity.metadata, namespace } };
}

/** Paths of keys that name object internals (`__proto__`, `constructor`, `prototype`), anywhere in `value`. */
function hostileKeys(value: unknown, path = ''): string[] {
  if (typeof value !== 'object' || value === null) return [];
  const found: string[] = [];
  for (const key of Object.keys(value)) {
    const at = path ? `${path}.${key}` : key;
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') found.push(at);
    else found.push(...hostileKeys((value as Record<string, unknown>)[key], at));
  }
  return found;
}
