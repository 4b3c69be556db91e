/**
 * A fresh-eyes attacker against the open-banking regimes (issue 29 "Done when"), over real HTTP:
 * tampered bodies, header smuggling, `crit` games, alg and scheme confusion between the UK Open
 * Banking detached JWS, the Open Finance Brasil signed body and FAPI 2.0 message signatures,
 * replays, profile downgrades, and route-level signing requirements behind an app-wide protect().
 */
import { createHmac, generateKeyPairSync, type KeyObject, randomUUID, sign } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import type { GuardOptions } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { RedisReplayStore } from '@fapi-guard/redis';
import { clientCertHeader, createCertificate, DpopClient, MockIssuer, type TestCertificate } from '@fapi-guard/testing';
import express from 'express';
import { Hono } from 'hono';
import { Redis } from 'ioredis';
import { FlattenedSign, SignJWT } from 'jose';
import { FRAMEWORKS, ROUTES, type StartedApp, serveHono, startApp } from './support/apps';
import { send } from './support/http';
import { TestRedis } from './support/redis';

const AUDIENCE = 'https://rs.example.com';
const IAT = 'http://openbanking.org.uk/iat';
const ISS = 'http://openbanking.org.uk/iss';
const TAN = 'http://openbanking.org.uk/tan';
const CRIT = { [IAT]: true, [ISS]: true, [TAN]: true };
const TPP = '0015800001041RHAAY/2kiXQyo0tedjW2somjSgH7';
const OTHER_TPP = '0015800001041RHAAY/otherSoftwareStatement';
const BANK = '0015800000jf9GgAAI';
const CLIENT_ORG = 'c2a8ea4b-19e3-4de9-a0a2-36e6c3bdbf0f';
const OTHER_ORG = '74e929d9-33b6-4d85-8ba7-c146c867a817';
const BANK_ORG = 'b961c4eb-509d-4edf-afeb-35642b38185d';
const LEGACY = 'legacy-tpp';

const tppKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const attackerKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const bankKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const publicJwk = (key: { publicKey: KeyObject }, kid: string) => ({
  ...(key.publicKey.export({ format: 'jwk' }) as object),
  kid,
  use: 'sig',
});

