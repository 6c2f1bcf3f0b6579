/**
 * The self-check: for every dependency, get a token for its scope (with the process credential) and make one
 * harmless call through the part of the app that owns it — then say, per dependency, that it is fine or exactly what
 * is wrong: the token could not be had, the token was refused (with its issuer and audience), or the call was
 * forbidden (which role to assign to which principal, at which scope). Misconfigured scopes and missing roles are
 * where identity-based integrations break; this finds them before a sync does.
 *
 * Runs at start-up, before each timer run of the maintenance, and on `GET /api/admin/self-check`. The calls write
 * nothing: point reads and a delete of an id no document has, a peek, an empty message batch, one catalog entity, the
 * issuers' signing keys. Tokens and their signatures are never reported or logged; only their claims that identify.
 */
import type { TokenCredential } from '@azure/core-auth';
import { decodeJwt } from 'jose';
import { isServiceBusError } from '@azure/service-bus';
import { BackstageAuthError, BackstageRequestError, BackstageUnavailableError, CosmosOperationError } from './platform/errors';
import type { Logger } from './platform/logger';
import type { Metrics } from './platform/metrics';
import type { OperationOptions } from './platform/options';

/** What a report may say about a token: who it names and for what, never the token. */
export interface TokenFacts {
  audience?: string;
  issuer?: string;
  /** The principal the token names (`oid`), as role assignments name it. */
  principal?: string;
  /** The client (`azp` / `appid`). */
  clientId?: string;
  expiresInSeconds: number;
}

export interface CheckProblem {
  title: string;
  detail: string;
  /** What to do about it. */
  fix: string;
}

export interface DependencyCheck {
  /** e.g. `cosmos:entities`, `servicebus:send`, `backstage`, `issuer:entra`. */
  dependency: string;
  status: 'ok' | 'failed';
  /** The harmless call made. */
  call: string;
  scope?: string;
  token?: TokenFacts;
  durationInMs: number;
  problem?: CheckProblem;
}

export interface SelfCheckReport {
  status: 'ok' | 'failed';
  checkedAt: string;
  durationInMs: number;
  checks: DependencyCheck[];
}

/** One dependency: how to reach it harmlessly, and what its failures mean. */
export interface DependencyProbe {
  dependency: string;
  call: string;
  /** The token scope of the client the call goes through; absent for calls that need none. */
  scope?: string;
  run(options: OperationOptions): Promise<void>;
  /** Turns a failure of `run` into what is wrong and what to do; the default covers the usual SDK errors. */
  explain?(error: unknown, token: TokenFacts | undefined): CheckProblem | undefined;
}

export interface SelfCheckOptions {
  credential: TokenCredential;
  probes: DependencyProbe[];
  logger: Logger;
  metrics?: Metrics;
  /** Per dependency (token and call together). Default 15 s. */
  timeoutInMs?: number;
}

export type SelfCheckTrigger = 'start-up' | 'timer' | 'admin';

export class SelfCheck {
  constructor(private readonly options: SelfCheckOptions) {}

  /** Checks every dependency (concurrently), logs each outcome and records metrics. Never throws. */
  async run(trigger: SelfCheckTrigger, options: OperationOptions = {}): Promise<SelfCheckReport> {
    const started = Date.now();
    const checks = await Promise.all(this.options.probes.map((probe) => this.check(probe, options)));
    const report: SelfCheckReport = {
      status: checks.every((c) => c.status === 'ok') ? 'ok' : 'failed',
      checkedAt: new Date(started).toISOString(),
      durationInMs: Date.now() - started,
      checks,
    };
    const logger = options.logger ?? this.options.logger;
    for (const check of checks) {
      this.options.metrics?.increment('self_check.checks', 1, { dependency: check.dependency, status: check.status, trigger });
      if (check.status === 'failed') {
        logger.error(`Self-check: ${check.dependency} failed: ${check.problem!.title}`, { operation: 'self-check', trigger, ...check });
      } else {
        logger.debug(`Self-check: ${check.dependency} ok`, { operation: 'self-check', trigger, dependency: check.dependency, durationInMs: check.durationInMs });
      }
    }
    const failed = checks.filter((c) => c.status === 'failed').map((c) => c.dependency);
    this.options.metrics?.record('self_check.failed_dependencies', failed.length, { trigger });
    if (failed.length === 0) logger.info(`Self-check: all ${checks.length} dependencies ok`, { operation: 'self-check', trigger, durationInMs: report.durationInMs });
    else logger.error(`Self-check: ${failed.length} of ${checks.length} dependencies failed`, { operation: 'self-check', trigger, failed });
    return report;
  }

  private async check(probe: DependencyProbe, options: OperationOptions): Promise<DependencyCheck> {
    const started = Date.now();
    const base = { dependency: probe.dependency, call: probe.call, ...(probe.scope !== undefined && { scope: probe.scope }) };
    const signal = AbortSignal.any([AbortSignal.timeout(this.options.timeoutInMs ?? 15_000), ...(options.abortSignal ? [options.abortSignal] : [])]);
    const failed = (problem: CheckProblem, token?: TokenFacts): DependencyCheck => ({ ...base, status: 'failed', ...(token && { token }), durationInMs: Date.now() - started, problem });

    let token: TokenFacts | undefined;
    if (probe.scope !== undefined) {
      try {
        const accessToken = await this.options.credential.getToken(probe.scope, { abortSignal: signal });
        if (!accessToken) throw new Error('the credential returned no token');
        token = tokenFacts(accessToken.token, accessToken.expiresOnTimestamp);
      } catch (error) {
        return failed({
          title: 'No token',
          detail: `Could not get a token for ${probe.scope}: ${messageOf(error)}`,
          fix: 'Check that AZURE_CLIENT_ID names the user-assigned managed identity the Function App runs as, and that the scope is right (an Entra app ID URI or resource, ending in /.default).',
        });
      }
    }
    try {
      await probe.run({ abortSignal: signal });
      return { ...base, status: 'ok', ...(token && { token }), durationInMs: Date.now() - started };
    } catch (error) {
      const problem = probe.explain?.(error, token) ?? explain(error, probe, token);
      return failed(problem, token);
    }
  }
}

