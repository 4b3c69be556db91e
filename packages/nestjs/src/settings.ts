/** What the module does beyond the guard options: app-wide protection, how refusals are answered. */
import { checkRefusalOptions, type RefusalOptions, type RoutePolicy } from '@fapi-guard/core';

/**
 * The second argument of `FapiGuardModule.forRoot(options, settings)` (and the `settings` of
 * `forRootAsync`). `errors` and `errorBody` are those of every adapter (see `RefusalOptions` in
 * `@fapi-guard/core`): with `errors: 'framework'` refusals reach the application's exception
 * filters as {@link FapiRefusal}, with the status and challenge headers pinned.
 */
export interface FapiGuardModuleSettings extends RefusalOptions {
  /**
   * Default-deny: every route of the application is protected with this policy (`true`: the
   * default policy, a sender-constrained token) unless marked `@FapiPublic()`; route and
   * controller policies are checked on top of it, the token and the DPoP proof once. The same
   * as `{ provide: APP_GUARD, useClass: FapiGlobalGuard }` in the application module.
   * @default undefined (only routes with a policy decorator are protected)
   */
  global?: true | RoutePolicy;
}

const SETTING_KEYS = ['global', 'errors', 'errorBody'];

/** Checks the settings once, at start-up: an unknown key is a mistake, not an open route. */
export function checkSettings(settings: FapiGuardModuleSettings): void {
  for (const key of Object.keys(settings)) {
    if (!SETTING_KEYS.includes(key)) {
      throw new TypeError(`fapi-guard: unknown FapiGuardModule setting "${key}" (known: ${SETTING_KEYS.join(', ')})`);
    }
  }
  checkRefusalOptions('FapiGuardModule', settings);
  const { global } = settings;
  if (global !== undefined && global !== true && (typeof global !== 'object' || global === null)) {
    throw new TypeError('fapi-guard: FapiGuardModule setting global must be true or a route policy');
  }
}
