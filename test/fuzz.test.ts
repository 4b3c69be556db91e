/**
 * Property-based tests (fast-check) through the real HTTP stack of each adapter: arbitrary and
 * mutated Authorization, DPoP and certificate headers. Properties: nothing invalid is accepted,
 * never a 500 or a crash, every 401 carries a well-formed challenge, every answer comes quickly.
 *
 * Fixed seed and a run count that fits CI; a long run: FUZZ_RUNS=5000 npx jest test/fuzz
 */
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import fc from 'fast-check';
import { FRAMEWORKS, type StartedApp, startApp } from './support/apps';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
const SEED = 20261124;
/** A well-formed challenge list: DPoP with algs, optionally Bearer with realm. */
const CHALLENGE =
  /^DPoP algs="ES256 PS256 EdDSA"(, error="[a-z_]+", error_description="[\x20\x21\x23-\x5B\x5D-\x7E]*")?(, Bearer realm="[^"]+"(, error="[a-z_]+", error_description="[\x20\x21\x23-\x5B\x5D-\x7E]*"(, scope="[^"]*")?)?)?$/;

let as: MockIssuer;
let client: DpopClient;
const apps = new Map<string, StartedApp>();
let inputs = 0;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  client = await DpopClient.create('ES256');
  for (const framework of FRAMEWORKS) {
    apps.set(framework, await startApp(framework, { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, interactionId: false }));
  }
});
afterAll(async () => {
  for (const app of apps.values()) await app.close();
  await as.stop();
  // How many hostile inputs went through, reported with TEST_REPORT=1 (npm run test:fuzz sets it).
  if (process.env.TEST_REPORT) process.stdout.write(`fuzz: ${inputs} requests (${RUNS} runs per property, seed ${SEED})\n`);
});

/** Sends to every adapter; checks the properties that hold for any input. */
async function sendAll(path: string, headers: Record<string, string>) {
  const answers = [];
  for (const app of apps.values()) {
    const started = Date.now();
    const res = await send(`${app.url}${path}`, { headers });
    inputs++;
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(2000);
    expect(res.status).not.toBeGreaterThanOrEqual(500);
    if (res.status === 401) expect(res.headers['www-authenticate']).toMatch(CHALLENGE);
    answers.push(res.status);
  }
  return answers;
}

/** Header values Node's client can send (it refuses control characters itself). */
const headerValue = fc.string({ maxLength: 300 }).map((s) => s.replace(/[^\t\x20-\x7e\x80-\xff]/g, ''));

/** One character of `text` replaced, or a slice removed, or text inserted. */
function mutate(text: string) {
  return fc.oneof(
    fc
      .tuple(fc.nat({ max: text.length - 1 }), fc.constantFrom(...'AbZz09-_.=+/ '))
      .map(([i, c]) => text.slice(0, i) + c + text.slice(i + 1)),
    fc.tuple(fc.nat({ max: text.length - 1 }), fc.nat({ max: 40 })).map(([i, n]) => text.slice(0, i) + text.slice(i + n + 1)),
    fc.tuple(fc.nat({ max: text.length }), headerValue).map(([i, s]) => text.slice(0, i) + s + text.slice(i)),
  );
}

