/**
 * `FAPI_REGIME=uk-ob | br-of npm run demo`: a third-party provider with a certificate-bound token
 * pays through the example API under the regime's signing scheme. Its signatures are made, and
 * the bank's signed answers checked, with jose, independently of fapi-guard.
 */
import { randomUUID } from 'node:crypto';
import { clientCertHeader, DpopClient } from '@fapi-guard/testing';
import { FlattenedSign, flattenedVerify, jwtVerify, SignJWT } from 'jose';
import { type Regime, readConfig } from './config.js';
import type { RegimeClient } from './regime.js';
import { startExample } from './server.js';
import { runSteps, type Step } from './steps.js';

const OB_IAT = 'http://openbanking.org.uk/iat';
const OB_ISS = 'http://openbanking.org.uk/iss';
const OB_TAN = 'http://openbanking.org.uk/tan';
const OB_CRIT = { [OB_IAT]: true, [OB_ISS]: true, [OB_TAN]: true };

const payment = { amount: { amount: '10.00', currency: 'GBP' }, creditorAccount: 'GB29NWBK60161331926819' };

/** OB Read/Write API v3.1.4+ "Message Signing": a detached JWS over the body bytes, `protected..signature`. */
export async function obSignature(client: RegimeClient, body: string): Promise<string> {
  const header = {
    alg: 'PS256',
    kid: client.kid,
    [OB_IAT]: Math.floor(Date.now() / 1000),
    [OB_ISS]: client.iss,
    [OB_TAN]: client.trustAnchor,
    crit: [OB_IAT, OB_ISS, OB_TAN],
  };
  const jws = await new FlattenedSign(new TextEncoder().encode(body))
    .setProtectedHeader(header as never)
    .sign(client.signingKey, { crit: OB_CRIT });
  return `${jws.protected}..${jws.signature}`;
}

/** Checks the bank's `x-jws-signature` over the bytes received; throws when it does not verify. */
export async function verifyObResponse(client: RegimeClient, signature: string | null, body: string): Promise<void> {
  const [protectedHeader, empty, value] = (signature ?? '').split('.');
  if (!protectedHeader || empty !== '' || !value) throw new Error('the response carries no detached x-jws-signature');
  const { protectedHeader: header } = await flattenedVerify(
    { protected: protectedHeader, payload: Buffer.from(body).toString('base64url'), signature: value },
    client.bankKey,
    { crit: OB_CRIT, algorithms: ['PS256'] },
  );
  if (header?.[OB_ISS] !== client.bankIss) throw new Error(`the response is signed by ${String(header?.[OB_ISS])}, not the bank`);
}

/** Open Finance Brasil: the payment as a PS256-signed JWT, `aud` the URL called, `iss` the organisation. */
export async function brSignedBody(client: RegimeClient, url: string, data: object = { ...payment }): Promise<string> {
  return new SignJWT({ data })
    .setProtectedHeader({ alg: 'PS256', typ: 'JWT', kid: client.kid })
    .setAudience(url)
    .setIssuer(client.iss)
    .setIssuedAt()
    .setJti(randomUUID())
    .sign(client.signingKey);
}

/** Checks the bank's signed JWT answer; throws when it does not verify. */
export async function verifyBrResponse(client: RegimeClient, body: string): Promise<void> {
  await jwtVerify(body, client.bankKey, { algorithms: ['PS256'], audience: client.iss, issuer: client.bankIss, typ: 'JWT' });
}

/** A JWS whose payload was changed after signing (the signature is the original one). */
function tamperedJwt(jwt: string, data: object): string {
  const [header, payload, signature] = jwt.split('.');
  const claims = JSON.parse(Buffer.from(payload as string, 'base64url').toString());
  return [header, Buffer.from(JSON.stringify({ ...claims, data })).toString('base64url'), signature].join('.');
}

