/**
 * The x-forwarded-client-cert examples of Envoy's documentation (configuration/http/http_conn_man/
 * headers, "x-forwarded-client-cert"), fed to the core's XFCC reader as a trusted Envoy would
 * forward them (docs/deploy/envoy.yaml).
 */
import { createHash } from 'node:crypto';
import { clientCertChainHeader, clientCertHeader, createCertificate, nginxCertHeader, type TestCertificate } from '@fapi-guard/testing';
import { CertificateSource } from '../src/index';
import type { GuardRequest } from '../src/request';

const HASH = '468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688';
const DOCUMENTED = {
  oneUri: `By=http://frontend.lyft.com;Hash=${HASH};Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com`,
  twoCertificates: `By=http://frontend.lyft.com;Hash=${HASH};URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e;URI=http://frontend.lyft.com`,
  uriAndDns: `By=http://frontend.lyft.com;Hash=${HASH};Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com`,
};

const envoy = new CertificateSource({ proxy: { format: 'envoy', trustedPeers: ['127.0.0.1'] } });
const request = (value: string, remoteAddress = '127.0.0.1'): GuardRequest => ({
  method: 'GET',
  url: 'https://api.example/',
  headers: { 'x-forwarded-client-cert': [value] },
  remoteAddress,
});
/** x5t#S256 of a certificate Envoy names by its hex SHA-256 `Hash`. */
const x5t = (hex: string) => Buffer.from(hex, 'hex').toString('base64url');

describe("Envoy's documented XFCC examples", () => {
  it('MTLS-08 one certificate with a URI SAN: the thumbprint comes from Hash', () => {
    expect(envoy.lookup(request(DOCUMENTED.oneUri)).certificate).toEqual({ thumbprint: x5t(HASH), source: 'proxy' });
  });

  it('MTLS-08 one certificate with URI and repeated DNS SANs: the thumbprint comes from Hash', () => {
    expect(envoy.lookup(request(DOCUMENTED.uriAndDns)).certificate).toEqual({ thumbprint: x5t(HASH), source: 'proxy' });
  });

  it('15.2 XFCC smuggling: two elements whose first carries a URI SAN are ambiguous and count as no certificate', () => {
    // Unquoted SAN values can forge an element boundary; SANITIZE_SET (docs/deploy/envoy.yaml)
    // never writes more than one element, so only APPEND_FORWARD chains look like this.
    const found = envoy.lookup(request(DOCUMENTED.twoCertificates));
    expect(found.certificate).toBeUndefined();
    expect(found.note).toMatch(/malformed x-forwarded-client-cert/);
  });

  it('MTLS-08 the documented header from a peer that is not the proxy is ignored', () => {
    const found = envoy.lookup(request(DOCUMENTED.oneUri, '192.0.2.7'));
    expect(found.certificate).toBeUndefined();
    expect(found.note).toMatch(/untrusted peer/);
  });
});

