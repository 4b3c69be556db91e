/**
 * Issue 24, "not yet attacked": HTTP/2 on Express (Node's http2 compatibility API), Koa, Fastify
 * and NestJS (Express and Fastify platforms), each on one TLS server that also speaks HTTP/1.1
 * (`allowHTTP1`, ALPN). Valid DPoP requests and signed requests pass on both protocols;
 * `:authority` against `Host`, pseudo-headers, repeated fields and bodies without Content-Length
 * on signed routes are handled alike on every adapter.
 *
 * Express does not run on the compatibility API by itself (it swaps the request prototype for one
 * built on HTTP/1's IncomingMessage, expressjs/express#5061): the apps here give it prototypes
 * built on Http2ServerRequest/Http2ServerResponse for HTTP/2 requests, as the bridges users
 * deploy do (`http2-express-bridge`).
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type ClientHttp2Session,
  connect,
  createSecureServer,
  Http2ServerRequest,
  Http2ServerResponse,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { type Authorized, fapiTlsOptions, type GuardOptions } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { FapiAuth, FapiGuardModule, FapiPolicy, fapiRawBody } from '@fapi-guard/nestjs';
import {
  createCertificate,
  DpopClient,
  MessageSigningClient,
  MockIssuer,
  type TestCertificate,
  verifySignedResponse,
} from '@fapi-guard/testing';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import { Body, Controller, Get, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import express, { type Express } from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import { send } from './support/http';

const AUDIENCE = 'https://api.bank.example';
const ORIGINS = ['https://api.bank.example', 'https://api2.bank.example'];
const ACCOUNTS = { scopes: ['accounts'] } as const;
const SIGNED = { scopes: ['payments:write'], signedRequest: 'required', signResponse: true } as const;
const FRAMEWORKS = ['express', 'koa', 'fastify', 'nestjs', 'nestjs-fastify'] as const;
type H2Framework = (typeof FRAMEWORKS)[number];

const signer = MessageSigningClient.generate('ed25519', 'client-a-key');
const rsKey = MessageSigningClient.generate('ecdsa-p256-sha256', 'rs-h2');

const echo = (auth: Authorized | undefined) => ({ clientId: auth?.clientId, binding: auth?.binding?.type });
/** The body as the framework's parser left it (none: parsers skip a body without Content-Length). */
const receipt = (auth: Authorized | undefined, body: unknown) => ({
  clientId: auth?.clientId,
  signature: auth?.signature?.keyid ?? null,
  body,
});

interface H2App {
  port: number;
  close(): Promise<void>;
}

/**
 * Express with the prototypes of the protocol of each request: its own (HTTP/1's
 * IncomingMessage) for HTTP/1.1, the same methods on Http2ServerRequest/Response for HTTP/2.
 */
function expressOnBothProtocols(app: Express): (req: IncomingMessage, res: ServerResponse) => void {
  const d = Object.getOwnPropertyDescriptors;
  const on = (base: object, own: object) => Object.create(Object.create(base, d(Object.getPrototypeOf(own))), d(own));
  const h1 = { request: app.request, response: app.response };
  const h2 = { request: on(Http2ServerRequest.prototype, app.request), response: on(Http2ServerResponse.prototype, app.response) };
  return (req, res) => {
    Object.assign(app, req.httpVersionMajor === 2 ? h2 : h1);
    app(req, res);
  };
}

function expressRoutes(app: Express, options: GuardOptions): void {
  const fapi = expressGuard(options);
  app.get('/accounts', fapi.protect(ACCOUNTS), (req, res) => void res.json(echo(req.auth)));
  // The parser after protect() (README): no body is read before the client has authenticated.
  app.post('/signed', fapi.protect(SIGNED), express.json(), (req, res) => void res.status(201).json(receipt(req.auth, req.body)));
}

