/**
 * RFC 8705 certificate-bound tokens: a real HTTPS server asking for client certificates and a
 * real TLS client presenting one; and the proxy path (RFC 9440, nginx, Envoy), including
 * certificate headers from peers that are not trusted.
 */
import { certificateThumbprint, parseClientCertChain } from '@fapi-guard/core';
import {
  clientCertChainHeader,
  clientCertHeader,
  createCertificate,
  DpopClient,
  envoyCertHeader,
  MockIssuer,
  nginxCertHeader,
  type TestCertificate,
} from '@fapi-guard/testing';
import { type RunningApp, startExpressApp } from './support/express-app';
import { type RunningHono, startHonoApp } from './support/hono-app';
import { send } from './support/http';
import { vector } from './support/vectors';

const AUDIENCE = 'https://rs.example.com';
const rfc9440 = vector('rfc9440');
const vectorLeafDer = Buffer.from(
  (rfc9440.certificate_chain_pem.leaf as string).replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, ''),
  'base64',
);

let as: MockIssuer;
let ca: TestCertificate;
let server: TestCertificate;
let client: TestCertificate;
let otherClient: TestCertificate;
let selfSigned: TestCertificate;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  ca = await createCertificate({ subject: 'CN=Test CA', ca: true });
  server = await createCertificate({ subject: 'CN=127.0.0.1', hosts: ['127.0.0.1', 'localhost'], issuer: ca });
  client = await createCertificate({ subject: 'CN=client-1', issuer: ca });
  otherClient = await createCertificate({ subject: 'CN=client-2', issuer: ca });
  selfSigned = await createCertificate({ subject: 'CN=self-signed' });
});
afterAll(() => as.stop());

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('x5t#S256', () => {
  it('MTLS-02 is base64url SHA-256 of the DER (RFC 9440 leaf)', () => {
    expect(certificateThumbprint(vectorLeafDer)).toBe(rfc9440.derived.leaf_x5t_S256);
    expect(certificateThumbprint(vectorLeafDer)).toBe('v68ffgcPn6jdYpBfFY2nP4ShE2Yk-6_Mk5PI9yh6aes');
  });

  it('CCH-05 parses the RFC 9440 Client-Cert-Chain vector (intermediate and root)', () => {
    const value = (rfc9440.client_cert_chain_header as string).replace(/^Client-Cert-Chain:\s*/, '');
    expect(parseClientCertChain(value)).toHaveLength(2);
    expect(parseClientCertChain('not, a list of byte sequences')).toBeUndefined();
  });
});

describe.each([
  ['Express', startExpressApp],
  ['Hono', startHonoApp],
] as const)('over TLS with a client certificate on %s', (_framework, start) => {
  let api: RunningApp | RunningHono;
  beforeAll(async () => {
    api = await start({ issuer: as.issuer, audience: AUDIENCE, mtls: true }, undefined, { cert: server.cert, key: server.key });
  });
  afterAll(() => api.close());

  const get = (token: string, cert?: TestCertificate, scheme = 'Bearer') =>
    send(`${api.url}/accounts`, {
      headers: { authorization: `${scheme} ${token}` },
      tls: { ca: ca.cert, ...(cert ? { cert: cert.cert, key: cert.key } : {}) },
    });

  it('MTLS-05 FAPI-RS-01 BEARER-01 accepts a certificate-bound token via Bearer with the matching certificate', async () => {
    const token = await as.mint({ scope: 'accounts', x5t: client.x5t });
    const res = await get(token, client, 'bearer');
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ binding: { type: 'mtls', x5t: client.x5t }, certificate: { source: 'tls' } });
  });

  it('MTLS-01 FAPI-RS-08 refuses it with another certificate: 401 Bearer invalid_token', async () => {
    const res = await get(await as.mint({ scope: 'accounts', x5t: client.x5t }), otherClient);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(
      'DPoP algs="ES256 PS256 EdDSA", Bearer realm="https://rs.example.com", error="invalid_token", error_description="The access token is not bound to this client certificate"',
    );
  });

  it('MTLS-04 refuses it on a TLS connection without a client certificate', async () => {
    const res = await get(await as.mint({ scope: 'accounts', x5t: client.x5t }));
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toContain('Bearer realm="https://rs.example.com", error="invalid_token"');
    expect(api.decisions.at(-1)?.reason).toBe('certificate_missing');
  });

  it('MTLS-06 accepts a self-signed client certificate (no CA validation for proof of possession)', async () => {
    expect((await get(await as.mint({ scope: 'accounts', x5t: selfSigned.x5t }), selfSigned)).status).toBe(200);
  });

  it('CCH-03 a Client-Cert header sent by the client does not replace the certificate of the connection', async () => {
    const token = await as.mint({ scope: 'accounts', x5t: otherClient.x5t });
    const res = await send(`${api.url}/accounts`, {
      headers: { ...bearer(token), 'client-cert': clientCertHeader(otherClient.der) },
      tls: { ca: ca.cert, cert: client.cert, key: client.key },
    });
    expect(res.status).toBe(401);
    expect(api.decisions.at(-1)?.note).toContain('untrusted');
  });

  it('DEC-12 checks both bindings of a token bound to a DPoP key and a certificate', async () => {
    const dpop = await DpopClient.create('ES256');
    const token = await as.mint({ scope: 'accounts', jkt: dpop.jkt, x5t: client.x5t });
    const call = async (cert: TestCertificate | undefined, proofClient = dpop) =>
      send(`${api.url}/accounts`, {
        headers: {
          authorization: `DPoP ${token}`,
          dpop: await proofClient.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: token }),
        },
        tls: { ca: ca.cert, ...(cert ? { cert: cert.cert, key: cert.key } : {}) },
      });
    const ok = await call(client);
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ binding: { type: 'dpop', jkt: dpop.jkt }, certificate: { source: 'tls' } });
    expect((await call(otherClient)).status).toBe(401);
    expect((await call(undefined)).status).toBe(401);
    expect((await call(client, await DpopClient.create('ES256'))).status).toBe(401);
  });
});

