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
  type Type,
  UseFilters,
} from '@nestjs/common';
import { APP_GUARD, DiscoveryModule, DiscoveryService, HttpAdapterHost } from '@nestjs/core';
import { installFastify, isFastifyInstance } from './fastify.js';
import { FapiGlobalGuard, FapiGuard } from './guard.js';
import { writeResponse } from './platform.js';
import { FapiPolicies } from './policies.js';
import { FapiRefusalFilter } from './refusal.js';
import { checkSettings, type FapiGuardModuleSettings } from './settings.js';
import { FAPI_GUARD, FAPI_GUARD_OPTIONS, FAPI_MODULE_SETTINGS } from './tokens.js';

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
  /** App-wide protection and how refusals are answered (see {@link FapiGuardModuleSettings}). @default {} */
  settings?: FapiGuardModuleSettings;
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
  FapiGlobalGuard,
];
const exported = [FAPI_GUARD, FapiPolicies, FapiGuard, FapiGlobalGuard, FAPI_MODULE_SETTINGS];

/** The settings' providers: the settings, checked now, and the app-wide guard when `global` is set. */
function settingsProviders(settings: FapiGuardModuleSettings): Provider[] {
  checkSettings(settings);
  const providers: Provider[] = [{ provide: FAPI_MODULE_SETTINGS, useValue: settings }];
  if (settings.global !== undefined) providers.push({ provide: APP_GUARD, useExisting: FapiGlobalGuard });
  return providers;
}

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
    @Inject(FAPI_MODULE_SETTINGS) private readonly settings: FapiGuardModuleSettings,
    @Inject(DiscoveryService) private readonly discovery: DiscoveryService,
  ) {}

  /**
   * Global: the guard the policy decorators put on controllers is built in any module. With
   * `settings.global` every route is protected unless `@FapiPublic()` (default-deny).
   */
  static forRoot(options: FapiGuardModuleOptions, settings: FapiGuardModuleSettings = {}): DynamicModule {
    return {
      module: FapiGuardModule,
      global: true,
      providers: [{ provide: FAPI_GUARD_OPTIONS, useValue: options }, ...settingsProviders(settings), ...shared],
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
        ...settingsProviders(options.settings ?? {}),
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
    // The refusal filter on every controller, as the policy decorators put it on theirs: the
    // app-wide guard's refusals get the same bytes, ahead of the application's global filters.
    // It catches only the refusals the module answers itself (not with errors: 'framework').
    const filter = UseFilters(new FapiRefusalFilter());
    for (const wrapper of this.discovery.getControllers()) filter(wrapper.metatype as Type);
    // Nest calls configure() only for an HTTP application, which always has its platform's instance.
    const instance: unknown = this.adapterHost.httpAdapter.getInstance();
    if (isFastifyInstance(instance)) {
      // Before the routes are registered: their Fastify config must name each policy's handler.
      this.policies.compileRoutes();
      installFastify(instance, this.guard, this.policies, this.settings);
      return;
    }
    // Express: the metadata document and the response-signing JWK set (RFC 9728), as the
    // Express adapter's metadata() middleware serves them (a guard that publishes nothing answers none).
    (instance as ExpressLike).use((req, res, next) => {
      const answer = this.guard.metadataResponse(req.method, req.originalUrl);
      if (answer) writeResponse(res, answer);
      else next();
    });
  }
}
