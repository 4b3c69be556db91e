/**
 * fapi-probe proven both ways: it passes the example API on Express, Koa and Fastify; it finds
 * the missing replay store of express-oauth2-jwt-bearer in DPoP mode; and against small resource
 * servers with one defect each, exactly the cases aimed at that defect fail.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { type ProbeReport, runProbe, toJUnit } from '@fapi-guard/probe';
import { createCertificate, DpopClient, MockIssuer, type TestCertificate } from '@fapi-guard/testing';
import express from 'express';
import { auth, requiredScopes } from 'express-oauth2-jwt-bearer';
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  EmbeddedJWK,
  exportJWK,
  generateKeyPair,
  type JWK,
  jwtVerify,
} from 'jose';
import * as oauth from 'oauth4webapi';
import { readConfig } from '../../../examples/payments-api/src/config';
import { startExample } from '../../../examples/payments-api/src/server';

const withStatus = (report: ProbeReport, status: ProbeReport['results'][number]['status']) =>
  report.results
    .filter((r) => r.status === status)
    .map((r) => r.id)
    .sort();
const failing = (report: ProbeReport) => withStatus(report, 'fail');
const advised = (report: ProbeReport) => withStatus(report, 'advice');
const notRun = (report: ProbeReport) => withStatus(report, 'not-run');
const notApplicable = (report: ProbeReport) => withStatus(report, 'not-applicable');

async function listen(server: Server, scheme = 'http'): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A port nobody listens on now: the example's public URL must be known before it starts. */
async function freePort(): Promise<number> {
  const server = createServer();
  const url = await listen(server);
  await new Promise((resolve) => server.close(resolve));
  return Number(new URL(url).port);
}

/** A DPoP key for the probe, and the issuer-signed fault tokens bound to it. */
async function probeKey(): Promise<{ jwk: JWK; jkt: string }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { jwk: { ...(await exportJWK(privateKey)), alg: 'ES256' }, jkt: await calculateJwkThumbprint(await exportJWK(publicKey)) };
}

async function faultTokens(mock: MockIssuer, jkt: string, scope: string, audience: string) {
  return {
    'wrong-typ': await mock.mint({ scope, jkt, audience, fault: 'wrong-typ' }),
    expired: await mock.mint({ scope, jkt, audience, fault: 'expired' }),
    'wrong-audience': await mock.mint({ scope, jkt, fault: 'wrong-audience' }),
    unbound: await mock.mint({ scope, audience }),
  };
}

const RATE = 50; // the tests' own servers; the default (10/s) is for real ones

describe.each(['express', 'koa', 'fastify'] as const)('fapi-probe against the example API on %s', (framework) => {
  it('every case passes on GET /accounts, including those with issuer-signed fault tokens', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const example = await startExample({ ...readConfig({ FAPI_FRAMEWORK: framework }), port, audience: url, publicUrl: url });
    try {
      const key = await probeKey();
      const report = await runProbe({
        resource: `${url}/accounts`,
        scope: 'accounts',
        insufficientScope: 'payments:read',
        authorizationServer: { issuer: example.issuer, clientId: 'probe' },
        dpopKey: key.jwk,
        faultTokens: await faultTokens(example.mock as MockIssuer, key.jkt, 'accounts', url),
        rate: RATE,
      });
      expect(failing(report)).toEqual([]);
      expect(advised(report)).toEqual([]);
      expect(notRun(report)).toEqual([]);
      // This route does not ask for nonces.
      expect(notApplicable(report)).toEqual(['dpop.nonce']);
      expect(report.exitCode).toBe(0);
    } finally {
      await example.close();
    }
  });

  it('every case passes on POST /payments, which requires a server nonce', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const example = await startExample({ ...readConfig({ FAPI_FRAMEWORK: framework }), port, audience: url, publicUrl: url });
    try {
      const report = await runProbe({
        resource: `${url}/payments`,
        method: 'POST',
        body: { contentType: 'application/json', value: '{"amount":{"amount":"1.00","currency":"EUR"},"creditorAccount":"GB00TEST"}' },
        scope: 'payments:write',
        authorizationServer: { issuer: example.issuer, clientId: 'probe' },
        rate: RATE,
      });
      expect(failing(report)).toEqual([]);
      expect(advised(report)).toEqual([]);
      expect(report.results.find((r) => r.id === 'dpop.nonce')?.status).toBe('pass');
    } finally {
      await example.close();
    }
  });
});

