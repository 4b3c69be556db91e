/**
 * Open Finance Brasil test parties: the resource server's audience, three organisations (two
 * clients and the bank), their RSA keys, a client's signed request body and the bank's signed
 * answer checked ("Como assinar o payload": PS256 compact JWS, `aud`, `iss`, `iat`, `jti`, `data`).
 */
import { constants, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { type GuardOptions, MemoryReplayStore } from '@fapi-guard/core';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { jwtVerify } from 'jose';
import { clientKeyStore, type Listening, send } from './http';

export const AUDIENCE = 'https://rs.example.com';
export const URL_PAYMENTS = `${AUDIENCE}/payments`;
export const CLIENT_ORG = 'c2a8ea4b-19e3-4de9-a0a2-36e6c3bdbf0f';
export const OTHER_ORG = '74e929d9-33b6-4d85-8ba7-c146c867a817';
export const BANK_ORG = 'b961c4eb-509d-4edf-afeb-35642b38185d';

/** `client-1`'s key (kid `client-key`), `client-2`'s (kid `other-key`), the bank's (kid `bank-key`). */
export const clientKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
export const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
export const bankKey = generateKeyPairSync('rsa', { modulusLength: 2048 });

/** The bank's private JWK, as `messageSigning.openFinanceBrasil.responseKey`. */
export const bankResponseKey = () => ({ ...(bankKey.privateKey.export({ format: 'jwk' }) as object), kid: 'bank-key' });

/**
 * A body signed by `client-1` (or `client-2` with `other`) for POST /payments, `dataText` written
 * as is (a test may send JSON that no serialiser would write).
 */
export function signedBody(dataText: string, other = false, jti = randomUUID(), kid = other ? 'other-key' : 'client-key'): string {
  const header = Buffer.from(JSON.stringify({ alg: 'PS256', typ: 'JWT', kid })).toString('base64url');
  const claims = `{"aud":${JSON.stringify(URL_PAYMENTS)},"iss":${JSON.stringify(other ? OTHER_ORG : CLIENT_ORG)},"iat":${Math.floor(Date.now() / 1000)},"jti":${JSON.stringify(jti)},"data":${dataText}}`;
  const input = `${header}.${Buffer.from(claims).toString('base64url')}`;
  const signature = sign('sha256', Buffer.from(input), {
    key: (other ? otherKey : clientKey).privateKey,
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: 32,
  });
  return `${input}.${signature.toString('base64url')}`;
}

/** The bank's signed answer, verified: PS256 with `bank-key`, `typ` JWT, audience the client's organisation, issuer the bank. */
export async function bankPayload(text: string, audience = CLIENT_ORG) {
  const { payload, protectedHeader } = await jwtVerify(text, bankKey.publicKey, {
    algorithms: ['PS256'],
    audience,
    issuer: BANK_ORG,
    typ: 'JWT',
  });
  if (protectedHeader.kid !== 'bank-key' || typeof payload.jti !== 'string') throw new Error('not the bank’s answer: kid or jti');
  return payload as { data: Record<string, unknown>; jti: string };
}

export interface PayOptions {
  /** The token's `client_id` (default `client-1`). */
  clientId?: string;
  /** The request's path (default `/payments`). */
  path?: string;
  /** More claims of the token. */
  claims?: object;
  /** The body's media type (default `application/jwt`). */
  contentType?: string;
}

/**
 * What a suite starts around its tests: the issuer, the DPoP key of the clients' tokens and the two
 * clients' JWK sets; with the bank's guard options and a client's payment request built on them.
 */
export class BrazilParties {
  as!: MockIssuer;
  dpop!: DpopClient;
  /** `client-1`'s JWK set (kid `client-key`) at `/client.jwks`. */
  keyStore!: Listening;
  /** `client-2`'s JWK set (kid `other-key`) at `/client.jwks`. */
  otherKeyStore!: Listening;
  /** The DPoP replay store of the guards built by `options`. */
  readonly replayStore = new MemoryReplayStore();

  /** Parties started before the tests of the enclosing block (`beforeAll`) and stopped after them. */
  static use(): BrazilParties {
    const parties = new BrazilParties();
    beforeAll(async () => {
      [parties.as, parties.dpop, parties.keyStore, parties.otherKeyStore] = await Promise.all([
        MockIssuer.start({ audience: AUDIENCE }),
        DpopClient.create('ES256'),
        clientKeyStore(clientKey.publicKey),
        clientKeyStore(otherKey.publicKey, 'other-key'),
      ]);
    });
    afterAll(() => Promise.all([parties.as?.stop(), parties.keyStore?.close(), parties.otherKeyStore?.close()]));
    return parties;
  }

  /** The bank's guard: DPoP-bound tokens of the issuer, both clients with their JWK sets, the bank's signing key. */
  options(extra: Partial<GuardOptions> = {}): GuardOptions {
    return {
      issuer: this.as.issuer,
      audience: AUDIENCE,
      publicUrl: AUDIENCE,
      dpop: { replayStore: this.replayStore },
      messageSigning: {
        openFinanceBrasil: {
          clients: {
            'client-1': { organisationId: CLIENT_ORG, jwksUri: `${this.keyStore.url}/client.jwks` },
            'client-2': { organisationId: OTHER_ORG, jwksUri: `${this.otherKeyStore.url}/client.jwks` },
          },
          organisationId: BANK_ORG,
          responseKey: bankResponseKey(),
        },
      },
      ...extra,
    };
  }

  /** POST `body` with a fresh DPoP-bound token (scope `payments:write`), and `x-idempotency-key: key` when given. */
  async pay(url: string, body: string, key: string | undefined, options: PayOptions = {}) {
    const { clientId = 'client-1', path = '/payments', claims = {}, contentType = 'application/jwt' } = options;
    const token = await this.as.mint({ scope: 'payments:write', jkt: this.dpop.jkt, claims: { client_id: clientId, ...claims } });
    const proof = await this.dpop.proof({ htm: 'POST', htu: `${AUDIENCE}${path}`, accessToken: token });
    return send(`${url}${path}`, {
      method: 'POST',
      body,
      headers: {
        authorization: `DPoP ${token}`,
        dpop: proof,
        'content-type': contentType,
        ...(key === undefined ? {} : { 'x-idempotency-key': key }),
      },
    });
  }
}
