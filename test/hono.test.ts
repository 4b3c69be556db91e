/**
 * What only the Hono adapter has to get right, over real HTTP on @hono/node-server unless said
 * otherwise: a trusted proxy's certificate header (RFC 9440; the certificate of a real TLS
 * connection is tested in mtls.test.ts), the body the guard reads and hands on (form bodies, FAPI 2.0
 * Message Signing), signed Fetch responses, and what a runtime without Node's raw header lines
 * can and cannot tell (RFC 9449 §4.3 step 1). The behaviour shared with the other adapters runs
 * in the cross-adapter suites (parity, message-signing, body-before-auth, fuzz...).
 */
import { createGuard, type GuardOptions } from '@fapi-guard/core';
import { type FapiEnv, type FapiGuardHono, fapiGuard } from '@fapi-guard/hono';
import {
  clientCertHeader,
  createCertificate,
  DpopClient,
  MessageSigningClient,
  MockIssuer,
  type TestCertificate,
  verifySignedResponse,
} from '@fapi-guard/testing';
import { type Handler, Hono, type MiddlewareHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { serveHono } from './support/apps';
import { signal } from './support/hang-up';
import { type RunningHono, startHonoApp } from './support/hono-app';
import { type Received, send, trickle } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const ALGS = 'DPoP algs="ES256 PS256 EdDSA"';

let as: MockIssuer;
let dpop: DpopClient;
const clientKey = MessageSigningClient.generate('ed25519', 'client-a-key');
const rsKey = MessageSigningClient.generate('ed25519', 'rs-key');

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-a' });
  dpop = await DpopClient.create('ES256');
});
afterAll(() => as.stop());

/** Echoes what the guard decided: client, binding and where the certificate came from. */
const echoRoute = (app: Hono, fapi: FapiGuardHono) =>
  app.get('/accounts', fapi.protect({ scopes: ['accounts'], allowBearer: true }), (c) => {
    const auth = c.get('auth');
    return c.json({ binding: auth.binding, certificate: auth.certificate && { source: auth.certificate.source } });
  });

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('Hono behind a TLS-terminating proxy (RFC 9440)', () => {
  let client: TestCertificate;
  let other: TestCertificate;
  beforeAll(async () => {
    client = await createCertificate({ subject: 'CN=client-1' });
    other = await createCertificate({ subject: 'CN=client-2' });
  });
  const token = () => as.mint({ scope: 'accounts', x5t: client.x5t });
  const proxied = (trustedPeers: string[]) => ({ issuer: as.issuer, audience: AUDIENCE, mtls: { proxy: { trustedPeers } } });

  it('CCH-06 MTLS-08 takes the certificate from a trusted peer (the socket address of c.env.incoming), not cacheable', async () => {
    const api = await startHonoApp(proxied(['127.0.0.1', '::1']), echoRoute);
    try {
      const res = await send(`${api.url}/accounts`, { headers: { ...bearer(await token()), 'client-cert': clientCertHeader(client.der) } });
      expect(res.status).toBe(200);
      expect(res.json).toEqual({ binding: { type: 'mtls', x5t: client.x5t }, certificate: { source: 'proxy' } });
      expect(res.headers['cache-control']).toBe('no-store');
      const mismatch = await send(`${api.url}/accounts`, {
        headers: { ...bearer(await token()), 'client-cert': clientCertHeader(other.der) },
      });
      expect(mismatch.status).toBe(401);
      expect(api.decisions.at(-1)?.reason).toBe('certificate_mismatch');
    } finally {
      await api.close();
    }
  });

  it('CCH-06 a handler that sets its own Cache-Control, or builds its own Response, still sends no-store', async () => {
    const api = await startHonoApp(proxied(['127.0.0.1', '::1']), (app, fapi) => {
      const policy = { scopes: ['accounts'] };
      app.get('/own-header', fapi.protect(policy), (c) => {
        c.header('cache-control', 'max-age=600');
        return c.json({ ok: true });
      });
      app.get('/own-response', fapi.protect(policy), () => new Response('ok', { headers: { 'cache-control': 'public' } }));
      app.get('/appended', fapi.protect(policy), (c) => {
        c.header('cache-control', 'max-age=600', { append: true });
        return c.text('ok');
      });
    });
    try {
      for (const path of ['/own-header', '/own-response', '/appended']) {
        const res = await send(`${api.url}${path}`, { headers: { ...bearer(await token()), 'client-cert': clientCertHeader(client.der) } });
        expect([path, res.status, res.headers['cache-control']]).toEqual([path, 200, 'no-store']);
      }
    } finally {
      await api.close();
    }
  });

  it('CCH-02 off Node no peer is trusted, unless the connection option names the peer', async () => {
    const request = async () =>
      new Request(`${AUDIENCE}/accounts`, { headers: { ...bearer(await token()), 'client-cert': clientCertHeader(client.der) } });
    const plain = new Hono();
    echoRoute(plain, fapiGuard(proxied(['127.0.0.1'])));
    expect((await plain.fetch(await request())).status).toBe(401);
    const told = new Hono();
    echoRoute(told, fapiGuard(proxied(['127.0.0.1']), { connection: () => ({ remoteAddress: '127.0.0.1' }) }));
    expect((await told.fetch(await request())).status).toBe(200);
    const elsewhere = new Hono();
    echoRoute(elsewhere, fapiGuard(proxied(['127.0.0.1']), { connection: () => ({ remoteAddress: '127.0.0.2' }) }));
    expect((await elsewhere.fetch(await request())).status).toBe(401);
  });

  it("CCH-02 an env binding named incoming that is not Node's request (null, no socket, no raw header lines) is no peer, and no 500", async () => {
    const app = new Hono();
    echoRoute(app, fapiGuard(proxied(['127.0.0.1'])));
    const request = async () =>
      new Request(`${AUDIENCE}/accounts`, { headers: { ...bearer(await token()), 'client-cert': clientCertHeader(client.der) } });
    for (const incoming of [null, { rawHeaders: [] }, { socket: { remoteAddress: '127.0.0.1' } }, 'incoming']) {
      const res = await app.fetch(await request(), { incoming });
      expect([incoming, res.status, res.headers.has('www-authenticate')]).toEqual([incoming, 401, true]);
    }
  });
});