/**
 * Runs the probe on `${url}/accounts` with tokens the issuer binds to a new client certificate
 * (RFC 8705 §3): the probe's, one of another scope, one per fault token kind; a second
 * certificate for `mtls.other-certificate`.
 */
async function probeWithCertificate(mock: MockIssuer, url: string, serverCert: TestCertificate) {
  const certificate = await createCertificate();
  const bound = (options: Parameters<MockIssuer['mint']>[0]) => mock.mint({ x5t: certificate.x5t, audience: url, ...options });
  return runProbe({
    resource: `${url}/accounts`,
    accessToken: await bound({ scope: 'accounts' }),
    insufficientScopeToken: await bound({ scope: 'other' }),
    certificate,
    otherCertificate: await createCertificate(),
    jwksUri: mock.jwksUri,
    faultTokens: {
      'wrong-typ': await bound({ scope: 'accounts', fault: 'wrong-typ' }),
      expired: await bound({ scope: 'accounts', fault: 'expired' }),
      'wrong-audience': await bound({ scope: 'accounts', fault: 'wrong-audience', audience: undefined }),
      unbound: await mock.mint({ scope: 'accounts', audience: url }),
    },
    ca: serverCert.cert,
    rate: RATE,
  });
}

describe.each(['express', 'koa', 'fastify'] as const)('fapi-probe over mutual TLS against the example API on %s', (framework) => {
  it('MTLS-01 MTLS-04 every case passes with a certificate-bound token over its own TLS listener', async () => {
    const serverCert = await createCertificate({ subject: 'CN=127.0.0.1', hosts: ['127.0.0.1'] });
    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    const example = await startExample({
      ...readConfig({ FAPI_FRAMEWORK: framework }),
      port,
      audience: url,
      publicUrl: url,
      tls: { cert: serverCert.cert, key: serverCert.key },
    });
    try {
      const mock = example.mock as MockIssuer;
      const report = await probeWithCertificate(mock, url, serverCert);
      expect(report.binding).toBe('mtls');
      expect(failing(report)).toEqual([]);
      expect(advised(report)).toEqual([]);
      for (const id of ['mtls.no-certificate', 'mtls.other-certificate']) {
        expect(report.results.find((r) => r.id === id)?.status).toBe('pass');
      }
      expect(notRun(report)).toEqual([]);
    } finally {
      await example.close();
    }
  });
});

/** Runs the probe on `${url}/accounts` with every input a full DPoP run needs (fault tokens, a second scope). */
async function fullDpopRun(mock: MockIssuer, url: string): Promise<ProbeReport> {
  const key = await probeKey();
  return runProbe({
    resource: `${url}/accounts`,
    scope: 'accounts',
    insufficientScope: 'other',
    authorizationServer: { issuer: mock.issuer, clientId: 'probe' },
    dpopKey: key.jwk,
    faultTokens: await faultTokens(mock, key.jkt, 'accounts', url),
    rate: RATE,
  });
}

/** express-oauth2-jwt-bearer (Auth0) in DPoP-required mode, with `strict` as given. */
async function withAuth0<T>(strict: boolean, run: (mock: MockIssuer, url: string) => Promise<T>): Promise<T> {
  const server = createServer();
  const url = await listen(server);
  const mock = await MockIssuer.start({ audience: url });
  const app = express();
  app.use(auth({ issuerBaseURL: mock.issuer, audience: url, tokenSigningAlg: 'ES256', strict, dpop: { enabled: true, required: true } }));
  app.get('/accounts', requiredScopes('accounts'), (_req, res) => void res.json({ ok: true }));
  server.on('request', app);
  try {
    return await run(mock, url);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await mock.stop();
  }
}