let as: MockIssuer;
let dpop: DpopClient;
let legacyCert: TestCertificate;
let keyStore: Server;
let keyStoreUrl: string;
/** Every path asked of the key store: keys come from the configured anchor only, never from a header. */
const fetched: string[] = [];

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  dpop = await DpopClient.create('ES256');
  legacyCert = await createCertificate({ subject: 'CN=legacy-tpp' });
  keyStore = createServer((req, res) => {
    fetched.push(req.url ?? '');
    const sets: Record<string, object> = {
      [`/ob/${TPP}.jwks`]: { keys: [publicJwk(tppKey, 'tpp-key')] },
      [`/ob/${OTHER_TPP}.jwks`]: { keys: [publicJwk(otherKey, 'other-key')] },
      '/br/client.jwks': { keys: [publicJwk(tppKey, 'client-key')] },
      '/br/other.jwks': { keys: [publicJwk(otherKey, 'other-key')] },
      '/attacker.jwks': { keys: [publicJwk(attackerKey, 'tpp-key')] },
    };
    const set = sets[req.url ?? ''];
    res.writeHead(set ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(set ?? {}));
  });
  await new Promise<void>((resolve) => keyStore.listen(0, '127.0.0.1', resolve));
  keyStoreUrl = `http://127.0.0.1:${(keyStore.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await as.stop();
  await new Promise((resolve) => keyStore.close(resolve));
});

const options = (version: '3.1.3' | '3.1.4' = '3.1.4'): GuardOptions => ({
  issuer: as.issuer,
  audience: AUDIENCE,
  mtls: { proxy: { trustedPeers: ['127.0.0.1', '::1'] } },
  clientProfiles: { clients: { [LEGACY]: 'fapi1-advanced' }, claim: 'fapi_profile' },
  messageSigning: {
    clients: {},
    responseKey: {
      ...(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }) as object),
      kid: 'fapi2-key',
    },
    ukOpenBanking: {
      version,
      trustAnchors: { 'openbanking.org.uk': `${keyStoreUrl}/ob/{iss}.jwks`, 'other-anchor.example': `${keyStoreUrl}/ob2/{iss}.jwks` },
      clients: { 'client-1': TPP, 'client-2': OTHER_TPP },
      responseKey: { ...(bankKey.privateKey.export({ format: 'jwk' }) as object), kid: 'bank-key' },
      responseIssuer: BANK,
      responseTrustAnchor: 'openbanking.org.uk',
    },
    openFinanceBrasil: {
      clients: {
        'client-1': { organisationId: CLIENT_ORG, jwksUri: `${keyStoreUrl}/br/client.jwks` },
        'client-2': { organisationId: OTHER_ORG, jwksUri: `${keyStoreUrl}/br/other.jwks` },
      },
      organisationId: BANK_ORG,
      responseKey: { ...(bankKey.privateKey.export({ format: 'jwk' }) as object), kid: 'bank-key' },
    },
  },
});

const body =
  '{"Data":{"Initiation":{"InstructionIdentification":"ACME412","InstructedAmount":{"Amount":"165.88","Currency":"GBP"}},"Creditor":"Zoë"},"Risk":{}}';
const b64u = (value: string | Buffer) => Buffer.from(value).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** The OB header a client sends (v3.1.4), before an attacker edits it. */
const obHeader = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  alg: 'PS256',
  kid: 'tpp-key',
  [IAT]: now(),
  [ISS]: TPP,
  [TAN]: 'openbanking.org.uk',
  crit: [IAT, ISS, TAN],
  ...extra,
});

/** Signs a detached JWS by hand, so headers jose would refuse to produce can be sent. */
function rawSignature(header: Record<string, unknown>, signed: string, key: KeyObject = tppKey.privateKey, encode = true): string {
  const protectedHeader = b64u(JSON.stringify(header));
  const input = `${protectedHeader}.${encode ? b64u(signed) : signed}`;
  const alg = header.alg;
  const signature =
    alg === 'RS256' ? sign('sha256', Buffer.from(input), key) : sign('sha256', Buffer.from(input), { key, padding: 6, saltLength: 32 });
  return `${protectedHeader}..${b64u(signature)}`;
}

/** jose as an independent signer (flattened JWS, detached payload). */
async function obSignature(signed: string, extra: Record<string, unknown> = {}, key = tppKey.privateKey): Promise<string> {
  const jws = await new FlattenedSign(new TextEncoder().encode(signed))
    .setProtectedHeader(obHeader(extra) as never)
    .sign(key, { crit: CRIT });
  return `${jws.protected}..${jws.signature}`;
}

const OB_ROUTES = { ...ROUTES, payments: { scopes: ['payments:write'], jwsSignature: { request: 'required', response: true } } } as const;
const BR_ROUTES = { ...ROUTES, payments: { scopes: ['payments:write'], jwtBody: { request: 'required', response: true } } } as const;

const errorCode = (res: { json: Record<string, unknown> }) => (res.json.Errors as { ErrorCode: string }[] | undefined)?.[0]?.ErrorCode;

describe.each(FRAMEWORKS)('regimes attack: UK Open Banking x-jws-signature on %s', (framework) => {
  let app: StartedApp;
  beforeAll(async () => {
    app = await startApp(framework, options(), OB_ROUTES);
  });
  afterAll(() => app.close());

  async function pay(
    sent: string | Buffer | undefined,
    signature: string | string[] | undefined,
    headers: Record<string, string> = {},
    clientId = 'client-1',
    chunks?: Buffer[],
  ) {
    const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: clientId } });
    const proof = await dpop.proof({ htm: 'POST', htu: `${AUDIENCE}/payments`, accessToken: token });
    return send(`${app.url}/payments`, {
      method: 'POST',
      ...(chunks ? { chunks } : { body: sent }),
      headers: {
        authorization: `DPoP ${token}`,
        dpop: proof,
        'content-type': 'application/json',
        ...(signature === undefined ? {} : { 'x-jws-signature': signature }),
        ...headers,
      },
    });
  }

  it('UKOB-02 regimes attack: one byte, trailing whitespace, reordered JSON, a second JSON value, NFD for NFC — all refused', async () => {
    const signature = await obSignature(body);
    const reordered = JSON.stringify({ Risk: {}, Data: JSON.parse(body).Data });
    for (const tampered of [
      body.replace('165.88', '165.89'),
      `${body} `,
      `${body}\n`,
      ` ${body}`,
      reordered,
      `${body}{"Data":{}}`,
      body.normalize('NFD'),
    ]) {
      expect(tampered).not.toBe(body);
      const res = await pay(tampered, signature);
      expect(res.status).toBe(400);
      expect(res.headers['x-jws-signature']).toBeUndefined();
    }
    // The control: the exact bytes pass, also sent in chunks (Transfer-Encoding: chunked).
    expect((await pay(body, signature)).status).toBe(201);
    const bytes = Buffer.from(body);
    expect((await pay(undefined, await obSignature(body), {}, 'client-1', [bytes.subarray(0, 7), bytes.subarray(7)])).status).toBe(201);
    const chunkedTamper = [bytes.subarray(0, 7), Buffer.from(body.slice(7).replace('165.88', '999.99'))];
    expect((await pay(undefined, await obSignature(body), {}, 'client-1', chunkedTamper)).status).toBe(400);
  });

  it('UKOB-02 regimes attack: a gzip body is judged on the bytes received, never on a signature over something else', async () => {
    const zipped = gzipSync(Buffer.from(body));
    // Signed over the plain JSON, sent gzipped: the bytes that came are not what was signed.
    const overPlain = await pay(zipped, await obSignature(body), { 'content-encoding': 'gzip' });
    expect(overPlain.status).toBeGreaterThanOrEqual(400);
    expect(overPlain.status).toBeLessThan(500);
  });

  it('UKOB-09 regimes attack: comma-joined signatures, a signature with a second one folded into it, and a blank one', async () => {
    const good = await obSignature(body);
    for (const smuggled of [`${good}, ${good}`, `${good},${good}`, `${good} ${good}`, '', ' , ']) {
      const res = await pay(body, smuggled);
      expect(res.status).toBe(400);
      expect(errorCode(res)).toMatch(/^UK\.OBIE\.Signature\.(Malformed|Missing)$/);
    }
    // Two lines, the first a valid one: never "the first wins".
    expect(errorCode(await pay(body, [good, 'x..y']))).toBe('UK.OBIE.Signature.Malformed');
  });

  it('UKOB-05 UKOB-06 regimes attack: crit missing, duplicated, extended, not a list; b64 in a v3.1.4 signature', async () => {
    const signed = (header: Record<string, unknown>) => pay(body, rawSignature(header, body));
    // Control: the hand-made signer is right.
    expect((await signed(obHeader())).status).toBe(201);
    const cases: Record<string, unknown>[] = [
      obHeader({ crit: undefined }),
      obHeader({ crit: [IAT, ISS] }),
      obHeader({ crit: [IAT, ISS, ISS] }),
      obHeader({ crit: [IAT, ISS, TAN, TAN] }),
      obHeader({ crit: [IAT, ISS, TAN, 'http://openbanking.org.uk/unknown'], 'http://openbanking.org.uk/unknown': 1 }),
      obHeader({ crit: `${IAT},${ISS},${TAN}` }),
      obHeader({ crit: { 0: IAT, 1: ISS, 2: TAN, length: 3 } }),
      obHeader({ crit: [IAT, ISS, TAN, 'b64'], b64: true }),
      obHeader({ b64: true }),
      obHeader({ b64: 'false' }),
      obHeader({ crit: [], [IAT]: undefined }),
      obHeader({ [IAT]: String(now()) }),
      obHeader({ [TAN]: ['openbanking.org.uk'] }),
      obHeader({ [ISS]: [TPP] }),
    ];
    for (const header of cases) {
      const res = await signed(header);
      expect([res.status, errorCode(res)]).toEqual([400, expect.stringMatching(/^UK\.OBIE\.Signature\.(MissingClaim|InvalidClaim)$/)]);
    }
  });

  it('UKOB-05 regimes attack: alg none, HS256 keyed with the public key, RS256 with the right key, all refused', async () => {
    const none = `${b64u(JSON.stringify(obHeader({ alg: 'none' })))}..`;
    const pem = tppKey.publicKey.export({ format: 'pem', type: 'spki' }) as string;
    const hsHeader = b64u(JSON.stringify(obHeader({ alg: 'HS256' })));
    const hs256 = `${hsHeader}..${b64u(
      createHmac('sha256', pem)
        .update(`${hsHeader}.${b64u(body)}`)
        .digest(),
    )}`;
    const rs256 = rawSignature(obHeader({ alg: 'RS256' }), body);
    for (const forged of [none, hs256, rs256]) {
      const res = await pay(body, forged);
      expect(res.status).toBe(400);
      expect(errorCode(res)).toMatch(/^UK\.OBIE\.Signature\.(Malformed|InvalidClaim)$/);
    }
  });

  it('UKOB-10 regimes attack: jku, x5u and jwk in the header are never used to find a key', async () => {
    const before = fetched.length;
    const attackerJwk = publicJwk(attackerKey, 'tpp-key');
    for (const extra of [{ jku: `${keyStoreUrl}/attacker.jwks` }, { x5u: `${keyStoreUrl}/attacker.pem` }, { jwk: attackerJwk }]) {
      const res = await pay(body, rawSignature(obHeader(extra), body, attackerKey.privateKey));
      expect(res.status).toBe(400);
      expect(errorCode(res)).toBe('UK.OBIE.Signature.Invalid');
    }
    expect(fetched.slice(before).filter((path) => path.includes('attacker'))).toEqual([]);
  });

  it('UKOB-04 regimes attack: a kid with path traversal, or naming another signer’s key, or another trust anchor', async () => {
    const before = fetched.length;
    for (const kid of [`../${OTHER_TPP}.jwks#other-key`, '../../attacker', 'other-key']) {
      const res = await pay(body, rawSignature(obHeader({ kid }), body, otherKey.privateKey));
      expect([res.status, errorCode(res)]).toEqual([400, 'UK.OBIE.Signature.Invalid']);
    }
    // Another configured anchor names the same iss: its key set (not served here) is all that counts.
    const elsewhere = await pay(body, rawSignature(obHeader({ [TAN]: 'other-anchor.example' }), body));
    expect(elsewhere.status).toBeGreaterThanOrEqual(400);
    expect(elsewhere.status).not.toBe(201);
    // The key store was only ever asked for key sets by configured URL templates.
    for (const path of fetched.slice(before)) expect(path).toMatch(/^\/ob2?\/0015800001041RHAAY\/[A-Za-z0-9]+\.jwks$/);
  });

  it('UKOB-04 regimes attack: scheme confusion — a Brazil JWT, a FAPI 2.0 signature, the bank’s own response signature', async () => {
    const brJwt = await new SignJWT({ aud: `${AUDIENCE}/payments`, iss: CLIENT_ORG, iat: now(), jti: randomUUID(), data: {} })
      .setProtectedHeader({ alg: 'PS256', typ: 'JWT', kid: 'tpp-key' })
      .sign(tppKey.privateKey);
    const [h, , s] = brJwt.split('.');
    expect((await pay(body, brJwt)).status).toBe(400);
    expect((await pay(body, `${h}..${s}`)).status).toBe(400);
    expect((await pay(body, 'sig1=:AAAA:')).status).toBe(400);
    // The bank's signature of its last response, replayed as a request signature over that response.
    const answered = await pay(body, await obSignature(body));
    expect(answered.status).toBe(201);
    const replay = await pay(answered.text, answered.headers['x-jws-signature'] as string);
    expect([replay.status, errorCode(replay)]).toEqual([400, 'UK.OBIE.Signature.InvalidClaim']);
    // A signature whose iss names another client, by that client, with this client's token.
    const other = await pay(body, await obSignature(body, { kid: 'other-key', [ISS]: OTHER_TPP }, otherKey.privateKey));
    expect([other.status, errorCode(other)]).toEqual([400, 'UK.OBIE.Signature.InvalidClaim']);
  });
});