/** The identifying claims of a token (decoded, not verified: the token is ours, just issued). */
export function tokenFacts(token: string, expiresOnTimestamp: number, now = Date.now()): TokenFacts {
  const facts: TokenFacts = { expiresInSeconds: Math.round((expiresOnTimestamp - now) / 1000) };
  try {
    const claims = decodeJwt(token);
    const audience = Array.isArray(claims.aud) ? claims.aud.join(' ') : claims.aud;
    if (audience) facts.audience = audience;
    if (claims.iss) facts.issuer = claims.iss;
    if (typeof claims.oid === 'string') facts.principal = claims.oid;
    const client = claims.azp ?? claims.appid;
    if (typeof client === 'string') facts.clientId = client;
  } catch {
    // Not a JWT (some issuers hand out opaque tokens): nothing more to say.
  }
  return facts;
}

const RBAC_DENIAL = /principal \[([^\]]+)\] does not have required RBAC permissions to perform action \[([^\]]+)\] on resource \[([^\]]+)\]/;

/** What the usual failures of each kind of dependency mean. */
function explain(error: unknown, probe: DependencyProbe, token: TokenFacts | undefined): CheckProblem {
  const who = token?.principal ? `principal ${token.principal}` : 'the app identity';
  const tokenSays = token ? ` (the token's audience is ${token.audience ?? 'unknown'}, its issuer ${token.issuer ?? 'unknown'})` : '';
  if (error instanceof CosmosOperationError) {
    if (error.statusCode === 401) {
      return {
        title: 'Token refused',
        detail: `Cosmos DB refused the token${tokenSays}: ${error.message}`,
        fix: 'The token must be for the account (<account endpoint>/.default) and from the account\'s tenant; check CosmosDBConnection__accountEndpoint.',
      };
    }
    if (error.statusCode === 403) {
      const denial = RBAC_DENIAL.exec(error.message);
      const [, principal, action, resource] = denial ?? [];
      return {
        title: 'Forbidden',
        detail: denial ? `Cosmos DB refused ${action} on ${resource} to principal ${principal}` : `Cosmos DB refused the call: ${error.message}`,
        fix: denial
          ? `Assign principal ${principal} a Cosmos DB data-plane role with ${action} at scope /${resource} — the role for this container in infra/app/cosmos-roles.json (see docs/identity.md, role matrix). Role assignments can take a few minutes to apply.`
          : `Assign ${who} its Cosmos DB data-plane role for this container (infra/app/cosmos-roles.json); if the account is private, check that the Function App reaches it through its private endpoint.`,
      };
    }
    if (error.statusCode === 404) {
      return {
        title: 'Not found',
        detail: `Cosmos DB has no such database or container: ${error.message}`,
        fix: 'Infrastructure creates the database and containers (the data plane cannot); check COSMOS_DATABASE_NAME and the COSMOS_*_CONTAINER settings against infra/app/cosmos.bicep.',
      };
    }
    return unreachable('Cosmos DB', error, 'Check CosmosDBConnection__accountEndpoint and, with private networking, the private endpoint and its DNS zone.');
  }
  if (probe.dependency.startsWith('servicebus:')) {
    if (isServiceBusError(error) && error.code === 'UnauthorizedAccess') {
      const role = probe.dependency.endsWith(':send') ? 'Azure Service Bus Data Sender' : 'Azure Service Bus Data Receiver';
      return {
        title: 'Forbidden',
        detail: `Service Bus refused the call${tokenSays}: ${error.message}`,
        fix: `Assign ${role} to ${who}, scoped to the queue (infra/app/servicebus.bicep).`,
      };
    }
    if (isServiceBusError(error) && error.code === 'MessagingEntityNotFound') {
      return { title: 'Not found', detail: `Service Bus has no such queue: ${error.message}`, fix: 'Check SERVICEBUS_QUEUE_NAME against infra/app/servicebus.bicep.' };
    }
    return unreachable('Service Bus', error, 'Check ServiceBusConnection__fullyQualifiedNamespace and, with private networking, the private endpoint and its DNS zone.');
  }
  if (error instanceof BackstageAuthError) {
    if (error.status === 403) {
      return {
        title: 'Forbidden',
        detail: `Backstage accepted the token but refused the call${tokenSays}: ${error.message}`,
        fix: `Backstage's permission policy must allow catalog.entity.read to this service's subject (with subjectPrefix "entra", entra:${token?.principal ?? '<object id>'}).`,
      };
    }
    return {
      title: 'Token refused',
      detail: `Backstage refused the token${tokenSays}: ${error.message}`,
      fix: `Add a backend.auth.externalAccess entry of type jwks that trusts issuer ${token?.issuer ?? '<issuer>'} with audience ${token?.audience ?? '<audience>'}; check that BACKSTAGE_TOKEN_SCOPE is the Backstage app registration's scope.`,
    };
  }
  if (error instanceof BackstageUnavailableError || error instanceof BackstageRequestError) {
    return unreachable('Backstage', error, 'Check BACKSTAGE_BASE_URL and that the Function App can reach it (network rules, private DNS).');
  }
  return unreachable(probe.dependency, error, 'See the detail; the dependency may be down or unreachable from the Function App.');
}

function unreachable(what: string, error: unknown, fix: string): CheckProblem {
  return { title: 'Unreachable', detail: `${what}: ${messageOf(error)}`, fix };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
