/**
 * Adapter parity: one table of cases — every behaviour the core tests cover — sent as the very
 * same bytes to an Express, a Koa, a Fastify and two NestJS apps (Express and Fastify platforms)
 * over real HTTP; status, every header the
 * guard sets and the body must be identical, and must be what the case expects.
 */
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { FRAMEWORKS, type Framework, type StartedApp, startApp } from './support/apps';
import { type Received, type SendOptions, send } from './support/http';
import { LAYERED_FRAMEWORKS, type LayeredApp, type LayeredFramework, startLayeredApp } from './support/layered-apps';
import { startRefusalApp } from './support/refusal-apps';

const AUDIENCE = 'https://rs.example.com';
/** The headers the guard decides; they must match byte for byte. */
const GUARD_HEADERS = ['www-authenticate', 'dpop-nonce', 'cache-control', 'retry-after', 'access-control-expose-headers', 'content-type'];

let as: MockIssuer;
let downAs: MockIssuer;
let client: DpopClient;
const apps = new Map<Framework, StartedApp>();
const now = Date.now();

beforeAll(async () => {
  // The issuer mints on the guards' fixed clock: a slow machine does not turn tokens into ones issued in the future.
  as = await MockIssuer.start({ audience: AUDIENCE, clock: () => now });
  downAs = await MockIssuer.start({ audience: AUDIENCE });
  downAs.setAvailable(false);
  client = await DpopClient.create('ES256');
  for (const framework of FRAMEWORKS) {
    apps.set(
      framework,
      await startApp(framework, {
        issuers: [as.issuer, downAs.issuer],
        audience: AUDIENCE,
        publicUrl: AUDIENCE,
        // Same secret and clock: the three guards hand out the same nonces.
        dpop: { nonce: { secret: 'parity-nonce-secret-0123456789abcdef' } },
        clock: () => now,
      }),
    );
  }
});
afterAll(async () => {
  for (const app of apps.values()) await app.close();
  await as.stop();
  await downAs.stop();
});

interface Case {
  name: string;
  /** Builds the request (once; the same bytes go to every app). */
  request: () => Promise<{ path: string } & SendOptions>;
  /** Send it this many times; the last answer is compared. @default 1 */
  times?: number;
  status: number;
  /** Expected WWW-Authenticate, exactly (`null`: absent). */
  challenge?: string | null;
}

const ALGS = 'DPoP algs="ES256 PS256 EdDSA"';
const bearerChallenge = (error: string, description: string) =>
  `${ALGS}, Bearer realm="https://rs.example.com", error="${error}", error_description="${description}"`;
const dpopChallenge = (error: string, description: string) => `${ALGS}, error="${error}", error_description="${description}"`;

const token = (opts: Parameters<MockIssuer['mint']>[0] = {}) => as.mint({ scope: 'accounts', jkt: client.jkt, ...opts });
async function dpop(path: string, tokenValue: string, proof: Partial<Parameters<DpopClient['proof']>[0]> = {}, method = 'GET') {
  const htu = `https://rs.example.com${path.split('?')[0]}`;
  const value = await client.proof({ htm: method, htu, accessToken: tokenValue, iat: Math.floor(now / 1000), ...proof });
  return { path, method, headers: { authorization: `DPoP ${tokenValue}`, dpop: value } };
}

