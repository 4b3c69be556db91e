/**
 * The dynamic module: creates the guard once from the options (validated here, at start-up),
 * compiles every route policy when the application starts, and on the platform underneath
 * serves the RFC 9728 metadata document and, on Fastify, authenticates before the body is read.
 */
import { createGuard, type Guard, type GuardOptions } from '@fapi-guard/core';
import {
  type DynamicModule,
  type FactoryProvider,
  Inject,
  type MiddlewareConsumer,
  Module,
  type ModuleMetadata,
  type NestModule,
  type Provider,
} from '@nestjs/common';
import { DiscoveryModule, HttpAdapterHost } from '@nestjs/core';
import { installFastify, isFastifyInstance } from './fastify.js';
import { FapiGuard } from './guard.js';
import { writeResponse } from './platform.js';
import { FapiPolicies } from './policies.js';
import { FAPI_GUARD, FAPI_GUARD_OPTIONS } from './tokens.js';

/** What `forRoot` takes: the guard options, or a guard created with `createGuard`. */
export type FapiGuardModuleOptions = GuardOptions | Guard;

/** `forRootAsync`: the options from a factory, e.g. from a configuration service. */
export interface FapiGuardModuleAsyncOptions {
  /** Modules whose providers `useFactory` needs (e.g. a configuration module). @default [] */
  imports?: ModuleMetadata['imports'];
  /** Builds the options; may be async. */
  useFactory: (...args: never[]) => FapiGuardModuleOptions | Promise<FapiGuardModuleOptions>;
  /** Providers handed to `useFactory`, in order. @default [] */
  inject?: FactoryProvider['inject'];
}

const isGuard = (options: FapiGuardModuleOptions): options is Guard => 'check' in options;

const shared: Provider[] = [
  {
    provide: FAPI_GUARD,
    inject: [FAPI_GUARD_OPTIONS],
    useFactory: (options: FapiGuardModuleOptions) => (isGuard(options) ? options : createGuard(options)),
  },
  FapiPolicies,
  FapiGuard,
];
const exported = [FAPI_GUARD, FapiPolicies, FapiGuard];

/** Express request/response as far as the metadata middleware uses them. */
interface ExpressLike {
  use(handler: (req: { method: string; originalUrl: string }, res: object, next: () => void) => void): unknown;
}

@Module({ imports: [DiscoveryModule] })
export class FapiGuardModule implements NestModule {
  constructor(
    @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
    @Inject(FAPI_GUARD) private readonly guard: Guard,
    @Inject(FapiPolicies) private readonly policies: FapiPolicies,
  ) {}

  /** Global: the guard the policy decorators put on controllers is built in any module. */
  static forRoot(options: FapiGuardModuleOptions): DynamicModule {
    return {
      module: FapiGuardModule,
      global: true,
      providers: [{ provide: FAPI_GUARD_OPTIONS, useValue: options }, ...shared],
      exports: exported,
    };
  }

  static forRootAsync(options: FapiGuardModuleAsyncOptions): DynamicModule {
    return {
      module: FapiGuardModule,
      global: true,
      imports: options.imports ?? [],
      providers: [
        { provide: FAPI_GUARD_OPTIONS, inject: options.inject ?? [], useFactory: options.useFactory as (...args: unknown[]) => unknown },
        ...shared,
      ],
      exports: exported,
    };
  }

  /**
   * Runs in `app.init()` before Nest registers the routes (Nest calls it to collect middleware;
   * none is added to the consumer): the platform's own hooks and routes go in here.
   */
  configure(_consumer: MiddlewareConsumer): void {
    const instance: unknown = this.adapterHost.httpAdapter?.getInstance();
    if (!instance) return;
    if (isFastifyInstance(instance)) {
      // Before the routes are registered: their Fastify config must name each policy's handler.
      this.policies.compileRoutes();
      installFastify(instance, this.guard, this.policies);
      return;
    }
    // Express: the metadata document and the response-signing JWK set (RFC 9728), as the
    // Express adapter's metadata() middleware serves them.
    if (this.guard.publishedPaths.length === 0) return;
    (instance as ExpressLike).use((req, res, next) => {
      const answer = this.guard.metadataResponse(req.method, req.originalUrl);
      if (answer) writeResponse(res, answer);
      else next();
    });
  }
}
