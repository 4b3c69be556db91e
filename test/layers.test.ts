/**
 * Layered protection (issue 25 §1): an app-wide guard plus stricter routers and routes, on every
 * adapter over real HTTP. A request is authenticated — token, binding, DPoP proof and its replay
 * check — once, whatever number of layers it passes; each further layer checks its own policy
 * against that result, so every layer's requirements hold; a layer no earlier one ran before
 * authenticates itself.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DecisionEvent, RoutePolicy, SignedExchangeRecord } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { DpopClient, MessageSigningClient, MockIssuer } from '@fapi-guard/testing';
import express from 'express';
import { Hono } from 'hono';
import { serveHono } from './support/apps';
import { type Received, send } from './support/http';
import {
  BINDING_ROUTES,
  LAYERED_FRAMEWORKS,
  type LayeredApp,
  type LayeredFramework,
  layeredRoutes,
  startLayeredApp,
} from './support/layered-apps';

const AUDIENCE = 'https://rs.example.com';
const ALGS = 'DPoP algs="ES256 PS256 EdDSA"';
/** The DPoP challenge (a bearer-tolerant layer adds a Bearer one after it). */
const dpopChallenge = (params: string) => new RegExp(`^${ALGS}${params}(, Bearer realm="https://rs.example.com")?$`);
const scopeChallenge = (scope: string) =>
  dpopChallenge(
    `, error="insufficient_scope", error_description="The access token lacks the scope this resource requires", scope="${scope}"`,
  );

let as: MockIssuer;
let client: DpopClient;
const apps = new Map<LayeredFramework, LayeredApp>();

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-a' });
  client = await DpopClient.create('ES256');
  for (const framework of LAYERED_FRAMEWORKS) {
    apps.set(
      framework,
      await startLayeredApp(framework, {
        issuer: as.issuer,
        audience: AUDIENCE,
        publicUrl: AUDIENCE,
        dpop: { nonce: { secret: 'layers-nonce-secret-0123456789abcdef' } },
      }),
    );
  }
});
afterAll(async () => {
  for (const app of apps.values()) await app.close();
  await as.stop();
});

async function dpopRequest(path: string, scope: string, nonce?: string) {
  const token = await as.mint({ scope, jkt: client.jkt });
  const proof = await client.proof({ htm: 'GET', htu: `${AUDIENCE}${path}`, accessToken: token, ...(nonce ? { nonce } : {}) });
  return { headers: { authorization: `DPoP ${token}`, dpop: proof } };
}

function appOf(framework: LayeredFramework): LayeredApp {
  const app = apps.get(framework);
  if (!app) throw new Error(`no ${framework} app`);
  return app;
}

/** The decisions `fn` caused on `app`. */
async function decisionsOf(app: LayeredApp, fn: () => Promise<void>): Promise<DecisionEvent[]> {
  const before = app.decisions.length;
  await fn();
  return app.decisions.slice(before);
}

