/** Routes left out of the app-wide protection, and what the guards read of the decorators. */
import type { FapiPolicyDecorator } from './decorators.js';
import { FAPI_POLICY, FAPI_PUBLIC, type FunctionRef } from './tokens.js';

/**
 * Leaves a controller or handler out of the app-wide protection (`FapiGuardModule.forRoot(options,
 * { global })` or `{ provide: APP_GUARD, useClass: FapiGlobalGuard }`): `/health`, a metadata
 * route. A policy decorator on the same route still protects it with the route's policy.
 */
export function FapiPublic(): FapiPolicyDecorator {
  return ((target: object, _key?: string | symbol, descriptor?: PropertyDescriptor) => {
    Reflect.defineMetadata(FAPI_PUBLIC, true, (descriptor ? descriptor.value : target) as FunctionRef);
  }) as FapiPolicyDecorator;
}

/** True when the handler or its controller is `@FapiPublic()`. */
export function isPublic(controller: FunctionRef, handler: FunctionRef): boolean {
  return Reflect.getMetadata(FAPI_PUBLIC, handler) === true || Reflect.getMetadata(FAPI_PUBLIC, controller) === true;
}

/** True when the handler or its controller carries a route policy. */
export function declaresPolicy(controller: FunctionRef, handler: FunctionRef): boolean {
  return Reflect.getMetadata(FAPI_POLICY, handler) !== undefined || Reflect.getMetadata(FAPI_POLICY, controller) !== undefined;
}
