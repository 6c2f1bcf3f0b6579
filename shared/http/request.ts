/**
 * Reading a request strictly, with zod schemas: query parameters (each at most once), route parameters naming an
 * entity, and JSON bodies holding only the fields an endpoint knows. Every violation throws
 * {@link InvalidRequestError} (or {@link InvalidEntityRefError}) whose message names the parameter and the rule, which
 * the endpoint wrapper answers as a 400 problem.
 */
import { z } from 'zod';
import { validateEntityName, type EntityName } from '../model/refs';
import { InvalidRequestError } from '../platform/errors';
import type { ApiRequest } from './problem';

/** A whole number in a query string: ASCII digits only (no sign, exponent, fraction or spaces), within [min, max]. */
export function queryInteger(min: number, max: number) {
  return z
    .string()
    .regex(/^\d{1,16}$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().min(min, `must be from ${min} to ${max}`).max(max, `must be from ${min} to ${max}`));
}

/** `true`, `false`, or present without a value (`?force`, meaning true). */
export const queryFlag = z.enum(['true', 'false', ''], { error: 'must be true or false' }).transform((v) => v !== 'false');

/**
 * The query as `schema` reads it. A parameter given twice is refused (which value counts would be a guess, and
 * proxies guess differently); parameters the schema does not name are ignored.
 */
export function parseQuery<S extends z.ZodType>(request: Pick<ApiRequest, 'query'>, schema: S): z.output<S> {
  return check(schema, queryValues(request));
}

/** The query parameters by name; throws when one is given more than once. */
export function queryValues(request: Pick<ApiRequest, 'query'>): Record<string, string> {
  // No prototype: a parameter named __proto__ is a plain key here.
  const values = Object.create(null) as Record<string, string>;
  for (const [name, value] of request.query) {
    if (Object.hasOwn(values, name)) throw new InvalidRequestError(`Query parameter '${name}' must not be repeated`);
    values[name] = value;
  }
  return values;
}

/** The route parameters as `schema` reads them. */
export function parseParams<S extends z.ZodType>(request: Pick<ApiRequest, 'params'>, schema: S): z.output<S> {
  return check(schema, request.params);
}

/** The `{kind}/{namespace}/{name}` route parameters, validated with Backstage's own rules. */
export function entityParams(request: Pick<ApiRequest, 'params'>): EntityName {
  const { kind, namespace, name } = request.params;
  return validateEntityName({ kind: kind ?? '', namespace: namespace ?? '', name: name ?? '' });
}

/**
 * The body as `schema` (an object schema) reads it; an empty body is `{}`. A field the schema does not know is
 * refused rather than ignored, so a typo such as `sequenceNumber` cannot turn "replay these" into "replay everything".
 */
export async function parseBody<S extends z.ZodObject>(request: Pick<ApiRequest, 'text'>, schema: S): Promise<z.output<S>> {
  const text = (await request.text()).trim();
  let body: unknown = {};
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      throw new InvalidRequestError('The body must be a JSON object or empty');
    }
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidRequestError('The body must be a JSON object');
  const allowed = Object.keys(schema.shape);
  const unknown = Object.keys(body).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) {
    throw new InvalidRequestError(
      `Unknown field ${unknown.map((key) => JSON.stringify(key)).join(', ')}; the body may hold ${allowed.map((key) => `'${key}'`).join(', ')}`,
    );
  }
  return check(schema, body);
}

function check<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.length > 0 ? `'${issue.path.map(String).join('.')}' ` : '';
  throw new InvalidRequestError(`${path}${issue.message}`);
}
