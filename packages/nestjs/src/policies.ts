/**
 * Route policies compiled once, when the application starts (`onModuleInit`, inside
 * `app.init()` / `app.listen()`): every controller is walked, and a policy with a typo or a bad
 * value stops start-up with the core's message and the handler's name, instead of failing on
 * the first request.
 */
import type { CompiledPolicy, Guard, RoutePolicy } from '@fapi-guard/core';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { FAPI_GUARD, FAPI_POLICY, type FunctionRef } from './tokens.js';

type Controller = (abstract new (...args: never[]) => unknown) & { prototype: Record<string, unknown> };

@Injectable()
export class FapiPolicies implements OnModuleInit {
  /** Compiled policies by handler, then by controller (a base class's handler serves many). */
  private readonly compiled = new Map<FunctionRef, Map<FunctionRef, CompiledPolicy>>();

  constructor(
    @Inject(FAPI_GUARD) private readonly guard: Guard,
    @Inject(DiscoveryService) private readonly discovery: DiscoveryService,
    @Inject(MetadataScanner) private readonly scanner: MetadataScanner,
  ) {}

  onModuleInit(): void {
    for (const wrapper of this.discovery.getControllers()) {
      const controller = wrapper.metatype as Controller | null | undefined;
      if (typeof controller !== 'function') continue;
      for (const name of this.scanner.getAllMethodNames(controller.prototype)) {
        const handler = controller.prototype[name];
        if (typeof handler === 'function' && this.declared(controller, handler)) this.of(controller, handler);
      }
    }
  }

  /** The compiled policy of a route (compiled now if start-up did not see it). */
  of(controller: FunctionRef, handler: FunctionRef): CompiledPolicy {
    const byController = this.compiled.get(handler) ?? new Map<FunctionRef, CompiledPolicy>();
    const known = byController.get(controller);
    if (known) return known;
    const policy = this.declared(controller, handler) ?? {};
    let compiled: CompiledPolicy;
    try {
      compiled = this.guard.policy(policy);
    } catch (error) {
      // The core's message first (it names the fix), then where the policy is.
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`${message} (route policy of ${controller.name}.${handler.name})`, { cause: error });
    }
    byController.set(controller, compiled);
    this.compiled.set(handler, byController);
    return compiled;
  }

  /**
   * The policy of a handler when it belongs to one controller only; `undefined` when it is not
   * known or shared (then the guard, which knows the controller, decides alone).
   */
  ofHandler(handler: FunctionRef): { controller: FunctionRef; policy: CompiledPolicy } | undefined {
    const byController = this.compiled.get(handler);
    if (byController?.size !== 1) return undefined;
    for (const [controller, policy] of byController) return { controller, policy };
    return undefined;
  }

  /** The controller's policy with the handler's keys over it; `undefined` when neither has one. */
  private declared(controller: FunctionRef, handler: FunctionRef): RoutePolicy | undefined {
    const onClass = Reflect.getMetadata(FAPI_POLICY, controller) as RoutePolicy | undefined;
    const onHandler = Reflect.getMetadata(FAPI_POLICY, handler) as RoutePolicy | undefined;
    return onClass || onHandler ? { ...onClass, ...onHandler } : undefined;
  }
}
