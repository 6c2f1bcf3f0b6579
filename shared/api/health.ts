/**
 * `GET /api/health` — anonymous: the version, the mode, and whether the mirror's database answers.
 */
import type { ApiRequest, ApiResponse } from '../http/problem';
import { json } from '../http/problem';
import type { Logger } from '../platform/logger';
import type { OperationOptions } from '../platform/options';
import type { EntityStore } from '../sync/entity-store';

export interface HealthApiOptions {
  store: EntityStore;
  logger: Logger;
  version: string;
  mode: string;
}

export class HealthApi {
  constructor(private readonly options: HealthApiOptions) {}

  async get(_request: ApiRequest, options: OperationOptions = {}): Promise<ApiResponse> {
    const started = performance.now();
    let cosmos: { status: 'ok' | 'unavailable'; durationInMs: number };
    try {
      await this.options.store.ping(options);
      cosmos = { status: 'ok', durationInMs: Math.round(performance.now() - started) };
    } catch (error) {
      (options.logger ?? this.options.logger).warn('Health check: Cosmos DB unavailable', { error });
      cosmos = { status: 'unavailable', durationInMs: Math.round(performance.now() - started) };
    }
    const healthy = cosmos.status === 'ok';
    return json(healthy ? 200 : 503, { status: healthy ? 'ok' : 'degraded', version: this.options.version, mode: this.options.mode, checks: { cosmos } });
  }
}