async function listenH2(handler: (req: IncomingMessage, res: ServerResponse) => void, tls: TestCertificate): Promise<H2App> {
  const server = createSecureServer({ ...fapiTlsOptions({ cert: tls.cert, key: tls.key }), allowHTTP1: true }, handler as never);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function startNest(platform: 'nestjs' | 'nestjs-fastify', options: GuardOptions, tls: TestCertificate): Promise<H2App> {
  @Controller()
  class H2Controller {
    @Get('accounts')
    @FapiPolicy(ACCOUNTS)
    accounts(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
    @Post('signed')
    @FapiPolicy(SIGNED)
    signed(@FapiAuth() auth: Authorized, @Body() body: unknown) {
      return receipt(auth, body);
    }
  }
  @Module({ imports: [FapiGuardModule.forRoot(options)], controllers: [H2Controller] })
  class H2Module {}
  if (platform === 'nestjs-fastify') {
    const https = { ...fapiTlsOptions({ cert: tls.cert, key: tls.key }), allowHTTP1: true };
    const adapter = new FastifyAdapter({ http2: true, https } as never);
    const app = await NestFactory.create(H2Module, adapter, { logger: false, abortOnError: false });
    fapiRawBody(app);
    await app.listen(0, '127.0.0.1');
    return { port: (app.getHttpServer().address() as AddressInfo).port, close: () => app.close() };
  }
  const instance = express();
  const app = await NestFactory.create(H2Module, new ExpressAdapter(instance), { logger: false, abortOnError: false });
  fapiRawBody(app);
  await app.init();
  const served = await listenH2(expressOnBothProtocols(instance), tls);
  const close = async () => {
    await served.close();
    await app.close();
  };
  return { port: served.port, close };
}

async function startH2(framework: H2Framework, options: GuardOptions, tls: TestCertificate): Promise<H2App> {
  if (framework === 'nestjs' || framework === 'nestjs-fastify') return startNest(framework, options, tls);
  if (framework === 'express') {
    const app = express();
    expressRoutes(app, options);
    return listenH2(expressOnBothProtocols(app), tls);
  }
  if (framework === 'koa') {
    const fapi = koaGuard(options);
    const app = new Koa();
    // A stream the client's protocol error reset: nothing to answer, nothing to print.
    app.on('error', (err: { code?: string }) => {
      const expected = err.code === 'ERR_HTTP2_STREAM_ERROR' || err.code === 'ECONNABORTED';
      if (process.env.TEST_REPORT && !expected) console.error(err);
    });
    const router = new Router();
    router.get('/accounts', fapi.protect(ACCOUNTS), (ctx) => {
      ctx.body = echo(ctx.state.auth);
    });
    // The parser after protect() (README): no body is read before the client has authenticated.
    router.post('/signed', fapi.protect(SIGNED), bodyParser({ enableTypes: ['json'] }), (ctx) => {
      ctx.status = 201;
      ctx.body = receipt(ctx.state.auth, (ctx.request as { body?: unknown }).body);
    });
    app.use(router.routes());
    return listenH2(app.callback(), tls);
  }
  const https = { ...fapiTlsOptions({ cert: tls.cert, key: tls.key }), allowHTTP1: true };
  const app = Fastify({ http2: true, https });
  await app.register(fastifyPlugin, options);
  app.get('/accounts', { config: { fapi: routePolicy(ACCOUNTS) } }, async (request) => echo(request.auth ?? undefined));
  app.post('/signed', { config: { fapi: routePolicy(SIGNED) } }, async (request, reply) =>
    reply.code(201).send(receipt(request.auth ?? undefined, request.body)),
  );
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
}

interface H2Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The stream was reset (or the session failed) instead of an answer. */
  reset?: string;
}

/** One HTTP/2 request over TLS; `body` pieces go out as DATA frames 20 ms apart. */
function h2(port: number, headers: OutgoingHttpHeaders, body: readonly Buffer[] = []): Promise<H2Answer> {
  return new Promise((resolve) => {
    const session = connect(`https://127.0.0.1:${port}`, { ca: server.cert });
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    const done = (answer: H2Answer) => {
      session.close();
      resolve(answer);
    };
    session.on('error', (e) => done({ status: 0, headers: {}, text: '', reset: e.message }));
    const req = session.request({ ':method': 'GET', ':path': '/accounts', ...headers }, { endStream: body.length === 0 });
    let status = 0;
    let answer: IncomingHttpHeaders = {};
    let text = '';
    req.on('response', (h) => {
      status = Number(h[':status']);
      answer = h;
    });
    req.on('data', (c) => (text += c));
    req.on('end', () => done({ status, headers: answer, text }));
    req.on('error', (e) => done({ status, headers: answer, text, reset: e.message }));
    req.on('close', () => {
      if (req.rstCode) done({ status, headers: answer, text, reset: `RST_STREAM ${req.rstCode}` });
    });
    req.setTimeout(10_000, () => req.close());
    const pieces = [...body];
    const next = () => {
      const piece = pieces.shift();
      if (piece === undefined) req.end();
      else req.write(piece, () => setTimeout(next, 20));
    };
    if (body.length > 0) next();
  });
}

/** Client sessions still open: closed after each suite, so that the servers can close. */
const sessions = new Set<ClientHttp2Session>();
/** A request whose stream stays open (no END_STREAM, no DATA): the status, or 0 after 3 s. */
function h2open(port: number, headers: OutgoingHttpHeaders): Promise<{ status: number }> {
  return new Promise((resolve) => {
    const session = connect(`https://127.0.0.1:${port}`, { ca: server.cert });
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => undefined);
    const req = session.request(headers, { endStream: false });
    const done = (status: number) => {
      clearTimeout(timer);
      session.destroy();
      resolve({ status });
    };
    const timer = setTimeout(() => done(0), 3000);
    req.on('response', (h) => done(Number(h[':status'])));
    req.on('error', () => done(0));
  });
}