describe('fuzz: hostile credentials never pass', () => {
  it('arbitrary Authorization and DPoP headers: no 2xx, no 5xx, well-formed challenges', async () => {
    await fc.assert(
      fc.asyncProperty(headerValue, headerValue, fc.constantFrom('Bearer', 'DPoP', 'dpop', 'Basic', ''), async (token, proof, scheme) => {
        const statuses = await sendAll('/accounts', { authorization: `${scheme} ${token}`.trim(), dpop: proof });
        for (const status of statuses) expect([400, 401, 403]).toContain(status);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it('a valid token and proof, mutated anywhere outside the last signature characters, are refused', async () => {
    const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.nat(), async (mutateToken, salt) => {
        const proof = await client.proof({
          htm: 'GET',
          htu: `${AUDIENCE}/accounts`,
          accessToken: token,
          jti: `fuzz-${salt}-${Math.random()}`,
        });
        // The last characters of a base64url signature carry padding bits: changing them may
        // decode to the same bytes, which is the same, valid signature.
        const target = mutateToken ? token : proof;
        const cut = target.lastIndexOf('.') + Math.floor((target.length - target.lastIndexOf('.')) * 0.9);
        const mutated = fc.sample(mutate(target.slice(0, cut)), { numRuns: 1, seed: salt })[0] as string;
        const candidate = mutated + target.slice(cut);
        if (candidate === target) return;
        const headers = mutateToken
          ? { authorization: `DPoP ${candidate}`, dpop: proof }
          : { authorization: `DPoP ${token}`, dpop: candidate };
        const statuses = await sendAll('/accounts', headers);
        for (const status of statuses) expect(status).not.toBe(200);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it('arbitrary certificate headers never satisfy a certificate-bound token', async () => {
    const token = await as.mint({ scope: 'accounts', x5t: 'x'.repeat(43) });
    await fc.assert(
      fc.asyncProperty(headerValue, async (cert) => {
        const statuses = await sendAll('/mixed', { authorization: `Bearer ${token}`, 'client-cert': cert });
        for (const status of statuses) expect(status).toBe(401);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });
});

describe('fuzz: hostile dependency answers', () => {
  it('arbitrary introspection answers never authorise a request they do not support', async () => {
    const AS = await MockIssuer.start({ audience: AUDIENCE });
    AS.introspectionClients.set('rs', 'rs-secret-0123456789');
    const app = await startApp('express', {
      issuer: AS.issuer,
      audience: AUDIENCE,
      publicUrl: AUDIENCE,
      introspection: { clientId: 'rs', clientAuth: { method: 'client_secret_basic', clientSecret: 'rs-secret-0123456789' }, cache: false },
    });
    try {
      const token = await AS.mintOpaque({ scope: 'accounts' });
      await fc.assert(
        fc.asyncProperty(
          fc.dictionary(fc.constantFrom('active', 'aud', 'iss', 'exp', 'client_id', 'scope', 'cnf', 'token_type', 'nbf'), fc.jsonValue()),
          async (extra) => {
            let answer: Record<string, unknown> = {};
            AS.introspection = {
              transform: (a) => {
                answer = { ...a, ...extra };
                return answer;
              },
            };
            const res = await send(`${app.url}/mixed`, { headers: { authorization: `Bearer ${token}` } });
            inputs++;
            // 503 when the answer is unusable (DEC-09), never another 5xx.
            expect(res.status === 503 || res.status < 500).toBe(true);
            if (res.status === 200) {
              const aud = answer.aud;
              expect(answer.active).toBe(true);
              expect(aud === AUDIENCE || (Array.isArray(aud) && aud.includes(AUDIENCE))).toBe(true);
              expect(answer.iss === undefined || answer.iss === AS.issuer).toBe(true);
              expect(typeof answer.client_id).toBe('string');
              expect(String(answer.scope).split(' ')).toContain('accounts');
              expect(
                answer.cnf === undefined || (answer.cnf !== null && typeof answer.cnf === 'object' && !('jkt' in (answer.cnf as object))),
              ).toBe(true);
            }
          },
        ),
        { numRuns: RUNS, seed: SEED },
      );
    } finally {
      await app.close();
      await AS.stop();
    }
  });

  it('arbitrary JWKS documents: a token signed by a key they do not hold is never accepted', async () => {
    const AS = await MockIssuer.start({ audience: AUDIENCE });
    let document: unknown = AS.jwks;
    const { createServer } = await import('node:http');
    const keys = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(typeof document === 'string' ? document : JSON.stringify(document));
    });
    await new Promise<void>((r) => keys.listen(0, '127.0.0.1', () => r()));
    const jwksUri = `http://127.0.0.1:${(keys.address() as { port: number }).port}/jwks`;
    try {
      const forged = await AS.mint({ scope: 'accounts', fault: 'unknown-key' });
      const kid = JSON.parse(Buffer.from(forged.split('.')[0] as string, 'base64url').toString()).kid;
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.jsonValue(),
            fc.string(),
            fc
              .array(
                fc.dictionary(
                  fc.constantFrom('kty', 'kid', 'crv', 'x', 'y', 'use', 'alg', 'n', 'e'),
                  fc.oneof(fc.string(), fc.constant(kid)),
                ),
                { maxLength: 4 },
              )
              .map((k) => ({ keys: k })),
          ),
          async (doc) => {
            document = doc;
            const app = await startApp('express', {
              issuer: { issuer: AS.issuer, jwksUri },
              audience: AUDIENCE,
              keys: { cooldownMs: 0, timeoutMs: 500 },
            });
            try {
              const res = await send(`${app.url}/mixed`, { headers: { authorization: `Bearer ${forged}` } });
              inputs++;
              expect([401, 503]).toContain(res.status);
            } finally {
              await app.close();
            }
          },
        ),
        { numRuns: Math.min(RUNS, 40), seed: SEED },
      );
    } finally {
      keys.close();
      await AS.stop();
    }
  });
});
