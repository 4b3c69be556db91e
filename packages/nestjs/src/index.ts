/**
 * NestJS adapter: a module that creates the guard, policy decorators for controllers and
 * handlers, and the typed authorization as a handler parameter, on Nest's Express and Fastify
 * platforms. It hands the Node request to the core and writes the core's response; no protocol
 * logic lives here.
 */
export { FapiAuth, FapiPolicy, type FapiPolicyDecorator, RequireScopes } from './decorators.js';
export { FapiGlobalGuard, FapiGuard } from './guard.js';
export { FapiGuardModule, type FapiGuardModuleAsyncOptions, type FapiGuardModuleOptions } from './module.js';
export { FapiPolicies } from './policies.js';
export { FapiPublic } from './public.js';
export { fapiRawBody } from './raw-body.js';
export { FapiRefusal, FapiRefusalFilter, FapiRespondedRefusal } from './refusal.js';
export type { FapiGuardModuleSettings } from './settings.js';
export { FAPI_GUARD } from './tokens.js';
