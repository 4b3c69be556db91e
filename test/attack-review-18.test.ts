/**
 * Attack review 18: the DPoP `htu` comparison (packages/core/src/binding/dpop.ts isUriForm,
 * normalizeUrl, normalizeHtu, DpopVerifier.normalized; the request URL of
 * packages/core/src/request.ts OriginResolver) and the RFC 9728 link in challenges
 * (packages/core/src/settle.ts metadataFor). Each test under "findings" asserts what the
 * specifications and docs/packages/core.md require and fails on the code it was written against;
 * "attacks that held" pass.
 *
 * 1. Resource amplification (memory, event-loop time) on request URLs — dpop.ts
 *    DpopVerifier.verify → `this.normalized(request.url)` → normalizeUrl. Every request URL is
 *    normalised and memoised (the `urls` Map, cleared only at 1 000 entries) *before* the
 *    `pathAsSent` check refuses it; the bound is a count, not a size. Over HTTP/2 Node accepts a
 *    `:path` of ~60 000 bytes ≥ 0x80 (HTTP/1.1 refuses them with 400): the WHATWG parser
 *    percent-encodes each as UTF-8 (`é` → `%C3%A9`, six characters per byte), then the
 *    `%XX` replace runs its callback twice per byte (~50 ms of event-loop time for one such
 *    request here; the test's 60 requests take ~7 s), and the memo keeps the 60 kB key and the
 *    360 kB normalised string: ~0.5–0.8 MB retained per request (0.78 MB measured), up to
 *    ~0.5–0.8 GB for the 1 000 entries, from ~60 MB sent. The request
 *    is refused anyway (a path the parser changes is never in normal form). Set-up: an HTTP/2
 *    server (Koa, Fastify `http2: true`, Hono node-server, Nest on Fastify), a route that takes
 *    any path segment (`/accounts/:id`, or an app-wide `protect()`), and any access token that
 *    verifies, presented with the DPoP scheme (the proof's key and signature are checked after
 *    `htu`: a stolen DPoP-bound token without its key, or an unbound token, will do). Over
 *    HTTP/1.1 the characters the parser encodes are `"`, `<`, `>`, `` ` ``, `{`, `}` (×3): ~4 ms
 *    and ~56 kB per 14 kB request. Not super-linear, but an amplification of ~10× in memory and
 *    ~1 µs of CPU per byte with a retention that can end in an out-of-memory abort on a small
 *    heap. Fix: before normalising a request URL, refuse a path holding any character outside
 *    RFC 3986 §2 (`/[^A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]/` — the parser would encode it, so
 *    `pathAsSent` is false anyway); memoise `htu` values only (bounded by the proof size), or
 *    bound the memo by total characters.
 *
 * 2. `htu` values that are not RFC 3986 URIs still match — dpop.ts isUriForm (URI_START,
 *    NOT_IN_URI). URI_START `^https?:\/\/[^/?#@\\]*(?:[/?#]|$)` lets the authority be empty, and
 *    NOT_IN_URI only looks at ASCII controls, space and `\`. So `https:///rs.example.com/accounts`
 *    (RFC 3986: an empty host and the path `/rs.example.com/accounts`; RFC 9110 §4.2.2 and §4.2.1:
 *    a recipient MUST reject an http(s) URI with an empty host as invalid) is read by the WHATWG
 *    parser as `https://rs.example.com/accounts` and accepted, as is `https:////rs…`; and an IRI
 *    host such as `https://ｒｓ.example.com/accounts` (fullwidth letters, mapped by UTS #46) or a
 *    raw non-ASCII path is accepted. docs/packages/core.md promises "an `htu` must be written
 *    `http(s)://authority…` as RFC 3986 §3 has it — no … `https:host` … the WHATWG parser would
 *    repair". A deviation: no proof is accepted for another target than the one the parser
 *    reads (no client addresses a URL with an empty host, and the IDNA mapping is the one the
 *    client's own resolver applies), so no security effect was found. Fix: a non-empty authority
 *    (`[^/?#@\\]+`) and only RFC 3986 characters (`/^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]*$/`).
 *
 * Notes (no failing test):
 * - settle.ts metadataFor compares the request URL as built (`origin` + the path as sent) with
 *   `resource` as configured, string for string. With the usual origin audience
 *   (`audience: 'https://api.bank.example'`, the README's example) no request URL can equal it
 *   (every one has a path, at least `/`), so no challenge ever names the document, though a
 *   request for `/` is a request for that URI (RFC 3986 §6.2.3); nor does `/%61ccounts` for a
 *   resource `…/accounts`. Naming it is a MAY (RFC 9728 §5.1): under-naming, no security effect.
 * - The `htu-origin` configuration hint (settle.ts notify) is raised by any holder of a valid
 *   token: a proof naming the request's path at an attacker's origin logs "DPoP proofs name this
 *   path at another origin … set publicUrl" with that origin (escaped, rate-limited once per
 *   10 min). It could steer an operator toward a wrong `publicUrl`; nothing else follows from it.
 * - Equivalent forms RFC 3986 §6.2.2.2 lets the comparison merge but a router may not:
 *   `/%61ccounts` (an unreserved character percent-encoded) passes `pathAsSent` and normalises to
 *   `/accounts`, so a proof for `/accounts` is accepted at `/%61ccounts`, which Express and Koa
 *   route differently (to `/:id`, or nowhere). RFC 9449 §4.3 asks for this normalisation; the
 *   replay key is the normalised URL, so it costs a proof that was never used at all. Noted only.
 * - The well-known document is served at its path whatever the `Host` (or an unknown one): it is
 *   built from the configuration alone, so nothing of the request reaches it (held, below).
 *
 * Held (below): a proof for /a at /b; a request path with `%2e%2e` segments, `\` or `#`; htu with
 * userinfo, `https:host`, another scheme, another port, a trailing-dot host, `%2F` for `/`,
 * another case of the path, a tab; a client `Host` with one origin (never read) and with two
 * (only selects among them); `X-Forwarded-Host` from an untrusted peer; the equivalences RFC 3986
 * §6.2.2/§6.2.3 asks for (host case, default and empty port, `%7e`); `resource_metadata` only on
 * the resource's own URL at its own origin, always the configured URL; the well-known document's
 * `resource` is the configured one whatever the `Host`; isUriForm and normalizeHtu in linear time
 * on a 1 MB value.
 */
