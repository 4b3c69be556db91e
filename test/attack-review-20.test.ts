/**
 * Attack review 20: the two changes of 5ed7f80 — an absolute-form request target on a configured
 * origin is accepted, Host ignored (packages/core/src/request.ts OriginResolver.resolve,
 * absoluteForm), and an `htu` (or request URL) whose host the WHATWG parser changed beyond
 * RFC 3986 §6.2.2 is refused (packages/core/src/binding/dpop.ts hostAsWritten, normalizeUrl) —
 * and what still reads the raw target downstream: the routers of each adapter, the RFC 9728
 * metadata paths, RFC 9421 derived components, idempotency fingerprints, HTTP/2. Each test under
 * "findings" asserts what the specifications require and fails on the code it was written
 * against; "attacks that held" pass. Every server listens on 127.0.0.1; every loop is bounded in
 * count and time.
 *
 * 1. `GET https://rs.example.com?/accounts HTTP/1.1` runs the `/accounts` handler with a proof
 *    whose `htu` is `https://rs.example.com/` (200), and `POST https://rs.example.com?/payments`
 *    the `/payments` handler with a POST proof for `/` (2xx), on NestJS on Fastify
 *    (@nestjs/platform-fastify 11.2.8 bundles fastify 5.11.3 / find-my-way 9.7.0) and on
 *    @fapi-guard/fastify over Fastify 4 (a declared peer; find-my-way 8.2.2). Those routers strip
 *    an absolute-form target with `/^https?:\/\/.*?\//`, which runs past the `?`: they route
 *    `/accounts`. The guard reads the same target as RFC 3986 §3.3/§3.4 does — empty path (`/`,
 *    RFC 9110 §4.2.3), query `?/accounts` — and compares the proof with
 *    `https://rs.example.com/`. RFC 9449 §4.3 step 9: `htu` must be the URI of the request the
 *    resource serves; here a proof made for `/` (the query never counts, RFC 9449 §4.2) is
 *    accepted for `/accounts` and `/payments`, and RFC 9421 `@path`, the idempotency fingerprint
 *    and the log line all name `/` for a request `/payments` processed. Before 5ed7f80 every
 *    absolute-form target was 400. Impact: DPoP's binding of a proof to its URI (and a request
 *    signature's `@path`) is lost on those stacks: a proof captured for the root (never
 *    presented there, or presented to another instance with its own replay store) is spent on a
 *    payment route. Express, Koa, Fastify 5.12, NestJS on Express and Hono route `/` (404): held.
 *
 * 2. The RFC 9728 metadata document is not served for an absolute-form request of its
 *    well-known URI on Express, Koa, NestJS (Express) and Hono (404): their `metadata()`
 *    middleware hands the raw target (`req.originalUrl`, `ctx.originalUrl`, the incoming
 *    `url`) to `guard.metadataResponse`, which compares it with the path
 *    `/.well-known/oauth-protected-resource`. Fastify and NestJS on Fastify register the path as
 *    a route and answer 200. RFC 9112 §3.2.2: a server MUST accept the absolute-form; RFC 9728 §3:
 *    the document is at that URI. Impact: discovery fails for clients and gateways that send
 *    absolute-form (the API itself accepts them since 5ed7f80); adapters disagree.
 *
 * 3. An absolute-form request with two Host lines is accepted (200) on every adapter; the same
 *    request in origin-form is refused (400, "several Host headers"). `absoluteForm` returns
 *    before the Host checks of `resolve`. RFC 9112 §3.2: a server MUST respond 400 to any request
 *    message that contains more than one Host header field line — whatever the form of the
 *    target (§3.2.2 says to ignore Host's value, not to accept a malformed message). Impact:
 *    an ambiguous message a front proxy may route by the other Host is processed; a MUST of
 *    HTTP/1.1 the guard enforces in origin-form is lost in absolute-form.
 *
 * 4. RFC 9421 `@request-target` of an absolute-form request: the guard uses path and query of the
 *    resolved URL (signatures/base.ts `derived`), so a signature over the value RFC 9421 §2.2.5
 *    gives — "the request target portion of the request line", for absolute-form
 *    `https://rs.example.com/signed` — is refused (401 "The request signature is invalid") and one
 *    over `/signed`, a value this message does not have, is accepted (201), on every adapter.
 *    Impact: interoperability (a client that follows the RFC cannot sign `@request-target` when it
 *    sends absolute-form); the signature verified is not over the message received (no other
 *    target URI can be substituted: `@target-uri` is required).
 *
 * 5. An `htu` written exactly as the configured `publicUrl` is refused (401) when that host is an
 *    IPv6 literal the WHATWG parser re-serialises: `http://[0:0:0:0:0:0:0:1]:8080`,
 *    `http://[::ffff:127.0.0.1]:8080`, `http://[2001:db8:0:0:0:0:0:1]`. The request URL is built
 *    from the parsed origin (`[::1]`, `[::ffff:7f00:1]`, `[2001:db8::1]`); the `htu`'s host as
 *    written differs from its parsed form, so hostAsWritten refuses it. RFC 3986 §6.2.1: identical
 *    strings are equivalent; §3.2.2: each is a valid IP-literal for the same address; RFC 9449
 *    §4.3 step 9. Before 5ed7f80 these were accepted. Impact: availability — a client that uses
 *    the URI the API operator published cannot call the API.
 *
 * 6. An absolute-form target with an empty port, `GET https://rs.example.com:/accounts`, is
 *    refused (400 "does not address a configured origin") on every adapter, though its proof
 *    `htu` of the same URI is accepted by the DPoP check (attack review 19) and RFC 3986 §6.2.3
 *    makes `https://rs.example.com:/` equivalent to `https://rs.example.com/` (RFC 9110 §4.2.3:
 *    an empty port is the default one). RFC 9112 §3.2.2: a server MUST accept the absolute-form.
 *    HOST_SYNTAX requires a digit after `:`. Impact: conformance only.
 *
 * Resolved: absolute-form is refused again, on every origin (request.ts, reason
 * `request_target_form`, 400 "The request target must be a path (origin-form)"): finding 1 shows
 * routers that read it otherwise than the guard, so no proof or signature can be checked against
 * the URL the app serves — a deviation from RFC 9112 §3.2.2's "MUST accept", recorded in
 * docs/packages/core.md. Findings 1, 3, 4 and 6 are refusals now; the metadata document is not
 * served for an absolute-form target on any adapter (Fastify and NestJS on Fastify read the
 * target as received, finding 2). Finding 5: an IP literal's host is compared in the parser's
 * canonical form, as the request URL's is (dpop.ts hostAsWritten).
 *
 * Held (below): on every adapter, absolute-form targets the router and the guard could read
 * otherwise (default port, upper-case scheme and host, out-of-range port, empty path, a query or
 * fragment right after the authority, dot segments raw and `%2e`, `//`, `\`, IPv6 and
 * trailing-dot hosts) answer no 2xx for a proof of another path, and never a 5xx; over HTTP/2 an
 * absolute-form `:path` never reaches the guard (nghttp2 resets the stream) and a `:scheme` of
 * https on h2c does not change the URL; a payment retried in absolute-form with the same
 * idempotency key is a replay of the origin-form one (same fingerprint, the handler runs once);
 * `htu` hosts that are RFC 3986-equivalent to the configured one (case, `%XX` of unreserved
 * characters, explicit default port, trailing dot and `_` when configured so, punycode of an IDN
 * publicUrl, upper-case IPv6) are accepted, and hosts the WHATWG parser maps onto it (IPv4-mapped
 * IPv6, `%2E` trailing dot, octal IPv4) are not.
 */
