/**
 * UK Open Banking `x-jws-signature` on every adapter, over real HTTP: requests signed by jose
 * (flattened JWS, detached payload) verified over the exact body bytes, responses signed by the
 * bank and verified by jose over the bytes received, the signer's keys fetched from its trust
 * anchor's key store (a real HTTP server on 127.0.0.1) once and cached, and every refusal in the
 * OB error envelope.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createGuard, type GuardOptions } from '@fapi-guard/core';
import { clientCertHeader, createCertificate, DpopClient, MockIssuer, type TestCertificate } from '@fapi-guard/testing';
import { FlattenedSign, flattenedVerify } from 'jose';
import { FRAMEWORKS, ROUTES, type StartedApp, startApp } from './support/apps';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const IAT = 'http://openbanking.org.uk/iat';
const ISS = 'http://openbanking.org.uk/iss';
const TAN = 'http://openbanking.org.uk/tan';
const CRIT = { [IAT]: true, [ISS]: true, [TAN]: true };
const TPP = '0015800001041RHAAY/2kiXQyo0tedjW2somjSgH7';
const OTHER_TPP = '0015800001041RHAAY/otherSoftwareStatement';
const DOWN_TPP = '0015800001041RHAAY/keyStoreDown';
const BANK = '0015800000jf9GgAAI';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const tppKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const bankKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const publicJwk = (key: typeof tppKey, kid: string) => ({ ...(key.publicKey.export({ format: 'jwk' }) as object), kid, use: 'sig' });

let as: MockIssuer;
let dpop: DpopClient;
let keyStore: Server;
let keyStoreUrl: string;
const fetched: string[] = [];

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  dpop = await DpopClient.create('ES256');
  // The trust anchor's key store: one JWK set per organisation and software statement.
  keyStore = createServer((req, res) => {
    fetched.push(req.url ?? '');
    const sets: Record<string, object> = {
      [`/${TPP}.jwks`]: { keys: [publicJwk(tppKey, 'tpp-key')] },
      [`/${OTHER_TPP}.jwks`]: { keys: [publicJwk(otherKey, 'other-key')] },
    };
    const set = sets[req.url ?? ''];
    res.writeHead(set ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify(set ?? {}));
  });
  await new Promise<void>((resolve) => keyStore.listen(0, '127.0.0.1', resolve));
  keyStoreUrl = `http://127.0.0.1:${(keyStore.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await as.stop();
  await new Promise((resolve) => keyStore.close(resolve));
});

const options = (): GuardOptions => ({
  issuer: as.issuer,
  audience: AUDIENCE,
  messageSigning: {
    // The FAPI 2.0 signed routes the test apps also mount need their own settings.
    clients: {},
    responseKey: {
      ...(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }) as object),
      kid: 'fapi2-key',
    },
    ukOpenBanking: {
      trustAnchors: { 'openbanking.org.uk': `${keyStoreUrl}/{iss}.jwks` },
      clients: { 'client-1': TPP, 'client-2': OTHER_TPP, 'client-3': DOWN_TPP },
      responseKey: { ...(bankKey.privateKey.export({ format: 'jwk' }) as object), kid: 'bank-key' },
      responseIssuer: BANK,
      responseTrustAnchor: 'openbanking.org.uk',
    },
  },
});

/** `/payments`, mounted as an OB payment endpoint: signed requests, signed responses. */
const OB_ROUTES = {
  ...ROUTES,
  payments: { scopes: ['payments:write'], jwsSignature: { request: 'required', response: true } },
  // `/stepup`, mounted here as a read endpoint where a signature is checked only when sent.
  stepup: { scopes: ['accounts'], jwsSignature: { request: 'optional' } },
} as const;

/** jose signs the body bytes: the flattened JWS with a detached payload, sent as `protected..signature`. */
async function obSignature(body: string, extra: Record<string, unknown> = {}, key = tppKey.privateKey): Promise<string> {
  const header = {
    alg: 'PS256',
    kid: 'tpp-key',
    [IAT]: Math.floor(Date.now() / 1000),
    [ISS]: TPP,
    [TAN]: 'openbanking.org.uk',
    crit: [IAT, ISS, TAN],
    ...extra,
  };
  const jws = await new FlattenedSign(new TextEncoder().encode(body)).setProtectedHeader(header as never).sign(key, { crit: CRIT });
  return `${jws.protected}..${jws.signature}`;
}