describe('Hono without raw header lines (runtimes other than Node): folded duplicates', () => {
  const guarded = () => {
    const app = new Hono();
    const fapi = fapiGuard({ issuer: as.issuer, audience: AUDIENCE, interactionId: false });
    app.get('/accounts', fapi.protect({ scopes: ['accounts'], allowBearer: true }), (c) => c.json({ ok: true }));
    return app;
  };
  const dpopHeaders = async () => {
    const token = await as.mint({ scope: 'accounts', jkt: dpop.jkt });
    const proof = () => dpop.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: token });
    return { token, proofs: [await proof(), await proof()] };
  };

  it('DPOP-03 two DPoP lines arrive folded into one value and are refused as invalid_dpop_proof', async () => {
    const { token, proofs } = await dpopHeaders();
    const headers = new Headers([
      ['authorization', `DPoP ${token}`],
      ['dpop', proofs[0] as string],
      ['dpop', proofs[1] as string],
    ]);
    expect(headers.get('dpop')).toBe(`${proofs[0]}, ${proofs[1]}`);
    const res = await guarded().fetch(new Request(`${AUDIENCE}/accounts`, { headers }));
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(
      `${ALGS}, error="invalid_dpop_proof", error_description="The DPoP proof is invalid", Bearer realm="https://rs.example.com"`,
    );
    // Either proof alone passes: the refusal is the fold's.
    const one = new Headers({ authorization: `DPoP ${token}`, dpop: proofs[1] as string });
    expect((await guarded().fetch(new Request(`${AUDIENCE}/accounts`, { headers: one }))).status).toBe(200);
  });

  it('RFC 6750 two Authorization lines arrive folded and are refused as malformed (on Node: as two)', async () => {
    const token = await as.mint({ scope: 'accounts' });
    const headers = new Headers([
      ['authorization', `Bearer ${token}`],
      ['authorization', `Bearer ${token}`],
    ]);
    const res = await guarded().fetch(new Request(`${AUDIENCE}/accounts`, { headers }));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'invalid_request', error_description: 'The Authorization header is malformed' });
    // With Node's rawHeaders (@hono/node-server) the two lines are seen as two.
    const served = await serveHono(guarded());
    try {
      const both = await send(`${served.url}/accounts`, { headers: { authorization: [`Bearer ${token}`, `Bearer ${token}`] } });
      expect(both.status).toBe(400);
      expect(both.json).toEqual({ error: 'invalid_request', error_description: 'More than one set of credentials was sent' });
    } finally {
      await served.close();
    }
  });
});

