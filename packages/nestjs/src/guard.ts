/**
 * The Nest guard: both phases of the core's check for the route's compiled policy, on Nest's
 * Express or Fastify platform. A refusal is thrown as {@link FapiRefusal}, which the policy
 * decorators' filter writes as the exact RFC 6750 / RFC 9449 answer.
 */
import type { IncomingMessage } from 'node:http';
import {
  type Authorized,
  authorizeNodeRequest,
  type CompiledPolicy,
  completeNodeRequest,
  type Guard,
  type GuardError,
  signNodeResponse,
} from '@fapi-guard/core';
import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { takeAuthenticated } from './fastify.js';
import { continueIdempotent } from './idempotency.js';
import { nodeRequest, nodeResponse, requestParts, setHeaders } from './platform.js';
import { FapiPolicies } from './policies.js';
import { FapiRefusal } from './refusal.js';
import { authorizationOf, authorize } from './state.js';
import { FAPI_GUARD } from './tokens.js';

@Injectable()
export class FapiGuard implements CanActivate {
  constructor(
    @Inject(FAPI_GUARD) private readonly guard: Guard,
    @Inject(FapiPolicies) private readonly policies: FapiPolicies,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    // Fails closed on anything but HTTP (RPC, WebSockets): there is no request to check.
    if (context.getType() !== 'http') throw new Error('fapi-guard: FapiGuard protects HTTP routes only');
    const http = context.switchToHttp();
    const request = http.getRequest<object>();
    // Already checked by the same guard on the controller (see state.ts).
    if (authorizationOf(request)) return true;
    const policy = this.policies.of(context.getClass(), context.getHandler());
    const req = nodeRequest(request);
    const result = await this.check(req, request, policy);
    if (!result.ok) throw new FapiRefusal(result);
    const response = http.getResponse<object>();
    setHeaders(response, result.headers);
    signNodeResponse(this.guard, result, req, nodeResponse(response));
    authorize(request, result);
    return continueIdempotent(this.guard, policy, result, req, request, response);
  }

  /**
   * On Fastify the first phase ran in `onRequest`, before the body was read; the second runs
   * here on the parsed body. Otherwise (Express, or a route the hook did not know) both run here.
   */
  private check(req: IncomingMessage, request: object, policy: CompiledPolicy): Promise<Authorized | GuardError> {
    const parts = requestParts(request);
    const early = takeAuthenticated(req, policy);
    if (!early) return authorizeNodeRequest(this.guard, req, parts, policy);
    early.request.body = parts.body;
    return completeNodeRequest(this.guard, req, early.request, early.authenticated, policy);
  }
}
