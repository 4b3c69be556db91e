/**
 * Attack review 16: the authorization path of packages/core/src (credentials, access tokens,
 * DPoP and mTLS binding, URL reconstruction, policy, error responses). Each test under
 * "findings" asserts what the specifications and docs/packages/core.md require and fails on the
 * code it was written against; "attacks that held" pass.
 *
 * 1. Stall (super-linear parsing of a header the client chooses) —
 *    packages/core/src/regimes/fapi-headers.ts `trimOws` (`value.replace(/^[ \t]+|[ \t]+$/g, '')`),
 *    called by readFapiCustomerHeaders for `x-fapi-auth-date` and `x-fapi-customer-ip-address`
 *    *before* their length bounds (HTTP_DATE_MAX_LENGTH, MAX_ADDRESS_LENGTH), from
 *    authenticate.ts serveUnder on every request whose token verified — under every profile, the
 *    fapi2 default included, which then throws the result away (validatesCustomerHeaders false).
 *    The `[ \t]+$` branch is tried at every position of a run of blanks and backtracks over the
 *    rest of it: a value `1<n blanks>1` costs O(n²). Set-up: any valid access token (binding is
 *    checked after serveUnder, so a stolen DPoP-bound token without its key will do) and one
 *    such header: 16 KiB (Node's HTTP/1 header limit) blocks the event loop ~100 ms per request,
 *    60 000 characters (under HTTP/2's default 64 KiB header list) well over a second — every
 *    other request of the process waits. Fix: trim without a regex (scan from both ends for
 *    SP/HTAB), or check the length bound on the raw line before trimming.
 *
 * 2. Token leak and issuer mix-up — packages/core/src/authenticate.ts verifyToken: with
 *    `introspectJwts: true`, every JWT that verified locally is introspected
 *    (`introspector.introspect(token, …)`), whichever trusted issuer signed it; the introspector
 *    is bound to one issuer (`introspection.issuer`, "The issuer whose tokens are introspected",
 *    tokens/introspection.ts; docs/packages/core.md: "`introspectJwts` … also introspect locally
 *    valid JWTs"). Set-up: `issuers: [A, B]`, `introspection: { issuer: A, … }`,
 *    `introspectJwts: true` (A's tokens must be revocable). Every access token of B — a live
 *    bearer credential for this API — is POSTed to A's introspection endpoint (RFC 7662 §1: a
 *    resource asks the authorization server that issued the token; RFC 9700 §4.9: an RS must not
 *    pass access tokens on; RFC 8725 §3.8: one issuer never answers for another's tokens), and
 *    A, which knows nothing of it, answers `active: false`:
 *    every request with a valid token of B is refused 401 (token_inactive). Fix: in verifyToken,
 *    introspect a locally verified JWT only when `result.token.claims.iss === introspector.issuer`
 *    (or refuse `introspectJwts` with several issuers at start-up unless each has its own
 *    introspection).
 *
 * Looked at and held (below): the Authorization line's regex is linear (60 000 blanks: ms); a
 * spent DPoP proof whose ECDSA signature is malleated (s → n − s) is still a replay (the key is
 * htu + jti); a spent proof with another query string is a replay; with two public origins a
 * proof for one is refused at the other; introspection against an issuer whose discovery never
 * answers is a 503 with Retry-After within the timeouts; without introspectJwts a token of B is
 * never introspected at A; an introspection answer of A naming issuer B is refused; a JWT that
 * names B but is signed with A's key is refused. Read, not tested (held): the DPoP proof checks
 * on hostile JWKs (short, non-string, Ed448, over-long or zero-padded RSA members, `__proto__`
 * kty, string key_ops — all `dpop_proof_invalid`/`binding_mismatch`, never `internal`); the
 * exchange deadline is not cleared before the body ends (a JWKS that drips is cut at timeoutMs);
 * @hono/node-server refuses a Host that would move the routed path; the caches keyed by
 * client-chosen values are all bounded (DPoP headers/keys 10 000, URLs 1 000, addresses 1 024).
 */