describe('ukOpenBanking configuration', () => {
  it('UKOB-04 needs trust anchors with {iss}, OB iss values, and a complete response signer', () => {
    const ob = (extra: object) =>
      createGuard({ ...options(), messageSigning: { ukOpenBanking: { ...options().messageSigning?.ukOpenBanking, ...extra } as never } });
    expect(() => ob({ trustAnchors: {} })).toThrow(/trustAnchors is empty|at least one trust anchor/);
    expect(() => ob({ trustAnchors: { 'openbanking.org.uk': 'https://keystore.example/keys.jwks' } })).toThrow(/must contain \{iss\}/);
    expect(() => ob({ trustAnchors: { 'openbanking.org.uk': 'http://keystore.example/{iss}.jwks' } })).toThrow(/must use https/);
    expect(() => ob({ clients: { a: '../../etc' } })).toThrow(/is not an OB iss/);
    expect(() => ob({ responseIssuer: undefined })).toThrow(/needs responseIssuer and responseTrustAnchor/);
    expect(() => ob({ version: '3.2' })).toThrow(/version must be one of "3.1.3", "3.1.4"/);
    expect(() => createGuard({ issuer: as.issuer, audience: AUDIENCE }).policy({ jwsSignature: { request: 'required' } })).toThrow(
      /configure messageSigning\.ukOpenBanking/,
    );
  });
});

