/**
 * The metrics seam of the core. Counters and measurements go through {@link Metrics}; the process wires
 * an implementation (in-memory for tests and benchmarks, Application Insights in Azure).
 */
export type Dimensions = Record<string, string | number | boolean>;

export interface Metrics {
  /** Adds `value` (default 1) to a counter. */
  increment(name: string, value?: number, dimensions?: Dimensions): void;
  /** Records one measurement (a latency, a request charge, a size). */
  record(name: string, value: number, dimensions?: Dimensions): void;
}

export interface MetricSummary {
  count: number;
  sum: number;
  min: number;
  max: number;
}

/** Keeps everything in memory; `snapshot()` returns totals keyed by `name{dim=value,…}`. */
export class InMemoryMetrics implements Metrics {
  private readonly counters = new Map<string, number>();
  private readonly measurements = new Map<string, MetricSummary>();
  /** The dimensions of each measurement series, as recorded. */
  private readonly dimensionsOf = new Map<string, Dimensions | undefined>();

  increment(name: string, value = 1, dimensions?: Dimensions): void {
    const key = metricKey(name, dimensions);
    this.counters.set(key, (this.counters.get(key) ?? 0) + value);
  }

  record(name: string, value: number, dimensions?: Dimensions): void {
    const key = metricKey(name, dimensions);
    const s = this.measurements.get(key);
    if (!s) {
      this.measurements.set(key, { count: 1, sum: value, min: value, max: value });
      this.dimensionsOf.set(key, dimensions);
    } else {
      s.count += 1;
      s.sum += value;
      s.min = Math.min(s.min, value);
      s.max = Math.max(s.max, value);
    }
  }

  /** The counter's total over all dimension combinations whose key starts with `name`. */
  counter(name: string, dimensions?: Dimensions): number {
    if (dimensions) return this.counters.get(metricKey(name, dimensions)) ?? 0;
    let total = 0;
    for (const [key, value] of this.counters) if (key === name || key.startsWith(`${name}{`)) total += value;
    return total;
  }

  summary(name: string): MetricSummary | undefined {
    let out: MetricSummary | undefined;
    for (const [key, s] of this.measurements) {
      if (key !== name && !key.startsWith(`${name}{`)) continue;
      out = out
        ? { count: out.count + s.count, sum: out.sum + s.sum, min: Math.min(out.min, s.min), max: Math.max(out.max, s.max) }
        : { ...s };
    }
    return out;
  }

  /** Every series of the measurement `name`, with its dimensions (values as recorded, stringified). */
  series(name: string): Array<{ dimensions: Record<string, string>; summary: MetricSummary }> {
    const out = [];
    for (const [key, summary] of this.measurements) {
      if (key !== name && !key.startsWith(`${name}{`)) continue;
      const dimensions = Object.fromEntries(Object.entries(this.dimensionsOf.get(key) ?? {}).map(([k, v]) => [k, String(v)]));
      out.push({ dimensions, summary: { ...summary } });
    }
    return out;
  }

  /** Forgets everything recorded so far. */
  clear(): void {
    this.counters.clear();
    this.measurements.clear();
    this.dimensionsOf.clear();
  }

  snapshot(): { counters: Record<string, number>; measurements: Record<string, MetricSummary> } {
    return { counters: Object.fromEntries(this.counters), measurements: Object.fromEntries(this.measurements) };
  }
}

/** Sends every call to each of `targets` (e.g. in-memory for the admin API plus Application Insights). */
export function fanOutMetrics(...targets: Metrics[]): Metrics {
  return {
    increment: (n, v, d) => targets.forEach((t) => t.increment(n, v, d)),
    record: (n, v, d) => targets.forEach((t) => t.record(n, v, d)),
  };
}

function metricKey(name: string, dimensions?: Dimensions): string {
  if (!dimensions) return name;
  const keys = Object.keys(dimensions).sort();
  if (keys.length === 0) return name;
  return `${name}{${keys.map((k) => `${k}=${String(dimensions[k])}`).join(',')}}`;
}