/** Runs the walkthrough; returns the number of unexpected outcomes. */
export async function regimeDemo(regime: Exclude<Regime, 'fapi2'>, audience: string): Promise<number> {
  const config = readConfig({ FAPI_REGIME: regime, FAPI_FRAMEWORK: process.env.FAPI_FRAMEWORK });
  const api = await startExample({ ...config, port: 0, publicUrl: undefined, audience });
  try {
    const client = api.regimeClient as RegimeClient;
    const mock = api.mock as NonNullable<typeof api.mock>;
    const certificate = clientCertHeader(client.certificate.der);
    // FAPI 1.0 Part 2 §6.2.1 #2: the token is bound to the client's certificate (RFC 8705 cnf x5t#S256).
    const token = await mock.mint({ scope: 'payments:write', x5t: client.certificate.x5t, claims: { client_id: client.clientId } });
    const paymentsUrl = `${api.url}/payments`;
    /** POST /payments as the TPP's TLS-terminating proxy forwards it: the client certificate in `client-cert`. */
    const pay = (body: string, headers: Record<string, string>, mtls = true) =>
      fetch(paymentsUrl, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, ...(mtls ? { 'client-cert': certificate } : {}), ...headers },
        body,
      });
    /** Verifies an accepted answer's signature before the step prints it: a bad one stops the demo. */
    const check = async (res: Response, verify: (res: Response, body: string) => Promise<void>) => {
      if (res.status < 300) await verify(res, await res.clone().text());
      return res;
    };
    console.log(`fapi-guard demo: ${regime === 'uk-ob' ? 'UK Open Banking' : 'Open Finance Brasil'} against the example payments API`);
    console.log(`API ${api.url} · issuer ${api.issuer} (embedded MockIssuer) · audience ${audience} · profile fapi1-advanced`);
    console.log(`Client ${client.clientId} (${client.iss}), certificate x5t#S256 ${client.certificate.x5t}\n`);

    const steps: Step[] = [];
    if (regime === 'uk-ob') {
      const body = JSON.stringify(payment);
      const signature = await obSignature(client, body);
      const json = { 'content-type': 'application/json' };
      steps.push(
        {
          title:
            'POST /payments with a certificate-bound token and the x-jws-signature of the body (the answer is signed: verified with jose)',
          expect: 201,
          run: async () =>
            check(await pay(body, { ...json, 'x-jws-signature': signature }), (res, text) =>
              verifyObResponse(client, res.headers.get('x-jws-signature'), text),
            ),
        },
        {
          title: 'The same signature with another amount in the body (tampered)',
          expect: 400,
          run: () => pay(body.replace('10.00', '99.00'), { ...json, 'x-jws-signature': signature }),
        },
        { title: 'A payment without x-jws-signature', expect: 400, run: () => pay(body, json) },
      );
    } else {
      const jwt = { 'content-type': 'application/jwt' };
      const signed = await brSignedBody(client, `${audience}/payments`);
      steps.push(
        {
          title:
            'POST /payments with a certificate-bound token and the payment as a signed JWT (the answer is a signed JWT: verified with jose)',
          expect: 201,
          run: async () => check(await pay(signed, jwt), (_res, text) => verifyBrResponse(client, text)),
        },
        { title: 'The same JWT again (its jti was used)', expect: 400, run: () => pay(signed, jwt) },
        {
          title: 'A signed JWT whose data claim was changed after signing (tampered)',
          expect: 400,
          run: async () =>
            pay(
              tamperedJwt(await brSignedBody(client, `${audience}/payments`), { ...payment, amount: { amount: '99.00', currency: 'BRL' } }),
              jwt,
            ),
        },
        {
          title: 'A JWT signed for another URL',
          expect: 400,
          run: async () => pay(await brSignedBody(client, `${audience}/consents`), jwt),
        },
        {
          title: 'The payment as plain JSON',
          expect: 400,
          run: () => pay(JSON.stringify(payment), { 'content-type': 'application/json' }),
        },
      );
    }
    steps.push({
      title: 'A correctly signed payment without the client certificate the token is bound to',
      expect: 401,
      run: async () => {
        const body = JSON.stringify(payment);
        return regime === 'uk-ob'
          ? pay(body, { 'content-type': 'application/json', 'x-jws-signature': await obSignature(client, body) }, false)
          : pay(await brSignedBody(client, `${audience}/payments`), { 'content-type': 'application/jwt' }, false);
      },
    });
    // FAPI 1.0 Advanced takes certificate-bound tokens only: a DPoP-bound one is refused.
    const dpop = await DpopClient.create('ES256');
    const dpopToken = await mock.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: client.clientId } });
    steps.push({
      title: 'A DPoP-bound token with a valid proof (FAPI 1.0 Advanced: certificate-bound tokens only)',
      expect: 401,
      run: async () =>
        fetch(paymentsUrl, {
          method: 'POST',
          headers: {
            authorization: `DPoP ${dpopToken}`,
            dpop: await dpop.proof({ htm: 'POST', htu: `${audience}/payments`, accessToken: dpopToken }),
            'content-type': 'application/json',
          },
          body: JSON.stringify(payment),
        }),
    });
    return await runSteps(steps);
  } finally {
    await api.close();
  }
}
