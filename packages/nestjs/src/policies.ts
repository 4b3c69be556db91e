/**
 * Route policies compiled once, when the application starts (`onModuleInit`, inside
 * `app.init()` / `app.listen()`): every controller is walked, and a policy with a typo or a bad
 * value stops start-up with the core's message and the handler's name, instead of failing on
 * the first request.
 */
import type { CompiledPolicy, Guard } from '@fapi-guard/core';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { markForFastify } from './handlers.js';
import { conjoin, type PolicyLayer, policyLayers } from './policy-chain.js';
import { FAPI_GUARD, type FunctionRef } from './tokens.js';

type Controller = (abstract new (...args: never[]) => unknown) & { prototype: Record<string, unknown> };

@Injectable()
export class FapiPolicies implements OnModuleInit {
  /** Compiled policies by handler, then by controller (a base class's handler serves many). */
  private readonly compiled = new Map<FunctionRef, Map<FunctionRef, CompiledPolicy>>();
  /** Handlers that some controller serves without any policy: the guard alone decides for them. */
  private readonly open = new WeakSet<FunctionRef>();
  /** Compiled policies by where their layers come from: controllers that add nothing share one. */
  private readonly bySources = new Map<string, CompiledPolicy>();
  private readonly sourceIds = new WeakMap<object, number>();
  private nextId = 0;

  constructor(
    @Inject(FAPI_GUARD) private readonly guard: Guard,
    @Inject(DiscoveryService) private readonly discovery: DiscoveryService,
    @Inject(MetadataScanner) private readonly scanner: MetadataScanner,
  ) {}

  onModuleInit(): void {
    this.compileRoutes();
  }

  /**
   * Compiles the policy of every handler of every controller, and names each route handler that
   * has one in its Fastify route config ({@link markForFastify}). The decorators name the
   * handlers of the classes they decorate; this names those of a controller without a policy
   * decorator of its own that extends one with a class policy (its own routes, and inherited
   * ones it overrides and maps again), which no decorator saw. The module runs it before Nest
   * registers the routes and hands each one's config to Fastify; again in `onModuleInit`
   * (cached). A handler that a controller without any policy serves too is never marked.
   */
  compileRoutes(): void {
    for (const wrapper of this.discovery.getControllers()) {
      const controller = wrapper.metatype as Controller | null | undefined;
      if (typeof controller !== 'function') continue;
      for (const name of this.scanner.getAllMethodNames(controller.prototype)) {
        const handler = controller.prototype[name];
        if (typeof handler !== 'function') continue;
        if (policyLayers(controller, handler).length === 0) {
          this.open.add(handler);
          continue;
        }
        this.of(controller, handler);
        if (Reflect.hasMetadata(PATH_METADATA, handler) && !this.open.has(handler)) markForFastify(handler);
      }
    }
  }

  /** The compiled policy of a route (compiled now if start-up did not see it). */
  of(controller: FunctionRef, handler: FunctionRef): CompiledPolicy {
    const byController = this.compiled.get(handler) ?? new Map<FunctionRef, CompiledPolicy>();
    const known = byController.get(controller);
    // Stryker disable next-line ConditionalExpression: equivalent, a memo: compile answers the policy it compiled for the same sources
    if (known) return known;
    let compiled: CompiledPolicy;
    try {
      compiled = this.compile(policyLayers(controller, handler));
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
   * The policy of a handler when every controller that serves it has the same one; `undefined`
   * when it is not known or differs (then the guard, which knows the controller, decides alone).
   */
  ofHandler(handler: FunctionRef): CompiledPolicy | undefined {
    if (this.open.has(handler)) return undefined;
    const policies = new Set(this.compiled.get(handler)?.values());
    return policies.size === 1 ? policies.values().next().value : undefined;
  }

  /** The controller serving a handler when exactly one does; `undefined` when none or several. */
  controllerOf(handler: FunctionRef): FunctionRef | undefined {
    const controllers = [...(this.compiled.get(handler)?.keys() ?? [])];
    return controllers.length === 1 ? controllers[0] : undefined;
  }

  /** Each layer checked on its own (its typos named), then their conjunction; shared by equal sources. */
  private compile(layers: readonly PolicyLayer[]): CompiledPolicy {
    const key = JSON.stringify(layers.map((layer) => layer.sources.map((source) => this.idOf(source))));
    const known = this.bySources.get(key);
    if (known) return known;
    for (const layer of layers) this.guard.policy(layer.policy);
    const compiled = this.guard.policy(conjoin(layers));
    this.bySources.set(key, compiled);
    return compiled;
  }

  private idOf(source: object): number {
    let id = this.sourceIds.get(source);
    if (id === undefined) {
      // Stryker disable next-line UpdateOperator: equivalent, the ids only need to differ (counting down they do too)
      id = this.nextId++;
      this.sourceIds.set(source, id);
    }
    return id;
  }
}
