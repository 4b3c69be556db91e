/**
 * Interop with third-party software, none of it ours: a real authorization server
 * (`oidc-provider`, client_credentials with a resource indicator, DPoP-bound JWT access tokens)
 * and real client libraries (`oauth4webapi`, `dpop`) calling the example payments API.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { FAPI_ALGORITHMS } from '@fapi-guard/core';
import { generateKeyPair as dpopKeyPair, generateProof } from 'dpop';
import * as oauth from 'oauth4webapi';
import { createPaymentsApi } from '../../examples/payments-api/src/app';
import { readConfig } from '../../examples/payments-api/src/config';
import { startExample } from '../../examples/payments-api/src/server';

const RESOURCE = 'https://rs.example.com';
let asProcess: ChildProcess;
let issuer: URL;
let api: Server;
let apiUrl: string;
let decisions: { outcome: string; reason?: string }[];

async function startAs(): Promise<void> {
  asProcess = spawn(process.execPath, [join(__dirname, 'oidc-provider-as.mjs'), RESOURCE], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`oidc-provider did not start: ${out}`)), 15_000);
    asProcess.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    asProcess.once('exit', (code) => reject(new Error(`oidc-provider exited with ${code}`)));
  });
  issuer = new URL(JSON.parse(line).issuer);
}

beforeAll(async () => {
  await startAs();
  decisions = [];
  // The client libraries make proofs for the URL they call: the API is told that URL (publicUrl),
  // which needs the port first.
  api = createServer().listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => api.once('listening', () => resolve()));
  apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  const app = createPaymentsApi({
    guard: {
      issuer: issuer.href.replace(/\/$/, ''),
      audience: RESOURCE,
      publicUrl: apiUrl,
      // RFC 9864 names Ed25519 on its own; oauth4webapi and dpop use that name.
      algorithms: [...FAPI_ALGORITHMS, 'Ed25519'],
      onDecision: (e) => decisions.push(e),
    },
  });
  api.on('request', app);
});

afterAll(async () => {
  api.closeAllConnections();
  await new Promise<void>((resolve) => api.close(() => resolve()));
  asProcess.kill('SIGTERM');
});

const insecure = { [oauth.allowInsecureRequests]: true } as const;
const client: oauth.Client = { client_id: 'interop-client' };
const clientAuth = oauth.ClientSecretBasic('interop-client-secret-that-is-long-enough');

async function authorizationServer(): Promise<oauth.AuthorizationServer> {
  const res = await oauth.discoveryRequest(issuer, { ...insecure, algorithm: 'oidc' });
  return oauth.processDiscoveryResponse(issuer, res);
}

async function dpopToken(as: oauth.AuthorizationServer, DPoP: oauth.DPoPHandle, scope: string): Promise<oauth.TokenEndpointResponse> {
  const params = new URLSearchParams({ scope, resource: RESOURCE });
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await oauth.clientCredentialsGrantRequest(as, client, clientAuth, params, { ...insecure, DPoP });
      return await oauth.processClientCredentialsResponse(as, client, res);
    } catch (e) {
      if (attempt === 0 && oauth.isDPoPNonceError(e)) continue;
      throw e;
    }
  }
}

/** A resource request that answers a nonce challenge the way oauth4webapi documents it. */
async function resource(token: string, method: string, path: string, DPoP: oauth.DPoPHandle, body?: unknown): Promise<Response> {
  const headers = new Headers(body ? { 'content-type': 'application/json' } : {});
  const payload = body ? JSON.stringify(body) : null;
  try {
    return await oauth.protectedResourceRequest(token, method, new URL(path, apiUrl), headers, payload, { ...insecure, DPoP });
  } catch (e) {
    if (!oauth.isDPoPNonceError(e)) throw e;
    return oauth.protectedResourceRequest(token, method, new URL(path, apiUrl), headers, payload, { ...insecure, DPoP });
  }
}

