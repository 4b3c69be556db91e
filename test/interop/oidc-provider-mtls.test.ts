/**
 * Interop, certificate-bound tokens: a real authorization server (`oidc-provider` over HTTPS
 * with mTLS, `tls_client_certificate_bound_access_tokens`) issues an RFC 8705 token to a client
 * that presents a certificate; the example API checks it on its own TLS listener.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificate, type TestCertificate } from '@fapi-guard/testing';
import { readConfig } from '../../examples/payments-api/src/config';
import { type RunningExample, startExample } from '../../examples/payments-api/src/server';
import { send } from '../support/http';

const RESOURCE = 'https://rs.example.com';
let asProcess: ChildProcess;
let issuer: string;
let ca: TestCertificate;
let client: TestCertificate;
let other: TestCertificate;
let api: RunningExample;

/** POST over HTTPS with a client certificate (what a FAPI client does at the token endpoint). */
function post(url: string, body: string, cert: TestCertificate, auth: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca: ca.cert,
        cert: cert.cert,
        key: cert.key,
        agent: false,
        headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function get(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    request(url, { ca: ca.cert, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d;
      });
      res.on('end', () => resolve(JSON.parse(text)));
    })
      .on('error', reject)
      .end();
  });
}

beforeAll(async () => {
  ca = await createCertificate({ subject: 'CN=Interop CA', ca: true });
  const serverCert = await createCertificate({ subject: 'CN=127.0.0.1', hosts: ['127.0.0.1'], issuer: ca });
  client = await createCertificate({ subject: 'CN=interop-client', issuer: ca });
  other = await createCertificate({ subject: 'CN=someone-else' });
  const dir = mkdtempSync(join(tmpdir(), 'fapi-guard-'));
  const tlsFile = join(dir, 'tls.json');
  writeFileSync(tlsFile, JSON.stringify({ cert: serverCert.cert, key: serverCert.key }));
  asProcess = spawn(process.execPath, [join(__dirname, 'oidc-provider-as.mjs'), RESOURCE, tlsFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  issuer = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`oidc-provider did not start: ${out}`)), 15_000);
    asProcess.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(JSON.parse(out.slice(0, out.indexOf('\n'))).issuer);
      }
    });
  });
  // The AS's keys are handed over as a static set: Node's fetch does not trust the test CA.
  const metadata = (await get(`${issuer}/.well-known/openid-configuration`)) as { jwks_uri: string };
  const jwks = (await get(metadata.jwks_uri)) as { keys: [] };
  api = await startExample(
    { ...readConfig({}), port: 0, issuer, audience: RESOURCE, tls: { cert: serverCert.cert, key: serverCert.key } },
    undefined,
    { issuer: { issuer, jwks } },
  );
});

afterAll(async () => {
  await api?.close();
  asProcess?.kill('SIGTERM');
});

describe('oidc-provider certificate-bound tokens', () => {
  it('MTLS-05 MTLS-01 a token bound to the client certificate opens /accounts only with that certificate', async () => {
    const basic = `Basic ${Buffer.from('interop-client:interop-client-secret-that-is-long-enough').toString('base64')}`;
    const token = await post(
      `${issuer}/token`,
      `grant_type=client_credentials&scope=accounts&resource=${encodeURIComponent(RESOURCE)}`,
      client,
      basic,
    );
    expect(token.status).toBe(200);
    expect(token.json.token_type).toBe('Bearer');
    const accessToken = token.json.access_token as string;
    const claims = JSON.parse(Buffer.from(accessToken.split('.')[1] as string, 'base64url').toString());
    expect(claims.cnf).toEqual({ 'x5t#S256': client.x5t });

    const call = (cert: TestCertificate) =>
      send(`${api.url}/accounts`, {
        headers: { authorization: `Bearer ${accessToken}` },
        tls: { ca: ca.cert, cert: cert.cert, key: cert.key },
      });
    expect((await call(client)).status).toBe(200);
    const stolen = await call(other);
    expect(stolen.status).toBe(401);
    expect(stolen.headers['www-authenticate']).toContain('Bearer realm="https://rs.example.com", error="invalid_token"');
  });
});
