/**
 * Attack review 19: the DPoP `htu` comparison once more (packages/core/src/binding/dpop.ts
 * DpopVerifier.verify, normalized, normalizeUrl, isUriForm, NOT_IN_URI, the memo bounded by
 * MEMO_MAX_LENGTH, the query cut-off) and how the request target reaches it
 * (packages/core/src/request.ts OriginResolver.resolve; the Express, Koa, Fastify, NestJS and
 * Hono adapters). Each test under "findings" asserts what the specifications and
 * docs/packages/core.md require and fails on the code it was written against; "attacks that held"
 * pass. Every server listens on 127.0.0.1; every loop is bounded in count and time.
 *
 * 1. An `htu` whose host is percent-encoded non-ASCII matches the configured host — dpop.ts
 *    isUriForm lets `%XX` through in the authority (RFC 3986 allows pct-encoded octets in a
 *    reg-name), then the WHATWG parser decodes them and applies the UTS #46 mapping:
 *    `https://%EF%BD%92%EF%BD%93.example.com/accounts` (fullwidth `ｒｓ`), `rs%E3%80%82example.com`
 *    (ideographic full stop), `rs.exa%C2%ADmple.com` (a soft hyphen, dropped),
 *    `rs.example.com%E2%80%8B` (a zero-width space, dropped), `r%C5%BF.example.com` (long s) all
 *    normalise to `https://rs.example.com/accounts` and are accepted (200). RFC 3986 §6.2.2.2
 *    decodes only percent-encoded *unreserved* characters; these octets are none, so the reg-name
 *    stays another one (§3.2.2) and the URI is not the request's (RFC 9449 §4.3 step 9).
 *    docs/packages/core.md: "`htu` compared after RFC 3986 normalisation … no … non-ASCII
 *    character the WHATWG parser would repair". The same IRI host written raw is refused since
 *    attack review 18 (finding 2); percent-encoding it walks around that fix. No proof is accepted
 *    for a target other than the one the client's IDNA resolver would reach: a deviation, no
 *    security effect found.
 *
 * 2. An `htu` naming an IPv4 host in a form RFC 3986 reads as a reg-name matches the IPv4
 *    literal — WHATWG's IPv4 parser reads `2130706433`, `127.1`, `0x7f.0.0.1`, `0177.0.0.1`,
 *    `127.0.0.01` and `127.0.0.1.` (trailing dot) as `127.0.0.1`. RFC 3986 §3.2.2: an IPv4
 *    literal is dotted-decimal `dec-octet` (no leading zero, no hex or octal, four parts); any
 *    other form is a reg-name, and §7.4 names these "rare IP address formats" as a source of
 *    confusion; §6.2.2 has no normalisation that turns one into the other. With
 *    `publicUrl: 'http://127.0.0.1:<port>'` such proofs are accepted (200); a trailing-dot domain
 *    name (`rs.example.com.`) is refused, the trailing-dot IPv4 address is not. Low impact (the
 *    forms reach the same address on most resolvers; IP origins are mostly development).
 *
 * 3. An absolute-form request target for the configured origin is refused (400 "The request does
 *    not address a configured origin of this API") on all six adapters, with a proof whose `htu`
 *    is that very URI — request.ts OriginResolver.resolve: `if (!conn.path.startsWith('/'))`.
 *    RFC 9112 §3.2.2: "A server MUST accept the absolute-form in requests"; §3.3: with the
 *    absolute-form the target URI *is* the request-target, so `GET https://rs.example.com/accounts`
 *    addresses the configured origin and its proof matches (RFC 9449 §4.3 step 9). Every router
 *    under test routes it to `/accounts`. Impact: availability/conformance only (a client or
 *    gateway that sends absolute-form cannot use the API; the refusal names the wrong cause). An
 *    absolute-form target naming another origin stays refused (held, below).
 *
 * Fixed: dpop.ts `normalizeUrl` refuses a URL whose host the WHATWG parser changed beyond
 * RFC 3986 §6.2.2 normalisation (`hostAsWritten`: findings 1 and 2; an IP literal is compared in
 * its canonical form). Finding 3 was fixed by accepting absolute-form on a configured origin;
 * attack review 20 then found routers that read it otherwise than the guard (a proof for `/`
 * served `/accounts`), so absolute-form is refused on every origin, now with its own reason
 * (`request_target_form`: "The request target must be a path (origin-form)"), a deviation
 * recorded in docs/packages/core.md. Unit tests: dpop-proof.test.ts, request.test.ts.
 *
 * Held (below): on every adapter, targets a router reads otherwise than the parser (`%2e`
 * segments, `#`, `\`, `%` without two hex digits, `//`, `;`, upper-case percent-encoding,
 * `%2F`, `%00`, `%FF`) answer no 2xx for a proof of `/accounts` and never a 5xx, and a
 * malformed query does not matter; absolute-form for another origin and asterisk-form are never
 * 2xx or 5xx; over HTTP/2 a `:path` with `#`, a `Host` that differs from `:authority`, and 60 kB
 * `:path`s of `%41`/`%2F` (not memoised; ~15 ms each, linear) are refused in bounded time; the
 * URL memo gives the same verdicts whichever role (htu or request URL) put a string in it, and
 * after it is flooded and cleared; RFC 3986 §6.2.3 port forms (`:0443`, `:`) and percent-encoded
 * unreserved host characters match, percent-encoded delimiters in the host do not; isUriForm,
 * NOT_IN_URI and normalizeHtu run in linear time on 1 MB adversarial values.
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect, createServer as createH2cServer, type Http2Server } from 'node:http2';
import { type AddressInfo, connect as netConnect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { normalizeHtu } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import express from 'express';
import Koa from 'koa';
import { FRAMEWORKS, type StartedApp, startApp } from './support/apps';
import { startExpressApp } from './support/express-app';
import { h2Status, send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
let as: MockIssuer;
let client: DpopClient;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  client = await DpopClient.create('ES256');
});
afterAll(() => as.stop());

/** Token and proof headers for a GET whose proof names `htu`. */
async function credentials(htu: string, method = 'GET'): Promise<Record<string, string>> {
  const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
  const proof = await client.proof({ htm: method, htu, accessToken: token });
  return { authorization: `DPoP ${token}`, dpop: proof };
}