describe.each(FRAMEWORKS)('UK Open Banking x-jws-signature on %s', (framework) => {
  let app: StartedApp;
  beforeAll(async () => {
    app = await startApp(framework, options(), OB_ROUTES);
  });
  afterAll(() => app.close());

  async function pay(body: string, signature: string | string[] | undefined, clientId = 'client-1', headers: Record<string, string> = {}) {
    const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: clientId } });
    const proof = await dpop.proof({ htm: 'POST', htu: `${AUDIENCE}/payments`, accessToken: token });
    return send(`${app.url}/payments`, {
      method: 'POST',
      body,
      headers: {
        authorization: `DPoP ${token}`,
        dpop: proof,
        'content-type': 'application/json',
        ...(signature === undefined ? {} : { 'x-jws-signature': signature }),
        ...headers,
      },
    });
  }

  const body =
    '{"Data":{"Initiation":{"InstructionIdentification":"ACME412","InstructedAmount":{"Amount":"165.88","Currency":"GBP"}}},"Risk":{}}';

  it('UKOB-01 UKOB-02 UKOB-08 accepts a body signed by the client, and signs the response jose verifies', async () => {
    const res = await pay(body, await obSignature(body));
    expect(res.status).toBe(201);
    expect(res.json.jwsSignature).toMatchObject({ kid: 'tpp-key', iss: TPP, tan: 'openbanking.org.uk' });
    const value = res.headers['x-jws-signature'] as string;
    const [protectedHeader, detached, signature] = value.split('.');
    expect(detached).toBe('');
    const verified = await flattenedVerify(
      { protected: protectedHeader as string, payload: Buffer.from(res.text).toString('base64url'), signature: signature as string },
      bankKey.publicKey,
      { crit: CRIT, algorithms: ['PS256'] },
    );
    expect(verified.protectedHeader).toMatchObject({ kid: 'bank-key', [ISS]: BANK, [TAN]: 'openbanking.org.uk', crit: [IAT, ISS, TAN] });
  });

  it('UKOB-02 refuses a tampered body in the OB error envelope', async () => {
    const res = await pay(body.replace('165.88', '965.88'), await obSignature(body), 'client-1', {
      'x-fapi-interaction-id': 'c770aef3-6784-41f7-8e0e-ff5f97bddb3a',
    });
    expect(res.status).toBe(400);
    expect(res.json).toEqual({
      Code: '400 BadRequest',
      Id: 'c770aef3-6784-41f7-8e0e-ff5f97bddb3a',
      Message: 'The x-jws-signature is invalid',
      Errors: [{ ErrorCode: 'UK.OBIE.Signature.Invalid', Message: 'The x-jws-signature is invalid' }],
    });
    expect(res.headers['x-jws-signature']).toBeUndefined();
  });

  it('UKOB-09 refuses a missing signature, two of them, and one with the body attached', async () => {
    const code = (res: { json: Record<string, unknown> }) => (res.json.Errors as { ErrorCode: string }[])[0]?.ErrorCode;
    const missing = await pay(body, undefined);
    expect([missing.status, code(missing)]).toEqual([400, 'UK.OBIE.Signature.Missing']);
    expect(missing.json.Id).toMatch(UUID);
    const good = await obSignature(body);
    expect(code(await pay(body, [good, good]))).toBe('UK.OBIE.Signature.Malformed');
    const [h, , s] = good.split('.');
    expect(code(await pay(body, `${h}.${Buffer.from(body).toString('base64url')}.${s}`))).toBe('UK.OBIE.Signature.Malformed');
  });

  it('UKOB-04 refuses a signature by another client, however valid, and an unknown trust anchor', async () => {
    const code = (res: { json: Record<string, unknown> }) => (res.json.Errors as { ErrorCode: string }[])[0]?.ErrorCode;
    // client-2's own, valid signature, presented with client-1's token.
    const theirs = await obSignature(body, { kid: 'other-key', [ISS]: OTHER_TPP }, otherKey.privateKey);
    expect(code(await pay(body, theirs, 'client-1'))).toBe('UK.OBIE.Signature.InvalidClaim');
    expect((await pay(body, theirs, 'client-2')).status).toBe(201);
    expect(code(await pay(body, await obSignature(body, { [TAN]: 'evil.example' })))).toBe('UK.OBIE.Signature.InvalidClaim');
    // A client with no OB identity cannot sign.
    expect(code(await pay(body, await obSignature(body), 'client-9'))).toBe('UK.OBIE.Signature.InvalidClaim');
  });

  it('UKOB-05 UKOB-06 refuses alg and crit games', async () => {
    const code = (res: { json: Record<string, unknown> }) => (res.json.Errors as { ErrorCode: string }[])[0]?.ErrorCode;
    const rs256 = await new FlattenedSign(new TextEncoder().encode(body))
      .setProtectedHeader({
        alg: 'RS256',
        kid: 'tpp-key',
        [IAT]: Math.floor(Date.now() / 1000),
        [ISS]: TPP,
        [TAN]: 'openbanking.org.uk',
        crit: [IAT, ISS, TAN],
      } as never)
      .sign(tppKey.privateKey, { crit: CRIT });
    expect(code(await pay(body, `${rs256.protected}..${rs256.signature}`))).toBe('UK.OBIE.Signature.InvalidClaim');
    const noTan = await new FlattenedSign(new TextEncoder().encode(body))
      .setProtectedHeader({
        alg: 'PS256',
        kid: 'tpp-key',
        [IAT]: Math.floor(Date.now() / 1000),
        [ISS]: TPP,
        [TAN]: 'openbanking.org.uk',
        crit: [IAT, ISS],
      } as never)
      .sign(tppKey.privateKey, { crit: CRIT });
    expect(code(await pay(body, `${noTan.protected}..${noTan.signature}`))).toBe('UK.OBIE.Signature.InvalidClaim');
  });

  it('UKOB-03 refuses a stale signature (a replay of yesterday’s payment)', async () => {
    const code = (res: { json: Record<string, unknown> }) => (res.json.Errors as { ErrorCode: string }[])[0]?.ErrorCode;
    const old = await obSignature(body, { [IAT]: Math.floor(Date.now() / 1000) - 86_400 });
    expect(code(await pay(body, old))).toBe('UK.OBIE.Signature.InvalidClaim');
  });

  it('UKOB-10 fetches a signer’s keys from its trust anchor once, and answers 503 when they cannot be fetched', async () => {
    const before = fetched.filter((url) => url === `/${TPP}.jwks`).length;
    for (let i = 0; i < 3; i++) expect((await pay(body, await obSignature(body))).status).toBe(201);
    expect(fetched.filter((url) => url === `/${TPP}.jwks`).length).toBe(before);
    const down = await pay(body, await obSignature(body, { [ISS]: DOWN_TPP }), 'client-3');
    expect(down.status).toBe(503);
    expect(down.headers['retry-after']).toBeDefined();
  });

  it('UKOB-09 on a route where the signature is optional, checks it only when one is sent', async () => {
    const token = await as.mint({ scope: 'accounts', jkt: dpop.jkt });
    const get = async (headers: Record<string, string>) =>
      send(`${app.url}/stepup`, {
        headers: {
          authorization: `DPoP ${token}`,
          dpop: await dpop.proof({ htm: 'GET', htu: `${AUDIENCE}/stepup`, accessToken: token }),
          ...headers,
        },
      });
    expect((await get({})).status).toBe(200);
    expect((await get({ 'x-jws-signature': await obSignature('') })).status).toBe(200);
    const bad = await get({ 'x-jws-signature': await obSignature('{}') });
    expect(bad.status).toBe(400);
    expect(bad.json.Errors).toEqual([{ ErrorCode: 'UK.OBIE.Signature.Invalid', Message: 'The x-jws-signature is invalid' }]);
  });

  it('UKOB-02 the signature of the token holder is still needed with a valid token: no token, no signature check', async () => {
    const res = await send(`${app.url}/payments`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'x-jws-signature': await obSignature(body) },
    });
    expect(res.status).toBe(401);
  });
});

