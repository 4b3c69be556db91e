/**
 * The example API as either open-banking regime (`FAPI_REGIME=uk-ob | br-of`): `npm run demo`
 * in each regime, and `POST /payments` on every framework over HTTP with a certificate-bound
 * token, signed by jose as the third-party provider, the bank's signed answers verified by jose.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { clientCertHeader, DpopClient } from '@fapi-guard/testing';
import { readConfig } from '../src/config';
import type { RegimeClient } from '../src/regime';
import { brSignedBody, obSignature, verifyBrResponse, verifyObResponse } from '../src/regime-demo';
import { type RunningExample, startExample } from '../src/server';

const AUDIENCE = 'https://payments.example';
const payment = { amount: { amount: '10.00', currency: 'GBP' }, creditorAccount: 'GB29NWBK60161331926819' };

function demo(regime: string): Promise<{ code: number; output: string }> {
  const child = spawn(process.execPath, [join(__dirname, '..', 'dist', 'demo.js')], {
    env: { ...process.env, FAPI_REGIME: regime },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    output += d.toString();
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code: code ?? -1, output })));
}

/** The `Errors[].ErrorCode` of an OB error envelope. */
async function obErrorCode(res: Response): Promise<string | undefined> {
  const body = (await res.json()) as { Errors?: { ErrorCode?: string }[] };
  return body.Errors?.[0]?.ErrorCode;
}

/** The `errors[].code` of the Brazil error envelope (the `data` claim of the bank-signed JWT), read after verifying it. */
async function brErrorCode(client: RegimeClient, res: Response): Promise<string | undefined> {
  const text = await res.text();
  await verifyBrResponse(client, text);
  const claims = JSON.parse(Buffer.from(text.split('.')[1] as string, 'base64url').toString()) as {
    data?: { errors?: { code?: string }[] };
  };
  return claims.data?.errors?.[0]?.code;
}

describe('FAPI_REGIME', () => {
  it('is fapi2, uk-ob or br-of; anything else stops start-up', () => {
    expect(readConfig({}).regime).toBe('fapi2');
    expect(readConfig({ FAPI_REGIME: 'uk-ob' }).regime).toBe('uk-ob');
    expect(readConfig({ FAPI_REGIME: 'br-of' }).regime).toBe('br-of');
    expect(() => readConfig({ FAPI_REGIME: 'UK-OB' })).toThrow('FAPI_REGIME "UK-OB" is not one of fapi2, uk-ob, br-of');
  });
});

describe.each(['uk-ob', 'br-of'])('FAPI_REGIME=%s npm run demo', (regime) => {
  it('shows a signed payment accepted with a verified signed answer, tampered and unsigned ones refused', async () => {
    const { code, output } = await demo(regime);
    expect(output).toContain('Every outcome was the expected one.');
    expect(code).toBe(0);
    expect(output).toContain('profile fapi1-advanced');
    if (regime === 'uk-ob') {
      expect(output).toContain('UK.OBIE.Signature.Invalid');
      expect(output).toContain('UK.OBIE.Signature.Missing');
    } else {
      expect(output).toContain('"code":"BAD_SIGNATURE"');
      expect(output).toContain('The signed request body was already used');
    }
    expect(output).toContain('The access token requires a client certificate');
  });
});

