/**
 * The OpenAPI contract itself: valid OpenAPI 3.1, served exactly as docs/openapi.yaml says, naming exactly the
 * problem types the code and docs/api.md name; and how `GET /api/openapi.json` answers.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { OpenApiDocument } from '../../shared/api/openapi';
import contract from '../../shared/api/openapi.json';
import { ProblemType } from '../../shared/http/problem';
import { compileOpenApi } from '../../scripts/openapi';
import { PROBLEM_TYPES } from '../support/contract';

test('shared/api/openapi.json is docs/openapi.yaml compiled (npm run openapi)', () => {
  expect(readFileSync(join(__dirname, '..', '..', 'shared', 'api', 'openapi.json'), 'utf8')).toBe(compileOpenApi());
});

test('the contract is a valid OpenAPI 3.1 document', async () => {
  const api = await SwaggerParser.validate(structuredClone(contract) as never);
  expect(api).toMatchObject({ openapi: '3.1.0' });
});

test('the contract names exactly the problem types the code answers and docs/api.md lists', () => {
  const inCode = Object.values(ProblemType).map((t) => t.replace('urn:backstage-cosmos-sync:problem:', ''));
  const apiMd = readFileSync(join(__dirname, '..', '..', 'docs', 'api.md'), 'utf8');
  const inDocs = [...new Set([...apiMd.matchAll(/`urn:backstage-cosmos-sync:problem:([a-z-]+)`/g)].map((m) => m[1]!))];
  expect([...PROBLEM_TYPES].sort()).toEqual(inCode.sort());
  expect(inDocs.sort()).toEqual(inCode.sort());
});

describe('GET /api/openapi.json', () => {
  const served = new OpenApiDocument();
  const request = (ifNoneMatch?: string) => ({ headers: new Headers(ifNoneMatch === undefined ? {} : { 'if-none-match': ifNoneMatch }) });

  test('the document, cacheable, with a strong ETag', () => {
    const response = served.get(request());
    expect(response).toMatchObject({ status: 200, headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'public, max-age=3600', etag: served.etag } });
    expect(JSON.parse(String(response.body))).toEqual(contract);
    expect(served.etag).toMatch(/^"[A-Za-z0-9_-]{32}"$/);
  });

  test.each([
    ['the same tag', (etag: string) => etag],
    ['the tag weakly', (etag: string) => `W/${etag}`],
    ['the tag in a list', (etag: string) => `"other", ${etag}`],
    ['*', () => '*'],
  ])('If-None-Match with %s → 304 without a body', (_name, header) => {
    const response = served.get(request(header(served.etag)));
    expect(response).toEqual({ status: 304, headers: { etag: served.etag, 'cache-control': 'public, max-age=3600' } });
  });

  test('another tag → the document', () => {
    expect(served.get(request('"stale"')).status).toBe(200);
  });
});