describe('Hono: the body the guard reads and hands on', () => {
  let api: RunningHono;
  const signing = { scopes: ['payments:write'], signedRequest: 'required', signResponse: true } as const;
  beforeAll(async () => {
    api = await startHonoApp(
      {
        issuer: as.issuer,
        audience: AUDIENCE,
        publicUrl: AUDIENCE,
        messageSigning: { clients: { 'client-a': { jwks: clientKey.jwks } }, maxBodyBytes: 64, responseKey: rsKey.privateJwk },
      },
      (app, fapi) => {
        app.post('/late', fapi.protect(signing), async (c) => c.json({ received: await c.req.json() }, 201));
        // A body read before protect(): the guard cannot see the bytes and says so.
        app.post(
          '/early',
          async (c, next) => {
            await c.req.raw.text();
            await next();
          },
          fapi.protect(signing),
          (c) => c.body(null, 204),
        );
        const form = { scopes: ['payments:write'] };
        app.post('/form', fapi.protect(form), async (c) => c.json({ received: await c.req.parseBody() }));
        app.post(
          '/form-early',
          async (c, next) => {
            await c.req.raw.text();
            await next();
          },
          fapi.protect(form),
          (c) => c.json({}),
        );
        const signs = { scopes: ['payments:write'], signResponse: true } as const;
        // A content-digest set by the handler is replaced by the digest of the bytes sent.
        app.post('/digest', fapi.protect(signs), (c) => c.json({ ok: true }, 200, { 'content-digest': 'sha-256=:AAAA:' }));
        app.post('/empty', fapi.protect(signs), (c) => c.body(null, 204));
        app.post('/raw', fapi.protect(signs), () => new Response('plain', { headers: { 'content-type': 'text/plain' } }));
        // RFC 9421 §2.5: a header value with non-ASCII cannot be signed.
        app.post('/unsignable', fapi.protect(signs), (c) =>
          c.json({ ok: true }, 200, { 'content-type': 'application/json; note=caf\u00e9' }),
        );
      },
    );
  });
  afterAll(() => api.close());

  async function dpopPost(path: string, body?: string, type = 'application/json') {
    const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt });
    const url = `${AUDIENCE}${path}`;
    const headers: Record<string, string> = {
      authorization: `DPoP ${token}`,
      dpop: await dpop.proof({ htm: 'POST', htu: url, accessToken: token }),
    };
    if (body !== undefined) headers['content-type'] = type;
    return { token, url, method: 'POST', headers, body };
  }
  const post = (r: Awaited<ReturnType<typeof dpopPost>>, extra: Record<string, string> = {}) =>
    send(`${api.url}${new URL(r.url).pathname}`, { method: 'POST', headers: { ...r.headers, ...extra }, body: r.body });

  it('SIG-09 reads the signed body after authentication and hands the same bytes to the handler', async () => {
    const r = await dpopPost('/late', '{"amount":"10.00","currency":"EUR"}');
    const res = await post(r, clientKey.sign(r));
    expect(res.status).toBe(201);
    expect(res.json).toEqual({ received: { amount: '10.00', currency: 'EUR' } });
  });

  it('DIG-04 bounds the signed body: maxBodyBytes passes, one byte more gives 413', async () => {
    const at = `{"memo":"${'x'.repeat(64 - 11)}"}`;
    expect(at.length).toBe(64);
    const r = await dpopPost('/late', at);
    expect((await post(r, clientKey.sign(r))).status).toBe(201);
    const over = await dpopPost('/late', `{"memo":"${'x'.repeat(64 - 10)}"}`);
    const res = await post(over, clientKey.sign(over));
    expect(res.status).toBe(413);
    expect(res.json).toEqual({ error_description: 'The request body is too large to be checked' });
  });

  it('DIG-04 an authenticated request announcing more than maxBodyBytes gets 413 while it has sent 16 bytes', async () => {
    const r = await dpopPost('/late', '{"a":1}');
    const headers = { ...r.headers, ...clientKey.sign(r), 'content-length': String(1024 * 1024) };
    const res = await trickle(api.url, { path: '/late', headers, head: 'x'.repeat(16) });
    expect(res.status).toBe(413);
    expect(res.sentBytes).toBe(16);
  });

  it('DEC-07 a body read before protect() is never treated as no body: 500, not a pass', async () => {
    const r = await dpopPost('/early', '{"a":1}');
    const res = await post(r, clientKey.sign(r));
    expect(res.status).toBe(500);
    expect(res.headers['www-authenticate']).toBeUndefined();
    expect(api.decisions.at(-1)?.reason).toBe('body_unavailable');
  });

  it('FAPI-RS-03 reads a form body to refuse an access_token in it next to the header, and hands the form on', async () => {
    const withToken = await dpopPost('/form', 'access_token=abc&amount=10', 'application/x-www-form-urlencoded');
    const refused = await post(withToken);
    expect(refused.status).toBe(400);
    expect(refused.json.error).toBe('invalid_request');
    const r = await dpopPost('/form', 'amount=10', 'application/x-www-form-urlencoded');
    const res = await post(r);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ received: { amount: '10' } });
  });

  it('FAPI-RS-03 bounds the form body it reads: maxBodyBytes passes, one byte more gives 413', async () => {
    const at = `amount=${'1'.repeat(64 - 7)}`;
    expect(at.length).toBe(64);
    expect((await post(await dpopPost('/form', at, 'application/x-www-form-urlencoded'))).status).toBe(200);
    expect((await post(await dpopPost('/form', `${at}1`, 'application/x-www-form-urlencoded'))).status).toBe(413);
  });

  it('FAPI-RS-03 a form body read before protect() cannot be checked: refused, not let through', async () => {
    const res = await post(await dpopPost('/form-early', 'access_token=abc', 'application/x-www-form-urlencoded'));
    expect(res.status).toBe(500);
  });

  const verified = (r: Awaited<ReturnType<typeof dpopPost>>, res: Received) =>
    verifySignedResponse({
      request: { method: r.method, url: r.url, headers: r.headers },
      response: { status: res.status, headers: res.headers as Record<string, string>, body: res.text },
      jwks: rsKey.jwks,
    });

  it('SIG-13 signs the digest of the bytes sent, replacing a content-digest the handler set', async () => {
    const r = await dpopPost('/digest');
    const res = await post(r);
    expect(res.status).toBe(200);
    expect(res.headers['content-digest']).not.toBe('sha-256=:AAAA:');
    expect(verified(r, res)).toMatchObject({ ok: true, keyid: 'rs-key' });
  });

  it('SIG-10 signs a Response the handler built itself, and a 204 without content-digest', async () => {
    const r = await dpopPost('/raw');
    const res = await post(r);
    expect(res.text).toBe('plain');
    expect(verified(r, res).ok).toBe(true);
    const e = await dpopPost('/empty');
    const empty = await post(e);
    expect(empty.status).toBe(204);
    expect(empty.headers['content-digest']).toBeUndefined();
    expect(verified(e, empty).ok).toBe(true);
  });

  it('never sends an unsigned answer on a signResponse route: a value it cannot sign gives 500', async () => {
    const res = await post(await dpopPost('/unsignable'));
    expect(res.status).toBe(500);
    expect(res.headers.signature).toBeUndefined();
    expect(res.json).toEqual({ error_description: 'The response could not be signed' });
  });
});

