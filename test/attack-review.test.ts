/**
 * Outside review (issue 15 follow-up) through real HTTP on the three adapters: requests that must
 * not get a 2xx. Each test names what it tries; the first two reproduce defects found here.
 */
import { createHash, randomUUID } from 'node:crypto';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { closeApps, FRAMEWORKS, type Framework, type StartedApp, startApps } from './support/apps';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
/** One fixed clock for issuer, client and guards: time boundaries are exact. */
const NOW = Date.now();
const NOW_SEC = Math.floor(NOW / 1000);
/** The guard's default `clockToleranceSec`. */
const TOLERANCE_SEC = 10;
let as: MockIssuer;
let client: DpopClient;
let apps: Map<Framework, StartedApp>;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE, clock: () => NOW });
  client = await DpopClient.create('ES256', { clock: () => NOW });
  apps = await startApps({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, clock: () => NOW });
});
afterAll(async () => {
  await closeApps(apps);
  await as.stop();
});

interface Attempt {
  path: string;
  method?: string;
  /** Proof `htm`. @default method */
  htm?: string;
  /** Extra proof header members. */
  header?: Record<string, unknown>;
  /** Extra access-token claims. */
  claims?: Record<string, unknown>;
}

/** The same DPoP request (fresh token and proof each) to every app: the status by framework. */
async function statuses({ path, method = 'GET', htm = method, header, claims }: Attempt): Promise<Record<string, number>> {
  const answers: Record<string, number> = {};
  for (const framework of FRAMEWORKS) {
    const token = await as.mint({ scope: 'accounts', jkt: client.jkt, claims });
    const dpop = await client.proof({ htm, htu: `${AUDIENCE}${path.split('?', 1)[0]}`, accessToken: token, header });
    const res = await send(`${(apps.get(framework) as StartedApp).url}${path}`, {
      method,
      headers: { authorization: `DPoP ${token}`, dpop },
    });
    answers[framework] = res.status;
  }
  return answers;
}
const everywhere = (status: number) => Object.fromEntries(FRAMEWORKS.map((f) => [f, status]));

describe('review: DPoP proof header', () => {
  it('review: a DPoP proof whose crit lists an extension is refused (RFC 7515 §4.1.11)', async () => {
    // jose signs a crit header only when told the extension is understood.
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = await exportJWK(publicKey);
    const jkt = await calculateJwkThumbprint(jwk);
    const attempt = async (extra: Record<string, unknown>, understood: Record<string, boolean>) => {
      const answers: Record<string, number> = {};
      for (const framework of FRAMEWORKS) {
        const token = await as.mint({ scope: 'accounts', jkt });
        const ath = createHash('sha256').update(token).digest('base64url');
        const dpop = await new SignJWT({ jti: randomUUID(), htm: 'GET', htu: `${AUDIENCE}/accounts`, iat: NOW_SEC, ath })
          .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk, ...extra })
          .sign(privateKey, { crit: understood });
        const res = await send(`${(apps.get(framework) as StartedApp).url}/accounts`, {
          headers: { authorization: `DPoP ${token}`, dpop },
        });
        answers[framework] = res.status;
      }
      return answers;
    };
    expect(await attempt({}, {})).toEqual(everywhere(200));
    expect(
      await attempt({ crit: ['urn:example:must-understand'], 'urn:example:must-understand': 1 }, { 'urn:example:must-understand': true }),
    ).toEqual(everywhere(401));
    // RFC 7797 b64 is an extension this verifier does not implement either.
    expect(await attempt({ crit: ['b64'], b64: true }, {})).toEqual(everywhere(401));
  });
});

describe('review: step-up', () => {
  const stepup = (authTime: number) => statuses({ path: '/stepup', claims: { acr: 'urn:bank:acr:sca', auth_time: authTime } });

  it('review: an auth_time beyond the clock tolerance in the future does not pass maxAuthAgeSec (RFC 9470 §3)', async () => {
    // Boundaries: exactly the tolerance ahead passes, one second more does not; a year ahead never.
    expect(await stepup(NOW_SEC + TOLERANCE_SEC)).toEqual(everywhere(200));
    expect(await stepup(NOW_SEC + TOLERANCE_SEC + 1)).toEqual(everywhere(401));
    expect(await stepup(NOW_SEC + 365 * 86400)).toEqual(everywhere(401));
  });
});

describe('review: methods and targets', () => {
  it('review: HEAD needs a proof for HEAD; a proof for GET is refused', async () => {
    expect(await statuses({ path: '/accounts', method: 'HEAD' })).toEqual(everywhere(200));
    expect(await statuses({ path: '/accounts', method: 'HEAD', htm: 'GET' })).toEqual(everywhere(401));
  });

  it('review: htm is compared case-sensitively (a proof for "get" does not fit GET)', async () => {
    expect(await statuses({ path: '/accounts', htm: 'get' })).toEqual(everywhere(401));
  });

  it('review: OPTIONS on a protected route without credentials is refused, not answered', async () => {
    const answers: Record<string, number> = {};
    for (const framework of FRAMEWORKS) {
      answers[framework] = (await send(`${(apps.get(framework) as StartedApp).url}/accounts`, { method: 'OPTIONS' })).status;
    }
    expect(answers).toEqual(everywhere(401));
  });

  it('review: a 12 kB query leaves htu to the path and is neither a 5xx nor a refusal', async () => {
    expect(await statuses({ path: `/accounts?q=${'x'.repeat(12_000)}` })).toEqual(everywhere(200));
  });
});

describe('review: token claims', () => {
  it('review: a cnf.jkt that is not a string binds nothing (refused with a matching proof)', async () => {
    expect(await statuses({ path: '/accounts', claims: { cnf: { jkt: [client.jkt] } } })).toEqual(everywhere(401));
  });
});
