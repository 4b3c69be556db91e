/**
 * The open-banking regimes of the example (`FAPI_REGIME=uk-ob | br-of`): FAPI 1.0 Advanced with
 * certificate-bound tokens, and the regime's signing scheme on `POST /payments`. The example plays
 * the ecosystem too: it makes one demo third-party provider (its client certificate and signing
 * key) and serves that provider's public keys from a key store on 127.0.0.1, as the OB directory
 * (`https://keystore.openbanking.org.uk/{iss}.jwks`) or the Brazil directory would.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MessageSigningOptions, SignatureJwk } from '@fapi-guard/core';
import { createCertificate, type TestCertificate } from '@fapi-guard/testing';
import type { Regime } from './config.js';

/** The demo third-party provider, as the directory knows it. */
export interface RegimeClient {
  regime: Exclude<Regime, 'fapi2'>;
  /** `client_id` of its tokens. */
  clientId: string;
  /** Its identity in signatures: the OB `iss` (org id / software statement id) or the Brazil organisation id. */
  iss: string;
  /** Its RSA signing key (PS256) and that key's `kid` in the key store. */
  signingKey: KeyObject;
  kid: string;
  /** Its client certificate: tokens are bound to it (`cnf["x5t#S256"]`, RFC 8705). */
  certificate: TestCertificate;
  /** The bank's identity and public key, to verify the signed responses. */
  bankIss: string;
  bankKey: KeyObject;
  /** OB trust anchor (`http://openbanking.org.uk/tan`) of both sides. */
  trustAnchor: string;
}

export interface RegimeSetup {
  client: RegimeClient;
  /** The guard's `messageSigning` for the regime. */
  messageSigning: MessageSigningOptions;
  close(): Promise<void>;
}

const OB_TRUST_ANCHOR = 'openbanking.org.uk';
// OB `iss` values are `<organisation id>/<software statement id>` (client) and `<organisation id>` (ASPSP).
const OB_TPP = '0015800001041REXAM/exampleSoftwareStmt1';
const OB_BANK = '0015800000jf9GgEXA';
const BR_TPP = 'c2a8ea4b-19e3-4de9-a0a2-36e6c3bdbf0f';
const BR_BANK = 'b961c4eb-509d-4edf-afeb-35642b38185d';

function rsaKeyPair() {
  return generateKeyPairSync('rsa', { modulusLength: 2048 });
}

/** Starts the regime's key store on 127.0.0.1 and returns the guard settings that use it. */
export async function setUpRegime(regime: Exclude<Regime, 'fapi2'>): Promise<RegimeSetup> {
  const tpp = rsaKeyPair();
  const bank = rsaKeyPair();
  const kid = 'example-tpp-signing';
  const iss = regime === 'uk-ob' ? OB_TPP : BR_TPP;
  const path = regime === 'uk-ob' ? `/${iss}.jwks` : `/${iss}/application.jwks`;
  const publicSet = JSON.stringify({ keys: [{ ...tpp.publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'PS256' }] });
  const keyStore: Server = createServer((req, res) => {
    const found = req.method === 'GET' && req.url === path;
    res.writeHead(found ? 200 : 404, { 'content-type': 'application/json' });
    res.end(found ? publicSet : '{}');
  });
  await new Promise<void>((resolve, reject) => {
    keyStore.once('error', reject);
    keyStore.listen(0, '127.0.0.1', resolve);
  });
  const origin = `http://127.0.0.1:${(keyStore.address() as AddressInfo).port}`;
  const clientId = regime === 'uk-ob' ? 'example-tpp' : 'example-iniciadora';
  const responseKey = { ...bank.privateKey.export({ format: 'jwk' }), kid: 'example-bank-signing' } as SignatureJwk;
  const messageSigning: MessageSigningOptions =
    regime === 'uk-ob'
      ? {
          ukOpenBanking: {
            trustAnchors: { [OB_TRUST_ANCHOR]: `${origin}/{iss}.jwks` },
            clients: { [clientId]: iss },
            responseKey,
            responseIssuer: OB_BANK,
            responseTrustAnchor: OB_TRUST_ANCHOR,
          },
        }
      : {
          openFinanceBrasil: {
            clients: { [clientId]: { organisationId: iss, jwksUri: `${origin}${path}` } },
            organisationId: BR_BANK,
            responseKey,
          },
        };
  return {
    client: {
      regime,
      clientId,
      iss,
      signingKey: tpp.privateKey,
      kid,
      certificate: await createCertificate({ subject: `CN=${clientId}` }),
      bankIss: regime === 'uk-ob' ? OB_BANK : BR_BANK,
      bankKey: bank.publicKey,
      trustAnchor: OB_TRUST_ANCHOR,
    },
    messageSigning,
    close: () => new Promise<void>((resolve) => keyStore.close(() => resolve())),
  };
}