/** A DPoP-bound payment with `key`, in-process: the Fetch API's own Request and Response, as on Deno, Bun or Workers. */
async function payIn(app: Hono, key: string): Promise<Response> {
  const token = await as.mint({ scope: 'payments', jkt: dpop.jkt });
  const proof = await dpop.proof({ htm: 'POST', htu: `${AUDIENCE}/payments`, accessToken: token });
  return app.request(`${AUDIENCE}/payments`, {
    method: 'POST',
    headers: { authorization: `DPoP ${token}`, dpop: proof, 'content-type': 'application/json', 'idempotency-key': `"${key}"` },
    body: '{"amount":"10.00"}',
  });
}

const settle = async (res: Response) => [res.status, await res.text()];

/** What hono/timeout does, at a known moment: the first request is answered 504 once its handler has `started`. */
function timeoutOnce(started: Promise<void>): MiddlewareHandler {
  let timesOut = true;
  return async (_c, next) => {
    if (!timesOut) return next();
    timesOut = false;
    await Promise.race([
      next(),
      started.then(() => {
        throw new HTTPException(504, { message: 'Gateway Timeout' });
      }),
    ]);
  };
}

/**
 * The first payment is answered 504 by `timeoutOnce` while its handler waits; the runtime takes the
 * 504's body (a reader, nothing read yet); the handler then makes the payment. The retry's answer.
 */