/**
 * Measured, and not MUST failures: 400 without an error code for a malformed Authorization value
 * or a missing proof (RFC 6750 §3.1 / RFC 9449 §7.1 codes are SHOULDs), two identical Authorization
 * fields accepted (Node keeps one; RFC 6750 §3.1's 400 is a SHOULD), no jti replay store (RFC 9449
 * §11.1: servers "can" store jti), no x-fapi-interaction-id (FAPI 1.0, not FAPI 2.0).
 */
const AUTH0_ADVICE = [
  'credentials.duplicate-authorization',
  'credentials.malformed',
  'dpop.missing-proof',
  'dpop.replay',
  'interaction-id.echo',
];

describe('fapi-probe against express-oauth2-jwt-bearer in DPoP mode', () => {
  it('JWTAT-01 fails exactly its real MUST gap: with its defaults (strict: false) it accepts an access token whose typ is "JWT"', async () => {
    // RFC 9068 §4 #1: "The resource server MUST verify that the typ header value is at+jwt or
    // application/at+jwt and reject tokens carrying any other value." The library checks typ only
    // with `strict: true`.
    const report = await withAuth0(false, fullDpopRun);
    expect(failing(report)).toEqual(['token.wrong-typ']);
    expect(advised(report)).toEqual(AUTH0_ADVICE);
    expect(report.exitCode).toBe(1);
    // What came back includes the server's own error_description.
    const duplicate = report.results.find((r) => r.id === 'credentials.header-and-query');
    expect(duplicate?.exchanges[0]?.received).toBe('400 DPoP error=invalid_request "More than one method used for authentication"');
  });

  it('with strict: true it meets every MUST: exit 0, the rest is advice', async () => {
    const report = await withAuth0(true, fullDpopRun);
    expect(failing(report)).toEqual([]);
    expect(advised(report)).toEqual(AUTH0_ADVICE);
    expect(notRun(report)).toEqual([]);
    expect(report.exitCode).toBe(0);
  });
});

/**
 * A resource server we did not write the checks of: oauth4webapi's `validateJwtAccessToken`
 * (RFC 6750, RFC 9068, RFC 9449) on node:http, plus what that function leaves to its caller — a
 * jti replay store, the scope, refusing a token also sent in the query, and the RFC 6750 §3
 * answers. Headers reach it as a Fetch `Headers` built from the raw list, as Fetch-style adapters do.
 */
function oauth4webapiServer(issuer: () => oauth.AuthorizationServer, origin: () => string) {
  const seen = new Map<string, number>();
  const algs = ['ES256', 'PS256', 'EdDSA'];
  return async (req: IncomingMessage, res: ServerResponse) => {
    for await (const _ of req);
    const answer = (status: number, error?: string) => {
      res.statusCode = status;
      if (status >= 400) res.setHeader('www-authenticate', `DPoP algs="${algs.join(' ')}"${error ? `, error="${error}"` : ''}`);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(status < 300 ? { ok: true } : { message: 'refused' }));
    };
    const headers = new Headers();
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string);
    const url = new URL(req.url ?? '/', origin());
    if (!headers.has('authorization')) return answer(401);
    if (url.searchParams.has('access_token')) return answer(400, 'invalid_request');
    let claims: oauth.JWTAccessTokenClaims;
    try {
      claims = await oauth.validateJwtAccessToken(issuer(), new Request(url, { method: req.method, headers }), origin(), {
        requireDPoP: true,
        signingAlgorithms: algs,
        [oauth.allowInsecureRequests]: true,
      });
    } catch (e) {
      if (e instanceof oauth.OperationProcessingError && e.code === oauth.INVALID_REQUEST) return answer(400, 'invalid_request');
      return answer(401, /DPoP/.test((e as Error).message) ? 'invalid_dpop_proof' : 'invalid_token');
    }
    // RFC 9449 §11.1: remember each accepted proof's jti for the 300 s window validateJwtAccessToken allows.
    const jti = `${url.pathname} ${String(decodeJwt(headers.get('dpop') as string).jti)}`;
    const now = Date.now();
    for (const [k, until] of seen) if (until < now) seen.delete(k);
    if (seen.has(jti)) return answer(401, 'invalid_dpop_proof');
    seen.set(jti, now + 600_000);
    if (
      !String(claims.scope ?? '')
        .split(' ')
        .includes('accounts')
    )
      return answer(403, 'insufficient_scope');
    answer(200);
  };
}