describe('XFCC grammar edges and proxy trust (issue 20)', () => {
  const hash = (h: string) => `By=spiffe://proxy;Hash=${h}`;

  it('MTLS-08 a quoted value with a backslash-escaped character reads as the character', () => {
    // A backslash before the eleventh hex digit escapes it: the Hash read is the documented one.
    const escaped = `By=spiffe://proxy;Hash="${HASH.slice(0, 10)}\\${HASH.slice(10)}";Subject="CN=a\\"b"`;
    expect(envoy.lookup(request(escaped)).certificate).toEqual({ thumbprint: x5t(HASH), source: 'proxy' });
    // An escape that ends the header, and a quote that never closes, are malformed.
    for (const broken of [`${hash(HASH)};Subject="CN=a\\`, `${hash(HASH)};Subject="CN=a\\"`, `${hash(HASH)};Subject="CN=a`]) {
      expect(envoy.lookup(request(broken)).certificate).toBeUndefined();
    }
  });

  it('MTLS-08 a Hash that is not 64 hex digits is no certificate', () => {
    for (const bad of [HASH.slice(1), `${HASH}0`, `${HASH.slice(1)}g`, '']) {
      expect(envoy.lookup(request(hash(bad))).certificate).toBeUndefined();
    }
    expect(envoy.lookup(request(hash(HASH.toUpperCase()))).certificate).toEqual({ thumbprint: x5t(HASH), source: 'proxy' });
  });

  it('MTLS-08 shared secret: exactly one header line with exactly the configured value', () => {
    const secret = 'proxy-secret-0123456789';
    const source = new CertificateSource({
      proxy: { format: 'envoy', sharedSecret: { header: 'X-Proxy-Secret', value: secret } },
    });
    const withSecret = (...lines: string[]): GuardRequest => ({
      ...request(hash(HASH), '192.0.2.1'),
      headers: { 'x-forwarded-client-cert': [hash(HASH)], 'x-proxy-secret': lines },
    });
    expect(source.lookup(withSecret(secret)).certificate).toEqual({ thumbprint: x5t(HASH), source: 'proxy' });
    for (const lines of [[secret, secret], [], [`${secret}x`], [secret.slice(1)], [`${secret.slice(1)}x`]]) {
      expect(source.lookup(withSecret(...lines)).certificate).toBeUndefined();
    }
  });

  it('MTLS-08 a malformed header stays no certificate when it comes again (answers are remembered)', () => {
    const source = new CertificateSource({ proxy: { format: 'envoy', trustedPeers: ['127.0.0.1'] } });
    for (let i = 0; i < 3; i++) {
      const found = source.lookup(request(hash('not-hex')), x5t(HASH));
      expect(found.certificate).toBeUndefined();
      expect(found.note).toMatch(/malformed/);
      expect(source.lookup(request(hash(HASH)), x5t(HASH)).certificate).toEqual({ thumbprint: x5t(HASH), source: 'proxy' });
    }
  });

  it('MTLS-01 an empty TLS certificate is no certificate', () => {
    const tls = new CertificateSource({});
    const base = { method: 'GET', url: 'https://api.example/', headers: {} };
    expect(tls.lookup({ ...base, clientCertificate: new Uint8Array(0) })).toEqual({});
    expect(tls.lookup(base)).toEqual({});
  });
});