describe.each(['express', 'koa', 'fastify', 'nestjs', 'nestjs-fastify', 'hono'] as const)('regimes on %s', (framework) => {
  describe.each(['uk-ob', 'br-of'] as const)('FAPI_REGIME=%s', (regime) => {
    let api: RunningExample;
    let client: RegimeClient;
    let token: string;
    beforeAll(async () => {
      api = await startExample({ ...readConfig({ FAPI_FRAMEWORK: framework, FAPI_REGIME: regime }), port: 0, audience: AUDIENCE });
      client = api.regimeClient as RegimeClient;
      token = await (api.mock as NonNullable<RunningExample['mock']>).mint({
        scope: 'payments:write accounts',
        x5t: client.certificate.x5t,
        claims: { client_id: client.clientId },
      });
    });
    afterAll(() => api.close());

    const pay = (body: string, headers: Record<string, string>, certificate = true) =>
      fetch(`${api.url}/payments`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          ...(certificate ? { 'client-cert': clientCertHeader(client.certificate.der) } : {}),
          ...headers,
        },
        body,
      });

    if (regime === 'uk-ob') {
      const json = { 'content-type': 'application/json' };
      it('UKOB-02 UKOB-08 takes a payment with the x-jws-signature of its bytes and signs the answer', async () => {
        const body = JSON.stringify(payment);
        const res = await pay(body, { ...json, 'x-jws-signature': await obSignature(client, body) });
        const text = await res.text();
        expect(res.status).toBe(201);
        await verifyObResponse(client, res.headers.get('x-jws-signature'), text);
        expect(JSON.parse(text)).toMatchObject({ data: { amount: payment.amount, status: 'AcceptedSettlementInProcess' } });
      });
      it('UKOB-02 UKOB-09 refuses a tampered body and a payment without x-jws-signature', async () => {
        const body = JSON.stringify(payment);
        const signature = await obSignature(client, body);
        const tampered = await pay(body.replace('10.00', '10.01'), { ...json, 'x-jws-signature': signature });
        expect(tampered.status).toBe(400);
        expect(await obErrorCode(tampered)).toBe('UK.OBIE.Signature.Invalid');
        const unsigned = await pay(body, json);
        expect(unsigned.status).toBe(400);
        expect(await obErrorCode(unsigned)).toBe('UK.OBIE.Signature.Missing');
      });
    } else {
      const jwt = { 'content-type': 'application/jwt' };
      it('BR-01 BR-07 takes a payment as a signed JWT, hands its data claim to the handler, and answers with a signed JWT', async () => {
        const res = await pay(await brSignedBody(client, `${AUDIENCE}/payments`, payment), jwt);
        const text = await res.text();
        expect(res.status).toBe(201);
        expect(res.headers.get('content-type')).toMatch(/^application\/jwt/);
        await verifyBrResponse(client, text);
        const claims = JSON.parse(Buffer.from(text.split('.')[1] as string, 'base64url').toString());
        expect(claims).toMatchObject({ aud: client.iss, iss: client.bankIss, data: { data: { amount: payment.amount } } });
      });
      it('BR-02 BR-04 BR-07 refuses a tampered JWT and a replayed one, in the signed Brazil envelope', async () => {
        const signed = await brSignedBody(client, `${AUDIENCE}/payments`, payment);
        const [header, claims, signature] = signed.split('.');
        const changed = JSON.parse(Buffer.from(claims as string, 'base64url').toString());
        changed.data.amount.amount = '10.01';
        const tampered = await pay([header, Buffer.from(JSON.stringify(changed)).toString('base64url'), signature].join('.'), jwt);
        expect(tampered.status).toBe(400);
        expect(await brErrorCode(client, tampered)).toBe('BAD_SIGNATURE');
        expect((await pay(signed, jwt)).status).toBe(201);
        const replayed = await pay(signed, jwt);
        expect(replayed.status).toBe(400);
        expect(await brErrorCode(client, replayed)).toBe('BAD_SIGNATURE');
      });
    }

    it('FAPIA-RS-01 FAPIA-RS-02 FAPIA-RS-05 takes certificate-bound tokens only (no certificate, or a DPoP-bound token: 401) and echoes an interaction id', async () => {
      const body = regime === 'uk-ob' ? JSON.stringify(payment) : await brSignedBody(client, `${AUDIENCE}/payments`, payment);
      const headers: Record<string, string> =
        regime === 'uk-ob'
          ? { 'content-type': 'application/json', 'x-jws-signature': await obSignature(client, body) }
          : { 'content-type': 'application/jwt' };
      expect((await pay(body, headers, false)).status).toBe(401);
      const dpop = await DpopClient.create('ES256');
      const dpopToken = await (api.mock as NonNullable<RunningExample['mock']>).mint({
        scope: 'accounts',
        jkt: dpop.jkt,
        claims: { client_id: client.clientId },
      });
      const res = await fetch(`${api.url}/accounts`, {
        headers: {
          authorization: `DPoP ${dpopToken}`,
          dpop: await dpop.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: dpopToken }),
        },
      });
      expect(res.status).toBe(401);
      const accounts = await fetch(`${api.url}/accounts`, {
        headers: { authorization: `Bearer ${token}`, 'client-cert': clientCertHeader(client.certificate.der) },
      });
      expect(accounts.status).toBe(200);
      // FAPI 1.0 Part 1 §6.2.1 #11: the interaction id comes back (generated when the client sent none).
      expect(accounts.headers.get('x-fapi-interaction-id')).toMatch(/^[0-9a-f-]{36}$/);
    });
  });
});