describe('fapi-probe against a resource server built on oauth4webapi', () => {
  it('meets every MUST: the command line exits 0 with the arguments MockIssuer.probeArguments prints', async () => {
    let as: oauth.AuthorizationServer | undefined;
    const server = createServer();
    const url = await listen(server);
    server.on(
      'request',
      oauth4webapiServer(
        () => as as oauth.AuthorizationServer,
        () => url,
      ),
    );
    const mock = await MockIssuer.start({ audience: url });
    const issuer = new URL(mock.issuer);
    as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { [oauth.allowInsecureRequests]: true }));
    const dir = mkdtempSync(join(tmpdir(), 'fapi-probe-'));
    try {
      const args = await mock.probeArguments({
        resource: `${url}/accounts`,
        scope: 'accounts',
        client: await DpopClient.create(),
        dpopKeyFile: join(dir, 'dpop.jwk'),
      });
      const { code, stdout } = await cli([...args, '--strict', '--rate', '50', '--json', join(dir, 'report.json')]);
      const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as ProbeReport;
      expect(failing(report)).toEqual([]);
      expect(notRun(report)).toEqual([]);
      // Advice only: a ±300 s iat window (a proof two minutes ahead is accepted), no
      // x-fapi-interaction-id (FAPI 1.0), and 401 invalid_token where RFC 9449 §7.1 names
      // invalid_dpop_proof (a SHOULD): the errors validateJwtAccessToken throws do not tell its
      // caller a proof fault from a token fault, so this server names those by message only.
      expect(advised(report)).toEqual([
        'dpop.alg-hmac',
        'dpop.alg-none',
        'dpop.ath-missing',
        'dpop.duplicate-header',
        'dpop.iat-window',
        'dpop.jti-missing',
        'dpop.jwk-private',
        'dpop.signature',
        'dpop.typ',
        'interaction-id.echo',
      ]);
      expect(code).toBe(0);
      expect(stdout).toMatch(/RESULT: no MUST requirement failed \(exit 0\)/);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await mock.stop();
    }
  });
});

/** Runs the built command line; resolves with its exit code and output. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const bin = join(__dirname, '..', 'dist', 'cli.js');
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [bin, ...args], (_e, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }));
  });
}

/** The defects a small resource server below can have, one at a time. */
type Defect =
  | 'no-htu-check'
  | 'token-from-query'
  | 'no-ath-check'
  | 'ath-not-compared'
  | 'bearer-downgrade'
  | 'no-replay-store'
  | 'no-interaction-id'
  | 'no-proof-typ-check'
  | 'no-iat-check'
  | 'no-duplicate-check'
  | 'malformed-challenge'
  | 'error-in-body-only'
  | 'no-certificate-check';

/**
 * A minimal resource server written from RFC 9449 §4.3 / §7 (DPoP) or RFC 8705 §3 (certificate-bound
 * tokens over its own TLS listener) and RFC 6750 §3, independent of fapi-guard, with at most one
 * defect. Without one it passes every case.
 */