async function paidAfterTimeout(
  layout: (app: Hono, timeout: MiddlewareHandler, handler: Handler) => void,
): Promise<[number, string, number]> {
  const app = new Hono();
  let processed = 0;
  const [started, gate, handled] = [signal(), signal(), signal()];
  layout(app, timeoutOnce(started.promise), async (c) => {
    started.fire();
    if (processed === 0) await gate.promise;
    processed++;
    handled.fire();
    return c.json({ payment: `pay-${processed}` }, 201);
  });
  const first = await payIn(app, 'paid-after-timeout');
  expect(first.status).toBe(504);
  const reader = (first.body as ReadableStream<Uint8Array>).getReader();
  expect([first.bodyUsed, first.body?.locked]).toEqual([false, true]);
  gate.fire();
  await handled.promise;
  await new Promise((resolve) => setTimeout(resolve, 50));
  const [status, text] = await settle(await payIn(app, 'paid-after-timeout'));
  await reader.cancel();
  return [status as number, text as string, processed];
}

const UNKEPT = 'its response was not kept';

describe('Hono off Node: an answer sent in the handler’s place (a Fetch Response the runtime took)', () => {
  const options = (): GuardOptions => ({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false });

  it('IDEM-04 IDEM-12 a timeout middleware’s 504 whose body the runtime has taken (locked, not yet read): the payment made after it is kept as processed, never freed for a second one', async () => {
    const fapi = fapiGuard(options());
    const [status, text, processed] = await paidAfterTimeout((app, timeout, handler) => {
      app.use('/payments', timeout);
      app.post('/payments', fapi.protect({ scopes: ['payments'], idempotency: 'required' }), handler);
    });
    expect([status, text.includes(UNKEPT), processed]).toEqual([409, true, 1]);
  });

  it('IDEM-04 IDEM-11 a timeout middleware between the app-wide layer and the route’s layer with the key: its 504, sent while the handler runs on, keeps the payment as processed (409 not kept), never freed for a second one', async () => {
    const guard = createGuard(options());
    const [appWide, route] = [fapiGuard(guard), fapiGuard(guard)];
    // Before: the app-wide layer, the outermost, recorded the 504 as the handler's own server
    // error and freed the key while the route's layer still waited on the handler: 201 pay-2.
    const [status, text, processed] = await paidAfterTimeout((app, timeout, handler) => {
      app.use('/payments', appWide.protect({ scopes: ['payments'] }));
      app.use('/payments', timeout);
      app.post('/payments', route.protect({ scopes: ['payments'], idempotency: 'required' }), handler);
    });
    expect([status, text.includes(UNKEPT), processed]).toEqual([409, true, 1]);
  });
});

describe('Hono: two adapters over one guard', () => {
  it('IDEM-04 IDEM-16 an app-wide fapiGuard(guard) and a route’s fapiGuard(guard) are layers of one guard: the route’s claim is recorded by the outer layer, the retry replayed', async () => {
    const guard = createGuard({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false });
    const [appWide, route] = [fapiGuard(guard), fapiGuard(guard)];
    const app = new Hono();
    let processed = 0;
    app.use('/payments', appWide.protect({ scopes: ['payments'] }));
    app.post('/payments', route.protect({ scopes: ['payments'], idempotency: 'required' }), (c) =>
      c.json({ payment: `pay-${++processed}` }, 201),
    );
    expect(await settle(await payIn(app, 'two-adapters'))).toEqual([201, '{"payment":"pay-1"}']);
    // The outermost layer records the answer: with a state of its own per adapter it held no
    // recorder of the route's claim, and the key stayed in flight (409) for its lifetime.
    expect(await settle(await payIn(app, 'two-adapters'))).toEqual([201, '{"payment":"pay-1"}']);
    expect(processed).toBe(1);
  });

  it('IDEM-04 IDEM-16 a non-Error thrown by the handler after the payment, answered 422 by a middleware between the layers: the outer layer records that answer, the retry is answered with it, never processed again', async () => {
    const guard = createGuard({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false });
    const [appWide, route] = [fapiGuard(guard), fapiGuard(guard)];
    const app = new Hono();
    let processed = 0;
    app.use('/payments', appWide.protect({ scopes: ['payments'] }));
    // Hono hands anything but an Error on to the middleware in front (an Error becomes its 500 at once).
    app.use('/payments', async (c, next) => {
      try {
        await next();
      } catch (thrown) {
        c.res = c.json({ rejected: (thrown as { code: string }).code }, 422);
      }
    });
    app.post('/payments', route.protect({ scopes: ['payments'], idempotency: 'required' }), () => {
      processed++;
      throw { code: 'LIMIT_EXCEEDED' };
    });
    expect(await settle(await payIn(app, 'mapped-throw'))).toEqual([422, '{"rejected":"LIMIT_EXCEEDED"}']);
    // Only the outermost layer records: the route's layer recording the throw as a 500 would free the key.
    expect(await settle(await payIn(app, 'mapped-throw'))).toEqual([422, '{"rejected":"LIMIT_EXCEEDED"}']);
    expect(processed).toBe(1);
  });
});

