/**
 * fapiTlsOptions (FAPI 2.0 §5.2.1–§5.2.2, BCP 195 / RFC 9325) in real handshakes with node:tls
 * clients, and the example API's TLS listener that uses it.
 */

import { webcrypto } from 'node:crypto';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type PeerCertificate, type Server, type TlsOptions } from 'node:tls';
import { FAPI_TLS12_CIPHERS, fapiTlsOptions } from '@fapi-guard/core';
import { createCertificate, type TestCertificate } from '@fapi-guard/testing';
import * as x509 from '@peculiar/x509';
import { readConfig } from '../examples/payments-api/src/config';
import { type RunningExample, startExample } from '../examples/payments-api/src/server';
import { send } from './support/http';

interface Handshake {
  ok: boolean;
  protocol?: string | null;
  cipher?: string;
  error?: string;
  /** What the server saw of the client's certificate. */
  peer?: PeerCertificate;
}

/** A TLS server on 127.0.0.1 that records the client certificate of each connection. */
async function tlsServer(options: TlsOptions): Promise<{ server: Server; port: number; peers: PeerCertificate[] }> {
  const peers: PeerCertificate[] = [];
  const server = createServer(options, (socket) => {
    peers.push(socket.getPeerCertificate());
    socket.end('ok');
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, peers };
}

/**
 * One handshake. With `greeting`, waits for the server's first bytes (a {@link tlsServer} writes
 * them once it has the client's certificate: in TLS 1.3 the client is done before the server is).
 */
function handshake(port: number, options: Record<string, unknown>, greeting = false): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'localhost', ...options }, () => {
      const result = { ok: true, protocol: socket.getProtocol(), cipher: socket.getCipher().standardName };
      const done = () => {
        socket.end();
        resolve(result);
      };
      if (greeting) socket.once('data', done);
      else done();
    });
    socket.setTimeout(5000, () => socket.destroy(new Error('timeout')));
    socket.on('error', (e) => resolve({ ok: false, error: e.message }));
  });
}

/** A client that offers TLS 1.1 and every legacy suite (OpenSSL security level 0 lets it). */
const LEGACY = { ciphers: 'ALL:@SECLEVEL=0' };

let ecServer: TestCertificate;
let rsaKeyCert: { cert: string; key: string };
let client: TestCertificate;

beforeAll(async () => {
  ecServer = await createCertificate({ subject: 'CN=localhost', hosts: ['localhost', '127.0.0.1'] });
  client = await createCertificate({ subject: 'CN=tpp-client' });
  rsaKeyCert = await rsaCertificate();
});