describe('behind a TLS-terminating proxy (RFC 9440)', () => {
  const token = () => as.mint({ scope: 'accounts', x5t: client.x5t });

  it('CCH-01 ignores Client-Cert unless a proxy is configured', async () => {
    const api = await startExpressApp({ issuer: as.issuer, audience: AUDIENCE, mtls: true });
    try {
      const res = await send(`${api.url}/accounts`, { headers: { ...bearer(await token()), 'client-cert': clientCertHeader(client.der) } });
      expect(res.status).toBe(401);
      expect(res.json.error).toBe('invalid_token');
      expect(api.decisions.at(-1)?.note).toBe('client-cert header from an untrusted peer ignored');
    } finally {
      await api.close();
    }
  });

  it.each([
    ['Express', startExpressApp],
    ['Hono', startHonoApp],
  ] as const)('CCH-02 ignores Client-Cert from a peer that is not the trusted proxy (%s)', async (_framework, start) => {
    const api = await start({ issuer: as.issuer, audience: AUDIENCE, mtls: { proxy: { trustedPeers: ['10.0.0.0/8'] } } });
    try {
      const res = await send(`${api.url}/accounts`, { headers: { ...bearer(await token()), 'client-cert': clientCertHeader(client.der) } });
      expect(res.status).toBe(401);
      expect(api.decisions.at(-1)?.reason).toBe('certificate_missing');
    } finally {
      await api.close();
    }
  });

  describe('from a trusted proxy', () => {
    let api: RunningApp;
    beforeAll(async () => {
      api = await startExpressApp(
        { issuer: as.issuer, audience: AUDIENCE, mtls: { proxy: { trustedPeers: ['127.0.0.1', '::1'] } } },
        (app, fapi) => {
          app.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (req, res) => {
            res.json({ binding: req.auth?.binding, chain: req.auth?.certificate?.chain?.length ?? 0 });
          });
          app.get(
            '/partners',
            fapi.protect({ scopes: ['accounts'], clientCertificate: (c) => c.thumbprint !== otherClient.x5t }),
            (_req, res) => {
              res.json({});
            },
          );
        },
      );
    });
    afterAll(() => api.close());
    const get = (headers: Record<string, string | string[]>, path = '/accounts') => send(`${api.url}${path}`, { headers });

    it('MTLS-02 MTLS-08 accepts the RFC 9440 vector certificate for a token bound to its thumbprint', async () => {
      const vectorToken = await as.mint({ scope: 'accounts', x5t: rfc9440.derived.leaf_x5t_S256 });
      const value = (rfc9440.client_cert_header as string).replace(/^Client-Cert:\s*/, '');
      const res = await get({ ...bearer(vectorToken), 'client-cert': value });
      expect(res.status).toBe(200);
    });

    it('CCH-06 marks responses chosen by a forwarded certificate as not cacheable', async () => {
      const res = await get({ ...bearer(await token()), 'client-cert': clientCertHeader(client.der) });
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
    });

    it('MTLS-01 refuses a forwarded certificate that is not the bound one', async () => {
      const res = await get({ ...bearer(await token()), 'client-cert': clientCertHeader(otherClient.der) });
      expect(res.status).toBe(401);
      expect(api.decisions.at(-1)?.reason).toBe('certificate_mismatch');
    });

    it('CCH-04 treats two Client-Cert fields, or a malformed one, as no certificate', async () => {
      const two = await get({ ...bearer(await token()), 'client-cert': [clientCertHeader(client.der), clientCertHeader(client.der)] });
      expect(two.status).toBe(401);
      for (const bad of ['abc', `:${Buffer.from('not a certificate').toString('base64')}:`, clientCertHeader(client.der).slice(1)]) {
        const res = await get({ ...bearer(await token()), 'client-cert': bad });
        expect(res.status).toBe(401);
        expect(api.decisions.at(-1)?.reason).toBe('certificate_missing');
      }
    });

    it('CCH-05 takes Client-Cert-Chain only alongside Client-Cert', async () => {
      const chain = clientCertChainHeader([ca.der]);
      const alone = await get({ ...bearer(await token()), 'client-cert-chain': chain });
      expect(alone.status).toBe(401);
      const both = await get({ ...bearer(await token()), 'client-cert': clientCertHeader(client.der), 'client-cert-chain': chain });
      expect(both.status).toBe(200);
      expect(both.json.chain).toBe(1);
    });

    it('CCH-07 answers 403 for a certificate the route refuses, 401 for a mismatch', async () => {
      const refused = await as.mint({ scope: 'accounts', x5t: otherClient.x5t });
      const res = await get({ ...bearer(refused), 'client-cert': clientCertHeader(otherClient.der) }, '/partners');
      expect(res.status).toBe(403);
      expect(api.decisions.at(-1)?.reason).toBe('certificate_not_allowed');
      expect((await get({ ...bearer(await token()), 'client-cert': clientCertHeader(client.der) }, '/partners')).status).toBe(200);
    });
  });

  it('reads nginx ($ssl_client_escaped_cert) and Envoy (x-forwarded-client-cert) formats', async () => {
    const nginx = await startExpressApp({
      issuer: as.issuer,
      audience: AUDIENCE,
      mtls: { proxy: { format: 'nginx', header: 'x-ssl-client-cert', trustedPeers: ['127.0.0.1'] } },
    });
    const envoy = await startExpressApp({
      issuer: as.issuer,
      audience: AUDIENCE,
      mtls: { proxy: { format: 'envoy', trustedPeers: ['127.0.0.1'] } },
    });
    try {
      const t = await token();
      expect(
        (await send(`${nginx.url}/accounts`, { headers: { ...bearer(t), 'x-ssl-client-cert': nginxCertHeader(client.cert) } })).status,
      ).toBe(200);
      expect(
        (await send(`${nginx.url}/accounts`, { headers: { ...bearer(t), 'x-ssl-client-cert': nginxCertHeader(otherClient.cert) } })).status,
      ).toBe(401);
      const xfcc = `By=spiffe://edge;Hash=${'0'.repeat(64)},${envoyCertHeader(client)}`;
      expect((await send(`${envoy.url}/accounts`, { headers: { ...bearer(t), 'x-forwarded-client-cert': xfcc } })).status).toBe(200);
      const hashOnly = `Hash=${Buffer.from(client.x5t, 'base64url').toString('hex')}`;
      expect((await send(`${envoy.url}/accounts`, { headers: { ...bearer(t), 'x-forwarded-client-cert': hashOnly } })).status).toBe(200);
      expect(
        (await send(`${envoy.url}/accounts`, { headers: { ...bearer(t), 'x-forwarded-client-cert': envoyCertHeader(otherClient) } }))
          .status,
      ).toBe(401);
    } finally {
      await nginx.close();
      await envoy.close();
    }
  });

  it('trusts a proxy by a shared secret header, and only with the right secret', async () => {
    const secret = 'proxy-secret-0123456789abcdef';
    const api = await startExpressApp({
      issuer: as.issuer,
      audience: AUDIENCE,
      mtls: { proxy: { sharedSecret: { header: 'x-proxy-auth', value: secret } } },
    });
    try {
      const headers = { ...bearer(await token()), 'client-cert': clientCertHeader(client.der) };
      expect((await send(`${api.url}/accounts`, { headers: { ...headers, 'x-proxy-auth': secret } })).status).toBe(200);
      expect((await send(`${api.url}/accounts`, { headers: { ...headers, 'x-proxy-auth': `${secret}x` } })).status).toBe(401);
      expect((await send(`${api.url}/accounts`, { headers })).status).toBe(401);
    } finally {
      await api.close();
    }
  });

  it('refuses a proxy configuration without a trust rule at start-up', async () => {
    await expect(startExpressApp({ issuer: as.issuer, audience: AUDIENCE, mtls: { proxy: {} } })).rejects.toThrow(/trustedPeers/);
  });
});