import { createServer, type Server } from 'node:http';
import { connect, createServer as createH2cServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createGuard, type Guard, type GuardError, type GuardRequest } from '@fapi-guard/core';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import Koa from 'koa';
import { startExpressApp } from './support/express-app';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
let as: MockIssuer;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
});
afterAll(() => as.stop());

function guardOf(options: Partial<Parameters<typeof createGuard>[0]> = {}): Guard {
  return createGuard({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false, ...options });
}

function request(token: string, headers: Record<string, string[]> = {}, path = '/accounts'): GuardRequest {
  return { method: 'GET', url: `${AUDIENCE}${path}`, headers: { authorization: [`Bearer ${token}`], ...headers } };
}

describe('findings', () => {
  it.each(['x-fapi-customer-ip-address', 'x-fapi-auth-date'])(
    '1. a %s of 60 000 characters (blanks between two characters) costs the guard linear time, not a stalled event loop',
    async (header) => {
      const guard = guardOf();
      const token = await as.mint({ scope: 'accounts' });
      // Warm: the token's verification is cached, so the timing below is the header alone.
      expect((await guard.check(request(token), { scopes: ['accounts'], allowBearer: true })).ok).toBe(true);
      const value = `1${' '.repeat(60_000)}1`;
      const started = performance.now();
      const result = await guard.check(request(token, { [header]: [value] }), { scopes: ['accounts'], allowBearer: true });
      const elapsed = performance.now() - started;
      // fapi2 does not validate the header: the request passes; the point is what it cost.
      expect(result.ok).toBe(true);
      // A linear trim of 60 kB takes well under a millisecond; the regex took seconds (1.4–4 s here).
      expect(elapsed).toBeLessThan(1000);
    },
  );

  it('1. over HTTP/2 (Koa, h2c, Node defaults): one request with such a header is answered at once, not after seconds', async () => {
    const fapi = koaGuard({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false });
    const app = new Koa();
    app.use(fapi.protect({ scopes: ['accounts'], allowBearer: true }));
    app.use((ctx) => {
      ctx.body = { ok: true };
    });
    const server = createH2cServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const session = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const get = (headers: Record<string, string>) =>
      new Promise<{ status: number; ms: number }>((resolve, reject) => {
        const started = performance.now();
        const stream = session.request({ ':method': 'GET', ':path': '/accounts', ...headers });
        let status = 0;
        stream.on('response', (h) => {
          status = Number(h[':status']);
        });
        stream.on('error', reject);
        stream.resume();
        stream.on('end', () => resolve({ status, ms: performance.now() - started }));
      });
    try {
      const token = await as.mint({ scope: 'accounts' });
      expect((await get({ authorization: `Bearer ${token}` })).status).toBe(200);
      // 60 000 characters: within HTTP/2's default header list of 64 KiB.
      const slow = await get({ authorization: `Bearer ${token}`, 'x-fapi-customer-ip-address': `1${' '.repeat(60_000)}1` });
      expect(slow.status).toBe(200);
      expect(slow.ms).toBeLessThan(1000);
    } finally {
      session.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

/** The order n of P-256: an ECDSA signature (r, s) verifies as (r, n − s) too. */
const P256_ORDER = BigInt('0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551');

/** The same ES256 JWS with its signature's s replaced by n − s (another valid signature). */
function malleated(jws: string): string {
  const dot = jws.lastIndexOf('.');
  const signature = Buffer.from(jws.slice(dot + 1), 'base64url');
  const s = BigInt(`0x${signature.subarray(32).toString('hex')}`);
  const other = Buffer.from((P256_ORDER - s).toString(16).padStart(64, '0'), 'hex');
  return `${jws.slice(0, dot + 1)}${Buffer.concat([signature.subarray(0, 32), other]).toString('base64url')}`;
}

function dpopRequest(token: string, proof: string, url = `${AUDIENCE}/accounts`): GuardRequest {
  return { method: 'GET', url, headers: { authorization: [`DPoP ${token}`], dpop: [proof] } };
}

describe('findings: introspectJwts with several issuers', () => {
  let b: MockIssuer;
  beforeAll(async () => {
    b = await MockIssuer.start({ audience: AUDIENCE });
    as.introspectionClients.set('rs-client', 'rs-secret');
  });
  afterAll(() => b.stop());

  it("2. a valid JWT of issuer B is never sent to issuer A's introspection endpoint, and is accepted", async () => {
    const api = await startExpressApp({
      issuers: [as.issuer, b.issuer],
      audience: AUDIENCE,
      publicUrl: AUDIENCE,
      logger: false,
      introspection: {
        issuer: as.issuer,
        clientId: 'rs-client',
        clientAuth: { method: 'client_secret_basic', clientSecret: 'rs-secret' },
        cache: false,
      },
      introspectJwts: true,
    });
    try {
      // Control: A's own token is introspected at A (revocation check) and accepted.
      const fromA = await as.mint({ scope: 'accounts' });
      expect((await send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${fromA}` } })).status).toBe(200);
      const before = as.requests.introspect;
      const fromB = await b.mint({ scope: 'accounts' });
      const res = await send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${fromB}` } });
      // A never sees B's token.
      expect(as.requests.introspect - before).toBe(0);
      expect(as.lastIntrospection?.form.token).not.toBe(fromB);
      expect(res.status).toBe(200);
    } finally {
      await api.close();
    }
  });
});

describe('attacks that held: several issuers and introspection', () => {
  let b: MockIssuer;
  beforeAll(async () => {
    b = await MockIssuer.start({ audience: AUDIENCE });
    as.introspectionClients.set('rs-client', 'rs-secret');
  });
  afterAll(() => b.stop());
  afterEach(() => {
    as.introspection = {};
  });

  const options = (extra: Record<string, unknown> = {}) => ({
    issuers: [as.issuer, b.issuer],
    audience: AUDIENCE,
    publicUrl: AUDIENCE,
    logger: false as const,
    introspection: {
      issuer: as.issuer,
      clientId: 'rs-client',
      clientAuth: { method: 'client_secret_basic' as const, clientSecret: 'rs-secret' },
      cache: false as const,
    },
    ...extra,
  });

  it("without introspectJwts, B's JWT is verified with B's keys only and never introspected at A", async () => {
    const guard = createGuard(options());
    const before = as.requests.introspect;
    const result = await guard.check(request(await b.mint({ scope: 'accounts' })), { scopes: ['accounts'], allowBearer: true });
    expect(result.ok).toBe(true);
    expect(as.requests.introspect).toBe(before);
  });

  it("an opaque token whose introspection answer at A names issuer B is refused (RFC 9068 §4, no answer for another issuer's token)", async () => {
    const guard = createGuard(options());
    const opaque = await as.mintOpaque({ scope: 'accounts' });
    as.introspection = { transform: (answer) => ({ ...answer, iss: b.issuer }) };
    const result = (await guard.check(request(opaque), { scopes: ['accounts'], allowBearer: true })) as GuardError;
    expect(result).toMatchObject({ ok: false, reason: 'token_issuer', status: 401, error: 'invalid_token' });
  });

  it("a JWT that claims B as issuer but is signed with A's key is refused, though A's introspection would call it active", async () => {
    const guard = createGuard(options({ introspectJwts: true }));
    // A's token with iss rewritten to B, signed by A: B does not publish A's key.
    const token = await as.mint({ scope: 'accounts', claims: { iss: b.issuer } });
    const result = (await guard.check(request(token), { scopes: ['accounts'], allowBearer: true })) as GuardError;
    expect(result).toMatchObject({ ok: false, status: 401, error: 'invalid_token' });
    expect(['token_key_unknown', 'token_signature']).toContain(result.reason);
  });
});

describe('attacks that held', () => {
  it('an Authorization line of 60 000 blanks before a stray character is refused in linear time (credentials.ts CREDENTIALS)', async () => {
    const guard = guardOf();
    for (const line of [`Bearer${' '.repeat(60_000)}!`, `Bearer a${'='.repeat(60_000)}!`, `Bearer ${'a '.repeat(30_000)}!`]) {
      const started = performance.now();
      const result = (await guard.check({ method: 'GET', url: `${AUDIENCE}/accounts`, headers: { authorization: [line] } })) as GuardError;
      expect(performance.now() - started).toBeLessThan(150);
      expect(result).toMatchObject({ ok: false, reason: 'credentials_malformed', status: 400 });
    }
  });

  it('RFC 9449 §11.1: a spent proof with its ECDSA signature malleated (s → n − s) is still a replay', async () => {
    const guard = guardOf();
    const client = await DpopClient.create('ES256');
    const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
    const proof = await client.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: token });
    expect((await guard.check(dpopRequest(token, proof), { scopes: ['accounts'] })).ok).toBe(true);
    const again = (await guard.check(dpopRequest(token, malleated(proof)), { scopes: ['accounts'] })) as GuardError;
    // The replay key is htu + jti, not the signature bytes: the other valid signature is no new proof.
    expect(again).toMatchObject({ ok: false, reason: 'dpop_proof_replayed', status: 401 });
  });

  it('RFC 9449 §11.1: a spent proof sent again with another query string is a replay (htu has no query)', async () => {
    const guard = guardOf();
    const client = await DpopClient.create('ES256');
    const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
    const proof = await client.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: token });
    expect((await guard.check(dpopRequest(token, proof, `${AUDIENCE}/accounts?page=1`), { scopes: ['accounts'] })).ok).toBe(true);
    const again = (await guard.check(dpopRequest(token, proof, `${AUDIENCE}/accounts?page=2`), { scopes: ['accounts'] })) as GuardError;
    expect(again).toMatchObject({ ok: false, reason: 'dpop_proof_replayed' });
  });

  it('RFC 9449 §4.3 step 9: with two public origins, a proof for one is refused at the other (the URL the adapters build)', async () => {
    const guard = guardOf({ publicUrl: [AUDIENCE, 'https://rs2.example.com'] });
    const client = await DpopClient.create('ES256');
    const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
    const proof = await client.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: token });
    const url = guard.requestUrl({
      encrypted: true,
      remoteAddress: '127.0.0.1',
      path: '/accounts',
      headers: { host: ['rs2.example.com'] },
    });
    expect(url).toEqual({ ok: true, url: 'https://rs2.example.com/accounts' });
    const result = (await guard.check(dpopRequest(token, proof, (url as { url: string }).url), { scopes: ['accounts'] })) as GuardError;
    expect(result).toMatchObject({ ok: false, reason: 'dpop_proof_invalid' });
  });

  it('introspection against an issuer whose discovery never answers fails closed: 503 with Retry-After, within the timeouts', async () => {
    const sockets = new Set<import('node:net').Socket>();
    const hanging: Server = createServer(() => undefined);
    hanging.on('connection', (socket) => sockets.add(socket));
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', () => resolve()));
    const issuer = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}`;
    try {
      const guard = createGuard({
        issuer,
        audience: AUDIENCE,
        publicUrl: AUDIENCE,
        logger: false,
        tokenFormat: 'opaque',
        keys: { timeoutMs: 300 },
        introspection: { clientId: 'rs', clientAuth: { method: 'client_secret_basic', clientSecret: 'secret' }, timeoutMs: 300 },
      });
      const started = performance.now();
      const result = (await guard.check(request('an-opaque-token'), { scopes: ['accounts'], allowBearer: true })) as GuardError;
      // Two discovery locations at keys.timeoutMs each: the request is answered, not held.
      expect(performance.now() - started).toBeLessThan(3000);
      expect(result).toMatchObject({ ok: false, status: 503, reason: 'issuer_unavailable' });
      expect(result.headers['retry-after']).toMatch(/^[1-9]\d*$/);
      expect(result.headers['www-authenticate']).toBeUndefined();
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => hanging.close(resolve));
    }
  });
});