/** A self-signed RSA-2048 server certificate (the ECDHE-RSA suites need an RSA key). */
async function rsaCertificate(): Promise<{ cert: string; key: string }> {
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=localhost',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: alg,
    keys,
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return {
    cert: cert.toString('pem'),
    key: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)?.join('\n')}\n-----END PRIVATE KEY-----\n`,
  };
}

describe('fapiTlsOptions: handshakes', () => {
  let ec: Awaited<ReturnType<typeof tlsServer>>;
  let rsa: Awaited<ReturnType<typeof tlsServer>>;
  let permissive: Awaited<ReturnType<typeof tlsServer>>;
  beforeAll(async () => {
    ec = await tlsServer(fapiTlsOptions({ cert: ecServer.cert, key: ecServer.key }));
    rsa = await tlsServer(fapiTlsOptions(rsaKeyCert));
    // The same certificate with Node's permissive settings: shows the refused clients below can connect at all.
    permissive = await tlsServer({ cert: ecServer.cert, key: ecServer.key, minVersion: 'TLSv1', ...LEGACY });
  });
  afterAll(() => {
    for (const s of [ec, rsa, permissive]) s.server.close();
  });

  it('FAPI-RS-16 a TLS 1.1 client fails; the same client reaches a server without the preset', async () => {
    const tls11 = { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ...LEGACY };
    expect(await handshake(permissive.port, tls11)).toMatchObject({ ok: true, protocol: 'TLSv1.1' });
    expect((await handshake(ec.port, tls11)).ok).toBe(false);
    expect((await handshake(rsa.port, tls11)).ok).toBe(false);
  });

  it('FAPI-RS-17 a CBC-only TLS 1.2 client fails; the same client reaches a server without the preset', async () => {
    const cbc = {
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0',
    };
    expect(await handshake(permissive.port, cbc)).toMatchObject({ ok: true, protocol: 'TLSv1.2' });
    expect((await handshake(ec.port, cbc)).ok).toBe(false);
  });

  it('FAPI-RS-17 TLS 1.2 without ECDHE (RSA key transport, finite-field DHE) or with ChaCha20 fails', async () => {
    for (const ciphers of [
      'AES128-GCM-SHA256:AES256-GCM-SHA384',
      'DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384',
      'ECDHE-RSA-CHACHA20-POLY1305',
    ]) {
      expect(await handshake(rsa.port, { maxVersion: 'TLSv1.2', ciphers })).toMatchObject({ ok: false });
    }
    expect((await handshake(ec.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' })).ok).toBe(false);
  });

  it('FAPI-RS-17 each of the four BCP 195 suites passes under TLS 1.2', async () => {
    const standard: Record<string, string> = {
      'ECDHE-ECDSA-AES128-GCM-SHA256': 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
      'ECDHE-ECDSA-AES256-GCM-SHA384': 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384',
      'ECDHE-RSA-AES128-GCM-SHA256': 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
      'ECDHE-RSA-AES256-GCM-SHA384': 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
    };
    for (const suite of FAPI_TLS12_CIPHERS) {
      const port = suite.includes('ECDSA') ? ec.port : rsa.port;
      expect(await handshake(port, { maxVersion: 'TLSv1.2', ciphers: suite })).toEqual({
        ok: true,
        protocol: 'TLSv1.2',
        cipher: standard[suite],
      });
    }
  });

  it('FAPI-RS-16 TLS 1.3 passes', async () => {
    expect(await handshake(ec.port, {})).toMatchObject({ ok: true, protocol: 'TLSv1.3' });
    expect(await handshake(rsa.port, { minVersion: 'TLSv1.3' })).toMatchObject({ ok: true, protocol: 'TLSv1.3' });
  });

  it('MTLS-07 the client certificate is requested in the handshake and any certificate is accepted (TLS 1.2 and 1.3)', async () => {
    ec.peers.length = 0;
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3']) {
      expect((await handshake(ec.port, { maxVersion, cert: client.cert, key: client.key }, true)).ok).toBe(true);
    }
    // A self-signed certificate no CA vouches for: the server still has it (RFC 8705 §6.2).
    expect(ec.peers.map((p) => p.raw && Buffer.from(p.raw).equals(Buffer.from(client.der)))).toEqual([true, true]);
  });

  it("MTLS-07 clientCertificates: 'none' asks for no certificate", async () => {
    const dpopOnly = await tlsServer(fapiTlsOptions({ cert: ecServer.cert, key: ecServer.key, clientCertificates: 'none' }));
    try {
      expect((await handshake(dpopOnly.port, { cert: client.cert, key: client.key }, true)).ok).toBe(true);
      expect(dpopOnly.peers[0]?.raw).toBeUndefined();
    } finally {
      dpopOnly.server.close();
    }
  });

  it('refuses an unknown clientCertificates mode at start-up', () => {
    expect(() => fapiTlsOptions({ cert: ecServer.cert, key: ecServer.key, clientCertificates: 'require' as 'request' })).toThrow(
      /clientCertificates "require"/,
    );
  });

  it('works as https.createServer options', async () => {
    const server = createHttpsServer(fapiTlsOptions({ cert: ecServer.cert, key: ecServer.key }), (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const res = await send(`https://127.0.0.1:${(server.address() as AddressInfo).port}/`, { tls: { ca: ecServer.cert } });
      expect(res.text).toBe('ok');
    } finally {
      server.close();
    }
  });
});

describe('the example API terminating TLS with the preset (TLS_CERT / TLS_KEY)', () => {
  let api: RunningExample;
  beforeAll(async () => {
    api = await startExample({
      ...readConfig({}),
      port: 0,
      audience: 'https://payments.example',
      publicUrl: 'https://payments.example',
      tls: { cert: ecServer.cert, key: ecServer.key },
    });
  });
  afterAll(() => api.close());

  const port = () => Number(new URL(api.url).port);

  it('MTLS-07 a certificate-bound token is accepted with the certificate presented in the handshake, refused with another', async () => {
    const token = await api.mock?.mint({ scope: 'accounts', x5t: client.x5t, audience: 'https://payments.example' });
    const headers = { authorization: `Bearer ${token}` };
    const ok = await send(`${api.url}/accounts`, { headers, tls: { ca: ecServer.cert, cert: client.cert, key: client.key } });
    expect(ok.status).toBe(200);
    const other = await createCertificate();
    expect((await send(`${api.url}/accounts`, { headers, tls: { ca: ecServer.cert, cert: other.cert, key: other.key } })).status).toBe(401);
    expect((await send(`${api.url}/accounts`, { headers, tls: { ca: ecServer.cert } })).status).toBe(401);
  });

  it('PRM-06 FAPI-RS-17 the metadata endpoint is served under the BCP 195 settings only', async () => {
    const metadata = await send(`${api.url}/.well-known/oauth-protected-resource`, { tls: { ca: ecServer.cert } });
    expect(metadata.json).toMatchObject({ resource: 'https://payments.example' });
    expect((await handshake(port(), { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ...LEGACY })).ok).toBe(false);
    expect((await handshake(port(), { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256:@SECLEVEL=0' })).ok).toBe(false);
    expect(await handshake(port(), { maxVersion: 'TLSv1.2' })).toMatchObject({
      ok: true,
      cipher: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
    });
  });
});
