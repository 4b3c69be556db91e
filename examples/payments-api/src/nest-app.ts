/**
 * The example payments API on NestJS, with the same routes as the Express one, on Nest's Express
 * platform (`FAPI_FRAMEWORK=nestjs`) or Fastify platform (`FAPI_FRAMEWORK=nestjs-fastify`).
 */
import 'reflect-metadata';
import type { ServerOptions } from 'node:https';
import type { Authorized, Guard, GuardOptions } from '@fapi-guard/core';
import { FAPI_GUARD, FapiAuth, FapiGuardModule, FapiPolicy, fapiRawBody } from '@fapi-guard/nestjs';
import {
  Body,
  Controller,
  Get,
  type INestApplication,
  Inject,
  Module,
  type NestApplicationOptions,
  Param,
  Post,
  Res,
} from '@nestjs/common';
import { HttpAdapterHost, NestFactory } from '@nestjs/core';
import { ExpressAdapter, type NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { type Answer, type ApiOptions, ownerOf, PaymentsService, paymentInput, readiness, routePolicies } from './payments.js';

const BODY_LIMIT = 16 * 1024;

export async function createNestPaymentsApi(
  options: ApiOptions & { guard: GuardOptions },
  platform: 'express' | 'fastify',
  /** Serve HTTPS with these `https.createServer` options. */
  https?: ServerOptions,
): Promise<INestApplication> {
  const policy = routePolicies(options);

  @Controller()
  class PaymentsController {
    private readonly service = new PaymentsService();
    constructor(
      @Inject(HttpAdapterHost) private readonly host: HttpAdapterHost,
      @Inject(FAPI_GUARD) private readonly guard: Guard,
    ) {}

    /** Writes the status the service chose (Nest's route default would be 200 or 201). */
    private reply(res: object, answer: Answer): void {
      const http = this.host.httpAdapter;
      if (answer.location) http.setHeader(res, 'location', answer.location);
      http.reply(res, answer.body, answer.status);
    }

    @Get('health')
    health() {
      return { status: 'ok' };
    }

    @Get('ready')
    async ready(@Res() res: object) {
      this.reply(res, await readiness(this.guard));
    }

    @Get('accounts')
    @FapiPolicy(policy.accounts)
    listAccounts(@FapiAuth() auth: Authorized, @Res() res: object) {
      this.reply(res, this.service.listAccounts(ownerOf(auth)));
    }

    @Get('accounts/:id')
    @FapiPolicy(policy.accounts)
    getAccount(@FapiAuth() auth: Authorized, @Param('id') id: string, @Res() res: object) {
      this.reply(res, this.service.getAccount(ownerOf(auth), id));
    }

    @Post('payments')
    @FapiPolicy(policy.createPayment)
    createPayment(@FapiAuth() auth: Authorized, @Body() body: unknown, @Res() res: object) {
      this.reply(res, this.service.createPayment(ownerOf(auth), paymentInput(auth, body)));
    }

    @Get('payments/:id')
    @FapiPolicy(policy.readPayment)
    getPayment(@FapiAuth() auth: Authorized, @Param('id') id: string, @Res() res: object) {
      this.reply(res, this.service.getPayment(ownerOf(auth), id));
    }
  }

  @Module({ imports: [FapiGuardModule.forRoot(options.guard)], controllers: [PaymentsController] })
  class PaymentsModule {}

  const app =
    platform === 'fastify'
      ? await NestFactory.create(PaymentsModule, new FastifyAdapter({ bodyLimit: BODY_LIMIT, ...(https ? { https } : {}) }), {
          logger: ['error'],
        })
      : await NestFactory.create<NestExpressApplication>(PaymentsModule, new ExpressAdapter(), {
          logger: ['error'],
          bodyParser: false,
          // Nest's HttpsOptions type is narrower than Node's ServerOptions; the object is handed to https.createServer.
          ...(https ? { httpsOptions: https as NestApplicationOptions['httpsOptions'] } : {}),
        });
  if (platform === 'express') {
    const express = app as NestExpressApplication;
    express.disable('x-powered-by');
    // Signed payments: the body bytes as received are kept for their digest (RFC 9530).
    fapiRawBody(express);
    express.useBodyParser('json', { limit: BODY_LIMIT });
  } else {
    // Open Finance Brasil bodies (signed JWTs): the guard verifies the bytes, the handler takes the verified `data` claim.
    (app as NestFastifyApplication)
      .getHttpAdapter()
      .getInstance()
      .addContentTypeParser('application/jwt', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  }
  return app;
}