describe('oidc-provider + oauth4webapi', () => {
  it('FAPI-RS-01 a DPoP-bound RFC 9068 token from oidc-provider opens GET /accounts', async () => {
    const as = await authorizationServer();
    const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
    const token = await dpopToken(as, DPoP, 'accounts');
    expect(token.token_type.toLowerCase()).toBe('dpop');
    const [header, payload] = token.access_token
      .split('.')
      .slice(0, 2)
      .map((s) => JSON.parse(Buffer.from(s, 'base64url').toString()));
    expect(header.typ).toBe('at+jwt');
    expect(payload).toMatchObject({ aud: RESOURCE, client_id: 'interop-client', cnf: { jkt: expect.any(String) } });

    const res = await resource(token.access_token, 'GET', '/accounts', DPoP);
    expect(res.status).toBe(200);
    expect(decisions.at(-1)).toMatchObject({ outcome: 'allow', binding: 'dpop', clientId: 'interop-client' });
  });

  it('DPOP-12 the client answers the nonce challenge of POST /payments by itself', async () => {
    const as = await authorizationServer();
    const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
    const token = await dpopToken(as, DPoP, 'payments:write payments:read');
    decisions.length = 0;
    const res = await resource(token.access_token, 'POST', '/payments', DPoP, {
      amount: { amount: '25.00', currency: 'EUR' },
      creditorAccount: 'GB33BUKB20201555555555',
    });
    expect(res.status).toBe(201);
    expect(decisions.map((d) => d.reason ?? d.outcome)).toEqual(['dpop_nonce_required', 'allow']);
    const { data } = (await res.json()) as { data: { id: string } };
    expect((await resource(token.access_token, 'GET', `/payments/${data.id}`, DPoP)).status).toBe(200);
  });

  it('DPOP-17 the same token sent as a bearer token is refused', async () => {
    const as = await authorizationServer();
    const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
    const token = await dpopToken(as, DPoP, 'accounts');
    const res = await fetch(new URL('/accounts', apiUrl), { headers: { authorization: `Bearer ${token.access_token}` } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('FAPI-RS-07 a token without the route scope gets 403 insufficient_scope', async () => {
    const as = await authorizationServer();
    dpopLibKeys ??= await dpopKeyPair('ES256');
    const DPoP = oauth.DPoP(client, dpopLibKeys as unknown as oauth.CryptoKeyPair);
    const token = await dpopToken(as, DPoP, 'accounts');
    const res = await fetch(new URL('/payments/x', apiUrl), {
      headers: { authorization: `DPoP ${token.access_token}`, dpop: await proofFromDpopLibrary(token.access_token, 'GET', '/payments/x') },
    });
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toContain('scope="payments:read"');
  });
});

let dpopLibKeys: Awaited<ReturnType<typeof dpopKeyPair>> | undefined;
async function proofFromDpopLibrary(token: string, method: string, path: string): Promise<string> {
  dpopLibKeys ??= await dpopKeyPair('ES256');
  return generateProof(dpopLibKeys, new URL(path, apiUrl).href, method, undefined, token);
}

describe('oidc-provider + the dpop library', () => {
  it('DPOP-15 a proof from the dpop library with another key than the token is refused', async () => {
    const as = await authorizationServer();
    const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
    const token = await dpopToken(as, DPoP, 'accounts');
    const res = await fetch(new URL('/accounts', apiUrl), {
      headers: { authorization: `DPoP ${token.access_token}`, dpop: await proofFromDpopLibrary(token.access_token, 'GET', '/accounts') },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^DPoP algs="[^"]+", error="invalid_token"/);
  });

  it('DPOP-01 Ed25519 proofs (RFC 9864 name) from the dpop library are accepted when allowed', async () => {
    const keys = await dpopKeyPair('Ed25519');
    const as = await authorizationServer();
    const DPoP = oauth.DPoP(client, keys as unknown as oauth.CryptoKeyPair);
    const token = await dpopToken(as, DPoP, 'accounts');
    const proof = await generateProof(keys, new URL('/accounts', apiUrl).href, 'GET', undefined, token.access_token);
    const res = await fetch(new URL('/accounts', apiUrl), { headers: { authorization: `DPoP ${token.access_token}`, dpop: proof } });
    expect(res.status).toBe(200);
  });
});

describe('oidc-provider opaque tokens + signed introspection', () => {
  const OPAQUE = `${RESOURCE}/opaque`;
  /** The example's environment for an API that introspects oidc-provider's opaque tokens. */
  const opaqueEnv = () => ({
    PORT: '0',
    FAPI_ISSUER: issuer.href.replace(/\/$/, ''),
    FAPI_AUDIENCE: OPAQUE,
    FAPI_TOKEN_FORMAT: 'opaque',
    FAPI_INTROSPECTION_CLIENT_ID: 'rs-client',
    FAPI_INTROSPECTION_CLIENT_SECRET: 'rs-client-secret-that-is-long-enough',
    FAPI_INTROSPECTION_SIGNED_RESPONSE: 'true',
  });

  it('DPOP-18 JIR-02 FAPI-RS-06 an opaque DPoP-bound token is introspected (signed answer), and refused once revoked', async () => {
    const example = await startExample(readConfig(opaqueEnv()));
    // A fresh API instance after the revocation: the first one keeps answers up to 30 s.
    const decisions: { outcome: string; reason?: string }[] = [];
    const fresh = await startExample(readConfig(opaqueEnv()), (e) => decisions.push(e));
    try {
      const as = await authorizationServer();
      // One key for the token request (oauth4webapi) and for hand-made proofs (dpop).
      const keys = await dpopKeyPair('ES256');
      const DPoP = oauth.DPoP(client, keys as unknown as oauth.CryptoKeyPair);
      const params = new URLSearchParams({ scope: 'accounts', resource: OPAQUE });
      const grant = await oauth.clientCredentialsGrantRequest(as, client, clientAuth, params, { ...insecure, DPoP });
      const token = await oauth.processClientCredentialsResponse(as, client, grant);
      expect(token.access_token.split('.')).toHaveLength(1);
      expect(token.token_type.toLowerCase()).toBe('dpop');
      // The API's origin is its audience's (no publicUrl): the proof names it, the request goes to 127.0.0.1.
      const call = async (base: string) => {
        const proof = await generateProof(keys, new URL('/accounts', OPAQUE).href, 'GET', undefined, token.access_token);
        return fetch(new URL('/accounts', base), { headers: { authorization: `DPoP ${token.access_token}`, dpop: proof } });
      };
      expect((await call(example.url)).status).toBe(200);

      const revocation = await oauth.revocationRequest(as, client, clientAuth, token.access_token, insecure);
      await oauth.processRevocationResponse(revocation);
      const res = await call(fresh.url);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
      // Refused because the AS now calls it inactive, not for any binding reason.
      expect(decisions.at(-1)?.reason).toBe('token_inactive');
    } finally {
      await example.close();
      await fresh.close();
    }
  });
});
