/**
 * Issue 24, "not yet attacked": the mock issuer of @fapi-guard/testing. A user's tests must not
 * pass against it where a real authorization server would refuse: client assertions and DPoP
 * proofs it accepts must be ones a strict AS accepts, and what the guard itself sends it (the
 * introspection client's `private_key_jwt` assertion) must be what such an AS wants.
 */
import { randomUUID } from 'node:crypto';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { decodeJwt, exportJWK, type GenerateKeyPairResult, generateKeyPair, SignJWT } from 'jose';
import { startExpressApp } from './support/express-app';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';

let as: MockIssuer;
let assertionKey: GenerateKeyPairResult;
beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  assertionKey = await generateKeyPair('ES256', { extractable: true });
  as.introspectionClients.set('rs-jwt', { ...(await exportJWK(assertionKey.publicKey)), alg: 'ES256' });
});
afterAll(() => as.stop());

/** POSTs a form to the mock issuer. */
const post = (path: string, form: Record<string, string>, headers: Record<string, string> = {}) =>
  send(`${as.issuer}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });

describe('III.attack mock-issuer', () => {
  it('III.attack mock-issuer INTRO-01 the guard sends its private_key_jwt assertion with aud = the issuer identifier, a string', async () => {
    const privateKey = await exportJWK(assertionKey.privateKey);
    const api = await startExpressApp({
      issuer: as.issuer,
      audience: AUDIENCE,
      tokenFormat: 'opaque',
      introspection: { clientId: 'rs-jwt', clientAuth: { method: 'private_key_jwt', privateKey } },
    });
    try {
      const token = await as.mintOpaque({ scope: 'accounts' });
      const res = await send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      const assertion = decodeJwt(as.lastIntrospection?.form.client_assertion as string);
      expect(assertion).toMatchObject({ iss: 'rs-jwt', sub: 'rs-jwt', aud: as.issuer });
      expect(typeof assertion.exp).toBe('number');
    } finally {
      await api.close();
    }
  });

  /** A client assertion of `rs-jwt` for the mock's introspection endpoint. */
  const assertion = (aud: string | string[], claims: Record<string, unknown> = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ jti: randomUUID(), ...claims })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer('rs-jwt')
      .setSubject('rs-jwt')
      .setAudience(aud)
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(assertionKey.privateKey);
  };
  const introspect = (clientAssertion: string) =>
    post('/introspect', {
      token: 'unknown',
      client_id: 'rs-jwt',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: clientAssertion,
    });

  it('III.attack mock-issuer the mock refuses client assertions a strict AS refuses: aud not the issuer string, no exp, a replayed jti', async () => {
    const good = await assertion(as.issuer);
    expect((await introspect(good)).status).toBe(200);
    // draft-ietf-oauth-rfc7523bis: the issuer as the sole audience; an array, even naming it, is refused.
    expect((await introspect(await assertion([as.issuer, `${as.issuer}/introspect`]))).status).toBe(401);
    expect((await introspect(await assertion(`${as.issuer}/introspect`))).status).toBe(401);
    // RFC 7523 §3: exp is required; a jti is used once.
    const noExp = await new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer('rs-jwt')
      .setSubject('rs-jwt')
      .setAudience(as.issuer)
      .setIssuedAt()
      .sign(assertionKey.privateKey);
    expect((await introspect(noExp)).status).toBe(401);
    expect((await introspect(good)).status).toBe(401);
  });

  it('III.attack mock-issuer the token endpoint refuses a replayed DPoP proof and one without jti (RFC 9449 §4.3, §11.1), and names the client as sub', async () => {
    const client = await DpopClient.create('ES256');
    const htu = `${as.issuer}/token`;
    const proof = await client.proof({ htm: 'POST', htu });
    const first = await post('/token', { grant_type: 'client_credentials', scope: 'accounts' }, { dpop: proof });
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ token_type: 'DPoP' });
    const replay = await post('/token', { grant_type: 'client_credentials', scope: 'accounts' }, { dpop: proof });
    expect(replay.status).toBe(400);
    expect(replay.json).toMatchObject({ error: 'invalid_dpop_proof' });
    // RFC 9068 §2.2: a client-credentials token's subject is the client, not a made-up user.
    expect(decodeJwt(first.json.access_token as string)).toMatchObject({ sub: 'client-1', client_id: 'client-1' });
    const noJti = await client.proof({ htm: 'POST', htu, fault: 'no-jti' });
    expect((await post('/token', { grant_type: 'client_credentials' }, { dpop: noJti })).status).toBe(400);
  });
});
