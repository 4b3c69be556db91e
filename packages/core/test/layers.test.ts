/**
 * Layered protection in the core (issue 25 §1): `authorizeLayer` checks a further layer's policy
 * against the first layer's result — each rule at its edge — and the per-guard mark by request
 * object. Over HTTP on every adapter in test/layers.test.ts.
 */
import {
  type Authorized,
  authorizationOf,
  createGuard,
  type GuardError,
  type GuardRequest,
  type RoutePolicy,
  rememberAuthorization,
} from '@fapi-guard/core';
import { createCertificate, DpopClient, MockIssuer } from '@fapi-guard/testing';

const ISSUER = 'https://as.example.com';
const AUDIENCE = 'https://rs.example.com';
const URL_ = `${AUDIENCE}/accounts`;
const now = 1_900_000_000_000;
const clock = () => now;
let as: MockIssuer;
let dpop: DpopClient;

beforeAll(async () => {
  as = await MockIssuer.create({ issuer: ISSUER, audience: AUDIENCE, clock });
  dpop = await DpopClient.create('ES256', { clock });
});

const guardFor = () =>
  createGuard({
    issuer: { issuer: ISSUER, jwks: as.jwks },
    audience: AUDIENCE,
    publicUrl: AUDIENCE,
    clock,
    dpop: { nonce: { secret: 'core-layers-secret-0123456789abcdef' } },
  });
const lines = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), [v]]));

async function dpopRequest(claims: Record<string, unknown>, nonce?: string): Promise<GuardRequest> {
  const token = await as.mint({ jkt: dpop.jkt, claims });
  const proof = await dpop.proof({ htm: 'GET', htu: URL_, accessToken: token, ...(nonce ? { nonce } : {}) });
  return { method: 'GET', url: URL_, headers: lines({ authorization: `DPoP ${token}`, dpop: proof }) };
}

/** The first layer's result for `request`, and what a further layer with `policy` answers. */
async function layered(request: GuardRequest, first: RoutePolicy, later: RoutePolicy) {
  const guard = guardFor();
  const auth = (await guard.check(request, first)) as Authorized;
  expect(auth.ok).toBe(true);
  const result = await guard.authorizeLayer(auth, request, later);
  return { auth, result, reason: result.ok ? 'ok' : (result as GuardError).reason };
}

describe('authorizeLayer', () => {
  it('FAPI-RS-07 checks the further layer’s scopes and claims; a layer that adds nothing returns the value itself', async () => {
    const request = await dpopRequest({ scope: 'a b', acr: 'urn:sca' });
    const same = await layered(request, { scopes: ['a'] }, { scopes: ['b'], claims: { acr: { equals: 'urn:sca' } } });
    expect(same.result).toBe(same.auth);
    expect((await layered(await dpopRequest({ scope: 'a' }), { scopes: ['a'] }, { scopes: ['b'] })).reason).toBe('scope_insufficient');
    expect((await layered(await dpopRequest({ scope: 'a', acr: 'x' }), {}, { claims: { acr: { equals: 'y' } } })).reason).toBe(
      'claim_check_failed',
    );
    expect((await layered(await dpopRequest({ scope: 'a', acr: 'x' }), {}, { acrValues: ['y'] })).reason).toBe(
      'user_authentication_insufficient',
    );
  });

  it('DPOP-22 a further layer requiring a nonce refuses a proof without one (with a nonce to use), takes one with it', async () => {
    const refused = await layered(await dpopRequest({ scope: 'a' }), {}, { dpopNonce: true });
    expect(refused.reason).toBe('dpop_nonce_required');
    const nonce = (refused.result as GuardError).headers['dpop-nonce'] as string;
    expect((await layered(await dpopRequest({ scope: 'a' }, nonce), {}, { dpopNonce: true })).reason).toBe('ok');
  });

  it('FAPI-RS-08 an unbound token passes only if every layer allows it', async () => {
    const token = await as.mint({ scope: 'a' });
    const request = { method: 'GET', url: URL_, headers: lines({ authorization: `Bearer ${token}` }) };
    expect((await layered(request, { allowBearer: true }, { allowBearer: true })).reason).toBe('ok');
    expect((await layered(request, { allowBearer: true }, {})).reason).toBe('binding_missing');
  });

  it('RFC 8705 §3 the further layer’s clientCertificate rule is applied to the certificate the first layer checked', async () => {
    const certificate = await createCertificate({ subject: 'CN=tpp-1' });
    const token = await as.mint({ scope: 'a', x5t: certificate.x5t });
    const request = { method: 'GET', url: URL_, headers: lines({ authorization: `Bearer ${token}` }), clientCertificate: certificate.der };
    const guard = createGuard({ issuer: { issuer: ISSUER, jwks: as.jwks }, audience: AUDIENCE, publicUrl: AUDIENCE, clock, mtls: true });
    const auth = (await guard.check(request, {})) as Authorized;
    expect(auth.binding).toEqual({ type: 'mtls', x5t: certificate.x5t });
    const thumbprintIs = (x5t: string) => ({ clientCertificate: (c: { thumbprint: string }) => c.thumbprint === x5t });
    expect(await guard.authorizeLayer(auth, request, thumbprintIs(certificate.x5t))).toBe(auth);
    expect(((await guard.authorizeLayer(auth, request, thumbprintIs('other'))) as GuardError).reason).toBe('certificate_not_allowed');
  });

  it('RFC 6750 §2.2: a token in a body parsed after the first layer is refused by a later one', async () => {
    const request = await dpopRequest({ scope: 'a' });
    const guard = guardFor();
    const auth = (await guard.check(request, {})) as Authorized;
    const form = { ...request, headers: { ...request.headers, 'content-type': ['application/x-www-form-urlencoded'] } };
    expect(await guard.authorizeLayer(auth, { ...form, body: { amount: '1' } }, {})).toBe(auth);
    const result = await guard.authorizeLayer(auth, { ...form, body: { access_token: 'x' } }, {});
    expect((result as GuardError).reason).toBe('credentials_ambiguous');
  });

  it('refuses a value this guard did not authorize (another guard’s, or a forged one)', async () => {
    const request = await dpopRequest({ scope: 'a' });
    const auth = (await guardFor().check(request, {})) as Authorized;
    await expect(guardFor().authorizeLayer(auth, request, {})).rejects.toThrow(
      'fapi-guard: authorizeLayer() takes a value this guard authorized',
    );
    await expect(guardFor().authorizeLayer({ ...auth }, request, {})).rejects.toThrow(TypeError);
  });
});

describe('the mark of an authorized request', () => {
  it('is kept per guard and per request object', async () => {
    const [a, b] = [guardFor(), guardFor()];
    const auth = (await a.check(await dpopRequest({ scope: 'a' }), {})) as Authorized;
    const req = {};
    rememberAuthorization(a, req, auth);
    expect(authorizationOf(a, req)).toBe(auth);
    expect(authorizationOf(b, req)).toBeUndefined();
    expect(authorizationOf(a, {})).toBeUndefined();
  });
});
