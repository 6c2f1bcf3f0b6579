/**
 * A seeded generator of realistic Backstage catalogs: domains, systems, groups, components, APIs and resources, with
 * owners, system membership, API provision/consumption and dependencies — some of them cyclic, a few dangling —
 * for reliability tests and benchmarks. The same seed and size always give the same catalog.
 */
export interface GeneratedEntity {
  apiVersion: 'backstage.io/v1alpha1';
  kind: string;
  metadata: { name: string; namespace?: string; description?: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
}

export interface CatalogShape {
  /** Fraction of dependency targets that point at entities that do not exist. Default 0.01. */
  danglingRatio?: number;
}

/** mulberry32: small, fast, good enough for test data. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function generateCatalog(size: number, seed: number, shape: CatalogShape = {}): GeneratedEntity[] {
  const random = seededRandom(seed);
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
  const some = <T>(items: T[], min: number, max: number): T[] => {
    const count = Math.min(items.length, min + Math.floor(random() * (max - min + 1)));
    const chosen = new Set<T>();
    while (chosen.size < count) chosen.add(pick(items));
    return [...chosen];
  };
  const dangling = shape.danglingRatio ?? 0.01;

  const domains = Math.max(1, Math.round(size / 100));
  const systems = Math.max(1, Math.round(size / 20));
  const groups = Math.max(1, Math.round(size / 40));
  const rest = Math.max(0, size - domains - systems - groups);
  const apis = Math.round(rest * 0.2);
  const resources = Math.round(rest * 0.2);
  const components = rest - apis - resources;

  const names = {
    domain: range(domains, (i) => `domain-${i}`),
    system: range(systems, (i) => `system-${i}`),
    group: range(groups, (i) => `team-${i}`),
    component: range(components, (i) => `service-${i}`),
    api: range(apis, (i) => `api-${i}`),
    resource: range(resources, (i) => `store-${i}`),
  };
  const maybeDangling = (ref: string) => (random() < dangling ? `${ref.split(':')[0]}:missing-${Math.floor(random() * 1e6)}` : ref);
  const entity = (kind: string, name: string, spec: Record<string, unknown>): GeneratedEntity => ({
    apiVersion: 'backstage.io/v1alpha1',
    kind,
    metadata: { name, description: `${kind} ${name}`, labels: { tier: pick(['gold', 'silver', 'bronze']) } },
    spec,
  });

  const out: GeneratedEntity[] = [];
  for (const name of names.domain) out.push(entity('Domain', name, { owner: `group:${pick(names.group)}` }));
  for (const name of names.system) out.push(entity('System', name, { owner: `group:${pick(names.group)}`, domain: pick(names.domain) }));
  for (const name of names.group) out.push(entity('Group', name, { type: 'team', children: [] }));
  for (const name of names.api) {
    out.push(entity('API', name, { type: 'openapi', lifecycle: 'production', owner: `group:${pick(names.group)}`, system: pick(names.system), definition: 'openapi: 3.0.0' }));
  }
  for (const name of names.resource) {
    out.push(
      entity('Resource', name, {
        type: pick(['database', 'queue', 'bucket']),
        owner: `group:${pick(names.group)}`,
        system: pick(names.system),
        ...(names.resource.length > 1 && random() < 0.2 && { dependsOn: [maybeDangling(`resource:${pick(names.resource)}`)] }),
      }),
    );
  }
  for (const [index, name] of names.component.entries()) {
    // Mostly "later depends on earlier" (a layered system), sometimes backwards — which makes cycles.
    const earlier = names.component.slice(Math.max(0, index - 50), index);
    const targets = [
      ...some(earlier.length > 0 && random() < 0.9 ? earlier : names.component, 1, 3).map((n) => `component:${n}`),
      ...some(names.resource, 0, 2).map((n) => `resource:${n}`),
    ].filter((ref) => ref !== `component:${name}`);
    out.push(
      entity('Component', name, {
        type: pick(['service', 'website', 'library']),
        lifecycle: pick(['production', 'experimental']),
        owner: `group:${pick(names.group)}`,
        system: pick(names.system),
        dependsOn: targets.map(maybeDangling),
        ...(names.api.length > 0 && { providesApis: some(names.api, 0, 1), consumesApis: some(names.api, 0, 2) }),
      }),
    );
  }
  return out;
}

/** A multi-document YAML file (JSON is valid YAML, and faster to write than real YAML). */
export function toYaml(entities: GeneratedEntity[]): string {
  return entities.map((e) => JSON.stringify(e)).join('\n---\n');
}

function range<T>(count: number, f: (i: number) => T): T[] {
  return Array.from({ length: count }, (_, i) => f(i));
}