function defectiveServer(issuer: () => MockIssuer, origin: () => string, defect?: Defect, binding: 'dpop' | 'mtls' = 'dpop') {
  const used = new Set<string>();
  const algs = ['ES256', 'PS256', 'EdDSA'];
  const tokenScheme = binding === 'dpop' ? 'dpop' : 'bearer';
  return async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const id = req.headers['x-fapi-interaction-id'];
    if (defect !== 'no-interaction-id' && typeof id === 'string') res.setHeader('x-fapi-interaction-id', id);
    const answer = (status: number, error?: string, extra = '') => {
      res.statusCode = status;
      if (status === 401 || status === 403 || status === 400) {
        const first = binding === 'dpop' ? `DPoP algs="${algs.join(' ')}"` : 'Bearer realm="accounts"';
        // RFC 9110 §11.6.1: a value with spaces must be a quoted-string; this one is not.
        const description = error && defect === 'malformed-challenge' ? ', error_description=the request is refused' : '';
        const code = error && defect !== 'error-in-body-only' ? `, error="${error}"` : '';
        res.setHeader('www-authenticate', `${first}${code}${description}${extra}`);
      }
      res.setHeader('content-type', 'application/json');
      // The app's own error body: its "error" is not the OAuth error code, which lives in the challenge.
      const body = defect === 'error-in-body-only' ? { error } : { error: 'request_refused', status };
      res.end(JSON.stringify(status < 300 ? { ok: true } : body));
    };
    const url = new URL(req.url ?? '/', origin());
    const raw = (name: string) => req.rawHeaders.filter((_, i) => i % 2 === 0 && req.rawHeaders[i]?.toLowerCase() === name).length;
    const auths = req.rawHeaders.filter((_, i) => i % 2 === 1 && req.rawHeaders[i - 1]?.toLowerCase() === 'authorization');
    const queryToken = url.searchParams.get('access_token');
    const bodyToken = new URLSearchParams(Buffer.concat(chunks).toString('utf8')).get('access_token');
    if (raw('authorization') > 1 && defect !== 'no-duplicate-check') return answer(400, 'invalid_request');
    if (auths.length > 0 && (queryToken || bodyToken)) return answer(400, 'invalid_request');
    let scheme: string;
    let token: string;
    if (auths.length === 0) {
      if (defect !== 'token-from-query' || !queryToken) return answer(401);
      [scheme, token] = [tokenScheme, queryToken];
    } else {
      const m = /^(\S+) ([A-Za-z0-9\-._~+/]+=*)$/.exec(auths[0] as string);
      if (!m) return answer(400, 'invalid_request');
      [scheme, token] = [(m[1] as string).toLowerCase(), m[2] as string];
    }
    if (scheme !== tokenScheme && !(scheme === 'bearer' && defect === 'bearer-downgrade')) return answer(401, 'invalid_token');
    let claims: Record<string, unknown>;
    try {
      const mock = issuer();
      ({ payload: claims } = await jwtVerify(token, createLocalJWKSet(mock.jwks), {
        issuer: mock.issuer,
        audience: origin(),
        typ: 'at+jwt',
        algorithms: algs,
      }));
    } catch {
      return answer(401, 'invalid_token');
    }
    const cnf = claims.cnf as { jkt?: string; 'x5t#S256'?: string } | undefined;
    const jkt = cnf?.jkt;
    if (binding === 'mtls') {
      const x5t = cnf?.['x5t#S256'];
      if (!x5t) return answer(401, 'invalid_token');
      // RFC 8705 §3: the SHA-256 of the connection's client certificate must equal cnf.x5t#S256.
      const presented = (req.socket as TLSSocket).getPeerCertificate();
      const thumbprint = presented?.raw ? createHash('sha256').update(presented.raw).digest('base64url') : undefined;
      if (thumbprint !== x5t && defect !== 'no-certificate-check') return answer(401, 'invalid_token');
    } else if (!jkt) return answer(401, 'invalid_token');
    if (scheme === 'dpop') {
      if (raw('dpop') !== 1) return answer(401, 'invalid_dpop_proof');
      const proof = req.headers.dpop as string;
      try {
        const header = decodeProtectedHeader(proof);
        if (header.typ !== 'dpop+jwt' && defect !== 'no-proof-typ-check') throw new Error('typ');
        if (!header.jwk || 'd' in header.jwk) throw new Error('jwk');
        const { payload } = await jwtVerify(proof, EmbeddedJWK, { algorithms: algs });
        const now = Math.floor(Date.now() / 1000);
        if (payload.htm !== req.method) throw new Error('htm');
        if (payload.htu !== `${origin()}${url.pathname}` && defect !== 'no-htu-check') throw new Error('htu');
        if (typeof payload.iat !== 'number') throw new Error('iat');
        if ((payload.iat < now - 60 || payload.iat > now + 10) && defect !== 'no-iat-check') throw new Error('iat');
        if (typeof payload.jti !== 'string') throw new Error('jti');
        const ath = createHash('sha256').update(token).digest('base64url');
        if (defect !== 'no-ath-check' && (typeof payload.ath !== 'string' || (payload.ath !== ath && defect !== 'ath-not-compared'))) {
          throw new Error('ath');
        }
        if ((await calculateJwkThumbprint(header.jwk)) !== jkt) return answer(401, 'invalid_token');
        if (used.has(payload.jti) && defect !== 'no-replay-store') throw new Error('replay');
        used.add(payload.jti);
      } catch {
        return answer(401, 'invalid_dpop_proof');
      }
    }
    if (
      !String(claims.scope ?? '')
        .split(' ')
        .includes('accounts')
    )
      return answer(403, 'insufficient_scope', ', scope="accounts"');
    answer(200);
  };
}

