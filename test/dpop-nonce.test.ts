/**
 * Security review 15.11: DPoP nonces that are not what the server issued, through real HTTP on
 * Express, Koa and Fastify. A nonce of 32 multi-byte characters (more than 32 bytes) made the
 * constant-time comparison throw, and the request was refused as an internal error without the
 * `use_dpop_nonce` answer a client needs to recover (RFC 9449 §9).
 */
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { closeApps, FRAMEWORKS, type Framework, type StartedApp, startApps } from './support/apps';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
let as: MockIssuer;
let client: DpopClient;
let apps: Map<Framework, StartedApp>;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  client = await DpopClient.create('ES256');
  apps = await startApps({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, dpop: { nonce: { secret: 'n'.repeat(32) } } });
});
afterAll(async () => {
  await closeApps(apps);
  await as.stop();
});

/** `GET path` with a DPoP proof carrying `nonce`. */
async function withNonce(app: StartedApp, path: string, nonce: unknown) {
  const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
  const proof = await client.proof({ htm: 'GET', htu: `${AUDIENCE}${path}`, accessToken: token, claims: { nonce } });
  return send(`${app.url}${path}`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
}

describe.each(FRAMEWORKS)('%s', (framework) => {
  const app = () => apps.get(framework) as StartedApp;

  it.each([
    ['32 two-byte characters', 'é'.repeat(32)],
    ['32 four-byte characters', '😀'.repeat(16)],
    ['16 two-byte characters (32 bytes)', 'é'.repeat(16)],
    ['a NUL and control characters', `\u0000${'\u0001'.repeat(31)}`],
  ])(
    '15.11 multi-byte nonce: %s gets use_dpop_nonce and a fresh nonce, on routes that require one and routes that do not',
    async (_name, nonce) => {
      for (const path of ['/nonce', '/accounts']) {
        const res = await withNonce(app(), path, nonce);
        expect(res.status).toBe(401);
        expect(res.headers['www-authenticate']).toMatch(/^DPoP algs="ES256 PS256 EdDSA", error="use_dpop_nonce"/);
        expect(res.headers['dpop-nonce']).toMatch(/^[A-Za-z0-9_-]{32}$/);
        // The fresh nonce is accepted.
        expect((await withNonce(app(), path, res.headers['dpop-nonce'])).status).toBe(200);
      }
    },
  );

  it('15.11 multi-byte nonce: one that is not even a string gets use_dpop_nonce too', async () => {
    const res = await withNonce(app(), '/accounts', ['é'.repeat(32)]);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^DPoP algs="ES256 PS256 EdDSA", error="use_dpop_nonce"/);
  });
});
