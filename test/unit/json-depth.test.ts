import fc from 'fast-check';
import { exceedsJsonDepth, MAX_JSON_DEPTH } from '../../shared/intake/intake';

/** How deeply arrays and objects nest in a parsed JSON value (a scalar is 0, `[]` is 1). */
function depthOf(value: unknown): number {
  if (Array.isArray(value)) return 1 + Math.max(0, ...value.map(depthOf));
  if (typeof value === 'object' && value !== null) return 1 + Math.max(0, ...Object.values(value).map(depthOf));
  return 0;
}

const nestedArrays = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;

test('scalars and empty text nest nowhere', () => {
  for (const text of ['', '1', 'null', '"x"', 'true']) expect(exceedsJsonDepth(text, 0)).toBe(false);
});

test('exactly at the limit passes, one level more does not', () => {
  expect(exceedsJsonDepth('[]', 0)).toBe(true);
  expect(exceedsJsonDepth('[]', 1)).toBe(false);
  expect(exceedsJsonDepth('{"a":[{"b":1}]}', 3)).toBe(false);
  expect(exceedsJsonDepth('{"a":[{"b":1}]}', 2)).toBe(true);
  expect(exceedsJsonDepth(nestedArrays(MAX_JSON_DEPTH), MAX_JSON_DEPTH)).toBe(false);
  expect(exceedsJsonDepth(nestedArrays(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH)).toBe(true);
});

test('the intake limit leaves room for a batch of events (batch, event, data)', () => {
  const batch = [{ specversion: '1.0', id: 'e1', type: 'io.backstage.catalog.entity.upserted', data: { entityRef: 'component:default/web' } }];
  expect(exceedsJsonDepth(JSON.stringify(batch), MAX_JSON_DEPTH)).toBe(false);
  expect(exceedsJsonDepth(JSON.stringify(batch), 2)).toBe(true);
});

test('arrays and objects count alike, mixed', () => {
  const text = '{"a":[{"b":[{"c":[]}]}]}'; // 6 levels
  expect(exceedsJsonDepth(text, 6)).toBe(false);
  expect(exceedsJsonDepth(text, 5)).toBe(true);
  expect(exceedsJsonDepth('[{}]', 1)).toBe(true);
  expect(exceedsJsonDepth('{"a":{}}', 1)).toBe(true);
});

test('siblings do not add up: closing brackets leave a level', () => {
  expect(exceedsJsonDepth('[[1],[2],{"a":3},[4]]', 2)).toBe(false);
  expect(exceedsJsonDepth('[[[]],[[]],[[]]]', 3)).toBe(false);
  expect(exceedsJsonDepth('[[[]],[[]],[[[]]]]', 3)).toBe(true);
});

test('brackets inside strings do not count', () => {
  expect(exceedsJsonDepth('["[[[[[[{{{{"]', 1)).toBe(false);
  expect(exceedsJsonDepth('{"{{{{": "[[[["}', 1)).toBe(false);
  // ...nor do closing ones: they would hide the real nesting after them.
  expect(exceedsJsonDepth('["]]]]]]", [[[1]]]]', 3)).toBe(true);
});

test('escaped quotes do not end a string', () => {
  // JSON text: ["\"[[[[", 1] — the brackets are still inside the string.
  expect(exceedsJsonDepth('["\\"[[[[", 1]', 1)).toBe(false);
  // JSON text: {"k\"{{": "\"]]]"} with a real nesting after it.
  expect(exceedsJsonDepth('[{"k\\"{{": "\\"]]]"}, [[1]]]', 2)).toBe(true);
});

test('an escaped backslash does end the string at the next quote', () => {
  // JSON text: ["\\", [[1]]] — the string is one backslash; the nesting after it is 3 deep.
  expect(exceedsJsonDepth('["\\\\", [[1]]]', 2)).toBe(true);
  expect(exceedsJsonDepth('["\\\\", [[1]]]', 3)).toBe(false);
  // JSON text: ["\\\"[[[["] — a backslash and a quote, both escaped: still one string.
  expect(exceedsJsonDepth('["\\\\\\"[[[["]', 1)).toBe(false);
});

test('\\u escapes are ordinary string content', () => {
  expect(exceedsJsonDepth('["\\u005b\\u005b\\u0022[[", 1]', 1)).toBe(false);
});

describe('property: agrees with the depth of the parsed value', () => {
  // String content drawn mostly from the characters that matter, so strings full of brackets, quotes and backslashes are common.
  const unit = fc.oneof(fc.constantFrom('[', ']', '{', '}', '"', '\\', ',', ':'), fc.constantFrom('a', '\u00e9', '\u2028', '\ud83d\ude00'));
  const value = fc.oneof(fc.jsonValue({ maxDepth: 8 }), fc.jsonValue({ maxDepth: 6, stringUnit: unit }));
  const limit = fc.integer({ min: 0, max: 10 });

  test('JSON.stringify, compact and indented', () => {
    fc.assert(
      fc.property(value, limit, (v, max) => {
        const expected = depthOf(v) > max;
        expect(exceedsJsonDepth(JSON.stringify(v), max)).toBe(expected);
        expect(exceedsJsonDepth(JSON.stringify(v, null, 2), max)).toBe(expected);
      }),
      { numRuns: 400 },
    );
  });

  test('fc.json() text', () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 8 }), limit, (text, max) => {
        expect(exceedsJsonDepth(text, max)).toBe(depthOf(JSON.parse(text)) > max);
      }),
      { numRuns: 200 },
    );
  });

  test('a string of any content nests nowhere', () => {
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 40 }), (s) => {
        expect(exceedsJsonDepth(JSON.stringify(s), 0)).toBe(false);
        expect(exceedsJsonDepth(JSON.stringify({ [s]: [s] }), 2)).toBe(false);
        expect(exceedsJsonDepth(JSON.stringify({ [s]: [s, [s]] }), 2)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});
