/**
 * Issue 24, "not yet attacked": several issuers configured at once. Each issuer's tokens verify
 * only with that issuer's own keys (RFC 8725 §3.8, FAPI 2.0 §5.4.3), whatever `kid` they carry;
 * one issuer's rotation, unknown-`kid` flood or lying discovery document does not move the
 * other's keys, cool-down or cache.
 */
import { MockIssuer } from '@fapi-guard/testing';
import { type RunningApp, startExpressApp } from './support/express-app';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';

let a: MockIssuer;
let b: MockIssuer;
let api: RunningApp;
beforeEach(async () => {
  a = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-of-a' });
  b = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-of-b' });
});
afterEach(async () => {
  await api?.close();
  await a.stop();
  await b.stop();
});

const start = async (cooldownMs: number, clock?: () => number) => {
  api = await startExpressApp({ issuers: [a.issuer, b.issuer], audience: AUDIENCE, keys: { cooldownMs }, ...(clock ? { clock } : {}) });
};
const call = (token: string) => send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${token}` } });
const last = () => api.decisions.at(-1);

describe('III.attack issuers', () => {
  it('III.attack issuers FAPI-RS-21 JWTBCP-06 a token of A signed with B’s key under B’s kid, or under a kid both publish, fails', async () => {
    await start(0);
    expect((await call(await a.mint({ scope: 'accounts' }))).status).toBe(200);
    expect((await call(await b.mint({ scope: 'accounts' }))).status).toBe(200);
    // iss = A, signed by B's key with B's kid: A does not publish that kid.
    expect((await call(await b.mint({ scope: 'accounts', claims: { iss: a.issuer } }))).status).toBe(401);
    expect(last()).toMatchObject({ reason: 'token_key_unknown' });
    // B publishes its key under A's kid too: a token of A with that kid is checked with A's key only.
    const shared = a.publicJwk('ES256').kid as string;
    b.extraKeys = [{ ...b.publicJwk('ES256'), kid: shared }];
    const forged = await b.mint({ scope: 'accounts', claims: { iss: a.issuer }, header: { kid: shared } });
    expect((await call(forged)).status).toBe(401);
    expect(last()).toMatchObject({ reason: 'token_signature' });
    // The same kid in B's own token verifies with B's key (B's set is refetched for the new kid).
    expect((await call(await b.mint({ scope: 'accounts', header: { kid: shared } }))).status).toBe(200);
    expect(last()).toMatchObject({ outcome: 'allow', clientId: 'client-of-b' });
  });

  it('III.attack issuers FAPI-RS-21 a rotation at B during traffic: A is untouched, B’s new key is fetched once, then B’s removed key stops working', async () => {
    await start(0);
    const aToken = await a.mint({ scope: 'accounts' });
    const oldB = await b.mint({ scope: 'accounts' });
    expect((await call(aToken)).status).toBe(200);
    expect((await call(oldB)).status).toBe(200);
    const aFetches = a.requests.jwks;
    await b.rotate({ keepPrevious: false });
    const newB = await b.mint({ scope: 'accounts' });
    // Concurrent requests while B's set is being refetched (started by the first new-kid token).
    const statuses = await Promise.all(Array.from({ length: 24 }, (_, i) => call(i % 2 === 0 ? newB : aToken)));
    expect(statuses.map((r) => r.status)).toEqual(Array(24).fill(200));
    expect(a.requests.jwks).toBe(aFetches);
    expect(b.requests.jwks).toBe(2);
    // The cached verification of the old key's token is redone against B's new set.
    expect((await call(oldB)).status).toBe(401);
    expect(last()).toMatchObject({ reason: 'token_key_unknown' });
    expect((await call(aToken)).status).toBe(200);
  });

  it('III.attack issuers a flood of made-up kids at A spends A’s cool-down only: B’s rotation is still followed', async () => {
    let now = Date.now();
    await start(60_000, () => now);
    expect((await call(await a.mint({ scope: 'accounts' }))).status).toBe(200);
    expect((await call(await b.mint({ scope: 'accounts' }))).status).toBe(200);
    now += 60_001;
    // The first made-up kid costs A one fetch; the rest of the flood, none.
    for (let i = 0; i < 5; i++) expect((await call(await a.mint({ scope: 'accounts', fault: 'unknown-key' }))).status).toBe(401);
    expect(a.requests.jwks).toBe(2);
    // B's own cool-down is not spent: its new kid is fetched at once.
    await b.rotate();
    expect((await call(await b.mint({ scope: 'accounts' }))).status).toBe(200);
    expect(b.requests.jwks).toBe(2);
  });

  it('III.attack issuers DEC-09 A’s discovery answering with B’s document (issuer and jwks_uri of B): A’s tokens get 503, never B’s keys', async () => {
    Object.defineProperty(a, 'metadata', { get: () => b.metadata });
    await start(0);
    // A token that names A, signed with B's key: had B's document been taken for A's, it would pass.
    const forged = await b.mint({ scope: 'accounts', claims: { iss: a.issuer } });
    const res = await call(forged);
    expect(res.status).toBe(503);
    expect(last()).toMatchObject({ reason: 'issuer_unavailable' });
    expect((await call(await a.mint({ scope: 'accounts' }))).status).toBe(503);
    expect((await call(await b.mint({ scope: 'accounts' }))).status).toBe(200);
    expect(a.requests.jwks).toBe(0);
  });

  it('III.attack issuers INTRO-03 the introspecting issuer vouching for a token as B’s (iss of B) is refused, not taken as B’s word', async () => {
    a.introspectionClients.set('rs', 'rs-secret-0123456789');
    a.introspection = { transform: (answer) => ({ ...answer, iss: b.issuer }) };
    api = await startExpressApp({
      issuers: [a.issuer, b.issuer],
      audience: AUDIENCE,
      introspection: {
        issuer: a.issuer,
        clientId: 'rs',
        clientAuth: { method: 'client_secret_basic', clientSecret: 'rs-secret-0123456789' },
      },
    });
    expect((await call(await a.mintOpaque({ scope: 'accounts' }))).status).toBe(401);
    expect(last()).toMatchObject({ reason: 'token_issuer' });
    a.introspection = {};
    expect((await call(await a.mintOpaque({ scope: 'accounts' }))).status).toBe(200);
  });
});