const CASES: Case[] = [
  { name: 'no credentials', request: async () => ({ path: '/accounts' }), status: 401, challenge: ALGS },
  {
    name: 'no credentials, Bearer also accepted',
    request: async () => ({ path: '/mixed' }),
    status: 401,
    challenge: `${ALGS}, Bearer realm="https://rs.example.com"`,
  },
  { name: 'valid DPoP', request: async () => dpop('/accounts', await token()), status: 200, challenge: null },
  { name: 'valid DPoP, query string kept out of htu', request: async () => dpop('/accounts?page=2', await token()), status: 200 },
  { name: 'valid DPoP POST', request: async () => dpop('/payments', await token({ scope: 'payments:write' }), {}, 'POST'), status: 201 },
  { name: 'any-of scopes', request: async () => dpop('/either', await token({ scope: 'payments:read' })), status: 200 },
  {
    name: 'replayed proof',
    request: async () => dpop('/accounts', await token()),
    times: 2,
    status: 401,
    challenge: dpopChallenge('invalid_dpop_proof', 'The DPoP proof has already been used'),
  },
  {
    name: 'wrong htm',
    request: async () => dpop('/accounts', await token(), { htm: 'POST' }),
    status: 401,
    challenge: dpopChallenge('invalid_dpop_proof', 'The DPoP proof is invalid'),
  },
  {
    name: 'no proof',
    request: async () => ({ path: '/accounts', headers: { authorization: `DPoP ${await token()}` } }),
    status: 401,
    challenge: dpopChallenge('invalid_dpop_proof', 'A DPoP proof is required'),
  },
  {
    name: 'proof from another key',
    request: async () => dpop('/accounts', await token({ jkt: 'x'.repeat(43) })),
    status: 401,
    challenge: dpopChallenge('invalid_token', 'The access token is not bound to the key of this request'),
  },
  {
    name: 'downgrade to Bearer',
    request: async () => ({ path: '/mixed', headers: { authorization: `Bearer ${await token()}` } }),
    status: 401,
    challenge: bearerChallenge('invalid_token', 'A DPoP-bound access token must be sent with the DPoP scheme'),
  },
  {
    name: 'unbound token on a FAPI route',
    request: async () => ({ path: '/accounts', headers: { authorization: `Bearer ${await as.mint({ scope: 'accounts' })}` } }),
    status: 401,
    challenge: bearerChallenge('invalid_token', 'A sender-constrained access token is required'),
  },
  {
    name: 'unbound token where Bearer is allowed',
    request: async () => ({ path: '/mixed', headers: { authorization: `Bearer ${await as.mint({ scope: 'accounts' })}` } }),
    status: 200,
  },
  {
    name: 'expired token',
    request: async () => dpop('/accounts', await token({ claims: { exp: Math.floor(now / 1000) - 120 } })),
    status: 401,
    challenge: dpopChallenge('invalid_token', 'The access token has expired'),
  },
  {
    name: 'token for another audience',
    request: async () => dpop('/accounts', await token({ fault: 'wrong-audience' })),
    status: 401,
    challenge: dpopChallenge('invalid_token', 'The access token is not intended for this resource'),
  },
  {
    name: 'insufficient scope',
    request: async () => dpop('/accounts', await token({ scope: 'payments:read' })),
    status: 403,
    challenge: `${ALGS}, error="insufficient_scope", error_description="The access token lacks the scope this resource requires", scope="accounts"`,
  },
  {
    name: 'nonce required',
    request: async () => dpop('/nonce', await token()),
    status: 401,
    challenge: dpopChallenge('use_dpop_nonce', 'Resource server requires nonce in DPoP proof'),
  },
  {
    name: 'nonce given',
    request: async () => {
      // The nonce is derived from secret and time, so any app's challenge serves all three.
      const first = await send(`${apps.get('express')?.url}/nonce`, await dpop('/nonce', await token()));
      return dpop('/nonce', await token(), { nonce: first.headers['dpop-nonce'] as string });
    },
    status: 200,
  },
  {
    name: 'two Authorization headers',
    request: async () => ({ path: '/mixed', headers: { authorization: ['Bearer a', 'DPoP b'] } }),
    status: 400,
    challenge: `${ALGS}, error="invalid_request", error_description="More than one set of credentials was sent", Bearer realm="https://rs.example.com", error="invalid_request", error_description="More than one set of credentials was sent"`,
  },
  {
    name: 'malformed Authorization',
    request: async () => ({ path: '/mixed', headers: { authorization: 'Bearer a b' } }),
    status: 400,
    challenge: bearerChallenge('invalid_request', 'The Authorization header is malformed'),
  },
  {
    name: 'token in the query only',
    request: async () => ({ path: `/accounts?access_token=${await token()}` }),
    status: 401,
    challenge: ALGS,
  },
  {
    name: 'token in the query and the header',
    request: async () => ({ ...(await dpop('/accounts', await token())), path: `/accounts?access_token=${await token()}` }),
    status: 400,
  },
  {
    name: 'token in a form body and the header',
    request: async () => {
      const t = await token({ scope: 'payments:write' });
      const base = await dpop('/payments', t, {}, 'POST');
      return {
        ...base,
        headers: { ...base.headers, 'content-type': 'application/x-www-form-urlencoded' },
        body: `access_token=${t}`,
      };
    },
    status: 400,
  },
  {
    name: 'issuer down, no keys yet',
    request: async () => dpop('/accounts', await downAs.mint({ scope: 'accounts', jkt: client.jkt })),
    status: 503,
    challenge: null,
  },
  {
    name: 'another authentication scheme',
    request: async () => ({ path: '/accounts', headers: { authorization: 'Basic dXNlcjpwYXNz' } }),
    status: 401,
    challenge: ALGS,
  },
];