import { connect, createServer as createH2cServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createGuard, type Guard, type GuardError, type GuardRequest, normalizeHtu } from '@fapi-guard/core';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import Koa from 'koa';
import { startExpressApp } from './support/express-app';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
let as: MockIssuer;
let client: DpopClient;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  client = await DpopClient.create('ES256');
});
afterAll(() => as.stop());

function guardOf(options: Partial<Parameters<typeof createGuard>[0]> = {}): Guard {
  return createGuard({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false, ...options });
}

function dpopRequest(token: string, proof: string, url = `${AUDIENCE}/accounts`, method = 'GET'): GuardRequest {
  return { method, url, headers: { authorization: [`DPoP ${token}`], dpop: [proof] } };
}

/** The guard's verdict on a fresh proof with `htu` for a GET of `url`. */
async function verdict(guard: Guard, htu: string, url = `${AUDIENCE}/accounts`): Promise<{ ok: boolean; reason?: string }> {
  const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
  const proof = await client.proof({ htm: 'GET', htu, accessToken: token });
  const result = await guard.check(dpopRequest(token, proof, url), { scopes: ['accounts'] });
  return result.ok ? { ok: true } : { ok: false, reason: (result as GuardError).reason };
}

/** A forced full collection, for heap measurements (the flag is set at run time, as --expose-gc would). */
function collect(): void {
  setFlagsFromString('--expose_gc');
  (runInNewContext('gc') as () => void)();
}

