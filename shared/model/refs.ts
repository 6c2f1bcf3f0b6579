/**
 * Entity references and Cosmos document ids.
 *
 * A Backstage ref is `kind:namespace/name` and compares case-insensitively. A Cosmos id cannot hold `/`,
 * so the mirror's id is the lower-cased `kind:namespace:name`. Names and namespaces cannot contain `:` or
 * `/`, so the mapping is reversible (up to case, which Backstage ignores anyway).
 */
import { KubernetesValidatorFunctions as validators } from '@backstage/catalog-model';
import { InvalidEntityRefError } from '../platform/errors';

export interface EntityName {
  kind: string;
  namespace: string;
  name: string;
}

const DEFAULT_NAMESPACE = 'default';

/** The longest input we even try to parse: 63-character kind, namespace and name plus separators. */
const MAX_REF_LENGTH = 63 * 3 + 2;

/**
 * Parses `kind:namespace/name` or `kind:name` (namespace `default`), keeping the caller's casing.
 * Throws {@link InvalidEntityRefError} naming what is wrong.
 */
export function parseEntityRef(input: unknown): EntityName {
  if (typeof input !== 'string') throw new InvalidEntityRefError(String(input), 'must be a string');
  if (input.length === 0) throw new InvalidEntityRefError(input, 'must not be empty');
  if (input.length > MAX_REF_LENGTH) throw new InvalidEntityRefError(input, `longer than ${MAX_REF_LENGTH} characters`);
  const colon = input.indexOf(':');
  if (colon <= 0) throw new InvalidEntityRefError(input, 'expected kind:namespace/name');
  const kind = input.slice(0, colon);
  const rest = input.slice(colon + 1);
  const slash = rest.indexOf('/');
  const namespace = slash === -1 ? DEFAULT_NAMESPACE : rest.slice(0, slash);
  const name = slash === -1 ? rest : rest.slice(slash + 1);
  return validateEntityName({ kind, namespace, name }, input);
}

/** Validates the three parts (e.g. from a URL path) with Backstage's own field rules. */
export function validateEntityName(parts: EntityName, input = `${parts.kind}:${parts.namespace}/${parts.name}`): EntityName {
  const { kind, namespace, name } = parts;
  if (!validators.isValidKind(kind)) {
    throw new InvalidEntityRefError(input, `kind ${JSON.stringify(kind)} is not valid (letters and digits, starting with a letter, at most 63)`);
  }
  // Backstage compares namespaces case-insensitively; its validator only accepts the lower-case form. Only ASCII
  // letters are lower-cased: toLowerCase() would turn e.g. the Kelvin sign (U+212A) into a valid "k".
  if (!validators.isValidNamespace(namespace.replace(/[A-Z]/g, (letter) => letter.toLowerCase()))) {
    throw new InvalidEntityRefError(input, `namespace ${JSON.stringify(namespace)} is not valid (a DNS label, at most 63)`);
  }
  if (!validators.isValidObjectName(name)) {
    throw new InvalidEntityRefError(
      input,
      `name ${JSON.stringify(name)} is not valid (letters, digits, '-', '_', '.', starting and ending alphanumeric, at most 63)`,
    );
  }
  return { kind, namespace, name };
}

/** `kind:namespace/name` with the parts' own casing. */
export function formatEntityRef(parts: EntityName): string {
  return `${parts.kind}:${parts.namespace}/${parts.name}`;
}

/** The canonical (lower-case) ref, as Backstage prints relation targets. */
export function normalizeEntityRef(input: string | EntityName): string {
  const parts = typeof input === 'string' ? parseEntityRef(input) : input;
  return formatEntityRef(parts).toLowerCase();
}

/** The Cosmos document id of an entity: lower-cased `kind:namespace:name`. */
export function toDocumentId(input: string | EntityName): string {
  const parts = typeof input === 'string' ? parseEntityRef(input) : input;
  return `${parts.kind}:${parts.namespace}:${parts.name}`.toLowerCase();
}

/** The parts of a document id (lower-case). Throws for anything {@link toDocumentId} cannot produce. */
export function fromDocumentId(id: string): EntityName {
  const pieces = id.split(':');
  if (pieces.length !== 3) throw new InvalidEntityRefError(id, 'a document id has the form kind:namespace:name');
  const [kind, namespace, name] = pieces as [string, string, string];
  const parts = validateEntityName({ kind, namespace, name }, id);
  if (id !== id.toLowerCase()) throw new InvalidEntityRefError(id, 'a document id is lower-case');
  return parts;
}

/** The document id for a ref given by a Backstage entity's own envelope. */
export function entityNameOf(entity: { kind: string; metadata: { name: string; namespace?: string | undefined } }): EntityName {
  return { kind: entity.kind, namespace: entity.metadata.namespace ?? DEFAULT_NAMESPACE, name: entity.metadata.name };
}
