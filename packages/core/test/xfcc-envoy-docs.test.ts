/**
 * The x-forwarded-client-cert examples of Envoy's documentation (configuration/http/http_conn_man/
 * headers, "x-forwarded-client-cert"), fed to the core's XFCC reader as a trusted Envoy would
 * forward them (docs/deploy/envoy.yaml).
 */
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
