import 'reflect-metadata';
import type { Authorized } from '@fapi-guard/core';
import { guardOptionsFromEnv } from '@fapi-guard/core';
import { FapiAuth, FapiGuardModule, FapiPolicy } from '@fapi-guard/nestjs';
import { Controller, Get, Module } from '@nestjs/common';

@Controller('accounts')
@FapiPolicy({ scopes: ['accounts'] })
export class AccountsController {
  @Get()
  list(@FapiAuth() auth: Authorized) {
    return { client: auth.clientId, subject: auth.subject };
  }
}

@Module({
  // FAPI_ISSUER: your authorization server; FAPI_AUDIENCE: this API's identifier (token `aud`).
  imports: [FapiGuardModule.forRoot(guardOptionsFromEnv())],
  controllers: [AccountsController],
})
export class AppModule {}
// const app = await NestFactory.create(AppModule); await app.listen(3000);