describe.each(['express', 'hono'] as const)('regimes attack: UK Open Banking v3.1.3 b64 games on %s', (framework) => {
  let app: StartedApp;
  beforeAll(async () => {
    app = await startApp(framework, options('3.1.3'), OB_ROUTES);
  });
  afterAll(() => app.close());

  const pay = async (signature: string) => {
    const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: 'client-1' } });
    const proof = await dpop.proof({ htm: 'POST', htu: `${AUDIENCE}/payments`, accessToken: token });
    return send(`${app.url}/payments`, {
      method: 'POST',
      body,
      headers: { authorization: `DPoP ${token}`, dpop: proof, 'content-type': 'application/json', 'x-jws-signature': signature },
    });
  };
  const v313 = (extra: Record<string, unknown> = {}) => obHeader({ b64: false, crit: ['b64', IAT, ISS, TAN], ...extra });

  it('UKOB-06 regimes attack: b64 absent, true, "false", 0, or not in crit; an encoded payload under b64 false', async () => {
    expect((await pay(rawSignature(v313(), body, tppKey.privateKey, false))).status).toBe(201);
    for (const header of [
      v313({ b64: undefined }),
      v313({ b64: true }),
      v313({ b64: 'false' }),
      v313({ b64: 0 }),
      v313({ b64: null }),
      v313({ crit: [IAT, ISS, TAN] }),
      v313({ crit: ['b64', 'b64', IAT, ISS] }),
    ]) {
      const res = await pay(rawSignature(header, body, tppKey.privateKey, header.b64 !== false));
      expect([res.status, errorCode(res)]).toEqual([400, expect.stringMatching(/^UK\.OBIE\.Signature\.(MissingClaim|InvalidClaim)$/)]);
    }
    // b64 false announced, the payload base64url-encoded in the signing input: not what was received.
    const encoded = await pay(rawSignature(v313(), body, tppKey.privateKey, true));
    expect([encoded.status, errorCode(encoded)]).toEqual([400, 'UK.OBIE.Signature.Invalid']);
  });
});