describe('certificate header formats, chains and proxy configuration (issue 20)', () => {
  let leaf: TestCertificate;
  let other: TestCertificate;
  beforeAll(async () => {
    [leaf, other] = await Promise.all([createCertificate({ subject: 'CN=leaf' }), createCertificate({ subject: 'CN=other' })]);
  });
  const at = (headers: Record<string, string[]>): GuardRequest => ({
    method: 'GET',
    url: 'https://api.example/',
    headers,
    remoteAddress: '127.0.0.1',
  });
  const sha256hex = (der: Uint8Array) => createHash('sha256').update(der).digest('hex');

  it('MTLS-08 RFC 9440: Client-Cert gives the certificate; one well-formed Client-Cert-Chain line adds the chain', () => {
    const source = new CertificateSource({ proxy: { trustedPeers: ['127.0.0.1'] } });
    const cert = clientCertHeader(leaf.der);
    const found = source.lookup(at({ 'client-cert': [cert], 'client-cert-chain': [clientCertChainHeader([other.der, other.der])] }));
    expect(found.certificate?.thumbprint).toBe(leaf.x5t);
    expect(found.certificate?.source).toBe('proxy');
    expect(found.certificate?.chain).toHaveLength(2);
    // Two chain lines, or a malformed one, give no chain (the certificate stays).
    for (const chainLines of [[clientCertHeader(other.der), clientCertHeader(other.der)], ['not-a-list'], []]) {
      const again = source.lookup(at({ 'client-cert': [cert], 'client-cert-chain': chainLines }));
      expect(again.certificate?.thumbprint).toBe(leaf.x5t);
      expect(again.certificate?.chain).toBeUndefined();
    }
    // Two Client-Cert lines are no certificate (RFC 9440 §2.2), and the decision says why.
    expect(source.lookup(at({ 'client-cert': [cert, cert] }))).toStrictEqual({ note: '2 client-cert headers: treated as no certificate' });
    // Without a chain line the certificate has no `chain` member at all.
    expect(Object.keys(source.lookup(at({ 'client-cert': [cert] })).certificate ?? {}).sort()).toEqual(['der', 'source', 'thumbprint']);
  });

  it('MTLS-08 a proxy set-up that cannot be trusted is a start-up error', () => {
    const peers = ['127.0.0.1'];
    expect(() => new CertificateSource({ proxy: { format: 'haproxy' as never, trustedPeers: peers } })).toThrow(
      'fapi-guard: mtls.proxy.format "haproxy" is not rfc9440, nginx or envoy',
    );
    for (const sharedSecret of [
      { header: 'x-proxy-secret', value: 'short' },
      { header: 'x-proxy-secret', value: 'sixteen chars no' },
      { value: 'a'.repeat(16) },
    ]) {
      expect(() => new CertificateSource({ proxy: { sharedSecret: sharedSecret as never } })).toThrow(
        /sharedSecret needs a header name and a value of at least 16/,
      );
    }
    expect(() => new CertificateSource({ proxy: { sharedSecret: { header: 'x-proxy-secret', value: 'a'.repeat(16) } } })).not.toThrow();
  });

  it('MTLS-08 nginx and Envoy formats never read Client-Cert-Chain', () => {
    const nginx = new CertificateSource({ proxy: { format: 'nginx', trustedPeers: ['127.0.0.1'] } });
    const chain = { 'client-cert-chain': [clientCertChainHeader([other.der])] };
    const viaNginx = nginx.lookup(at({ 'x-ssl-client-cert': [nginxCertHeader(leaf.cert)], ...chain }));
    expect(viaNginx.certificate?.thumbprint).toBe(leaf.x5t);
    expect(viaNginx.certificate?.chain).toBeUndefined();
    const viaEnvoy = envoy.lookup(at({ 'x-forwarded-client-cert': [`Hash=${sha256hex(leaf.der)}`], ...chain }));
    expect(viaEnvoy.certificate).toEqual({ thumbprint: leaf.x5t, source: 'proxy' });
  });

  it('MTLS-08 Envoy Cert: alone it gives the certificate; with a Hash of another certificate, none', () => {
    const cert = `Cert="${encodeURIComponent(leaf.cert)}"`;
    expect(envoy.lookup(at({ 'x-forwarded-client-cert': [`By=spiffe://p;${cert}`] })).certificate?.thumbprint).toBe(leaf.x5t);
    expect(
      envoy.lookup(at({ 'x-forwarded-client-cert': [`By=spiffe://p;Hash=${sha256hex(leaf.der)};${cert}`] })).certificate?.thumbprint,
    ).toBe(leaf.x5t);
    expect(
      envoy.lookup(at({ 'x-forwarded-client-cert': [`By=spiffe://p;Hash=${sha256hex(other.der)};${cert}`] })).certificate,
    ).toBeUndefined();
    expect(envoy.lookup(at({ 'x-forwarded-client-cert': [`By=spiffe://p;Cert="not%20a%20certificate"`] })).certificate).toBeUndefined();
  });

  it('MTLS-08 XFCC keys are case-insensitive', () => {
    for (const line of [`HASH=${HASH}`, `hash=${HASH}`, `By=x;SUBJECT="CN=a";HaSh=${HASH}`]) {
      expect(envoy.lookup(at({ 'x-forwarded-client-cert': [line] })).certificate).toEqual({ thumbprint: x5t(HASH), source: 'proxy' });
    }
  });

  it('MTLS-08 two XFCC lines are no certificate', () => {
    const line = `Hash=${HASH}`;
    expect(envoy.lookup(at({ 'x-forwarded-client-cert': [line, line] })).certificate).toBeUndefined();
    expect(envoy.lookup(at({ 'x-forwarded-client-cert': [line] })).certificate).toEqual({ thumbprint: x5t(HASH), source: 'proxy' });
  });

  it('MTLS-08 start-up: a proxy needs trusted peers or a shared secret of 16+ visible ASCII characters and a header name', () => {
    const make = (proxy: object) => () => new CertificateSource({ proxy } as never);
    expect(make({ format: 'envoy' })).toThrow(/trustedPeers.*or sharedSecret/);
    expect(make({ format: 'envoy', trustedPeers: [] })).toThrow(/trustedPeers.*or sharedSecret/);
    const secret = (value: unknown, header: unknown = 'x-proxy-secret') => make({ sharedSecret: { header, value } });
    expect(secret('s'.repeat(16))).not.toThrow();
    for (const value of ['s'.repeat(15), ` ${'s'.repeat(16)}`, `${'s'.repeat(16)} `, `${'s'.repeat(8)} ${'s'.repeat(8)}`, 16]) {
      expect(secret(value)).toThrow(/sharedSecret needs a header name and a value/);
    }
    expect(secret('s'.repeat(16), 5)).toThrow(/sharedSecret needs a header name and a value/);
  });
});