import { createServer as createH2cServer, type Http2Server, connect as h2connect } from 'node:http2';
import { type AddressInfo, connect as netConnect } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { GuardOptions } from '@fapi-guard/core';
import { fapiGuard as fastifyPlugin } from '@fapi-guard/fastify';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { DpopClient, MessageSigningClient, MockIssuer } from '@fapi-guard/testing';
import fastify4 from 'fastify4';
import Koa from 'koa';
import { FRAMEWORKS, type StartedApp, startApp } from './support/apps';
import { h2Status, send } from './support/http';
import { newLedger, startIdempotentApp } from './support/idempotency-apps';

const AUDIENCE = 'https://rs.example.com';
let as: MockIssuer;
let client: DpopClient;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-a' });
  client = await DpopClient.create('ES256');
});
afterAll(() => as.stop());

const options = (more: Partial<GuardOptions> = {}): GuardOptions => ({
  issuer: as.issuer,
  audience: AUDIENCE,
  publicUrl: AUDIENCE,
  logger: false,
  ...more,
});

/** Token and proof headers for a request whose proof names `htm` and `htu`. */
async function credentials(htu: string, htm = 'GET', scope = 'accounts'): Promise<Record<string, string>> {
  const token = await as.mint({ scope, jkt: client.jkt });
  const proof = await client.proof({ htm, htu, accessToken: token });
  return { authorization: `DPoP ${token}`, dpop: proof };
}