let issuer: MockIssuer;
let server: TestCertificate;
let dpop: DpopClient;
beforeAll(async () => {
  issuer = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-a' });
  server = await createCertificate({ subject: 'CN=localhost', hosts: ['localhost', '127.0.0.1'] });
  dpop = await DpopClient.create('ES256');
});
afterAll(() => issuer.stop());

describe.each(FRAMEWORKS)('III.attack http2 on %s (h2 and HTTP/1.1 on one TLS server)', (framework) => {
  let app: H2App;
  beforeAll(async () => {
    app = await startH2(
      framework,
      {
        issuer: issuer.issuer,
        audience: AUDIENCE,
        publicUrl: ORIGINS,
        interactionId: false,
        messageSigning: { clients: { 'client-a': { jwks: signer.jwks } }, responseKey: rsKey.privateJwk },
      },
      server,
    );
  });
  afterAll(async () => {
    for (const session of sessions) session.destroy();
    await app?.close();
  });

  const credentials = async (method: string, url: string, scope = 'accounts') => {
    const token = await issuer.mint({ scope, jkt: dpop.jkt });
    return { authorization: `DPoP ${token}`, dpop: await dpop.proof({ htm: method, htu: url, accessToken: token }) };
  };

  it('III.attack http2 DPOP-01 a valid DPoP request passes over HTTP/2 and over HTTP/1.1 on the same server', async () => {
    const overH2 = await h2(app.port, { ':authority': 'api.bank.example', ...(await credentials('GET', `${ORIGINS[0]}/accounts`)) });
    expect(overH2.reset).toBeUndefined();
    expect(overH2.status).toBe(200);
    expect(JSON.parse(overH2.text)).toEqual({ clientId: 'client-a', binding: 'dpop' });
    const overH1 = await send(`https://127.0.0.1:${app.port}/accounts`, {
      headers: { host: 'api2.bank.example', ...(await credentials('GET', `${ORIGINS[1]}/accounts`)) },
      tls: { ca: server.cert },
    });
    expect(overH1.status).toBe(200);
    expect(overH1.json).toEqual({ clientId: 'client-a', binding: 'dpop' });
  });

  it('III.attack http2 15.6 :authority picks the origin; a disagreeing Host, an unknown :authority are 400', async () => {
    const proof = () => credentials('GET', `${ORIGINS[0]}/accounts`);
    // The proof is for api.bank.example; :authority names the other origin.
    expect((await h2(app.port, { ':authority': 'api2.bank.example', ...(await proof()) })).status).toBe(401);
    expect((await h2(app.port, { ':authority': 'api.bank.example', host: 'api2.bank.example', ...(await proof()) })).status).toBe(400);
    expect((await h2(app.port, { ':authority': 'evil.example', ...(await proof()) })).status).toBe(400);
  });

  it('III.attack http2 DPOP-03 a request target not in origin-form, or two DPoP fields, never pass', async () => {
    const absolute = await h2(app.port, {
      ':authority': 'api.bank.example',
      ':path': 'https://api.bank.example/accounts',
      ...(await credentials('GET', `${ORIGINS[0]}/accounts`)),
    });
    expect(absolute.status === 0 || absolute.status >= 400).toBe(true);
    // HTTP/2 may repeat a field (RFC 9113 §8.2.3 only joins cookie); the pair is seen, not folded.
    const pair = await credentials('GET', `${ORIGINS[0]}/accounts`);
    const twice = await h2(app.port, { ':authority': 'api.bank.example', ...pair, dpop: [pair.dpop, pair.dpop] });
    expect(twice.status).toBe(401);
    expect(String(twice.headers['www-authenticate'])).toContain('error="invalid_dpop_proof"');
  });

  describe('a signed route (signedRequest, signResponse), bodies without Content-Length', () => {
    const body = Buffer.from(JSON.stringify({ amount: '10.00', currency: 'EUR' }));
    const url = `${ORIGINS[0]}/signed`;
    const signedHeaders = async (digested: Buffer, components?: string[]) => {
      const headers = { ...(await credentials('POST', url, 'payments:write')), 'content-type': 'application/json' };
      return { ...headers, ...signer.sign({ method: 'POST', url, headers, body: digested }, components ? { components } : {}) };
    };
    const post = (headers: OutgoingHttpHeaders, pieces: Buffer[]) =>
      h2(app.port, { ':method': 'POST', ':path': '/signed', ':authority': 'api.bank.example', ...headers }, pieces);

    it('III.attack http2 SIG-09 DIG-03 a body in several DATA frames passes, and the answer is signed over what was sent', async () => {
      const headers = await signedHeaders(body);
      const res = await post(headers, [body.subarray(0, 5), body.subarray(5, 20), body.subarray(20)]);
      expect(res.status).toBe(201);
      expect(JSON.parse(res.text)).toMatchObject({ clientId: 'client-a', signature: 'client-a-key' });
      const { ':status': _status, ...responseHeaders } = res.headers;
      const check = verifySignedResponse({
        request: { method: 'POST', url, headers: headers as Record<string, string> },
        response: { status: res.status, headers: responseHeaders as Record<string, string>, body: res.text },
        jwks: rsKey.jwks,
      });
      expect(check).toMatchObject({ ok: true, keyid: 'rs-h2' });
    });

    it('III.attack http2 SIG-07 DEC-07 without Content-Length the body still needs content-digest coverage and a matching digest', async () => {
      const uncovered = await signedHeaders(body, ['@method', '@target-uri', 'authorization', 'dpop']);
      expect((await post(uncovered, [body])).status).toBe(401);
      const other = await signedHeaders(Buffer.from('{"amount":"1.00","currency":"EUR"}'));
      expect((await post(other, [body])).status).toBe(401);
    });

    it('III.attack http2 15.8 a client without credentials is answered 401 while its body is still open (the body is not awaited)', async () => {
      const started = Date.now();
      const open = await h2open(app.port, {
        ':method': 'POST',
        ':path': '/signed',
        ':authority': 'api.bank.example',
        'content-type': 'application/json',
      });
      expect(open.status).toBe(401);
      expect(Date.now() - started).toBeLessThan(3000);
    });

    it('III.attack http2 a Content-Length that the DATA frames contradict never reaches the app', async () => {
      for (const length of ['0', String(body.length - 1), String(body.length + 1)]) {
        const res = await post({ ...(await signedHeaders(body)), 'content-length': length }, [body]);
        expect(res.status === 0 || res.status >= 400).toBe(true);
      }
    });
  });
});