/** Cases whose refusal should carry an error code in the challenge (RFC 6750 §3.1, RFC 9449 §7.1). */
const CODED = [
  'credentials.duplicate-authorization',
  'credentials.header-and-query',
  'credentials.malformed',
  'dpop.alg-hmac',
  'dpop.alg-none',
  'dpop.ath-missing',
  'dpop.ath-wrong',
  'dpop.duplicate-header',
  'dpop.htm',
  'dpop.htu',
  'dpop.iat-future',
  'dpop.iat-old',
  'dpop.jti-missing',
  'dpop.jwk-missing',
  'dpop.jwk-private',
  'dpop.missing-proof',
  'dpop.other-key',
  'dpop.signature',
  'dpop.typ',
  'token.alg-none',
  'token.expired',
  'token.hmac-confusion',
  'token.insufficient-scope',
  'token.tampered',
  'token.unbound',
  'token.untrusted-key',
  'token.wrong-audience',
  'token.wrong-typ',
];

/**
 * What each defect must make fail (MUST cases) and what it must draw as advice (SHOULD, MAY, our
 * stricter choices): the cases aimed at it, and no other.
 */
const DEFECTS: Array<[Defect | undefined, string[], string[]]> = [
  [undefined, [], []],
  ['no-htu-check', ['dpop.htu'], []],
  ['token-from-query', ['credentials.query'], []],
  ['no-ath-check', ['dpop.ath-missing', 'dpop.ath-wrong'], []],
  ['ath-not-compared', ['dpop.ath-wrong'], []],
  ['bearer-downgrade', ['dpop.downgrade-to-bearer'], []],
  // RFC 9449 §11.1: a jti store is what servers "can" do: advice.
  ['no-replay-store', [], ['dpop.replay']],
  // FAPI 1.0 Part 1 §6.2.1 #11, not a FAPI 2.0 requirement: advice.
  ['no-interaction-id', [], ['interaction-id.echo']],
  ['no-proof-typ-check', ['dpop.typ'], []],
  // A day off is outside any window (MUST); minutes off only outside a short one (advice).
  ['no-iat-check', ['dpop.iat-future', 'dpop.iat-old'], ['dpop.iat-window']],
  // RFC 6750 §3.1 answers a repeated Authorization with 400 as a SHOULD: advice.
  ['no-duplicate-check', [], ['credentials.duplicate-authorization']],
  // The syntax error is a MUST failure; a client that cannot parse the challenge cannot read its
  // error code, and every refusal's SHOULD shape is missed as well.
  ['malformed-challenge', ['errors.challenge-syntax'], CODED],
  // The error codes written only in a JSON body: nothing a client acts on (RFC 6750 §3) — advice.
  ['error-in-body-only', [], CODED],
];