function normalise(res: Received) {
  const headers: Record<string, unknown> = {};
  for (const name of GUARD_HEADERS) headers[name] = res.headers[name];
  return { status: res.status, headers, body: res.text };
}

describe.each(CASES)('parity: $name', (testCase) => {
  it(`answers ${testCase.status} identically on every adapter`, async () => {
    const { path, ...request } = await testCase.request();
    const answers: Record<string, ReturnType<typeof normalise>> = {};
    for (const framework of FRAMEWORKS) {
      const url = `${apps.get(framework)?.url}${path}`;
      let res = await send(url, request);
      for (let i = 1; i < (testCase.times ?? 1); i++) res = await send(url, request);
      answers[framework] = normalise(res);
    }
    expect(answers.express?.status).toBe(testCase.status);
    if (testCase.challenge !== undefined) expect(answers.express?.headers['www-authenticate']).toBe(testCase.challenge ?? undefined);
    // Every adapter's answer equals Express's (the diff names the one that differs).
    expect(answers).toEqual(Object.fromEntries(FRAMEWORKS.map((framework) => [framework, answers.express])));
  });
});

/**
 * Issue 25 §1: the layered pattern — app-wide, router and route layers — answers alike on every
 * adapter (NestJS: the module's global policy, controller and handler policies).
 */
describe('parity: layered protection', () => {
  const layered = new Map<LayeredFramework, LayeredApp>();
  beforeAll(async () => {
    for (const framework of LAYERED_FRAMEWORKS) {
      layered.set(
        framework,
        await startLayeredApp(framework, {
          issuer: as.issuer,
          audience: AUDIENCE,
          publicUrl: AUDIENCE,
          dpop: { nonce: { secret: 'parity-nonce-secret-0123456789abcdef' } },
          clock: () => now,
        }),
      );
    }
  });
  afterAll(async () => {
    for (const app of layered.values()) await app.close();
  });

  const LAYERED_CASES: Case[] = [
    { name: 'three layers, no credentials', request: async () => ({ path: '/api/r/t' }), status: 401 },
    { name: 'three layers, all scopes', request: async () => dpop('/api/r/t', await token({ scope: 'g r t' })), status: 200 },
    { name: 'three layers, the route’s scope missing', request: async () => dpop('/api/r/t', await token({ scope: 'g r' })), status: 403 },
    { name: 'three layers, the router’s scope missing', request: async () => dpop('/api/r/t', await token({ scope: 'g t' })), status: 403 },
    { name: 'two layers, the app-wide scope missing', request: async () => dpop('/api/gt', await token({ scope: 't' })), status: 403 },
    { name: 'two layers, replayed proof', request: async () => dpop('/api/gt', await token({ scope: 'g t' })), times: 2, status: 401 },
    {
      name: 'a strict layer behind a bearer-tolerant one, unbound token',
      request: async () => ({ path: '/mixed/strict', headers: { authorization: `Bearer ${await as.mint({ scope: 'g' })}` } }),
      status: 401,
    },
    { name: 'a later layer requires a nonce', request: async () => dpop('/open/nonce', await token({ scope: 'g' })), status: 401 },
  ];

  it.each(LAYERED_CASES)('$name: answers $status identically on every adapter', async (testCase) => {
    const { path, ...request } = await testCase.request();
    const answers: Record<string, ReturnType<typeof normalise>> = {};
    for (const framework of LAYERED_FRAMEWORKS) {
      const url = `${layered.get(framework)?.url}${path}`;
      let res = await send(url, request);
      for (let i = 1; i < (testCase.times ?? 1); i++) res = await send(url, request);
      answers[framework] = normalise(res);
    }
    expect(answers.express?.status).toBe(testCase.status);
    expect(answers).toEqual(Object.fromEntries(LAYERED_FRAMEWORKS.map((framework) => [framework, answers.express])));
  });
});

/**
 * Issue 25 §3: refusals in RFC 9457 problem+json, and through each framework's own error path to
 * an application handler that writes the team's envelope, tries to answer 200 and drops the
 * challenge headers: the status and the headers the RFCs fix go out unchanged, on every adapter.
 */