describe('findings', () => {
  it('1. over HTTP/2, refused requests with 60 kB paths of bytes ≥ 0x80 leave no ~0.5 MB each in the htu memo', async () => {
    const fapi = koaGuard({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false });
    const app = new Koa();
    app.use(fapi.protect({ scopes: ['accounts'] }));
    app.use((ctx) => {
      ctx.body = { ok: true };
    });
    const server: Http2Server = createH2cServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const session = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const get = (path: string, headers: Record<string, string>) =>
      new Promise<{ status: number; challenge: string }>((resolve, reject) => {
        const stream = session.request({ ':method': 'GET', ':path': path, ...headers });
        let status = 0;
        let challenge = '';
        stream.on('response', (h) => {
          status = Number(h[':status']);
          challenge = String(h['www-authenticate'] ?? '');
        });
        stream.on('error', reject);
        stream.resume();
        stream.on('end', () => resolve({ status, challenge }));
      });
    try {
      // A stolen DPoP-bound token and a proof of the attacker's own key: the key is compared after htu.
      const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
      const attacker = await DpopClient.create('ES256');
      const proof = await attacker.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: token });
      const headers = { authorization: `DPoP ${token}`, dpop: proof };
      // Warm every cache but the URL memo (token, proof header, key import).
      for (let i = 0; i < 3; i++) expect((await get('/accounts', headers)).status).toBe(401);
      // Node's HTTP/2 client writes a header string as latin1: each `é` is one byte 0xE9 on the wire.
      const body = 'é'.repeat(60_000);
      collect();
      const before = process.memoryUsage().heapUsed;
      const started = performance.now();
      const count = 60;
      for (let i = 0; i < count && performance.now() - started < 45_000; i++) {
        const res = await get(`/accounts/${i}${body}`, headers);
        // Refused: the path is not in normal form (the parser percent-encodes it).
        expect(res.status).toBe(401);
        expect(res.challenge).toContain('invalid_dpop_proof');
      }
      collect();
      const retainedMb = (process.memoryUsage().heapUsed - before) / 1e6;
      // 60 requests of 60 kB: 3.6 MB sent. Keeping nothing of a refused URL retains ~0; the memo keeps ~30–50 MB.
      expect(retainedMb).toBeLessThan(12);
    } finally {
      session.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 90_000);

  it.each([
    ['an empty authority, the host in the path (RFC 9110 §4.2.2)', 'https:///rs.example.com/accounts'],
    ['two extra slashes', 'https:////rs.example.com/accounts'],
    ['a fullwidth (non-ASCII) host, an IRI', 'https://ｒｓ.example.com/accounts'],
  ])('2. an htu with %s is not an RFC 3986 http(s) URI and matches nothing', async (_what, htu) => {
    expect(normalizeHtu(htu)).toBeUndefined();
    expect(await verdict(guardOf(), htu)).toEqual({ ok: false, reason: 'dpop_proof_invalid' });
  });
});

