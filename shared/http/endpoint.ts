/**
 * What every authenticated endpoint does around its own work: validate the bearer token and require one of the
 * endpoint's roles, refuse repeated query parameters, run the handler with the invocation's options, and answer any error as its problem.
 */
import type { Principal, TokenValidator } from './auth';
import type { Logger } from '../platform/logger';
import type { OperationOptions } from '../platform/options';
import { toProblem, type ApiRequest, type ApiResponse } from './problem';
import { queryValues } from './request';

/** What an endpoint's handler gets: the caller, and the invocation's options with a logger always set. */
export interface EndpointCall extends OperationOptions {
  principal: Principal;
  logger: Logger;
}

export interface EndpointDependencies {
  validator: TokenValidator;
  logger: Logger;
}

/** The endpoints of one resource share this: `authorized(request, options, roles, handler)`. */
export class Endpoints {
  constructor(private readonly dependencies: EndpointDependencies) {}

  async authorized(
    request: ApiRequest,
    options: OperationOptions,
    roles: readonly string[],
    handler: (call: EndpointCall) => Promise<ApiResponse>,
  ): Promise<ApiResponse> {
    const logger = options.logger ?? this.dependencies.logger;
    try {
      const principal = await this.dependencies.validator.authenticate(request.headers.get('authorization'), roles);
      queryValues(request); // a repeated parameter is refused on every endpoint, whether or not it reads it
      return await handler({ ...options, logger, principal });
    } catch (error) {
      return toProblem(error, logger);
    }
  }
}
