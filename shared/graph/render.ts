/**
 * Rendering a graph result as Mermaid or Graphviz DOT. Pure.
 */
import type { GraphResult } from './traverse';

/** Mermaid flowchart, left to right; missing targets dashed. */
export function toMermaid(result: GraphResult): string {
  const ids = new Map(result.nodes.map((n, i) => [n.ref, `n${i}`]));
  const lines = ['graph LR'];
  for (const node of result.nodes) lines.push(`  ${ids.get(node.ref)}["${node.ref}"]${node.missing ? ':::missing' : ''}`);
  for (const edge of result.edges) lines.push(`  ${ids.get(edge.source)} -->|${edge.type}| ${ids.get(edge.target)}`);
  if (result.nodes.some((n) => n.missing)) lines.push('  classDef missing stroke-dasharray: 5 5');
  return `${lines.join('\n')}\n`;
}

/** Graphviz DOT; missing targets dashed. */
export function toDot(result: GraphResult): string {
  const q = (s: string) => `"${s.replace(/["\\]/g, '\\$&')}"`;
  const lines = [`digraph ${q(result.root)} {`, '  rankdir=LR;', '  node [shape=box];'];
  for (const node of result.nodes) lines.push(`  ${q(node.ref)}${node.missing ? ' [style=dashed]' : ''};`);
  for (const edge of result.edges) lines.push(`  ${q(edge.source)} -> ${q(edge.target)} [label=${q(edge.type)}];`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
