/**
 * Client and server certificates for tests of certificate-bound tokens (RFC 8705), made with
 * `@peculiar/x509`, and the header values a TLS-terminating proxy would forward (RFC 9440,
 * nginx, Envoy).
 */
import 'reflect-metadata';
import { createHash, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A certificate with its private key. */
export interface TestCertificate {
  /** PEM of the certificate. */
  cert: string;
  /** PKCS#8 PEM of the private key. */
  key: string;
  /** DER of the certificate. */
  der: Uint8Array;
  /** `x5t#S256`: base64url SHA-256 of the DER (RFC 8705 §3.1), for `cnf`. */
  x5t: string;
  /** Subject DN. */
  subject: string;
  /** @internal signing key, for certificates this one issues */
  readonly signingKey: webcrypto.CryptoKey;
}

export interface CertificateOptions {
  /** Subject DN. @default 'CN=test-client' */
  subject?: string;
  /** The issuing CA; self-signed when absent (RFC 8705 §6.2 allows that). */
  issuer?: TestCertificate;
  /** DNS names / IPs for a server certificate. */
  hosts?: readonly string[];
  /** Make a CA certificate. @default false */
  ca?: boolean;
  /** Validity in days. @default 1 */
  days?: number;
}

let serial = 1;

async function toPem(key: webcrypto.CryptoKey): Promise<string> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key)).toString('base64');
  return `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)?.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

/** Creates a certificate: self-signed, or issued by `issuer`; a client, server or CA certificate. */
export async function createCertificate(options: CertificateOptions = {}): Promise<TestCertificate> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const subject = options.subject ?? 'CN=test-client';
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + (options.days ?? 1) * 86_400_000);
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(options.ca === true, undefined, true)];
  if (options.ca) extensions.push(new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true));
  else {
    extensions.push(new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true));
    extensions.push(new x509.ExtendedKeyUsageExtension(options.hosts ? ['1.3.6.1.5.5.7.3.1'] : ['1.3.6.1.5.5.7.3.2']));
  }
  if (options.hosts) {
    const names = options.hosts.map((h) => (/^[\d.]+$|:/.test(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h }));
    extensions.push(new x509.SubjectAlternativeNameExtension(names));
  }
  const serialNumber = (serial++).toString(16).padStart(2, '0');
  const cert = options.issuer
    ? await x509.X509CertificateGenerator.create({
        serialNumber,
        subject,
        issuer: options.issuer.subject,
        notBefore,
        notAfter,
        signingAlgorithm: ALGORITHM,
        publicKey: keys.publicKey,
        signingKey: options.issuer.signingKey,
        extensions,
      })
    : await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber,
        name: subject,
        notBefore,
        notAfter,
        signingAlgorithm: ALGORITHM,
        keys,
        extensions,
      });
  const der = new Uint8Array(cert.rawData);
  return {
    cert: cert.toString('pem'),
    key: await toPem(keys.privateKey),
    der,
    x5t: createHash('sha256').update(der).digest('base64url'),
    subject,
    signingKey: keys.privateKey,
  };
}

/** RFC 9440 §2.2 `Client-Cert` value: one sf-binary item of the DER. */
export function clientCertHeader(der: Uint8Array): string {
  return `:${Buffer.from(der).toString('base64')}:`;
}

/** RFC 9440 §2.3 `Client-Cert-Chain` value: an sf-list of sf-binary items (leaf excluded). */
export function clientCertChainHeader(chain: readonly Uint8Array[]): string {
  return chain.map(clientCertHeader).join(', ');
}

/** nginx `$ssl_client_escaped_cert`: URL-encoded PEM. */
export function nginxCertHeader(pem: string): string {
  return encodeURIComponent(pem);
}

/** Envoy `x-forwarded-client-cert` element with `Hash` and `Cert`. */
export function envoyCertHeader(cert: TestCertificate): string {
  const hash = createHash('sha256').update(cert.der).digest('hex');
  return `By=spiffe://proxy.example;Hash=${hash};Cert="${encodeURIComponent(cert.cert)}";Subject="${cert.subject}"`;
}
