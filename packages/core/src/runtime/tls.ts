/**
 * TLS server options for an API that terminates TLS in Node itself (no proxy in front), per
 * FAPI 2.0 Security Profile §5.2.1–§5.2.2 and BCP 195 (RFC 9325).
 */
import type { TlsOptions } from 'node:tls';

/**
 * The TLS 1.2 cipher suites RFC 9325 §4.2 recommends (OpenSSL names): ECDHE key exchange
 * (forward secrecy) with AES-GCM, nothing else — no CBC, no RSA key transport, no finite-field DHE.
 * TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
 * TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384.
 */
export const FAPI_TLS12_CIPHERS: readonly string[] = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
];

/** TLS 1.3 suites (RFC 8446 §9.1): all AEAD; RFC 9325 §4.2 has no restriction on them. */
export const FAPI_TLS13_CIPHERS: readonly string[] = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

export interface FapiTlsInput {
  /** Server certificate chain (PEM). */
  cert: string | Buffer | Array<string | Buffer>;
  /** Private key of the server certificate (PEM). */
  key: string | Buffer;
  /**
   * CAs sent as acceptable issuers in the CertificateRequest (hint only: nothing is rejected
   * for a chain that does not lead to them).
   * @default undefined (Node's default CA list)
   */
  ca?: string | Buffer | Array<string | Buffer>;
  /**
   * `'request'`: ask every client for a certificate during the handshake (RFC 8705 §3, never by
   * renegotiation) and accept any, including self-signed ones: proof of possession is checked
   * against the token's `cnf.x5t#S256`, not a CA chain (RFC 8705 §2.2, §6.2). `'none'`: DPoP only.
   * @default 'request'
   */
  clientCertificates?: 'request' | 'none';
}

/**
 * Options for `https.createServer` / `tls.createServer` (and `http2.createSecureServer`): TLS 1.2
 * or later (FAPI 2.0 §5.2.1, RFC 8996), only the RFC 9325 §4.2 suites under TLS 1.2 (FAPI 2.0
 * §5.2.2), the server's suite preference, and client certificates requested in the handshake.
 */
export function fapiTlsOptions(input: FapiTlsInput): TlsOptions {
  const mode = input.clientCertificates ?? 'request';
  if (mode !== 'request' && mode !== 'none') throw new TypeError(`fapi-guard: clientCertificates "${mode}" is not 'request' or 'none'`);
  const options: TlsOptions = {
    cert: input.cert,
    key: input.key,
    minVersion: 'TLSv1.2',
    ciphers: [...FAPI_TLS13_CIPHERS, ...FAPI_TLS12_CIPHERS].join(':'),
    honorCipherOrder: true,
    // RFC 9325 §4.2.1: x25519 and secp256r1 for ECDHE.
    ecdhCurve: 'X25519:P-256:P-384',
    requestCert: mode === 'request',
    rejectUnauthorized: false,
  };
  if (input.ca !== undefined) options.ca = input.ca;
  return options;
}