interface RawAnswer {
  status: number;
  body: string;
}

/**
 * Writes `message` on a raw socket (what node:http cannot send: absolute-form targets, repeated
 * Host lines) and resolves with the status and body of the answer (status 0 when none came within 5 s).
 */
function rawExchange(url: string, message: string): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = netConnect(Number(port), hostname, () => socket.write(message));
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
    });
    socket.on('end', () => {
      const split = received.indexOf('\r\n\r\n');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0), body: split < 0 ? '' : received.slice(split + 4) });
    });
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy());
  });
}

/** A request message: `line`, the Host lines, `headers`, then `body` with its length. */
function message(line: string, headers: Record<string, string>, hosts: readonly string[] = ['rs.example.com'], body = ''): string {
  const lines = [line, ...hosts.map((h) => `Host: ${h}`), ...Object.entries(headers).map(([n, v]) => `${n}: ${v}`)];
  if (!line.startsWith('GET ')) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return `${lines.join('\r\n')}\r\nConnection: close\r\n\r\n${body}`;
}

/** @fapi-guard/fastify on Fastify 4 (a declared peer), with `GET /accounts` and `POST /payments` as on the other apps. */
async function startFastify4(): Promise<StartedApp> {
  const app = fastify4();
  await app.register(fastifyPlugin as never, options());
  app.get('/accounts', { config: { fapi: { scopes: ['accounts'] } } } as never, (async () => ({ route: '/accounts' })) as never);
  app.post('/payments', { config: { fapi: { scopes: ['payments:write'] } } } as never, (async () => ({ route: '/payments' })) as never);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { framework: 'fastify', url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}

const refused = (status: number) => status >= 400 && status < 500;

describe('findings', () => {
  it('1. RFC 9449 §4.3 step 9, RFC 3986 §3.3: `https://rs.example.com?/accounts` is no request for /accounts; a proof for / runs no handler of another path (200 on NestJS-Fastify and Fastify 4)', async () => {
    const verdicts: [string, string, number][] = [];
    const started = performance.now();
    const stacks: [string, () => Promise<StartedApp>][] = [
      ...FRAMEWORKS.map((f): [string, () => Promise<StartedApp>] => [f, () => startApp(f, options())]),
      ['fastify 4', startFastify4],
    ];
    for (const [name, start] of stacks) {
      if (performance.now() - started > 60_000) break;
      const app = await start();
      try {
        // Proofs for the root: the path the guard checks. The query is never part of htu (RFC 9449 §4.2).
        const get = await rawExchange(app.url, message('GET https://rs.example.com?/accounts HTTP/1.1', await credentials(`${AUDIENCE}/`)));
        const post = await rawExchange(
          app.url,
          message('POST https://rs.example.com?/payments HTTP/1.1', await credentials(`${AUDIENCE}/`, 'POST', 'payments:write')),
        );
        verdicts.push([name, 'GET ?/accounts', get.status], [name, 'POST ?/payments', post.status]);
      } finally {
        await app.close();
      }
    }
    // Refused (the router's path is not the proof's), or not routed to the handler: never 2xx, never 5xx.
    expect(verdicts.filter(([, , status]) => !refused(status))).toEqual([]);
    expect(verdicts).toHaveLength(2 * (FRAMEWORKS.length + 1));
  }, 90_000);

  it('2. RFC 9728 §3: every adapter answers an absolute-form request of the metadata URI alike: not served, as every absolute-form target is refused (was 200 on Fastify and NestJS-Fastify, 404 elsewhere)', async () => {
    const verdicts: [string, number, unknown][] = [];
    for (const framework of FRAMEWORKS) {
      const app = await startApp(framework, options({ resourceMetadata: true }));
      try {
        const origin = await rawExchange(app.url, message('GET /.well-known/oauth-protected-resource HTTP/1.1', {}));
        const absolute = await rawExchange(app.url, message(`GET ${AUDIENCE}/.well-known/oauth-protected-resource HTTP/1.1`, {}));
        // The document itself is served in origin-form: the app is set up right.
        expect([framework, origin.status]).toEqual([framework, 200]);
        const resource = absolute.status === 200 ? (JSON.parse(absolute.body) as { resource?: unknown }).resource : undefined;
        verdicts.push([framework, absolute.status, resource]);
      } finally {
        await app.close();
      }
    }
    expect(verdicts).toEqual(FRAMEWORKS.map((framework) => [framework, 404, undefined]));
  }, 60_000);

  it('3. RFC 9112 §3.2: an absolute-form request with two Host lines is refused (400) as in origin-form (was 200 on every adapter)', async () => {
    const verdicts: [string, number, number][] = [];
    for (const framework of FRAMEWORKS) {
      const app = await startApp(framework, options());
      try {
        const hosts = ['rs.example.com', 'evil.example'];
        const origin = await rawExchange(app.url, message('GET /accounts HTTP/1.1', await credentials(`${AUDIENCE}/accounts`), hosts));
        const absolute = await rawExchange(
          app.url,
          message(`GET ${AUDIENCE}/accounts HTTP/1.1`, await credentials(`${AUDIENCE}/accounts`), hosts),
        );
        verdicts.push([framework, origin.status, absolute.status]);
      } finally {
        await app.close();
      }
    }
    expect(verdicts).toEqual(FRAMEWORKS.map((framework) => [framework, 400, 400]));
  }, 60_000);

  it('4. RFC 9421 §2.2.5: a signed absolute-form request is refused (400) whichever `@request-target` it signed, never verified over a value the message does not have (was 401 / 201 on every adapter)', async () => {
    const signer = MessageSigningClient.generate('ed25519', 'client-a-20');
    const body = '{"amount":"1.00"}';
    const htu = `${AUDIENCE}/signed`;
    const verdicts: [string, string, number][] = [];
    for (const framework of FRAMEWORKS) {
      const app = await startApp(
        framework,
        options({
          interactionId: false,
          messageSigning: { clients: { 'client-a': { jwks: signer.jwks } }, responseKey: MessageSigningClient.generate().privateJwk },
        }),
      );
      try {
        for (const value of [htu, '/signed']) {
          const token = await as.mint({ scope: 'payments:write', jkt: client.jkt });
          const headers: Record<string, string> = {
            authorization: `DPoP ${token}`,
            dpop: await client.proof({ htm: 'POST', htu, accessToken: token }),
            'content-type': 'application/json',
          };
          const components = ['@method', '@target-uri', '@request-target', 'authorization', 'dpop', 'content-digest'];
          // The library's own base (its @request-target is path and query), for Signature-Input and Content-Digest.
          const own = signer.sign({ method: 'POST', url: htu, headers, body }, { components });
          const input = (own['signature-input'] as string).slice('sig1='.length);
          const base = [
            '"@method": POST',
            `"@target-uri": ${htu}`,
            `"@request-target": ${value}`,
            `"authorization": ${headers.authorization}`,
            `"dpop": ${headers.dpop}`,
            `"content-digest": ${own['content-digest']}`,
            `"@signature-params": ${input}`,
          ].join('\n');
          const signed = {
            ...headers,
            ...signer.sign({ method: 'POST', url: htu, headers, body }, { rawBase: { signatureInput: input, base } }),
          };
          const answer = await rawExchange(app.url, message(`POST ${htu} HTTP/1.1`, signed, ['rs.example.com'], body));
          verdicts.push([framework, value, answer.status]);
        }
      } finally {
        await app.close();
      }
    }
    expect(verdicts).toEqual(FRAMEWORKS.flatMap((framework) => [[framework, htu, 400] as const, [framework, '/signed', 400] as const]));
  }, 60_000);

  it('5. RFC 3986 §6.2.1, RFC 9449 §4.3 step 9: an htu written exactly as the configured IPv6 publicUrl is accepted (was 401 since 5ed7f80)', async () => {
    const verdicts: [string, number][] = [];
    for (const publicUrl of ['http://[0:0:0:0:0:0:0:1]:8080', 'http://[::ffff:127.0.0.1]:8080', 'http://[2001:db8:0:0:0:0:0:1]']) {
      const app = await startApp('express', options({ publicUrl }));
      try {
        const res = await send(`${app.url}/accounts`, { headers: await credentials(`${publicUrl}/accounts`) });
        verdicts.push([publicUrl, res.status]);
      } finally {
        await app.close();
      }
    }
    expect(verdicts).toEqual(verdicts.map(([publicUrl]) => [publicUrl, 200]));
  });

  it('6. `GET https://rs.example.com:/accounts` (empty port) is refused as every absolute-form target, with the reason that says so (request_target_form), not as an unknown origin', async () => {
    const verdicts: [string, number, boolean][] = [];
    for (const framework of FRAMEWORKS) {
      const app = await startApp(framework, options());
      try {
        const htu = 'https://rs.example.com:/accounts';
        const answer = await rawExchange(app.url, message(`GET ${htu} HTTP/1.1`, await credentials(htu)));
        verdicts.push([framework, answer.status, answer.body.includes('The request target must be a path (origin-form)')]);
      } finally {
        await app.close();
      }
    }
    expect(verdicts).toEqual(FRAMEWORKS.map((framework) => [framework, 400, true]));
  }, 60_000);
});

describe('attacks that held', () => {
  it('every adapter: absolute-form targets read otherwise by router and guard get no 2xx for a proof of another path, and never a 5xx', async () => {
    const accounts = `${AUDIENCE}/accounts`;
    // [target, htu of the proof, expected]: 'ok' = 200, 'refused' = 4xx, 'not-ok' = neither 2xx nor 5xx.
    const cases: readonly (readonly [string, string, 'ok' | 'refused' | 'not-ok'])[] = [
      // Absolute-form is refused whatever it names, its own proof included (request_target_form).
      ['https://rs.example.com/accounts', accounts, 'refused'],
      ['https://rs.example.com:443/accounts', accounts, 'refused'],
      ['https://rs.example.com/accounts?x=/payments', accounts, 'refused'],
      ['https://rs.example.com:443/accounts', 'https://rs.example.com:444/accounts', 'refused'],
      // The guard accepts the upper-case scheme and host; Hono's server and NestJS-Fastify's router refuse them.
      ['HTTPS://RS.EXAMPLE.COM/accounts', `${AUDIENCE}/payments`, 'refused'],
      ['https://rs.example.com:99999/accounts', accounts, 'refused'],
      ['https://rs.example.com:0/accounts', accounts, 'refused'],
      ['https://rs.example.com', accounts, 'refused'],
      ['https://rs.example.com', `${AUDIENCE}/`, 'not-ok'],
      ['https://rs.example.com?x', accounts, 'refused'],
      ['https://rs.example.com#/accounts', accounts, 'refused'],
      ['https://rs.example.com#/accounts', `${AUDIENCE}/`, 'refused'],
      ['https://rs.example.com/accounts#frag', accounts, 'refused'],
      ['https://rs.example.com:443/../accounts', accounts, 'refused'],
      ['https://rs.example.com/%2e%2e/accounts', accounts, 'refused'],
      ['https://rs.example.com/x/%2e%2e/accounts', accounts, 'refused'],
      ['https://rs.example.com//accounts', accounts, 'refused'],
      ['https://rs.example.com\\accounts', accounts, 'refused'],
      ['https://rs.example.com\\@evil.example/accounts', accounts, 'refused'],
      ['https://[::1]/accounts', accounts, 'refused'],
      ['https://rs.example.com./accounts', accounts, 'refused'],
      ['https://rs.example.com./accounts', 'https://rs.example.com./accounts', 'refused'],
      ['https://rs.example.com%2e/accounts', accounts, 'refused'],
      ['http://rs.example.com/accounts', 'http://rs.example.com/accounts', 'refused'],
    ];
    const unexpected: string[] = [];
    const started = performance.now();
    for (const framework of FRAMEWORKS) {
      const app = await startApp(framework, options());
      try {
        for (const [target, htu, expected] of cases) {
          if (performance.now() - started > 80_000) break;
          const { status } = await rawExchange(app.url, message(`GET ${target} HTTP/1.1`, await credentials(htu)));
          const ok = expected === 'ok' ? status === 200 : expected === 'refused' ? refused(status) : status >= 300 && status < 500;
          if (!ok) unexpected.push(`${framework} ${target} htu=${htu}: ${status}`);
        }
      } finally {
        await app.close();
      }
    }
    expect(unexpected).toEqual([]);
  }, 120_000);

  it('HTTP/2: an absolute-form :path never reaches the guard (stream reset); :scheme https on h2c does not change the URL', async () => {
    const fapi = koaGuard(options());
    const app = new Koa();
    app.use(fapi.protect({ scopes: ['accounts'] }));
    app.use((ctx) => {
      ctx.body = { path: ctx.path };
    });
    const server: Http2Server = createH2cServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const session = h2connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    session.on('error', () => undefined);
    const get = (headers: Record<string, string>) => h2Status(session, headers);
    try {
      const accounts = `${AUDIENCE}/accounts`;
      expect(await get({ ':path': accounts, ':authority': 'rs.example.com', ...(await credentials(accounts)) })).toBe(-1);
      expect(await get({ ':path': accounts, ':authority': 'evil.example', ...(await credentials(accounts)) })).toBe(-1);
      expect(
        await get({ ':path': '/accounts', ':scheme': 'https', ':authority': 'rs.example.com', ...(await credentials(accounts)) }),
      ).toBe(200);
      expect(await get({ ':path': '/accounts', ':scheme': 'http', ':authority': 'rs.example.com', ...(await credentials(accounts)) })).toBe(
        200,
      );
      expect(
        await get({
          ':path': '/accounts',
          ':scheme': 'https',
          ':authority': 'rs.example.com',
          ...(await credentials('http://rs.example.com/accounts')),
        }),
      ).toBe(401);
    } finally {
      session.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('every adapter: a payment retried in absolute-form with the same idempotency key is refused (400) before the key is read: the handler runs once', async () => {
    const unexpected: string[] = [];
    const policy = { scopes: ['payments'], idempotency: 'required' } as const;
    for (const framework of FRAMEWORKS) {
      const ledger = newLedger(0);
      const app = await startIdempotentApp(framework, options(), policy, ledger);
      try {
        const body = '{"amount":"10.00"}';
        const key = `key-${framework}`;
        const headers = async () => ({
          ...(await credentials(`${AUDIENCE}/payments`, 'POST', 'payments')),
          'content-type': 'application/json',
          'idempotency-key': `"${key}"`,
        });
        const first = await rawExchange(app.url, message('POST /payments HTTP/1.1', await headers(), ['rs.example.com'], body));
        const retry = await rawExchange(app.url, message(`POST ${AUDIENCE}/payments HTTP/1.1`, await headers(), ['rs.example.com'], body));
        // The payment made once; the retry in absolute-form is refused like any other target not in origin-form.
        const payment = (answer: RawAnswer) => /"payment":"(pay-\d+)"/.exec(answer.body)?.[1];
        const verdict = [first.status, retry.status, payment(first), payment(retry) ?? null, ledger.processed];
        if (JSON.stringify(verdict) !== JSON.stringify([201, 400, 'pay-1', null, 1]))
          unexpected.push(`${framework}: ${JSON.stringify(verdict)}`);
      } finally {
        await app.close();
      }
    }
    expect(unexpected).toEqual([]);
  }, 90_000);

  it('htu hosts: RFC 3986-equivalent forms of the configured host are accepted; hosts the WHATWG parser maps onto it are not', async () => {
    // [publicUrl, htu origin, expected status]
    const cases: readonly (readonly [string, string, number])[] = [
      ['https://rs.example.com', 'HTTPS://RS.EXAMPLE.COM', 200],
      ['https://rs.example.com', 'https://%52S.example.com', 200],
      ['https://rs.example.com', 'https://rs%2eexample%2ecom', 200],
      ['https://rs.example.com', 'https://rs.example.com:443', 200],
      ['https://rs.example.com', 'https://rs.example.com%2E', 401],
      ['https://rs.example.com', 'https://rs.example.com.', 401],
      ['https://rs.example.com.', 'https://rs.example.com.', 200],
      ['https://rs.example.com.', 'https://rs.example.com', 401],
      ['https://rs_api.example.com', 'https://RS_API.example.com', 200],
      ['https://RS.Example.COM:443', 'https://rs.example.com', 200],
      ['https://bücher.example', 'https://xn--bcher-kva.example', 200],
      ['http://[2001:DB8::1]', 'http://[2001:db8::1]', 200],
      ['http://[2001:db8::1]', 'http://[2001:DB8::1]', 200],
      ['http://[::1]:8080', 'http://[::1]:8080', 200],
      ['http://127.0.0.1:8080', 'http://%31%32%37.0.0.1:8080', 200],
      ['http://127.0.0.1:8080', 'http://[::ffff:127.0.0.1]:8080', 401],
      ['http://127.0.0.1:8080', 'http://[::ffff:7f00:1]:8080', 401],
      ['http://127.0.0.1:8080', 'http://127.0.0.1%2E:8080', 401],
      ['http://127.0.0.1:8080', 'http://0177.0.0.1:8080', 401],
      ['http://[::ffff:7f00:1]:8080', 'http://127.0.0.1:8080', 401],
    ];
    const verdicts: string[] = [];
    const apps = new Map<string, StartedApp>();
    try {
      for (const [publicUrl, origin, expected] of cases) {
        let app = apps.get(publicUrl);
        if (!app) {
          app = await startApp('express', options({ publicUrl }));
          apps.set(publicUrl, app);
        }
        const status = (await send(`${app.url}/accounts`, { headers: await credentials(`${origin}/accounts`) })).status;
        if (status !== expected) verdicts.push(`${publicUrl} htu ${origin}/accounts: ${status}, not ${expected}`);
      }
    } finally {
      for (const app of apps.values()) await app.close();
    }
    expect(verdicts).toEqual([]);
  }, 60_000);
});