describe.each(FRAMEWORKS)('regimes attack: Open Finance Brasil signed bodies on %s', (framework) => {
  let app: StartedApp;
  beforeAll(async () => {
    app = await startApp(framework, options(), BR_ROUTES);
  });
  afterAll(() => app.close());

  const pay = async (sent: string, clientId = 'client-1') => {
    const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: clientId } });
    const proof = await dpop.proof({ htm: 'POST', htu: `${AUDIENCE}/payments`, accessToken: token });
    return send(`${app.url}/payments`, {
      method: 'POST',
      body: sent,
      headers: { authorization: `DPoP ${token}`, dpop: proof, 'content-type': 'application/jwt' },
    });
  };
  const claims = (extra: Record<string, unknown> = {}) => ({
    aud: `${AUDIENCE}/payments`,
    iss: CLIENT_ORG,
    iat: now(),
    jti: randomUUID(),
    data: { amount: '100.00' },
    ...extra,
  });
  const compact = (header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject = tppKey.privateKey) => {
    const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
    const alg = header.alg;
    const signature =
      alg === 'RS256' ? sign('sha256', Buffer.from(input), key) : sign('sha256', Buffer.from(input), { key, padding: 6, saltLength: 32 });
    return `${input}.${b64u(signature)}`;
  };
  const HEADER = { alg: 'PS256', typ: 'JWT', kid: 'client-key' };

  it('BR-05 regimes attack: alg none, HS256 keyed with the public key, RS256, jku/jwk with an attacker key, crit', async () => {
    expect((await pay(compact(HEADER, claims()))).status).toBe(201);
    const pem = tppKey.publicKey.export({ format: 'pem', type: 'spki' }) as string;
    const hsInput = `${b64u(JSON.stringify({ ...HEADER, alg: 'HS256' }))}.${b64u(JSON.stringify(claims()))}`;
    const before = fetched.length;
    for (const forged of [
      `${b64u(JSON.stringify({ ...HEADER, alg: 'none' }))}.${b64u(JSON.stringify(claims()))}.`,
      `${hsInput}.${b64u(createHmac('sha256', pem).update(hsInput).digest())}`,
      compact({ ...HEADER, alg: 'RS256' }, claims()),
      compact({ ...HEADER, jku: `${keyStoreUrl}/attacker.jwks` }, claims(), attackerKey.privateKey),
      compact({ ...HEADER, jwk: publicJwk(attackerKey, 'client-key') }, claims(), attackerKey.privateKey),
      compact({ ...HEADER, crit: ['exp'] }, claims()),
      compact({ ...HEADER, kid: '../other.jwks#other-key' }, claims(), otherKey.privateKey),
    ]) {
      const res = await pay(forged);
      expect(res.status).toBe(400);
    }
    expect(fetched.slice(before).filter((path) => path.includes('attacker') || path.includes('other'))).toEqual([]);
  });

  it('BR-02 regimes attack: scheme confusion — an OB detached JWS, the bank’s signed answer replayed, another client’s body', async () => {
    expect((await pay(await obSignature(body))).status).toBe(400);
    // The bank's signed answer to client-1 (aud the client's organisation, iss the bank's) sent back as a request.
    const answered = await pay(compact(HEADER, claims()));
    expect(answered.status).toBe(201);
    expect((await pay(answered.text)).status).toBe(400);
    // client-2's own valid body, presented with client-1's token, and client-1's with client-2's.
    const theirs = compact({ ...HEADER, kid: 'other-key' }, claims({ iss: OTHER_ORG }), otherKey.privateKey);
    expect((await pay(theirs, 'client-1')).status).toBe(400);
    expect((await pay(compact(HEADER, claims()), 'client-2')).status).toBe(400);
    // A signed body with trailing bytes after the signature, or two JWTs joined.
    const good = compact(HEADER, claims());
    expect((await pay(`${good}.${good}`)).status).toBe(400);
    expect((await pay(`${good}x`)).status).toBe(400);
  });

  it('BR-04 regimes attack: a jti replayed, a jti replayed after the iat window, and the same jti in a new body', async () => {
    const jti = randomUUID();
    const first = compact(HEADER, claims({ jti }));
    expect((await pay(first)).status).toBe(201);
    expect((await pay(first)).status).toBe(400);
    expect((await pay(compact(HEADER, claims({ jti, data: { amount: '1.00' } })))).status).toBe(400);
    expect((await pay(compact(HEADER, claims({ jti: randomUUID(), iat: now() - 3600 })))).status).toBe(400);
  });
});