describe('fapi-probe against resource servers with one known defect', () => {
  it.each(DEFECTS)('defect %s: exactly the cases aimed at it fail (MUST) or draw advice', async (defect, expected, advice) => {
    let mock: MockIssuer | undefined;
    const server = createServer();
    const url = await listen(server);
    server.on(
      'request',
      defectiveServer(
        () => mock as MockIssuer,
        () => url,
        defect,
      ),
    );
    mock = await MockIssuer.start({ audience: url });
    try {
      const key = await probeKey();
      const report = await runProbe({
        resource: `${url}/accounts`,
        scope: 'accounts',
        insufficientScope: 'other',
        authorizationServer: { issuer: mock.issuer, clientId: 'probe' },
        dpopKey: key.jwk,
        faultTokens: await faultTokens(mock, key.jkt, 'accounts', url),
        rate: RATE,
      });
      expect(failing(report)).toEqual([...expected].sort());
      expect(advised(report)).toEqual([...advice].sort());
      expect(notRun(report)).toEqual([]);
      // No metadata published, no nonces asked for: the cases that do not apply.
      expect(notApplicable(report)).toEqual(['dpop.nonce', 'metadata.bearer-methods', 'metadata.document']);
      expect(report.exitCode).toBe(expected.length > 0 ? 1 : 0);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await mock.stop();
    }
  });
});

/** What each defect of the certificate-bound server must make fail. */
const MTLS_DEFECTS: Array<[Defect | undefined, string[]]> = [
  [undefined, []],
  ['no-certificate-check', ['mtls.no-certificate', 'mtls.other-certificate']],
];

describe('fapi-probe against certificate-bound resource servers with one known defect', () => {
  it.each(MTLS_DEFECTS)('MTLS-01 MTLS-04 defect %s: exactly the cases aimed at it fail', async (defect, expected) => {
    let mock: MockIssuer | undefined;
    const serverCert = await createCertificate({ subject: 'CN=127.0.0.1', hosts: ['127.0.0.1'] });
    // RFC 8705 §3: the server asks for a client certificate and judges it itself (self-signed is fine).
    const server = createHttpsServer({ cert: serverCert.cert, key: serverCert.key, requestCert: true, rejectUnauthorized: false });
    const url = await listen(server, 'https');
    server.on(
      'request',
      defectiveServer(
        () => mock as MockIssuer,
        () => url,
        defect,
        'mtls',
      ),
    );
    mock = await MockIssuer.start({ audience: url });
    try {
      const report = await probeWithCertificate(mock, url, serverCert);
      expect(report.binding).toBe('mtls');
      expect(failing(report)).toEqual([...expected].sort());
      expect(advised(report)).toEqual([]);
      // No metadata published: the cases that do not apply.
      expect(notRun(report)).toEqual([]);
      expect(notApplicable(report)).toEqual(['metadata.bearer-methods', 'metadata.document']);
      expect(report.exitCode).toBe(expected.length > 0 ? 1 : 0);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await mock.stop();
    }
  });
});

