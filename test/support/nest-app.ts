/**
 * The parity app on NestJS (Express and Fastify platforms), listening on 127.0.0.1: the same
 * routes and answers as the Express, Koa and Fastify apps of apps.ts.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Authorized, GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { FapiAuth, FapiGuardModule, type FapiGuardModuleSettings, FapiPolicy, fapiRawBody } from '@fapi-guard/nestjs';
import { All, Body, Controller, Get, type INestApplication, Module, Post, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter, type NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';

export type NestPlatform = 'nestjs' | 'nestjs-fastify';

export interface StartedNestApp {
  app: INestApplication;
  url: string;
  close(): Promise<void>;
}

/**
 * Creates the app with `FapiGuardModule.forRoot(options)` and `controllers`, keeping raw body
 * bytes for request signatures, and listens; rejects (and closes) if start-up fails.
 */
export async function startNestApp(
  platform: NestPlatform,
  options: GuardOptions,
  controllers: Type[],
  prepare?: (app: INestApplication) => void,
  /** Mount fapiRawBody() (always, on a guard with messageSigning, unless false); the module's settings. */
  { rawBody = options.messageSigning !== undefined, settings }: { rawBody?: boolean; settings?: FapiGuardModuleSettings } = {},
): Promise<StartedNestApp> {
  @Module({ imports: [FapiGuardModule.forRoot(options, settings)], controllers })
  class AppModule {}
  const adapter = platform === 'nestjs' ? new ExpressAdapter() : new FastifyAdapter();
  const app = await NestFactory.create(AppModule, adapter, { logger: false, abortOnError: false });
  const server = app.getHttpServer() as Server;
  const close = async () => {
    server.closeAllConnections?.();
    await app.close();
  };
  try {
    if (rawBody) fapiRawBody(app);
    prepare?.(app);
    await app.listen(0, '127.0.0.1');
  } catch (error) {
    await close();
    throw error;
  }
  return { app, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close };
}

/** The routes of apps.ts (ROUTES and SIGNED_ROUTES) as Nest controllers. */
export function parityControllers(
  routes: Record<'accounts' | 'mixed' | 'nonce' | 'payments' | 'either' | 'stepup' | 'rar', RoutePolicy>,
  signed: Record<'signed' | 'optional', RoutePolicy> | undefined,
  echo: (auth: Authorized) => unknown,
  receipt: (auth: Authorized, body: unknown) => unknown,
): Type[] {
  @Controller()
  class ParityController {
    @All('accounts')
    @FapiPolicy(routes.accounts)
    accounts(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
    @Get('mixed')
    @FapiPolicy(routes.mixed)
    mixed(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
    @Get('nonce')
    @FapiPolicy(routes.nonce)
    nonce(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
    @Post('payments')
    @FapiPolicy(routes.payments)
    payments(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
    @Get('either')
    @FapiPolicy(routes.either)
    either(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
    @Get('stepup')
    @FapiPolicy(routes.stepup)
    stepup(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
    @Get('rar')
    @FapiPolicy(routes.rar)
    rar(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
  }
  if (!signed) return [ParityController];
  const policies = signed;
  @Controller()
  class SignedController {
    @Post('signed')
    @FapiPolicy(policies.signed)
    signed(@FapiAuth() auth: Authorized, @Body() body: unknown) {
      return receipt(auth, body);
    }
    @Post('optional')
    @FapiPolicy(policies.optional)
    optional(@FapiAuth() auth: Authorized, @Body() body: unknown) {
      return receipt(auth, body);
    }
  }
  return [ParityController, SignedController];
}

/** Raw `application/octet-stream` bodies reach the handler as a Buffer, as on the other apps. */
export function octetStreamAsBuffer(app: INestApplication): void {
  const instance = app.getHttpAdapter().getInstance() as {
    addContentTypeParser?: (
      type: string | string[],
      options: object,
      parser: (r: unknown, body: Buffer, done: (e: null, b: Buffer) => void) => void,
    ) => void;
  };
  if (instance.addContentTypeParser) {
    instance.addContentTypeParser(['application/octet-stream', 'application/jwt'], { parseAs: 'buffer' }, (_request, body, done) =>
      done(null, body),
    );
  } else {
    (app as NestExpressApplication).useBodyParser('raw', { type: 'application/octet-stream' });
  }
}