/**
 * App-wide protect() before route-level protect() with a signing scheme or a profile limit, on
 * Express and Hono: the route's requirement is verified, not assumed from the first layer.
 */
async function layeredExpress(): Promise<{ url: string; close(): Promise<void> }> {
  const fapi = expressGuard(options());
  const app = express();
  app.use(fapi.rawBody());
  app.use(fapi.protect());
  app.use(express.json());
  app.post('/ob', fapi.protect({ jwsSignature: { request: 'required' } }), (req, res) => void res.status(201).json({ body: req.body }));
  app.post(
    '/br',
    fapi.protect({ jwtBody: { request: 'required' } }),
    (req, res) => void res.status(201).json({ data: req.auth?.jwtBody?.data }),
  );
  app.get('/fapi2', fapi.protect({ profiles: ['fapi2'] }), (req, res) => void res.json({ profile: req.auth?.profile }));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function layeredHono(): Promise<{ url: string; close(): Promise<void> }> {
  const fapi = honoGuard(options());
  const app = new Hono();
  app.use('*', fapi.protect());
  app.post('/ob', fapi.protect({ jwsSignature: { request: 'required' } }), async (c) => c.json({ body: await c.req.json() }, 201));
  app.post('/br', fapi.protect({ jwtBody: { request: 'required' } }), (c) => c.json({ data: c.get('auth').jwtBody?.data }, 201));
  app.get('/fapi2', fapi.protect({ profiles: ['fapi2'] }), (c) => c.json({ profile: c.get('auth').profile }));
  return serveHono(app);
}

describe.each([
  ['express', layeredExpress],
  ['hono', layeredHono],
] as const)('regimes attack: route-level signing behind an app-wide protect() on %s', (_framework, start) => {
  let app: { url: string; close(): Promise<void> };
  beforeAll(async () => {
    app = await start();
  });
  afterAll(() => app.close());

  const post = async (path: string, sent: string, contentType: string, headers: Record<string, string> = {}) => {
    const token = await as.mint({ jkt: dpop.jkt, claims: { client_id: 'client-1' } });
    const proof = await dpop.proof({ htm: 'POST', htu: `${AUDIENCE}${path}`, accessToken: token });
    return send(`${app.url}${path}`, {
      method: 'POST',
      body: sent,
      headers: { authorization: `DPoP ${token}`, dpop: proof, 'content-type': contentType, ...headers },
    });
  };

  it('UKOB-02 regimes attack: the route’s x-jws-signature is required and verified over the body behind protect()', async () => {
    const signature = await obSignature(body);
    const good = await post('/ob', body, 'application/json', { 'x-jws-signature': signature });
    expect(good.status).toBe(201);
    expect(good.json.body).toEqual(JSON.parse(body));
    expect(errorCode(await post('/ob', body, 'application/json'))).toBe('UK.OBIE.Signature.Missing');
    const tampered = await post('/ob', body.replace('165.88', '965.88'), 'application/json', { 'x-jws-signature': signature });
    expect([tampered.status, errorCode(tampered)]).toEqual([400, 'UK.OBIE.Signature.Invalid']);
  });

  it('BR-02 regimes attack: the route’s signed body is required and verified behind protect()', async () => {
    const jwt = (aud: string) =>
      new SignJWT({ aud, iss: CLIENT_ORG, iat: now(), jti: randomUUID(), data: { amount: '1.00' } })
        .setProtectedHeader({ alg: 'PS256', typ: 'JWT', kid: 'client-key' })
        .sign(tppKey.privateKey);
    const good = await post('/br', await jwt(`${AUDIENCE}/br`), 'application/jwt');
    expect([good.status, good.json.data]).toEqual([201, { amount: '1.00' }]);
    expect((await post('/br', await jwt(`${AUDIENCE}/ob`), 'application/jwt')).status).toBe(400);
    expect((await post('/br', JSON.stringify({ amount: '1.00' }), 'application/json')).status).toBe(400);
    const signed = await jwt(`${AUDIENCE}/br`);
    const [h, p, s] = signed.split('.') as [string, string, string];
    const forged = b64u(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), data: { amount: '9999.00' } }));
    expect((await post('/br', `${h}.${forged}.${s}`, 'application/jwt')).status).toBe(400);
  });

  it('MIG-04 regimes attack: a fapi2-only route behind protect() refuses a FAPI 1.0 client, whatever its token claims', async () => {
    const legacy = (claims: Record<string, unknown>) =>
      as
        .mint({ x5t: legacyCert.x5t, alg: 'PS256', claims: { client_id: LEGACY, ...claims } })
        .then((token) =>
          send(`${app.url}/fapi2`, { headers: { authorization: `Bearer ${token}`, 'client-cert': clientCertHeader(legacyCert.der) } }),
        );
    expect((await legacy({})).status).toBe(403);
    expect((await legacy({ fapi_profile: 'fapi2' })).status).toBe(401);
    expect((await legacy({ fapi_profile: ['fapi2'] })).status).toBe(401);
    // An unlisted client whose token names fapi1-advanced is served under it, and kept out too.
    const unlisted = await as.mint({ x5t: legacyCert.x5t, alg: 'PS256', claims: { client_id: 'tpp-9', fapi_profile: 'fapi1-advanced' } });
    const res = await send(`${app.url}/fapi2`, {
      headers: { authorization: `Bearer ${unlisted}`, 'client-cert': clientCertHeader(legacyCert.der) },
    });
    expect(res.status).toBe(403);
    // A FAPI 1.0 client holding a DPoP-bound token, with a valid proof.
    const dpopToken = await as.mint({ jkt: dpop.jkt, claims: { client_id: LEGACY } });
    const proof = await dpop.proof({ htm: 'GET', htu: `${AUDIENCE}/fapi2`, accessToken: dpopToken });
    expect((await send(`${app.url}/fapi2`, { headers: { authorization: `DPoP ${dpopToken}`, dpop: proof } })).status).toBe(401);
  });
});

