/**
 * NestJS benchmark servers (Nest on Express or on Fastify): the bare route, the route guarded by
 * @fapi-guard/nestjs, and what Nest users pick otherwise — @nestjs/passport with passport-jwt
 * (Bearer JWT with a static ES256 key; it cannot check DPoP or certificate binding).
 */
import 'reflect-metadata';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { FapiGuardModule, FapiPolicy } from '@fapi-guard/nestjs';
import { Controller, ForbiddenException, Get, Injectable, Module, type Type, UseGuards } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AuthGuard, PassportModule, PassportStrategy } from '@nestjs/passport';
import { ExpressAdapter, type NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { ExtractJwt, Strategy } from 'passport-jwt';

const body = { ok: true };

export interface NestBenchConfig {
  kind: 'bare' | 'fapi' | 'peer';
  /** Nest's platform: Express (`nestjs`) or Fastify (`nestjs-fastify`). */
  platform: 'nestjs' | 'nestjs-fastify';
  guard: GuardOptions;
  policy: RoutePolicy;
  issuer: string;
  audience: string;
  publicKeyPem: string;
}

function moduleFor(config: NestBenchConfig): Type {
  if (config.kind === 'fapi') {
    @Controller()
    class Accounts {
      @Get('accounts')
      @FapiPolicy(config.policy)
      accounts() {
        return body;
      }
    }
    @Module({ imports: [FapiGuardModule.forRoot(config.guard)], controllers: [Accounts] })
    class FapiApp {}
    return FapiApp;
  }
  if (config.kind === 'peer') {
    @Injectable()
    class JwtStrategy extends PassportStrategy(Strategy) {
      constructor() {
        super({
          jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
          secretOrKey: config.publicKeyPem,
          algorithms: ['ES256'],
          issuer: config.issuer,
          audience: config.audience,
        });
      }
      validate(payload: { scope?: string }) {
        if (
          !String(payload.scope ?? '')
            .split(' ')
            .includes('accounts')
        )
          throw new ForbiddenException();
        return payload;
      }
    }
    @Controller()
    class Accounts {
      @Get('accounts')
      @UseGuards(AuthGuard('jwt'))
      accounts() {
        return body;
      }
    }
    @Module({ imports: [PassportModule], providers: [JwtStrategy], controllers: [Accounts] })
    class PassportApp {}
    return PassportApp;
  }
  @Controller()
  class Accounts {
    @Get('accounts')
    accounts() {
      return body;
    }
  }
  @Module({ controllers: [Accounts] })
  class BareApp {}
  return BareApp;
}

export async function startNest(config: NestBenchConfig): Promise<number> {
  if (config.platform === 'nestjs-fastify') {
    const app = await NestFactory.create<NestFastifyApplication>(moduleFor(config), new FastifyAdapter(), { logger: ['error'] });
    await app.listen(0, '127.0.0.1');
    return ((app.getHttpServer() as Server).address() as AddressInfo).port;
  }
  const app = await NestFactory.create<NestExpressApplication>(moduleFor(config), new ExpressAdapter(), { logger: ['error'] });
  // As the Express scenarios: no x-powered-by, no ETag.
  app.disable('x-powered-by');
  app.disable('etag');
  await app.listen(0, '127.0.0.1');
  return ((app.getHttpServer() as Server).address() as AddressInfo).port;
}
