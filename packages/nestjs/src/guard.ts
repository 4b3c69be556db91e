/**
 * The Nest guards: both phases of the core's check for a route's compiled policy, on Nest's
 * Express or Fastify platform. {@link FapiGuard} checks the route's policy (the policy decorators
 * put it on the route); {@link FapiGlobalGuard} protects every route with the module's global
 * policy unless `@FapiPublic()`. Whichever runs first authenticates the request; the others check
 * only their policy. A refusal is thrown as {@link FapiRefusal}.
 */
import type { IncomingMessage } from 'node:http';
import {
  type Authorized,
  type CompiledPolicy,
  completeNodeRequest,
  type Guard,
  type GuardError,
  pinRefusal,
  protectNodeRequest,
  rememberAuthorization,
  signNodeResponse,
} from '@fapi-guard/core';
import { type CanActivate, type ExecutionContext, Inject, Injectable, Optional } from '@nestjs/common';
import { takeAuthenticated } from './fastify.js';
import { continueIdempotent } from './idempotency.js';
import { nodeRequest, nodeResponse, requestParts, setHeaders } from './platform.js';
import { FapiPolicies } from './policies.js';
import { declaresPolicy, isPublic } from './public.js';
import { FapiRefusal, FapiRespondedRefusal } from './refusal.js';
import type { FapiGuardModuleSettings } from './settings.js';
import { authorize } from './state.js';
import { FAPI_GUARD, FAPI_MODULE_SETTINGS } from './tokens.js';

@Injectable()
export class FapiGuard implements CanActivate {
  constructor(
    @Inject(FAPI_GUARD) protected readonly guard: Guard,
    @Inject(FapiPolicies) protected readonly policies: FapiPolicies,
    @Optional() @Inject(FAPI_MODULE_SETTINGS) protected readonly settings: FapiGuardModuleSettings = {},
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    // Fails closed on anything but HTTP (RPC, WebSockets): there is no request to check.
    if (context.getType() !== 'http') throw new Error('fapi-guard: FapiGuard protects HTTP routes only');
    const policy = this.policyOf(context.getClass(), context.getHandler());
    if (!policy) return true;
    const http = context.switchToHttp();
    const request = http.getRequest<object>();
    const response = http.getResponse<object>();
    const req = nodeRequest(request);
    const result = await this.check(req, request, policy);
    if (!result.ok) throw this.refusal(response, result);
    setHeaders(response, result.headers);
    signNodeResponse(this.guard, result, req, nodeResponse(response));
    authorize(request, result);
    return continueIdempotent(this.guard, policy, result, req, request, response, (error) => this.refusal(response, error));
  }

  /**
   * The route's policy; `undefined` for a `@FapiPublic()` route without one (this guard may run
   * app-wide as `{ provide: APP_GUARD, useClass: FapiGuard }`).
   */
  protected policyOf(controller: object, handler: object): CompiledPolicy | undefined {
    const [c, h] = [controller as { name: string }, handler as { name: string }];
    if (isPublic(c, h) && !declaresPolicy(c, h)) return undefined;
    return this.policies.of(c, h);
  }

  /** The exception for a refusal: written by the module's filter, or handed to the app's filters pinned. */
  private refusal(response: object, error: GuardError): FapiRefusal {
    if (this.settings.errors !== 'framework') return new FapiRespondedRefusal(error, this.settings.errorBody);
    setHeaders(response, error.headers);
    pinRefusal(nodeResponse(response), error);
    return new FapiRefusal(error);
  }

  /**
   * On Fastify the first phase ran in `onRequest`, before the body was read; the second runs
   * here on the parsed body. Otherwise (Express, or a route the hook did not know) both run here.
   * A guard that runs again for the request (on the controller and the handler, or app-wide and
   * on the route) checks only its policy: the token and the DPoP proof are checked once.
   */
  private async check(req: IncomingMessage, request: object, policy: CompiledPolicy): Promise<Authorized | GuardError> {
    const parts = requestParts(request);
    const early = takeAuthenticated(req);
    if (early) {
      early.request.body = parts.body;
      const result = await completeNodeRequest(this.guard, req, early.request, early.authenticated, early.policy);
      if (!result.ok) return result;
      rememberAuthorization(this.guard, req, result);
    }
    return protectNodeRequest(this.guard, req, parts, policy);
  }
}

/**
 * Default-deny: protects every route with the module's `global` policy (the default policy when
 * provided without it) unless `@FapiPublic()`. Installed by `FapiGuardModule.forRoot(options,
 * { global })`, or by hand: `{ provide: APP_GUARD, useClass: FapiGlobalGuard }`. Route and
 * controller policies are checked on top by {@link FapiGuard}.
 */
@Injectable()
export class FapiGlobalGuard extends FapiGuard {
  private readonly globalPolicy: CompiledPolicy;

  constructor(
    @Inject(FAPI_GUARD) guard: Guard,
    @Inject(FapiPolicies) policies: FapiPolicies,
    @Optional() @Inject(FAPI_MODULE_SETTINGS) settings: FapiGuardModuleSettings = {},
  ) {
    super(guard, policies, settings);
    const global = settings.global;
    // Compiled now: a typo in the global policy stops start-up.
    // `true` and no global policy (APP_GUARD without the setting) both mean the default policy.
    this.globalPolicy = guard.policy(global === true ? undefined : global);
  }

  protected override policyOf(controller: object, handler: object): CompiledPolicy | undefined {
    return isPublic(controller as { name: string }, handler as { name: string }) ? undefined : this.globalPolicy;
  }
}