/** Body parsers mounted before the guard: the guard must not judge a signature without the bytes. */
async function parserFirstExpress(): Promise<{ url: string; close(): Promise<void> }> {
  const fapi = expressGuard(options());
  const app = express();
  app.post(
    '/ob-parsed-first',
    express.json(),
    fapi.rawBody(),
    fapi.protect({ jwsSignature: { request: 'required' } }),
    (req, res) => void res.status(201).json({ body: req.body }),
  );
  app.post(
    '/ob-no-raw',
    express.json(),
    fapi.protect({ jwsSignature: { request: 'required' } }),
    (req, res) => void res.status(201).json({ body: req.body }),
  );
  app.post(
    '/br-no-raw',
    express.text({ type: 'application/jwt' }),
    fapi.protect({ jwtBody: { request: 'required' } }),
    (req, res) => void res.status(201).json({ data: req.auth?.jwtBody?.data }),
  );
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('regimes attack: body parsers before the guard on express', () => {
  let app: { url: string; close(): Promise<void> };
  beforeAll(async () => {
    app = await parserFirstExpress();
  });
  afterAll(() => app.close());

  const post = async (path: string, sent: string, contentType: string, headers: Record<string, string> = {}) => {
    const token = await as.mint({ jkt: dpop.jkt, claims: { client_id: 'client-1' } });
    const proof = await dpop.proof({ htm: 'POST', htu: `${AUDIENCE}${path}`, accessToken: token });
    return send(`${app.url}${path}`, {
      method: 'POST',
      body: sent,
      headers: { authorization: `DPoP ${token}`, dpop: proof, 'content-type': contentType, ...headers },
    });
  };

  it('UKOB-02 regimes attack: a JSON parser that ran first leaves no bytes — signed or tampered, never a pass (DEC-07: 500)', async () => {
    const signature = await obSignature(body);
    for (const path of ['/ob-parsed-first', '/ob-no-raw']) {
      for (const sent of [body, body.replace('165.88', '965.88'), JSON.stringify(JSON.parse(body))]) {
        const res = await post(path, sent, 'application/json', { 'x-jws-signature': signature });
        // DEC-07: a deployment that hides the bytes is a server fault, answered 500 and never a pass.
        expect(res.status).toBe(500);
        expect(res.json.error_description).toBe('The server could not read the request body to check its signature');
      }
    }
  });

  it('BR-06 regimes attack: a text parser that ran first leaves no bytes for the signed body', async () => {
    const jwt = await new SignJWT({ aud: `${AUDIENCE}/br-no-raw`, iss: CLIENT_ORG, iat: now(), jti: randomUUID(), data: { a: 1 } })
      .setProtectedHeader({ alg: 'PS256', typ: 'JWT', kid: 'client-key' })
      .sign(tppKey.privateKey);
    const res = await post('/br-no-raw', jwt, 'application/jwt');
    expect(res.status).toBe(500);
    expect(res.json.data).toBeUndefined();
  });
});

/** A request written byte for byte, so obs-fold (RFC 9110 §5.5) and other odd forms reach the server. */
function rawHttp(url: string, head: string, sent = ''): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(`${head}\r\ncontent-length: ${Buffer.byteLength(sent)}\r\nconnection: close\r\n\r\n${sent}`);
    });
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error('timeout')));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text });
    });
  });
}