describe.each(LAYERED_FRAMEWORKS)('%s: layered protect()', (framework) => {
  const combinations = layeredRoutes(framework);
  it.each(combinations)(
    'DPOP-23 %s (layers %j): one authentication, every layer checked, the proof refused as a replay once',
    async (path, layers) => {
      const app = appOf(framework);
      const request = await dpopRequest(path, layers.join(' '));
      let first: Received | undefined;
      let replay: Received | undefined;
      const events = await decisionsOf(app, async () => {
        first = await send(`${app.url}${path}`, request);
        replay = await send(`${app.url}${path}`, request);
      });
      expect(first?.status).toBe(200);
      expect(first?.json).toEqual({ clientId: expect.any(String), scopes: [...layers], binding: 'dpop' });
      expect(replay?.status).toBe(401);
      expect(replay?.headers['www-authenticate']).toMatch(
        dpopChallenge(', error="invalid_dpop_proof", error_description="The DPoP proof has already been used"'),
      );
      // One decision per request: the first layer's consent, then the replay refused once.
      expect(events.map((e) => [e.outcome, e.reason])).toEqual([
        ['allow', undefined],
        ['deny', 'dpop_proof_replayed'],
      ]);
    },
  );

  it.each(combinations)(
    'FAPI-RS-07 %s (layers %j): a token lacking any one layer’s scope is refused by that layer',
    async (path, layers) => {
      const app = appOf(framework);
      for (const missing of layers) {
        const granted = layers.filter((scope) => scope !== missing);
        const res = await send(`${app.url}${path}`, await dpopRequest(path, granted.join(' ') || 'other'));
        expect([missing, res.status]).toEqual([missing, 403]);
        expect(res.headers['www-authenticate']).toMatch(scopeChallenge(missing));
      }
    },
  );

  it.each(combinations)('a layer reached first authenticates: %s without credentials is 401', async (path) => {
    const res = await send(`${appOf(framework).url}${path}`);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(dpopChallenge(''));
  });

  it('FAPI-RS-08 an unbound token passes a bearer-tolerant layer but not a strict one behind it', async () => {
    const app = appOf(framework);
    const bearer = { headers: { authorization: `Bearer ${await as.mint({ scope: 'g accounts' })}` } };
    expect((await send(`${app.url}${BINDING_ROUTES.tolerant}`, bearer)).status).toBe(200);
    const strict = await send(`${app.url}${BINDING_ROUTES.strict}`, bearer);
    expect(strict.status).toBe(401);
    expect(strict.headers['www-authenticate']).toBe(
      `${ALGS}, Bearer realm="https://rs.example.com", error="invalid_token", error_description="A sender-constrained access token is required"`,
    );
  });

  it('DPOP-22 a later layer that requires a nonce asks for one, and takes the retried proof', async () => {
    const app = appOf(framework);
    const path = BINDING_ROUTES.nonce;
    const first = await send(`${app.url}${path}`, await dpopRequest(path, 'g accounts'));
    expect(first.status).toBe(401);
    expect(first.headers['www-authenticate']).toBe(
      `${ALGS}, error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`,
    );
    const nonce = first.headers['dpop-nonce'] as string;
    expect(nonce).toMatch(/^[!#-[\]-~]+$/);
    const retried = await send(`${app.url}${path}`, await dpopRequest(path, 'g accounts', nonce));
    expect(retried.status).toBe(200);
  });
});

/**
 * A later layer that asks for what the first did not check — a request signature, a signed
 * response — gets it checked there (FAPI 2.0 Message Signing), on the Node path (Express) and the
 * Fetch path (Hono); a third layer after it does not sign the response again.
 */
describe.each(['express', 'hono'] as const)('%s: a signing layer behind an app-wide one', (framework) => {
  const signer = MessageSigningClient.generate('ed25519', 'layer-key');
  const PAY: RoutePolicy = { scopes: ['payments:write'], signedRequest: 'required', signResponse: true };
  let app: { url: string; close(): Promise<void> };
  const records: SignedExchangeRecord[] = [];
  beforeAll(async () => {
    const options = {
      issuer: as.issuer,
      audience: AUDIENCE,
      publicUrl: AUDIENCE,
      interactionId: false,
      messageSigning: {
        clients: { 'client-a': { jwks: signer.jwks } },
        responseKey: MessageSigningClient.generate('ed25519', 'rs').privateJwk,
        onSignedExchange: (record: SignedExchangeRecord) => void records.push(record),
      },
    };
    if (framework === 'express') {
      const fapi = expressGuard(options);
      const server = express();
      server.use(fapi.protect());
      server.post(
        '/pay',
        fapi.protect(PAY),
        fapi.requireScopes('payments:write'),
        express.json(),
        (req, res) => void res.status(201).json({ amount: (req.body as { amount?: string }).amount, signed: req.auth?.signature?.keyid }),
      );
      app = await listenExpress(server);
    } else {
      const fapi = honoGuard(options);
      const server = new Hono();
      server.use('*', fapi.protect());
      server.post('/pay', fapi.protect(PAY), fapi.requireScopes('payments:write'), async (c) =>
        c.json({ amount: (await c.req.json()).amount, signed: c.get('auth').signature?.keyid }, 201),
      );
      app = await serveHono(server);
    }
  });
  afterAll(() => app.close());

  async function payment(signed: boolean) {
    const token = await as.mint({ scope: 'payments:write', jkt: client.jkt });
    const htu = `${AUDIENCE}/pay`;
    const body = '{"amount":"10.00"}';
    const headers: Record<string, string> = {
      authorization: `DPoP ${token}`,
      dpop: await client.proof({ htm: 'POST', htu, accessToken: token }),
      'content-type': 'application/json',
    };
    return {
      method: 'POST',
      body,
      headers: signed ? { ...headers, ...signer.sign({ method: 'POST', url: htu, headers, body }) } : headers,
    };
  }

  it('SIG-03 an unsigned request passes the app-wide layer and is refused by the signing one', async () => {
    const res = await send(`${app.url}/pay`, await payment(false));
    expect(res.status).toBe(401);
    expect(res.headers['accept-signature']).toBeDefined();
  });

  it('SIG-10 a signed request is checked by the later layer; the response is signed once', async () => {
    records.length = 0;
    const res = await send(`${app.url}/pay`, await payment(true));
    expect(res.status).toBe(201);
    expect(res.json).toEqual({ amount: '10.00', signed: 'layer-key' });
    // One response signature, over the request's one (RFC 9421 §4.1: a dictionary of labels).
    expect(String(res.headers['signature-input']).match(/tag="fapi-2-response"/g)).toHaveLength(1);
    expect(res.headers.signature).toMatch(/^sig1=:[A-Za-z0-9+/=]+:$/);
    // The audit hook: the request once, the response once.
    expect(records.map((r) => r.direction)).toEqual(['request', 'response']);
  });
});

async function listenExpress(app: express.Express): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
