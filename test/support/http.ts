/**
 * Reading what the HTTP functions answered: the adapter (functions/lib/http.ts) always answers a string body.
 */
import type { HttpResponseInit } from '@azure/functions';

export function bodyText(response: HttpResponseInit): string {
  if (response.body === undefined) return '';
  if (typeof response.body !== 'string') throw new Error(`expected a string body, got ${typeof response.body}`);
  return response.body;
}

/** The body parsed as JSON. */
export function bodyJson<T = Record<string, unknown>>(response: HttpResponseInit): T {
  return JSON.parse(bodyText(response)) as T;
}