describe('fapi-probe command line', () => {
  it('prints the table, writes JSON and JUnit, and exits 1 when a MUST fails', async () => {
    const server = createServer();
    const url = await listen(server);
    let mock: MockIssuer | undefined;
    server.on(
      'request',
      defectiveServer(
        () => mock as MockIssuer,
        () => url,
        'no-htu-check',
      ),
    );
    mock = await MockIssuer.start({ audience: url });
    const dir = mkdtempSync(join(tmpdir(), 'fapi-probe-'));
    const key = await probeKey();
    writeFileSync(join(dir, 'dpop.jwk'), JSON.stringify(key.jwk));
    try {
      const cli = join(__dirname, '..', 'dist', 'cli.js');
      const args = [cli, '--resource', `${url}/accounts`, '--scope', 'accounts', '--issuer', mock.issuer, '--client-id', 'probe'];
      args.push(
        '--dpop-key',
        join(dir, 'dpop.jwk'),
        '--rate',
        '50',
        '--json',
        join(dir, 'report.json'),
        '--junit',
        join(dir, 'report.xml'),
      );
      const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
        const child = execFile(process.execPath, args, (_e, out) => resolve({ code: child.exitCode, stdout: out }));
      });
      expect(code).toBe(1);
      expect(stdout).toMatch(/dpop\.htu\s+MUST\s+RFC 9449 §4\.3 #9\s+FAIL/);
      expect(stdout).toMatch(/requests sent/);
      const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as ProbeReport;
      expect(failing(report)).toEqual(['dpop.htu']);
      const junit = readFileSync(join(dir, 'report.xml'), 'utf8');
      expect(junit).toBe(toJUnit(report));
      expect(junit.match(/<failure /g)).toHaveLength(1);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await mock.stop();
    }
  });
});

describe('fapi-probe output, read by someone who has never seen the probe', () => {
  it('DPOP-17 a server that accepts the DPoP-bound token as Bearer: the output says what was sent, what came back, what to change and why', async () => {
    const server = createServer();
    const url = await listen(server);
    let mock: MockIssuer | undefined;
    server.on(
      'request',
      defectiveServer(
        () => mock as MockIssuer,
        () => url,
        'bearer-downgrade',
      ),
    );
    mock = await MockIssuer.start({ audience: url });
    const dir = mkdtempSync(join(tmpdir(), 'fapi-probe-'));
    try {
      const args = await mock.probeArguments({
        resource: `${url}/accounts`,
        scope: 'accounts',
        client: await DpopClient.create(),
        dpopKeyFile: join(dir, 'dpop.jwk'),
      });
      const { code, stdout } = await cli([...args, '--rate', '50']);
      expect(code).toBe(1);
      const block = stdout.slice(stdout.indexOf('FAIL dpop.downgrade-to-bearer'));
      const lines = block.split('\n').slice(0, 9);
      expect(lines.shift()).toBe('FAIL dpop.downgrade-to-bearer [MUST, RFC 9449 §7.2]');
      expect(lines.shift()).toBe('  test:     the DPoP-bound token with the Bearer scheme, without and then with a valid proof');
      expect(lines[0]).toMatch(/^ {2}sent: {5}GET http:\/\/127\.0\.0\.1:\d+\/accounts; Authorization: Bearer eyJ\S+…\(\d+ chars\)$/);
      expect(lines[1]).toBe('  got:      200');
      expect(lines[2]).toMatch(/^ {2}sent: {5}\(2\) GET .*; Authorization: Bearer eyJ.*; DPoP: eyJ/);
      expect(lines[3]).toBe('  got:      (2) 200');
      expect(lines[4]).toBe('  expected: a 4xx, never 2xx');
      expect(lines[5]).toBe(
        '  change:   when a token has cnf.jkt, refuse it under the Bearer scheme (require the DPoP scheme and a proof)',
      );
      expect(lines[6]).toContain('MUST reject a DPoP-bound access token received as a bearer token');
      expect(stdout).toContain('Failures (MUST): these fail the run:');
      expect(stdout).toContain('RESULT: a MUST requirement failed (exit 1)');
      writeFileSync(join(tmpdir(), 'fapi-probe-stranger.txt'), stdout);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await mock.stop();
    }
  });
});
