import { toDot, toMermaid } from '../../shared/graph/render';
import type { GraphEdge, GraphNode, GraphResult } from '../../shared/graph/traverse';

function graph(nodes: GraphNode[], edges: GraphEdge[], root = nodes[0]?.ref ?? 'component:default/web'): GraphResult {
  return {
    root,
    direction: 'downstream',
    depth: 2,
    relations: ['dependsOn', 'consumesApi'],
    nodes,
    edges,
    cycles: [],
    missing: nodes.filter((n) => n.missing).map((n) => n.ref),
    truncated: false,
    stats: { queries: 0, requestCharge: 0 },
  };
}

const web: GraphNode = { ref: 'component:default/web', kind: 'component', depth: 0 };
const db: GraphNode = { ref: 'resource:default/db', kind: 'resource', depth: 1 };
const gone: GraphNode = { ref: 'api:default/gone', kind: 'api', depth: 1, missing: true };

const withMissing = graph(
  [web, db, gone],
  [
    { source: web.ref, type: 'dependsOn', target: db.ref },
    { source: web.ref, type: 'consumesApi', target: gone.ref },
  ],
);
const complete = graph([web, db], [{ source: web.ref, type: 'dependsOn', target: db.ref }, { source: db.ref, type: 'dependencyOf', target: web.ref }]);

describe('toMermaid', () => {
  test('numbers nodes in order, labels them with their refs, labels edges with their types, dashes missing nodes', () => {
    expect(toMermaid(withMissing)).toBe(
      [
        'graph LR',
        '  n0["component:default/web"]',
        '  n1["resource:default/db"]',
        '  n2["api:default/gone"]:::missing',
        '  n0 -->|dependsOn| n1',
        '  n0 -->|consumesApi| n2',
        '  classDef missing stroke-dasharray: 5 5',
        '',
      ].join('\n'),
    );
  });

  test('no classDef when nothing is missing; edges may point back', () => {
    expect(toMermaid(complete)).toBe(
      ['graph LR', '  n0["component:default/web"]', '  n1["resource:default/db"]', '  n0 -->|dependsOn| n1', '  n1 -->|dependencyOf| n0', ''].join('\n'),
    );
  });

  test('a root alone; one trailing newline', () => {
    const text = toMermaid(graph([web], []));
    expect(text).toBe('graph LR\n  n0["component:default/web"]\n');
    expect(text.endsWith('\n\n')).toBe(false);
  });
});

describe('toDot', () => {
  test('quotes ids, labels edges with their types, dashes missing nodes', () => {
    expect(toDot(withMissing)).toBe(
      [
        'digraph "component:default/web" {',
        '  rankdir=LR;',
        '  node [shape=box];',
        '  "component:default/web";',
        '  "resource:default/db";',
        '  "api:default/gone" [style=dashed];',
        '  "component:default/web" -> "resource:default/db" [label="dependsOn"];',
        '  "component:default/web" -> "api:default/gone" [label="consumesApi"];',
        '}',
        '',
      ].join('\n'),
    );
  });

  test('escapes quotes and backslashes everywhere a string is written', () => {
    const odd: GraphNode = { ref: 'component:default/a"b\\c', kind: 'component', depth: 0 };
    const text = toDot(graph([odd, db], [{ source: odd.ref, type: 'x"y\\z', target: db.ref }]));
    expect(text.split('\n')).toEqual([
      'digraph "component:default/a\\"b\\\\c" {',
      '  rankdir=LR;',
      '  node [shape=box];',
      '  "component:default/a\\"b\\\\c";',
      '  "resource:default/db";',
      '  "component:default/a\\"b\\\\c" -> "resource:default/db" [label="x\\"y\\\\z"];',
      '}',
      '',
    ]);
  });

  test('nothing dashed when nothing is missing; one trailing newline', () => {
    const text = toDot(complete);
    expect(text).not.toContain('dashed');
    expect(text.endsWith('}\n')).toBe(true);
    expect(text.endsWith('\n\n')).toBe(false);
  });
});