describe.each(FRAMEWORKS)('UK Open Banking iss tied to the client certificate, on %s', (framework) => {
  let app: StartedApp;
  let tppCert: TestCertificate;
  let strangerCert: TestCertificate;
  beforeAll(async () => {
    tppCert = await createCertificate({ subject: 'CN=2kiXQyo0tedjW2somjSgH7' });
    strangerCert = await createCertificate({ subject: 'CN=stranger' });
    const base = options();
    const ob = base.messageSigning?.ukOpenBanking as NonNullable<NonNullable<GuardOptions['messageSigning']>['ukOpenBanking']>;
    app = await startApp(
      framework,
      {
        ...base,
        profile: 'fapi1-advanced',
        mtls: { proxy: { trustedPeers: ['127.0.0.1', '::1'] } },
        messageSigning: {
          ...base.messageSigning,
          // No client list: the signer's iss follows from the certificate the token is bound to.
          ukOpenBanking: {
            ...ob,
            clients: {},
            resolveIssuer: ({ certificate }) => (certificate?.thumbprint === tppCert.x5t ? TPP : undefined),
          },
        },
      },
      OB_ROUTES,
    );
  });
  afterAll(() => app.close());

  const pay = async (cert: TestCertificate, body: string, signature: string) =>
    send(`${app.url}/payments`, {
      method: 'POST',
      body,
      headers: {
        authorization: `Bearer ${await as.mint({ scope: 'payments:write', x5t: cert.x5t, alg: 'PS256', claims: { client_id: 'client-7' } })}`,
        'client-cert': clientCertHeader(cert.der),
        'content-type': 'application/json',
        'x-jws-signature': signature,
      },
    });

  it('UKOB-04 takes the iss of the certificate the token is bound to, and nobody else’s', async () => {
    const body = '{"Data":{}}';
    const ok = await pay(tppCert, body, await obSignature(body));
    expect(ok.status).toBe(201);
    expect(ok.json).toMatchObject({ profile: 'fapi1-advanced', jwsSignature: { iss: TPP } });
    const stranger = await pay(strangerCert, body, await obSignature(body));
    expect(stranger.status).toBe(400);
    expect(stranger.json.Errors).toEqual([
      { ErrorCode: 'UK.OBIE.Signature.InvalidClaim', Message: 'The x-jws-signature has an invalid header parameter' },
    ]);
  });
});