describe.each(['express', 'hono'] as const)('regimes attack: obs-fold and odd FAPI header forms on %s', (framework) => {
  let app: StartedApp;
  beforeAll(async () => {
    app = await startApp(framework, options(), OB_ROUTES);
  });
  afterAll(() => app.close());

  it('UKOB-09 regimes attack: an x-jws-signature folded over two lines never passes', async () => {
    const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: 'client-1' } });
    const [h, , s] = (await obSignature(body)).split('.') as [string, string, string];
    for (const folded of [`${h}.\r\n .${s}`, `${h.slice(0, 20)}\r\n\t${h.slice(20)}..${s}`]) {
      const proof = await dpop.proof({ htm: 'POST', htu: `${AUDIENCE}/payments`, accessToken: token });
      const head = [
        'POST /payments HTTP/1.1',
        `host: 127.0.0.1`,
        `authorization: DPoP ${token}`,
        `dpop: ${proof}`,
        'content-type: application/json',
        `x-jws-signature: ${folded}`,
      ].join('\r\n');
      const res = await rawHttp(app.url, head, body);
      expect(res.status).toBe(400);
    }
  });

  it('FAPIA-RS-06 DEC-14 regimes attack: FAPI customer headers folded, comma-joined or repeated are refused for a FAPI 1.0 client', async () => {
    const token = await as.mint({ scope: 'accounts', x5t: legacyCert.x5t, alg: 'PS256', claims: { client_id: LEGACY } });
    const base = [
      'GET /accounts HTTP/1.1',
      'host: 127.0.0.1',
      `authorization: Bearer ${token}`,
      `client-cert: ${clientCertHeader(legacyCert.der)}`,
    ];
    const ok = await rawHttp(app.url, [...base, 'x-fapi-customer-ip-address: 198.51.100.7'].join('\r\n'));
    expect(ok.status).toBe(200);
    for (const odd of [
      ['x-fapi-customer-ip-address: 198.51.100.7,198.51.100.8'],
      ['x-fapi-customer-ip-address: 198.51.100.7', 'x-fapi-customer-ip-address: 198.51.100.8'],
      ['x-fapi-customer-ip-address: 198.51.100.7\r\n 198.51.100.8'],
      ['x-fapi-auth-date: Sun, 06 Nov 1994 08:49:37 GMT', 'x-fapi-auth-date: Sun, 06 Nov 1994 08:49:37 GMT'],
      ['x-fapi-auth-date: Sun, 06 Nov 1994\r\n 08:49:37 GMT'],
      ['x-fapi-auth-date: 784111777'],
    ]) {
      const res = await rawHttp(app.url, [...base, ...odd].join('\r\n'));
      expect(res.status).toBe(400);
    }
  });
});