/** Status of a GET of `target` on `app` (sent as is) with a fresh proof naming `htu`. */
async function statusOf(app: { url: string }, target: string, htu: string): Promise<number> {
  return (await send(`${app.url}/`, { target, headers: await credentials(htu) })).status;
}

/**
 * Writes `head` on a raw socket (what node:http cannot send: absolute- and asterisk-form targets)
 * and resolves with the status of the answer (0 when none came within 5 s).
 */
function rawStatus(url: string, head: string): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = netConnect(Number(port), hostname, () => socket.write(head));
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
    });
    socket.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0)));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy());
  });
}

/** A request head with the DPoP credentials in `headers`. */
const head = (line: string, headers: Record<string, string>) =>
  `${line}\r\nHost: rs.example.com\r\n${Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}`)
    .join('\r\n')}\r\nConnection: close\r\n\r\n`;

/** Express with `GET /accounts` protected, its `publicUrl` the address it listens on (known only after listen). */
async function startOnOwnOrigin(): Promise<{ url: string; server: Server }> {
  const server = createHttpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const fapi = expressGuard({ issuer: as.issuer, audience: AUDIENCE, publicUrl: url, logger: false });
  const app = express();
  app.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (_req, res) => void res.json({ ok: true }));
  server.on('request', app);
  return { url, server };
}

const closeServer = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

describe('findings', () => {
  let app: StartedApp;
  beforeAll(async () => {
    app = await startApp('express', { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false });
  });
  afterAll(() => app.close());

  it.each([
    ['fullwidth ｒｓ', 'https://%EF%BD%92%EF%BD%93.example.com/accounts'],
    ['an ideographic full stop', 'https://rs%E3%80%82example.com/accounts'],
    ['a soft hyphen', 'https://rs.exa%C2%ADmple.com/accounts'],
    ['a zero-width space', 'https://rs.example.com%E2%80%8B/accounts'],
    ['a long s (ſ)', 'https://r%C5%BF.example.com/accounts'],
  ])('1. RFC 3986 §6.2.2.2: an htu host with %s percent-encoded is another reg-name, not rs.example.com (was 200)', async (_what, htu) => {
    // The IRI host written raw is refused (attack review 18, finding 2); percent-encoded, the
    // WHATWG parser decodes and IDNA-maps it to the configured host, which RFC 3986 never does.
    const status = await statusOf(app, '/accounts', htu);
    expect([htu, status, normalizeHtu(htu) === `${AUDIENCE}/accounts`]).toEqual([htu, 401, false]);
  });

  it('2. RFC 3986 §3.2.2, §7.4: IPv4 hosts not in dotted-decimal dec-octets are reg-names, not the publicUrl 127.0.0.1 (was 200)', async () => {
    const { url, server } = await startOnOwnOrigin();
    const { port } = new URL(url);
    try {
      // The configured form itself is accepted: the server and proofs work.
      expect(await statusOf({ url }, '/accounts', `${url}/accounts`)).toBe(200);
      const verdicts: [string, number][] = [];
      for (const host of ['2130706433', '127.1', '0x7f.0.0.1', '0177.0.0.1', '127.0.0.01', '127.0.0.1.']) {
        const htu = `http://${host}:${port}/accounts`;
        verdicts.push([htu, await statusOf({ url }, '/accounts', htu)]);
      }
      expect(verdicts).toEqual(verdicts.map(([htu]) => [htu, 401]));
    } finally {
      await closeServer(server);
    }
  });

  it('3. an absolute-form target for the configured origin, with its own proof, is refused (400) on every adapter: a deliberate deviation from RFC 9112 §3.2.2 (attack review 20, finding 1)', async () => {
    const verdicts: [string, number][] = [];
    for (const framework of FRAMEWORKS) {
      const started = await startApp(framework, { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false });
      try {
        const headers = await credentials(`${AUDIENCE}/accounts`);
        verdicts.push([framework, await rawStatus(started.url, head(`GET ${AUDIENCE}/accounts HTTP/1.1`, headers))]);
      } finally {
        await started.close();
      }
    }
    expect(verdicts).toEqual(FRAMEWORKS.map((framework) => [framework, 400]));
  }, 60_000);
});