describe('parity: refusal formats and the framework error path', () => {
  const problem = new Map<Framework, StartedApp>();
  const framework = new Map<Framework, StartedApp>();
  beforeAll(async () => {
    const options = {
      issuers: [as.issuer, downAs.issuer],
      audience: AUDIENCE,
      publicUrl: AUDIENCE,
      dpop: { nonce: { secret: 'parity-nonce-secret-0123456789abcdef' } },
      clock: () => now,
    };
    for (const name of FRAMEWORKS) {
      problem.set(name, { framework: name, ...(await startRefusalApp(name, options, { errorBody: 'problem' })) });
      framework.set(name, { framework: name, ...(await startRefusalApp(name, options, { errors: 'framework' })) });
    }
  });
  afterAll(async () => {
    for (const app of [...problem.values(), ...framework.values()]) await app.close();
  });

  const REFUSALS = [
    {
      name: 'no credentials',
      request: async () => ({ path: '/accounts' }),
      status: 401,
      headers: { 'www-authenticate': ALGS },
      problem: { type: 'about:blank', title: 'Unauthorized', status: 401, detail: 'An access token is required' },
      envelope: {
        Code: '401',
        Message: 'An access token is required',
        Errors: [{ ErrorCode: 'temporarily_unavailable', Reason: 'credentials_missing' }],
      },
    },
    {
      name: 'nonce required',
      request: async () => dpop('/nonce', await token()),
      status: 401,
      headers: {
        'www-authenticate': dpopChallenge('use_dpop_nonce', 'Resource server requires nonce in DPoP proof'),
        'dpop-nonce': expect.any(String),
      },
      problem: {
        type: 'about:blank',
        title: 'Unauthorized',
        status: 401,
        detail: 'Resource server requires nonce in DPoP proof',
        error: 'use_dpop_nonce',
      },
      envelope: {
        Code: '401',
        Message: 'Resource server requires nonce in DPoP proof',
        Errors: [{ ErrorCode: 'use_dpop_nonce', Reason: 'dpop_nonce_required' }],
      },
    },
    {
      name: 'issuer down',
      request: async () => dpop('/accounts', await downAs.mint({ scope: 'accounts', jkt: client.jkt })),
      status: 503,
      headers: { 'retry-after': expect.stringMatching(/^\d+$/), 'www-authenticate': undefined },
      problem: {
        type: 'about:blank',
        title: 'Service Unavailable',
        status: 503,
        detail: 'The authorization server cannot be reached; try again later',
        error: 'temporarily_unavailable',
      },
      envelope: {
        Code: '503',
        Message: 'The authorization server cannot be reached; try again later',
        Errors: [{ ErrorCode: 'temporarily_unavailable', Reason: 'issuer_unavailable' }],
      },
    },
  ];

  it.each(REFUSALS)('RFC 9457 problem+json, $name: the body is the problem document, status and challenge unchanged', async (testCase) => {
    const { path, ...request } = await testCase.request();
    const answers: Record<string, ReturnType<typeof normalise>> = {};
    for (const name of FRAMEWORKS) answers[name] = normalise(await send(`${problem.get(name)?.url}${path}`, request));
    expect(answers.express?.status).toBe(testCase.status);
    expect(answers.express?.headers).toMatchObject({ ...testCase.headers, 'content-type': 'application/problem+json; charset=utf-8' });
    expect(JSON.parse(answers.express?.body ?? '')).toEqual(testCase.problem);
    expect(answers).toEqual(Object.fromEntries(FRAMEWORKS.map((name) => [name, answers.express])));
  });

  it.each(REFUSALS)(
    'BEARER-03 error handler answering $name with 200 and no challenge: the refusal’s status and headers go out',
    async (testCase) => {
      const { path, ...request } = await testCase.request();
      const answers: Record<string, { status: number; headers: Record<string, unknown>; body: unknown }> = {};
      for (const name of FRAMEWORKS) {
        const res = await send(`${framework.get(name)?.url}${path}`, request);
        // The envelope's media type is the application's (Hono's c.json leaves out the charset).
        const { 'content-type': _type, ...headers } = normalise(res).headers;
        answers[name] = { status: res.status, headers, body: res.json };
      }
      expect(answers.express?.status).toBe(testCase.status);
      expect(answers.express?.headers).toMatchObject(testCase.headers);
      expect(answers.express?.body).toEqual(testCase.envelope);
      expect(answers).toEqual(Object.fromEntries(FRAMEWORKS.map((name) => [name, answers.express])));
    },
  );
});
