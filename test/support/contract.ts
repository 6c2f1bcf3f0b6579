/**
 * The OpenAPI contract (docs/openapi.yaml, served from shared/api/openapi.json) as a test oracle: every response a
 * suite observes is checked against the operation it answers — the status must be documented, every required header
 * present and valid, the media type one the status documents, the body valid against its schema (schemas close their
 * objects, so an undocumented field fails) — with Ajv's JSON Schema 2020-12 validator, the dialect of OpenAPI 3.1.
 * What was observed is recorded, so a suite can assert that it covered every operation, status and problem type.
 */
import Ajv2020, { type ErrorObject } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import contract from '../../shared/api/openapi.json';

const PROBLEM_PREFIX = 'urn:backstage-cosmos-sync:problem:';
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

interface HeaderSpec {
  required?: boolean;
  schema?: object;
}
interface ResponseSpec {
  headers?: Record<string, HeaderSpec | { $ref: string }>;
  content?: Record<string, { schema?: object }>;
}
interface OperationSpec {
  operationId: string;
  responses: Record<string, ResponseSpec | { $ref: string }>;
}

export interface Operation {
  operationId: string;
  method: string;
  /** The documented path template, e.g. `/api/entities/{kind}/{namespace}/{name}`. */
  template: string;
  spec: OperationSpec;
}

/** A response as a suite saw it. `path` is the request path (with `/api`, without the query). */
export interface ObservedResponse {
  method: string;
  path: string;
  status: number;
  headers: Record<string, string | undefined>;
  body?: string;
}

type Document = typeof contract & { paths: Record<string, Partial<Record<(typeof METHODS)[number], OperationSpec>>> };
const doc = contract as unknown as Document;

/** Every operation the contract documents. */
export const OPERATIONS: readonly Operation[] = Object.entries(doc.paths).flatMap(([template, item]) =>
  METHODS.flatMap((method) => {
    const spec = (item as Partial<Record<(typeof METHODS)[number], OperationSpec>>)[method];
    return spec ? [{ operationId: spec.operationId, method: method.toUpperCase(), template, spec }] : [];
  }),
);

/** Every problem type the contract names (its `ProblemType` enum), as the last segment of the URN. */
export const PROBLEM_TYPES: readonly string[] = (doc.components.schemas.ProblemType as unknown as { enum: string[] }).enum.map((t) => t.slice(PROBLEM_PREFIX.length));

const pointer = (...segments: string[]) => segments.map((s) => encodeURIComponent(s.replace(/~/g, '~0').replace(/\//g, '~1'))).join('/');

export class ContractChecker {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly routes = OPERATIONS.map((operation) => ({
    operation,
    pattern: new RegExp(`^${operation.template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`),
  }));
  /** `<operationId> <status>` and `problem <type>` for everything checked. */
  readonly seen = new Set<string>();

  constructor() {
    addFormats(this.ajv);
    this.ajv.addSchema(contract, 'openapi');
  }

  operationFor(method: string, path: string): Operation | undefined {
    return this.routes.find((r) => r.operation.method === method.toUpperCase() && r.pattern.test(path))?.operation;
  }

  /** What is wrong with `observed` according to the contract; empty when it conforms. Records it as seen. */
  violations(observed: ObservedResponse): string[] {
    const operation = this.operationFor(observed.method, observed.path);
    if (!operation) return [`${observed.method} ${observed.path} is not a documented operation`];
    const where = `${operation.operationId} ${observed.status}`;
    const key = String(observed.status);
    const response = operation.spec.responses[key];
    if (!response) return [`${where}: status ${observed.status} is not documented (documented: ${Object.keys(operation.spec.responses).join(', ')})`];
    this.seen.add(`${operation.operationId} ${key}`);
    const base = ['paths', operation.template, operation.method.toLowerCase(), 'responses', key];
    const resolved = this.resolve(response, base);
    const problems: string[] = [];
    const headers = Object.fromEntries(Object.entries(observed.headers).map(([k, v]) => [k.toLowerCase(), v]));

    for (const [name, header] of Object.entries(resolved.spec.headers ?? {})) {
      const { spec, at } = this.resolve(header, [...resolved.at, 'headers', name]);
      const value = headers[name.toLowerCase()];
      if (value === undefined) {
        if ((spec).required) problems.push(`${where}: required header ${name} is missing`);
        continue;
      }
      if ((spec).schema) problems.push(...this.validate([...at, 'schema'], value, `${where}: header ${name}`));
    }

    const body = observed.body ?? '';
    const content = resolved.spec.content;
    if (!content) {
      if (body.length > 0) problems.push(`${where}: a body where the contract documents none`);
      return problems;
    }
    const mediaType = (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const media = Object.keys(content).find((m) => m.toLowerCase() === mediaType);
    if (!media) return [...problems, `${where}: Content-Type ${mediaType || '(none)'} is not documented (documented: ${Object.keys(content).join(', ')})`];
    if (!content[media]!.schema) return problems;
    let value: unknown = body;
    if (/[/+]json$/.test(media)) {
      try {
        value = JSON.parse(body);
      } catch {
        return [...problems, `${where}: the ${media} body is not JSON`];
      }
      const type = (value as { type?: unknown } | null)?.type;
      if (media === 'application/problem+json' && typeof type === 'string' && type.startsWith(PROBLEM_PREFIX)) this.seen.add(`problem ${type.slice(PROBLEM_PREFIX.length)}`);
    }
    problems.push(...this.validate([...resolved.at, 'content', media, 'schema'], value, `${where}: body`));
    return problems;
  }

  /** A `$ref` to a component, followed once (responses and headers are referenced that way). */
  private resolve<T>(node: T | { $ref: string }, at: string[]): { spec: T; at: string[] } {
    const ref = (node as { $ref?: string }).$ref;
    if (!ref) return { spec: node as T, at };
    const path = ref.replace(/^#\//, '').split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    let target: unknown = contract;
    for (const segment of path) target = (target as Record<string, unknown>)[segment];
    return { spec: target as T, at: path };
  }

  private validate(at: string[], value: unknown, what: string): string[] {
    const ref = `openapi#/${pointer(...at)}`;
    const validator = this.ajv.getSchema(ref) ?? this.ajv.compile({ $ref: ref });
    if (validator(value)) return [];
    return [`${what} does not match the contract: ${describe(validator.errors ?? [])}`];
  }
}

function describe(errors: ErrorObject[]): string {
  return errors
    .slice(0, 8)
    .map((e) => `${e.instancePath || '(root)'} ${e.message ?? e.keyword}${e.keyword === 'additionalProperties' || e.keyword === 'unevaluatedProperties' ? ` (${JSON.stringify(e.params)})` : ''}`)
    .join('; ');
}