describe('attacks that held', () => {
  it('every adapter: a target the router and the URL parser read differently gets no 2xx for a proof of another path, and never a 5xx', async () => {
    const accounts = `${AUDIENCE}/accounts`;
    // [target, htu of the proof, expected class]: 'refused' = 4xx, 'ok' = 2xx, 'any' = not 5xx.
    const cases: readonly (readonly [string, string, 'refused' | 'ok' | 'any'])[] = [
      ['/accounts', accounts, 'ok'],
      ['/accounts?%zz&a=%', accounts, 'ok'],
      ['/accounts?x=/../y#z', accounts, 'ok'],
      ['/accounts/%2e', accounts, 'refused'],
      ['/accounts/%2E/', `${AUDIENCE}/accounts/`, 'refused'],
      ['/x/%2e%2e/accounts', accounts, 'refused'],
      ['/x/%2e%2e/accounts', `${AUDIENCE}/x/%2e%2e/accounts`, 'refused'],
      ['/accounts#x', accounts, 'refused'],
      ['/accounts#?x', accounts, 'refused'],
      ['/x\\..\\accounts', accounts, 'refused'],
      ['/accounts%', accounts, 'refused'],
      ['/accounts%', `${AUDIENCE}/accounts%25`, 'refused'],
      ['/accounts%4', accounts, 'refused'],
      ['//accounts', accounts, 'refused'],
      ['//accounts', `${AUDIENCE}//accounts`, 'any'],
      ['/accounts;x', accounts, 'refused'],
      ['/accounts%2f', accounts, 'refused'],
      ['/accounts%2f', `${AUDIENCE}/accounts%2F`, 'any'],
      ['/accounts%3f', accounts, 'refused'],
      ['/accounts%23', accounts, 'refused'],
      ['/accounts%00', accounts, 'refused'],
      ['/acc%FF', `${AUDIENCE}/acc%ff`, 'any'],
    ];
    const unexpected: string[] = [];
    const started = performance.now();
    for (const framework of FRAMEWORKS) {
      const app = await startApp(framework, { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false });
      try {
        for (const [target, htu, expected] of cases) {
          if (performance.now() - started > 50_000) break;
          const status = await statusOf(app, target, htu);
          const ok = expected === 'ok' ? status === 200 : expected === 'refused' ? status >= 400 && status < 500 : status < 500;
          if (!ok) unexpected.push(`${framework} ${target} htu=${htu}: ${status}`);
        }
      } finally {
        await app.close();
      }
    }
    expect(unexpected).toEqual([]);
  }, 90_000);

  it('every adapter: absolute-form for another origin, and asterisk-form, are never 2xx or 5xx', async () => {
    const unexpected: string[] = [];
    for (const framework of FRAMEWORKS) {
      const app = await startApp(framework, { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false });
      try {
        for (const [line, htu] of [
          ['GET http://other.example/accounts HTTP/1.1', 'http://other.example/accounts'],
          ['GET https://other.example/accounts HTTP/1.1', `${AUDIENCE}/accounts`],
          ['GET https://user@rs.example.com/accounts HTTP/1.1', `${AUDIENCE}/accounts`],
          ['OPTIONS * HTTP/1.1', `${AUDIENCE}/accounts`],
          ['GET * HTTP/1.1', `${AUDIENCE}/`],
        ] as const) {
          const status = await rawStatus(app.url, head(line, await credentials(htu, line.split(' ')[0])));
          if (status < 300 || status >= 500) unexpected.push(`${framework} ${line}: ${status}`);
        }
      } finally {
        await app.close();
      }
    }
    expect(unexpected).toEqual([]);
  }, 60_000);

  it('HTTP/2: a :path with #, a Host that differs from :authority, and 60 kB :paths are refused in bounded time', async () => {
    const fapi = koaGuard({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false });
    const app = new Koa();
    app.use(fapi.protect({ scopes: ['accounts'] }));
    app.use((ctx) => {
      ctx.body = { ok: true };
    });
    const server: Http2Server = createH2cServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const session = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const get = (headers: Record<string, string>) => h2Status(session, headers);
    try {
      expect(await get({ ':path': '/accounts', ...(await credentials(`${AUDIENCE}/accounts`)) })).toBe(200);
      expect(await get({ ':path': '/accounts#x', ...(await credentials(`${AUDIENCE}/accounts`)) })).toBe(401);
      // Node's client would send a lone `host` as `:authority`: both are set here.
      const authority = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      const mismatch = { ':path': '/accounts', ':authority': authority, host: 'evil.example' };
      expect(await get({ ...mismatch, ...(await credentials(`${AUDIENCE}/accounts`)) })).toBe(400);
      // Longer than MEMO_MAX_LENGTH: normalised each time, never remembered; cost linear in the length.
      const headers = await credentials(`${AUDIENCE}/accounts`);
      for (const unit of ['%41', '%2F']) {
        const path = `/accounts/${unit.repeat(20_000)}`;
        const started = performance.now();
        for (let i = 0; i < 20 && performance.now() - started < 20_000; i++) expect(await get({ ':path': path, ...headers })).toBe(401);
        expect(performance.now() - started).toBeLessThan(15_000);
      }
    } finally {
      session.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 60_000);

  it('the URL memo: one string gives the same verdict as htu and as request URL, before and after a flood clears it', async () => {
    // Every path reaches the guard (an app-wide protect), so a refusal is the guard's, not a 404.
    const app = await startExpressApp({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false }, (api, fapi) => {
      api.use(fapi.protect({ scopes: ['accounts'] }), (_req, res) => void res.json({ ok: true }));
    });
    try {
      const dotted = '/statements/%2e%2e/accounts';
      const round = async () => [
        // As htu first: the string normalises to /accounts (RFC 3986 §5.2.4), accepted at /accounts.
        await statusOf(app, '/accounts', `${AUDIENCE}${dotted}`),
        // The same string as a request URL: refused, whatever the memo holds from the htu role.
        await statusOf(app, dotted, `${AUDIENCE}${dotted}`),
        await statusOf(app, dotted, `${AUDIENCE}/accounts`),
        // A request URL remembered first, then used as htu.
        await statusOf(app, '/accounts', `${AUDIENCE}/accounts`),
        await statusOf(app, '/accounts', `${AUDIENCE}/accounts?${dotted}`),
      ];
      const before = await round();
      expect(before).toEqual([200, 401, 401, 200, 200]);
      // 1 100 distinct htu values from one holder of a token: the memo fills and is cleared.
      const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
      const started = performance.now();
      for (let i = 0; i < 1100 && performance.now() - started < 30_000; i++) {
        const proof = await client.proof({ htm: 'GET', htu: `${AUDIENCE}/flood/${i}`, accessToken: token });
        expect((await send(`${app.url}/accounts`, { headers: { authorization: `DPoP ${token}`, dpop: proof } })).status).toBe(401);
      }
      expect(await round()).toEqual(before);
    } finally {
      await app.close();
    }
  }, 60_000);

  it('RFC 3986 §6.2.3 and §6.2.2.2 on the host: port forms and percent-encoded unreserved characters match; encoded delimiters do not', async () => {
    const app = await startApp('express', { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false });
    try {
      const verdicts: [string, number][] = [];
      for (const htu of [
        'https://rs.example.com:0443/accounts',
        'https://rs.example.com:/accounts',
        'https://%72s.example.com/accounts',
        'https://rs.ex%41mple.com/accounts',
        'https://rs%2Eexample.com/accounts',
      ]) {
        verdicts.push([htu, await statusOf(app, '/accounts', htu)]);
      }
      for (const htu of [
        'https://rs.example.com%2e/accounts',
        'https://rs.example.com%3A443/accounts',
        'https://rs.example.com%40evil.example/accounts',
        'https://%5B::1%5D/accounts',
        'https://rs.example.com:0444/accounts',
      ]) {
        verdicts.push([htu, await statusOf(app, '/accounts', htu)]);
      }
      expect(verdicts.map(([, status]) => status)).toEqual([200, 200, 200, 200, 200, 401, 401, 401, 401, 401]);
    } finally {
      await app.close();
    }
  });

  it('isUriForm, NOT_IN_URI and normalizeHtu answer in linear time on 1 MB adversarial values', () => {
    for (const value of [
      `https://rs.example.com/${'%'.repeat(1_000_000)}`,
      `https://rs.example.com/${'%4'.repeat(500_000)}`,
      `https://rs.example.com/${'%41'.repeat(333_333)}`,
      `https://rs.example.com/${'a'.repeat(1_000_000)}%`,
      `https://${'['.repeat(1_000_000)}/`,
      `https://${'%41'.repeat(333_333)}/`,
      `https://rs.example.com${'?'.repeat(1_000_000)}`,
    ]) {
      const started = performance.now();
      normalizeHtu(value);
      expect([value.slice(0, 40), performance.now() - started < 2000]).toEqual([value.slice(0, 40), true]);
    }
  });
});
