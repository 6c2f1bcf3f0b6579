/**
 * `GET /api/graph/{kind}/{namespace}/{name}` — read role: the dependency graph around an entity as JSON, Mermaid or
 * DOT. Query: `direction` (downstream | upstream | both), `depth` (1–10), `limit` (nodes, 1–5000), `format`,
 * `relations` (up to 20 relation types, comma-separated).
 */
import { z } from 'zod';
import { RELATION_TYPE } from '../edges/derive';
import type { GraphService } from '../graph/traverse';
import { toDot, toMermaid } from '../graph/render';
import type { Endpoints } from '../http/endpoint';
import { json, problem, ProblemType, text, type ApiRequest, type ApiResponse } from '../http/problem';
import { entityParams, parseQuery, queryInteger } from '../http/request';
import { formatEntityRef, toDocumentId } from '../model/refs';
import type { OperationOptions } from '../platform/options';

const graphQuery = z.object({
  direction: z.enum(['downstream', 'upstream', 'both'], { error: 'must be downstream, upstream or both' }).default('downstream'),
  depth: queryInteger(1, 10).default(3),
  limit: queryInteger(1, 5000).default(500),
  format: z.enum(['json', 'mermaid', 'dot'], { error: 'must be json, mermaid or dot' }).default('json'),
  relations: z
    .string()
    .transform((v) => v.split(',').map((r) => r.trim()).filter(Boolean))
    .refine((list) => list.length > 0 && list.length <= 20 && list.every((r) => RELATION_TYPE.test(r)), {
      message: 'must be a comma-separated list of up to 20 relation types, e.g. dependsOn,consumesApi',
    })
    .optional(),
});

export interface GraphApiOptions {
  endpoints: Endpoints;
  graph: GraphService;
  roles: { read: string; admin: string };
}

export class GraphApi {
  constructor(private readonly options: GraphApiOptions) {}

  async get(request: ApiRequest, options: OperationOptions = {}): Promise<ApiResponse> {
    const { endpoints, graph, roles } = this.options;
    return endpoints.authorized(request, options, [roles.read, roles.admin], async (call) => {
      const name = entityParams(request);
      const q = parseQuery(request, graphQuery);
      const result = await graph.traverse(
        { root: toDocumentId(name), direction: q.direction, depth: q.depth, maxNodes: q.limit, ...(q.relations && { relations: q.relations }) },
        call,
      );
      if (!result) return problem(404, ProblemType.notFound, 'Entity not found', `The mirror has no entity ${formatEntityRef(name)}`);
      if (q.format === 'mermaid') return text(toMermaid(result), 'text/plain; charset=utf-8');
      if (q.format === 'dot') return text(toDot(result), 'text/vnd.graphviz; charset=utf-8');
      return json(200, result);
    });
  }
}
