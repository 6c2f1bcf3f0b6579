/**
 * What one document of the `authored` container means for the catalog: an entity to add (with the provider's location
 * annotations), an entity to remove (a soft-deleted document), or nothing (a document that is not a valid entity —
 * written past the authoring API, straight into the container — is skipped and reported, because one bad entity would
 * make the catalog refuse the whole mutation). Pure.
 */
import {
  ANNOTATION_LOCATION,
  ANNOTATION_ORIGIN_LOCATION,
  apiEntityV1alpha1Validator,
  componentEntityV1alpha1Validator,
  domainEntityV1alpha1Validator,
  EntityPolicies,
  FieldFormatEntityPolicy,
  groupEntityV1alpha1Validator,
  NoForeignRootFieldsEntityPolicy,
  resourceEntityV1alpha1Validator,
  SchemaValidEntityPolicy,
  stringifyEntityRef,
  systemEntityV1alpha1Validator,
  userEntityV1alpha1Validator,
  type Entity,
  type KindValidator,
} from '@backstage/catalog-model';

/** The fields of an `authored` document the provider reads (docs/data-model.md in the repository). */
export interface AuthoredDocument {
  id: string;
  entityRef?: string;
  entity?: unknown;
  deleted?: boolean;
  updatedAt?: string;
  /** Cosmos DB's last-modified time, epoch seconds. */
  _ts?: number;
}

export type Decision =
  | { type: 'add'; id: string; entityRef: string; entity: Entity }
  | { type: 'remove'; id: string; entityRef: string }
  | { type: 'skip'; id: string; reason: string };

const KIND_VALIDATORS: Record<string, KindValidator> = {
  api: apiEntityV1alpha1Validator,
  component: componentEntityV1alpha1Validator,
  domain: domainEntityV1alpha1Validator,
  group: groupEntityV1alpha1Validator,
  resource: resourceEntityV1alpha1Validator,
  system: systemEntityV1alpha1Validator,
  user: userEntityV1alpha1Validator,
};

const policies = EntityPolicies.allOf([new NoForeignRootFieldsEntityPolicy(), new FieldFormatEntityPolicy(), new SchemaValidEntityPolicy()]);

/** `kind:namespace:name` (lower-case, as the container's ids) → the catalog's ref `kind:namespace/name`. */
export function refOfDocumentId(id: string): string | undefined {
  const parts = id.split(':');
  if (parts.length !== 3 || parts.some((p) => p.length === 0) || id !== id.toLowerCase()) return undefined;
  return `${parts[0]}:${parts[1]}/${parts[2]}`;
}

/** What `doc` asks of the catalog; `location` is the provider's `cosmosdb:` location. */
export async function decide(doc: AuthoredDocument, location: string): Promise<Decision> {
  const id = typeof doc.id === 'string' ? doc.id : String(doc.id);
  const ref = refOfDocumentId(id);
  if (!ref) return { type: 'skip', id, reason: 'the id is not a lower-case kind:namespace:name' };
  if (doc.deleted === true) return { type: 'remove', id, entityRef: ref };
  const candidate = doc.entity;
  if (typeof candidate !== 'object' || candidate === null || Array.isArray(candidate)) return { type: 'skip', id, reason: 'the document has no entity object' };
  const raw = structuredClone(candidate) as Record<string, unknown>;
  for (const field of ['relations', 'status']) delete raw[field];
  let entity: Entity;
  try {
    entity = (await policies.enforce(raw as unknown as Entity)) ?? (raw as unknown as Entity);
    const validator = KIND_VALIDATORS[entity.kind.toLowerCase()];
    if (validator && (await validator.check(entity)) === false) throw new Error(`not a valid ${entity.kind}`);
  } catch (error) {
    return { type: 'skip', id, reason: `not a valid entity: ${error instanceof Error ? error.message : String(error)}` };
  }
  const entityRef = stringifyEntityRef(entity);
  if (entityRef !== ref) return { type: 'skip', id, reason: `the entity is ${entityRef}, the id names ${ref}` };
  const { uid: _uid, etag: _etag, generation: _generation, ...metadata } = entity.metadata as Entity['metadata'] & { generation?: unknown };
  return {
    type: 'add',
    id,
    entityRef,
    entity: {
      ...entity,
      metadata: { ...metadata, annotations: { ...metadata.annotations, [ANNOTATION_LOCATION]: location, [ANNOTATION_ORIGIN_LOCATION]: location } },
    },
  };
}
