/**
 * `npm run openapi` — writes shared/api/openapi.json (what `GET /api/openapi.json` serves) from docs/openapi.yaml, the
 * contract as people read and edit it. `--check` fails when the JSON is not what the YAML says (the unit tests run
 * the same comparison).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

const ROOT = join(__dirname, '..');
export const OPENAPI_YAML = join(ROOT, 'docs', 'openapi.yaml');
export const OPENAPI_JSON = join(ROOT, 'shared', 'api', 'openapi.json');

/** The JSON text the YAML contract compiles to (stable formatting, trailing newline). */
export function compileOpenApi(): string {
  return `${JSON.stringify(parse(readFileSync(OPENAPI_YAML, 'utf8')), null, 2)}\n`;
}

if (require.main === module) {
  const compiled = compileOpenApi();
  if (process.argv.includes('--check')) {
    if (readFileSync(OPENAPI_JSON, 'utf8') !== compiled) {
      console.error('shared/api/openapi.json is stale: run npm run openapi');
      process.exit(1);
    }
  } else {
    writeFileSync(OPENAPI_JSON, compiled);
    console.log(`wrote ${OPENAPI_JSON}`);
  }
}
