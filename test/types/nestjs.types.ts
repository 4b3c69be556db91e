/**
 * Type tests for @fapi-guard/nestjs, checked by `npm run typecheck`. Each `@ts-expect-error`
 * must be an error, or tsc fails. Nothing here runs.
 */
import type { Authorized, Guard } from '@fapi-guard/core';
import { FAPI_GUARD, FapiAuth, FapiGuardModule, FapiPolicy, FapiPublic, RequireScopes } from '@fapi-guard/nestjs';
import { Controller, type DynamicModule, Get, Inject } from '@nestjs/common';

const options = { issuer: 'https://as.example.com', audience: 'https://rs.example.com' };

const root: DynamicModule = FapiGuardModule.forRoot(options);
const async: DynamicModule = FapiGuardModule.forRootAsync({
  inject: ['CONFIG'],
  useFactory: (config: { issuer: string }) => ({ issuer: config.issuer, audience: 'https://rs.example.com' }),
});
// @ts-expect-error unknown guard option
FapiGuardModule.forRoot({ ...options, clockTolerance: 5 });
// @ts-expect-error the factory returns guard options
FapiGuardModule.forRootAsync({ useFactory: () => ({ issuer: 1 }) });
void root;
void async;

// A policy decorator goes on a controller or a handler.
@Controller('accounts')
@FapiPolicy({ scopes: ['accounts'], claims: { acr: { equals: 'urn:x' } } })
export class AccountsController {
  constructor(@Inject(FAPI_GUARD) readonly guard: Guard) {}

  @Get()
  @RequireScopes('accounts', 'balances')
  list(@FapiAuth() auth: Authorized): string | undefined {
    return auth.clientId;
  }

  @Get('any')
  @FapiPolicy({ anyScopes: ['a', 'b'], allowBearer: true })
  any(): void {}
}

// @ts-expect-error unknown policy member
FapiPolicy({ scope: ['accounts'] });
// @ts-expect-error scopes are strings
FapiPolicy({ scopes: [1] });
// @ts-expect-error allowBearer is a boolean
FapiPolicy({ allowBearer: 'yes' });
// @ts-expect-error at least one scope
RequireScopes();
// @ts-expect-error FapiAuth takes no argument
FapiAuth('auth');

// Issue 25: default-deny settings and the public marker.
FapiGuardModule.forRoot(options, { global: { scopes: ['api'] }, errors: 'framework', errorBody: 'problem' });
FapiGuardModule.forRoot(options, { global: true });
// @ts-expect-error global is true or a route policy
FapiGuardModule.forRoot(options, { global: 'yes' });
@FapiPublic()
class Health {
  @FapiPublic()
  check(): void {}
}
void Health;