describe.each(FRAMEWORKS)('regimes attack: profile downgrade on %s', (framework) => {
  let app: StartedApp;
  beforeAll(async () => {
    app = await startApp(framework, options(), ROUTES);
  });
  afterAll(() => app.close());

  it('FAPIA-RS-02 MIG-02 regimes attack: an unbound token of a FAPI 1.0 client on a route that allows bearer tokens', async () => {
    const registered = await as.mint({ scope: 'accounts', alg: 'PS256', claims: { client_id: LEGACY } });
    const named = await as.mint({ scope: 'accounts', alg: 'PS256', claims: { client_id: 'tpp-9', fapi_profile: 'fapi1-advanced' } });
    for (const token of [registered, named]) {
      const res = await send(`${app.url}/mixed`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(401);
      expect(res.json.profile).toBeUndefined();
    }
    // A FAPI 2.0 client's unbound token passes there: the route allows it, and the profile says nothing against.
    const fapi2 = await as.mint({ scope: 'accounts', claims: { client_id: 'tpp-10' } });
    expect((await send(`${app.url}/mixed`, { headers: { authorization: `Bearer ${fapi2}` } })).status).toBe(200);
  });
});

describe('regimes attack: Open Finance Brasil jti raced across instances on one Redis', () => {
  let redis: TestRedis;
  const clients: Redis[] = [];
  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await redis.stop();
  });

  it('BR-04 regimes attack: one signed body sent at once to a Hono and a Koa instance, 8 times: exactly one passes', async () => {
    const instance = (framework: 'hono' | 'koa') => {
      const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      clients.push(client);
      return startApp(framework, { ...options(), dpop: { replayStore: new RedisReplayStore({ client }) } }, BR_ROUTES);
    };
    const apps = [await instance('hono'), await instance('koa')];
    try {
      const signed = await new SignJWT({ aud: `${AUDIENCE}/payments`, iss: CLIENT_ORG, iat: now(), jti: randomUUID(), data: { a: 1 } })
        .setProtectedHeader({ alg: 'PS256', typ: 'JWT', kid: 'client-key' })
        .sign(tppKey.privateKey);
      const attempts = Array.from({ length: 8 }, async (_, i) => {
        const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: 'client-1' } });
        const proof = await dpop.proof({ htm: 'POST', htu: `${AUDIENCE}/payments`, accessToken: token });
        return send(`${(apps[i % 2] as StartedApp).url}/payments`, {
          method: 'POST',
          body: signed,
          headers: { authorization: `DPoP ${token}`, dpop: proof, 'content-type': 'application/jwt' },
        });
      });
      const statuses = (await Promise.all(attempts)).map((res) => res.status).sort();
      expect(statuses).toEqual([201, 400, 400, 400, 400, 400, 400, 400]);
    } finally {
      for (const app of apps) await app.close();
    }
  });
});