describe('Hono: headers, metadata and options', () => {
  it('XFAPI-01 adds the guard headers (x-fapi-interaction-id) to a Response the handler built, after a nonce challenge', async () => {
    const api = await startHonoApp({ issuer: as.issuer, audience: AUDIENCE, dpop: { nonce: {} } }, (app, fapi) => {
      app.get('/nonce', fapi.protect({ scopes: ['accounts'], dpopNonce: true }), () => new Response('ok'));
    });
    try {
      const INTERACTION = 'c2b5a7e0-3f51-4c57-9d0e-6a1b2c3d4e5f';
      const token = await as.mint({ scope: 'accounts', jkt: dpop.jkt });
      const call = async (nonce?: string) =>
        send(`${api.url}/nonce`, {
          headers: {
            authorization: `DPoP ${token}`,
            dpop: await dpop.proof({ htm: 'GET', htu: `${AUDIENCE}/nonce`, accessToken: token, ...(nonce ? { nonce } : {}) }),
            'x-fapi-interaction-id': INTERACTION,
          },
        });
      const challenged = await call();
      expect(challenged.status).toBe(401);
      const res = await call(challenged.headers['dpop-nonce'] as string);
      expect(res.status).toBe(200);
      expect(res.text).toBe('ok');
      expect(res.headers['x-fapi-interaction-id']).toBe(INTERACTION);
    } finally {
      await api.close();
    }
  });

  it('RFC 9728 serves the metadata document at its well-known path (GET and HEAD) and passes other requests on', async () => {
    const api = await startHonoApp({ issuer: as.issuer, audience: AUDIENCE, resourceMetadata: true }, (app, fapi) => {
      app.use(fapi.metadata());
      app.get('/other', (c) => c.text('other'));
    });
    try {
      const doc = await send(`${api.url}/.well-known/oauth-protected-resource`);
      expect(doc.status).toBe(200);
      expect(doc.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(doc.json).toMatchObject({ resource: AUDIENCE, authorization_servers: [as.issuer] });
      const head = await send(`${api.url}/.well-known/oauth-protected-resource`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.text).toBe('');
      expect((await send(`${api.url}/other`)).text).toBe('other');
    } finally {
      await api.close();
    }
  });

  it('15.1 an unknown adapter option, or a connection that is not a function, fails at start-up', () => {
    const options = { issuer: as.issuer, audience: AUDIENCE };
    expect(() => fapiGuard(options, { conection: () => ({}) } as never)).toThrow(
      'fapi-guard: unknown @fapi-guard/hono option "conection" (known: connection, errors, errorBody)',
    );
    expect(() => fapiGuard(options, { connection: {} } as never)).toThrow('option connection must be a function');
  });

  it('the typed context: handlers after protect() read c.get("auth") and c.var.auth', async () => {
    const app = new Hono<FapiEnv>();
    const fapi = fapiGuard({ issuer: as.issuer, audience: AUDIENCE });
    app.get('/me', fapi.protect({ scopes: ['accounts'], allowBearer: true }), (c) => c.json({ same: c.get('auth') === c.var.auth }));
    const res = await app.fetch(new Request(`${AUDIENCE}/me`, { headers: bearer(await as.mint({ scope: 'accounts' })) }));
    expect(await res.json()).toEqual({ same: true });
  });
});
