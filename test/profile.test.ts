/**
 * FAPI profile completeness on Express, Koa and Fastify alike: RFC 9728 resource metadata,
 * RFC 9470 step-up, x-fapi-interaction-id, RFC 9396 authorization details, profiles and
 * compatibility presets.
 */
import { COMPAT_PRESETS, type DecisionEvent, type GuardOptions } from '@fapi-guard/core';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import * as oauth from 'oauth4webapi';
import { FRAMEWORKS, type StartedApp, startApp } from './support/apps';
import { send } from './support/http';

/** The resource identifier is the URL of one route: RFC 9728 §3.3 lets only its challenges name the document. */
const RESOURCE = 'https://rs.example.com/accounts';
const METADATA_URL = 'https://rs.example.com/.well-known/oauth-protected-resource/accounts';
const ALGS = 'DPoP algs="ES256 PS256 EdDSA"';
let as: MockIssuer;
let client: DpopClient;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: RESOURCE });
  client = await DpopClient.create('ES256');
});
afterAll(() => as.stop());

describe.each(FRAMEWORKS)('on %s', (framework) => {
  let app: StartedApp;
  const decisions: DecisionEvent[] = [];
  beforeAll(async () => {
    app = await startApp(framework, {
      issuer: as.issuer,
      audience: RESOURCE,
      publicUrl: 'https://rs.example.com',
      resourceMetadata: { resourceName: 'Example payments API', resourceDocumentation: 'https://rs.example.com/docs' },
      onDecision: (e) => decisions.push(e),
    });
  });
  afterAll(() => app.close());

  const now = () => Math.floor(Date.now() / 1000);
  async function call(path: string, claims: Record<string, unknown> = {}, headers: Record<string, string> = {}, scope = 'accounts') {
    const token = await as.mint({ scope, jkt: client.jkt, claims });
    const proof = await client.proof({ htm: 'GET', htu: `https://rs.example.com${path}`, accessToken: token });
    return send(`${app.url}${path}`, { headers: { authorization: `DPoP ${token}`, dpop: proof, ...headers } });
  }

  describe('RFC 9728 protected resource metadata', () => {
    it('PRM-01 PRM-02 PRM-07 serves the document at the well-known path built from the resource, cacheable', async () => {
      const res = await send(`${app.url}/.well-known/oauth-protected-resource/accounts`);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.headers['cache-control']).toBe('max-age=3600');
      expect(res.json.resource).toBe(RESOURCE);
      expect((await send(`${app.url}/.well-known/oauth-protected-resource`)).status).toBe(404);
    });

    it('PRM-03 PRM-04 lists what the guard enforces and leaves out empty parameters', async () => {
      const { json } = await send(`${app.url}/.well-known/oauth-protected-resource/accounts`);
      expect(json).toEqual({
        resource: RESOURCE,
        authorization_servers: [as.issuer],
        scopes_supported: expect.arrayContaining(['accounts', 'payments:write', 'payments:read']),
        bearer_methods_supported: ['header'],
        dpop_signing_alg_values_supported: ['ES256', 'PS256', 'EdDSA'],
        dpop_bound_access_tokens_required: true,
        authorization_details_types_supported: ['payment_initiation'],
        resource_name: 'Example payments API',
        resource_documentation: 'https://rs.example.com/docs',
      });
      for (const value of Object.values(json)) if (Array.isArray(value)) expect(value.length).toBeGreaterThan(0);
    });

    it('PRM-05 names the document in the challenges to the resource identifier itself, and in no other (RFC 9728 §3.3)', async () => {
      const res = await send(`${app.url}/accounts`);
      expect(res.headers['www-authenticate']).toBe(`${ALGS}, resource_metadata="${METADATA_URL}"`);
      const refused = await call('/accounts', {}, {}, 'other');
      expect(refused.headers['www-authenticate']).toBe(
        `${ALGS}, error="insufficient_scope", error_description="The access token lacks the scope this resource requires", scope="accounts", resource_metadata="${METADATA_URL}"`,
      );
      // A client must discard a document whose resource is not the URL it requested: none is named.
      for (const path of ['/mixed', '/accounts?x=1', '/accounts/', '/stepup']) {
        expect([path, (await send(`${app.url}${path}`)).headers['www-authenticate']]).toEqual([
          path,
          expect.not.stringContaining('resource_metadata'),
        ]);
      }
      expect((await send(`${app.url}/mixed`)).headers['www-authenticate']).toBe(`${ALGS}, Bearer realm="${RESOURCE}"`);
    });

    it('PRM-02 oauth4webapi resource discovery reads and validates the document', async () => {
      const local = new URL(app.url);
      const customFetch = (input: string | URL | Request, init?: RequestInit) => {
        const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
        url.protocol = local.protocol;
        url.host = local.host;
        return fetch(url, init);
      };
      const response = await oauth.resourceDiscoveryRequest(new URL(RESOURCE), { [oauth.customFetch]: customFetch });
      const metadata = await oauth.processResourceDiscoveryResponse(new URL(RESOURCE), response);
      expect(metadata.resource).toBe(RESOURCE);
      expect(metadata.authorization_servers).toEqual([as.issuer]);
      expect(metadata.dpop_bound_access_tokens_required).toBe(true);
    });
  });

  describe('RFC 9470 step-up', () => {
    it('STEP-01 refuses a token whose acr is not one of the route acr values', async () => {
      const res = await call('/stepup', { acr: 'urn:bank:acr:password', auth_time: now() - 10 });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe(
        `${ALGS}, error="insufficient_user_authentication", error_description="A different or more recent user authentication is required", acr_values="urn:bank:acr:sca urn:bank:acr:mfa"`,
      );
    });

    it('STEP-02 asks for a more recent authentication with max_age', async () => {
      const res = await call('/stepup', { acr: 'urn:bank:acr:sca', auth_time: now() - 3600 });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toContain('max_age="300"');
      expect(res.headers['www-authenticate']).not.toContain('acr_values');
    });

    it('STEP-02 names a short scope in the same challenge', async () => {
      const res = await call('/stepup', { acr: 'urn:bank:acr:password', auth_time: now() - 10 }, {}, 'payments:read');
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toContain('scope="accounts"');
    });

    it('STEP-03 accepts acr and auth_time that satisfy the route', async () => {
      expect((await call('/stepup', { acr: 'urn:bank:acr:mfa', auth_time: now() - 60 })).status).toBe(200);
    });

    it('STEP-04 says nothing about step-up before the token itself is valid', async () => {
      const res = await call('/stepup', { acr: 'urn:bank:acr:password', exp: now() - 120 });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
      expect(res.headers['www-authenticate']).not.toContain('acr_values');
    });
  });

  describe('x-fapi-interaction-id', () => {
    const id = 'c770aef3-6784-41f7-8e0e-ff5f97bddb3a';

    it('XFAPI-01 XFAPI-02 echoes a well-formed id on success and error, and logs it', async () => {
      const ok = await call('/accounts', {}, { 'x-fapi-interaction-id': id });
      expect(ok.status).toBe(200);
      expect(ok.headers['x-fapi-interaction-id']).toBe(id);
      expect(decisions.at(-1)?.interactionId).toBe(id);
      const refused = await send(`${app.url}/accounts`, { headers: { 'x-fapi-interaction-id': id } });
      expect(refused.status).toBe(401);
      expect(refused.headers['x-fapi-interaction-id']).toBe(id);
    });

    it('XFAPI-01 issues a new UUID when none was sent', async () => {
      const res = await send(`${app.url}/accounts`);
      expect(res.headers['x-fapi-interaction-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    });

    it('DEC-11 replaces a malformed id with a new UUID and logs both', async () => {
      const res = await call('/accounts', {}, { 'x-fapi-interaction-id': 'not-a-uuid"\u00e9' });
      expect(res.status).toBe(200);
      expect(res.headers['x-fapi-interaction-id']).not.toContain('not-a-uuid');
      // Logged escaped (issue 15 item 12): the quote the client sent arrives as \".
      expect(decisions.at(-1)).toMatchObject({
        interactionId: res.headers['x-fapi-interaction-id'],
        refusedInteractionId: 'not-a-uuid\\"?',
      });
    });

    it('XFAPI-01 a request whose target cannot be trusted is refused with an interaction id too', async () => {
      // An absolute-form request target (RFC 9112 §3.2.2) is not what a client of this API sends.
      const { connect } = await import('node:net');
      const url = new URL(app.url);
      const raw = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(url.port), url.hostname, () => {
          socket.end(
            `GET http://evil.example/accounts HTTP/1.1\r\nHost: evil.example\r\nx-fapi-interaction-id: ${id}\r\nConnection: close\r\n\r\n`,
          );
        });
        let text = '';
        socket.on('data', (d: Buffer) => {
          text += d.toString();
        });
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
      const [head] = raw.split('\r\n\r\n');
      expect(head).toMatch(/^HTTP\/1\.1 400 /);
      expect(head?.toLowerCase()).toContain(`x-fapi-interaction-id: ${id}`);
      expect(raw).toContain('"error":"invalid_request"');
    });

    it('XFAPI-03 XFAPI-04 accepts x-fapi-customer-ip-address and a missing x-fapi-end-user-present', async () => {
      expect((await call('/accounts', {}, { 'x-fapi-customer-ip-address': '2001:db8::1' })).status).toBe(200);
      expect((await call('/accounts', {}, { 'x-fapi-customer-ip-address': '198.51.100.7' })).status).toBe(200);
    });
  });

  describe('RFC 9396 authorization details', () => {
    it('AUD-02 FAPI-RS-07 requires a matching authorization_details entry', async () => {
      const granted = [
        { type: 'payment_initiation', actions: ['initiate', 'status'], instructedAmount: { currency: 'EUR', amount: '10.00' } },
      ];
      expect((await call('/rar', { authorization_details: granted })).status).toBe(200);
      const wrong = await call('/rar', { authorization_details: [{ type: 'account_information', actions: ['read'] }] });
      expect(wrong.status).toBe(403);
      expect(wrong.headers['www-authenticate']).toContain('error="insufficient_scope"');
      expect((await call('/rar', { authorization_details: [{ type: 'payment_initiation', actions: ['status'] }] })).status).toBe(403);
      expect((await call('/rar')).status).toBe(403);
    });
  });
});

describe('profiles and compatibility presets', () => {
  async function withApp(options: Partial<GuardOptions>, run: (app: StartedApp) => Promise<void>) {
    const app = await startApp('express', { issuer: as.issuer, audience: RESOURCE, publicUrl: 'https://rs.example.com', ...options });
    try {
      await run(app);
    } finally {
      await app.close();
    }
  }

  it('JWTAT-10 DEC-03 the oauth2 profile accepts unbound tokens and RS256, without x-fapi-interaction-id', async () => {
    await withApp({ profile: 'oauth2' }, async (app) => {
      const res = await send(`${app.url}/accounts`, {
        headers: { authorization: `Bearer ${await as.mint({ scope: 'accounts', alg: 'RS256' })}` },
      });
      expect(res.status).toBe(200);
      expect(res.headers['x-fapi-interaction-id']).toBeUndefined();
    });
  });

  it('FAPI-RS-15 PRM-03 a published jwks_uri must be https, and appears in the document', async () => {
    await expect(withApp({ resourceMetadata: { jwksUri: 'http://rs.example.com/jwks' } }, async () => undefined)).rejects.toThrow(
      /must use https/,
    );
    await withApp({ resourceMetadata: { jwksUri: 'https://rs.example.com/jwks.json' } }, async (app) => {
      const { json } = await send(`${app.url}/.well-known/oauth-protected-resource/accounts`);
      expect(json.jwks_uri).toBe('https://rs.example.com/jwks.json');
    });
  });

  it('FAPI-RS-09 the default fapi2 profile refuses the same token', async () => {
    await withApp({}, async (app) => {
      const res = await send(`${app.url}/accounts`, { headers: { authorization: `Bearer ${await as.mint({ scope: 'accounts' })}` } });
      expect(res.status).toBe(401);
    });
  });

  it('a compatibility preset accepts typ JWT with the client in azp; without it the token is refused', async () => {
    const token = await as.mint({
      scope: 'accounts',
      alg: 'ES256',
      header: { typ: 'JWT' },
      claims: { client_id: undefined, azp: 'legacy-client' },
    });
    await withApp({ profile: 'oauth2' }, async (app) => {
      expect((await send(`${app.url}/accounts`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
    });
    await withApp({ profile: 'oauth2', compat: COMPAT_PRESETS.keycloak }, async (app) => {
      const res = await send(`${app.url}/accounts`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      expect(res.json.clientId).toBe('legacy-client');
      // A DPoP proof is still never an access token.
      const proof = await as.mint({ scope: 'accounts', fault: 'dpop-typ' });
      expect((await send(`${app.url}/accounts`, { headers: { authorization: `Bearer ${proof}` } })).status).toBe(401);
    });
  });
});