describe('attacks that held', () => {
  it('RFC 9449 §4.3 step 9: htu forms that name another target, or are no URI, are refused', async () => {
    const guard = guardOf();
    const refused = [
      `${AUDIENCE}/accounts/other`,
      `${AUDIENCE}/b/../accounts/x`,
      `${AUDIENCE}/ACCOUNTS`,
      `${AUDIENCE}/accounts/`,
      `${AUDIENCE}%2Faccounts`,
      'https://rs.example.com./accounts',
      'https://user@rs.example.com/accounts',
      'https://rs.example.com@evil.example/accounts',
      'https://rs.example.com%2F@evil.example/accounts',
      'https:rs.example.com/accounts',
      'https:\\\\rs.example.com\\accounts',
      'https://rs.example.com/acc\tounts',
      'http://rs.example.com/accounts',
      'https://rs.example.com:80/accounts',
      'https://rs.example.com:443:443/accounts',
      'https://evil.example/accounts',
      'wss://rs.example.com/accounts',
      `${AUDIENCE}/accounts`.repeat(2),
    ];
    for (const htu of refused) expect([htu, await verdict(guard, htu)]).toEqual([htu, { ok: false, reason: 'dpop_proof_invalid' }]);
  });

  it('RFC 3986 §6.2.2/§6.2.3: host case, default and empty port, percent-encoded unreserved characters match', async () => {
    const guard = guardOf();
    const equivalent = [
      'HTTPS://RS.Example.COM/accounts',
      'https://rs.example.com:443/accounts',
      'https://rs.example.com:/accounts',
      'https://rs.example.com/%61ccounts',
      'https://rs.example.com/accounts?page=2#top',
      'https://rs.example.com/x/%2e%2e/accounts',
    ];
    for (const htu of equivalent) expect([htu, await verdict(guard, htu)]).toEqual([htu, { ok: true }]);
    // The other side: ~ and %7E, %2f and %2F are one URI; %2F and / are not.
    expect(await verdict(guard, `${AUDIENCE}/a%7eb`, `${AUDIENCE}/a~b`)).toEqual({ ok: true });
    expect(await verdict(guard, `${AUDIENCE}/a%2fb`, `${AUDIENCE}/a%2Fb`)).toEqual({ ok: true });
    expect(await verdict(guard, `${AUDIENCE}/a/b`, `${AUDIENCE}/a%2Fb`)).toEqual({ ok: false, reason: 'dpop_proof_invalid' });
  });

  it('a request path the parser changes (%2e%2e, \\, #, an encoded character) matches no htu, even its normalised one', async () => {
    const guard = guardOf();
    for (const [path, normal] of [
      ['/statements/%2e%2e/accounts', '/accounts'],
      ['/statements/.%2E/accounts', '/accounts'],
      ['/statements\\..\\accounts', '/accounts'],
      ['/accounts#x', '/accounts'],
      ['/acc"ounts', '/acc%22ounts'],
    ] as const) {
      expect([path, await verdict(guard, `${AUDIENCE}${normal}`, `${AUDIENCE}${path}`)]).toEqual([
        path,
        { ok: false, reason: 'dpop_proof_invalid' },
      ]);
    }
  });

  it('over HTTP (Express): one origin — the Host is never read; a proof for the Host the client sent is refused', async () => {
    const api = await startExpressApp({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false }, (app, fapi) => {
      app.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (_req, res) => {
        res.json({ ok: true });
      });
      app.get('/statements/:id/accounts', fapi.protect({ scopes: ['accounts'] }), (_req, res) => {
        res.json({ ok: true });
      });
    });
    try {
      const call = async (htu: string, headers: Record<string, string> = {}, target = '/accounts') => {
        const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
        const proof = await client.proof({ htm: 'GET', htu, accessToken: token });
        return send(`${api.url}${target}`, { target, headers: { authorization: `DPoP ${token}`, dpop: proof, ...headers } });
      };
      expect((await call(`${AUDIENCE}/accounts`, { host: 'evil.example' })).status).toBe(200);
      expect((await call('https://evil.example/accounts', { host: 'evil.example' })).status).toBe(401);
      expect((await call('http://evil.example/accounts', { host: 'evil.example', 'x-forwarded-proto': 'http' })).status).toBe(401);
      // A proof for /accounts does not reach /statements/:id/accounts through a `..` the router does not resolve.
      expect((await call(`${AUDIENCE}/accounts`, {}, '/statements/%2e%2e/accounts')).status).toBe(401);
      expect((await call(`${AUDIENCE}/statements/%2e%2e/accounts`, {}, '/statements/%2e%2e/accounts')).status).toBe(401);
    } finally {
      await api.close();
    }
  });

  it('RFC 9728 §3.3: resource_metadata only for the resource URL at its own origin, always the configured URL; the document is the configured one whatever the Host', async () => {
    const resource = `${AUDIENCE}/accounts`;
    const metadataUrl = `${AUDIENCE}/.well-known/oauth-protected-resource/accounts`;
    const api = await startExpressApp(
      {
        issuer: as.issuer,
        audience: resource,
        publicUrl: [AUDIENCE, 'https://rs2.example.com'],
        resourceMetadata: true,
        logger: false,
      },
      (app, fapi) => {
        app.use(fapi.metadata());
        app.all(/.*/, fapi.protect({ scopes: ['accounts'] }), (_req, res) => {
          res.json({ ok: true });
        });
      },
    );
    try {
      const challenge = async (target: string, headers: Record<string, string>) =>
        String((await send(`${api.url}${target}`, { target, headers })).headers['www-authenticate']);
      expect(await challenge('/accounts', { host: 'rs.example.com' })).toContain(`resource_metadata="${metadataUrl}"`);
      expect(await challenge('/accounts', { host: 'RS.EXAMPLE.COM:443' })).toContain(`resource_metadata="${metadataUrl}"`);
      for (const [target, headers] of [
        ['/accounts', { host: 'rs2.example.com' }],
        ['/accounts', { host: 'rs2.example.com', 'x-forwarded-host': 'rs.example.com' }],
        ['/accounts?x', { host: 'rs.example.com' }],
        ['/accounts/', { host: 'rs.example.com' }],
        ['/accounts/../accounts', { host: 'rs.example.com' }],
        ['/accounts#', { host: 'rs.example.com' }],
        ['/other', { host: 'rs.example.com' }],
      ] as const) {
        expect([target, headers, await challenge(target, headers)]).toEqual([
          target,
          headers,
          expect.not.stringContaining('resource_metadata'),
        ]);
      }
      // An unknown host is refused (400) without a challenge naming anything.
      const unknown = await send(`${api.url}/accounts`, { headers: { host: 'evil.example' } });
      expect(unknown.status).toBe(400);
      expect(String(unknown.headers['www-authenticate'] ?? '')).not.toContain('evil');
      for (const host of ['evil.example', 'rs2.example.com', 'rs.example.com']) {
        const doc = await send(`${api.url}/.well-known/oauth-protected-resource/accounts`, { headers: { host } });
        expect(doc.status).toBe(200);
        expect(doc.json.resource).toBe(resource);
        expect(doc.text).not.toContain('evil');
      }
    } finally {
      await api.close();
    }
  });

  it('isUriForm and normalizeHtu answer in linear time on a 1 MB value', () => {
    for (const value of [
      `https://${'a'.repeat(1_000_000)}\\`,
      `https://${'a'.repeat(1_000_000)}@`,
      `https://rs.example.com/${'%2e'.repeat(300_000)}`,
      `https://rs.example.com/${'./'.repeat(500_000)}`,
    ]) {
      const started = performance.now();
      normalizeHtu(value);
      expect(performance.now() - started).toBeLessThan(1500);
    }
  });
});
