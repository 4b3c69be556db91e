/**
 * Security review, issue 15 item 2: certificate headers from a trusted TLS-terminating proxy.
 * A client may write anything into the header before the proxy adds its own part (Envoy
 * `APPEND_FORWARD`), and Envoy copies SAN values into it unquoted: the guard reads only what the
 * nearest proxy wrote and treats every ambiguous header as no certificate. Through real HTTP on
 * every adapter (test/support/apps.ts), with 127.0.0.1 as the trusted proxy.
 */
import { createHash } from 'node:crypto';
import { type ClientCertificateFormat, parseClientCertChain } from '@fapi-guard/core';
import { clientCertHeader, createCertificate, MockIssuer, nginxCertHeader, type TestCertificate } from '@fapi-guard/testing';
import { FRAMEWORKS } from './support/apps';
import { send } from './support/http';
import { PROXY_HEADER, startBehindProxies } from './support/proxies';

const AUDIENCE = 'https://rs.example.com';
let as: MockIssuer;
/** The certificate a stolen token is bound to. */
let victim: TestCertificate;
/** The certificate the attacker holds the key of: the one the proxy sees and writes. */
let attacker: TestCertificate;
/** A certificate whose DER length leaves base64 padding (`==`), for the padding-bits case. */
let padded: TestCertificate;
let proxies: Awaited<ReturnType<typeof startBehindProxies>>;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  victim = await createCertificate({ subject: 'CN=victim' });
  attacker = await createCertificate({ subject: 'CN=attacker' });
  // ECDSA signatures vary in length: a few tries give a DER of length 3k+1 (bounded).
  for (let i = 0; i < 50 && (!padded || padded.der.length % 3 !== 1); i++) padded = await createCertificate({ subject: 'CN=padded' });
  expect(padded.der.length % 3).toBe(1);
  proxies = await startBehindProxies({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE });
});
afterAll(async () => {
  await proxies.close();
  await as.stop();
});

const hex = (cert: { der: Uint8Array }) => createHash('sha256').update(cert.der).digest('hex');

/** The element Envoy writes for `cert` (By, Hash, then the configured details), SANs unquoted as Envoy does. */
function envoyElement(
  cert: TestCertificate,
  details: { cert?: boolean; subject?: string; uri?: string[]; dns?: string[] } = { cert: true, subject: cert.subject },
): string {
  const pairs = ['By=spiffe://proxy.example', `Hash=${hex(cert)}`];
  if (details.cert) pairs.push(`Cert="${encodeURIComponent(cert.cert)}"`);
  if (details.subject !== undefined) pairs.push(`Subject="${details.subject}"`);
  for (const uri of details.uri ?? []) pairs.push(`URI=${uri}`);
  for (const dns of details.dns ?? []) pairs.push(`DNS=${dns}`);
  return pairs.join(';');
}

/**
 * Sends `value` as the proxy's certificate header on every adapter with a token bound to
 * `bound`'s thumbprint; returns the statuses (never a 5xx).
 */
async function statuses(format: ClientCertificateFormat, value: string | string[], bound: { x5t: string }) {
  const token = await as.mint({ scope: 'accounts', x5t: bound.x5t });
  const answers: number[] = [];
  for (const app of proxies.apps(format)) {
    const res = await send(`${app.url}/accounts`, { headers: { authorization: `Bearer ${token}`, [PROXY_HEADER[format]]: value } });
    expect(res.status).toBeLessThan(500);
    if (res.status === 401) expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
    answers.push(res.status);
  }
  expect(answers).toHaveLength(FRAMEWORKS.length);
  return answers;
}
/** One answer per adapter. */
const ALL_200 = FRAMEWORKS.map(() => 200);
const ALL_401 = FRAMEWORKS.map(() => 401);

/** The stolen token fails, and so does the attacker's own: the header counts as no certificate. */
async function noCertificate(format: ClientCertificateFormat, value: string | string[]) {
  expect(await statuses(format, value, victim)).toEqual(ALL_401);
  expect(await statuses(format, value, attacker)).toEqual(ALL_401);
}

describe('Envoy x-forwarded-client-cert', () => {
  it("15.2 XFCC smuggling: the proxy's own element is read (Cert, Hash-only, Subject with quoted commas and escapes)", async () => {
    const subject = String.raw`CN=attacker\, Ltd,O=\"Quoted\" \\ Inc,OU=a\;b`;
    for (const element of [
      envoyElement(attacker),
      envoyElement(attacker, { subject }),
      envoyElement(attacker, { uri: ['spiffe://client.example/a=b'], dns: ['a.example', 'b.example'] }),
      envoyElement(attacker, {}),
      `Cert="${encodeURIComponent(attacker.cert)}"`,
      `hash=${hex(attacker).toUpperCase()}`,
    ]) {
      expect(await statuses('envoy', element, attacker)).toEqual(ALL_200);
      expect(await statuses('envoy', element, victim)).toEqual(ALL_401);
    }
  });

  it("15.2 XFCC smuggling: an element the client sent before the proxy's is not read (APPEND_FORWARD)", async () => {
    const forged = `By=spiffe://proxy.example;Hash=${hex(victim)};Cert="${encodeURIComponent(victim.cert)}"`;
    expect(await statuses('envoy', `${forged},${envoyElement(attacker)}`, victim)).toEqual(ALL_401);
    expect(await statuses('envoy', `${forged},${envoyElement(attacker)}`, attacker)).toEqual(ALL_200);
  });

  it('15.2 XFCC smuggling: Hash=<victim>;x=" before the appended element (reproduced attack) is no certificate', async () => {
    await noCertificate('envoy', `Hash=${hex(victim)};x=",${envoyElement(attacker)}`);
    // With a known key, and against a proxy that writes only Hash (the quote never closes).
    await noCertificate('envoy', `Hash=${hex(victim)};Subject=",${envoyElement(attacker)}`);
    await noCertificate('envoy', `Hash=${hex(victim)};Subject=",${envoyElement(attacker, {})}`);
  });

  it('15.2 XFCC smuggling: a URI or DNS SAN holding ",Hash=<victim>" does not forge an element (reproduced attack)', async () => {
    const cert = `Cert="${encodeURIComponent(victim.cert)}"`;
    for (const san of [`spiffe://evil,Hash=${hex(victim)}`, `x,Hash=${hex(victim)};${cert}`, `"x",Hash=${hex(victim)}`]) {
      await noCertificate('envoy', envoyElement(attacker, { uri: [san] }));
      await noCertificate('envoy', envoyElement(attacker, { dns: [san] }));
    }
  });

  it('15.2 XFCC smuggling: a SAN with a quote that closes a quote the client opened earlier is no certificate', async () => {
    // The client's Subject=" swallows the proxy's By/Hash/URI up to the SAN's quote; what
    // follows is a forged last element. The swallowed text holds the proxy's bare ';'.
    const element = envoyElement(attacker, { uri: [`x",Hash=${hex(victim)}`] });
    await noCertificate('envoy', `Hash=${hex(victim)};Subject=",${element}`);
  });

  it('15.2 XFCC smuggling: a SAN holding ";Hash=" or ";Cert=" inside the element is no certificate', async () => {
    await noCertificate('envoy', envoyElement(attacker, { uri: [`x;Hash=${hex(victim)}`] }));
    // Cert not configured at the proxy: the forged Cert disagrees with the proxy's Hash.
    await noCertificate('envoy', envoyElement(attacker, { uri: [`x;Cert="${encodeURIComponent(victim.cert)}"`] }));
    await noCertificate('envoy', envoyElement(attacker, { cert: true, uri: [`x;Cert="${encodeURIComponent(victim.cert)}"`] }));
    await noCertificate('envoy', envoyElement(attacker, { uri: [`x;Unknown=1`] }));
  });

  it('15.2 XFCC smuggling: Cert and Hash that name different certificates are no certificate', async () => {
    await noCertificate('envoy', `Hash=${hex(attacker)};Cert="${encodeURIComponent(victim.cert)}"`);
    await noCertificate('envoy', `Hash=${hex(victim)};Cert="${encodeURIComponent(attacker.cert)}"`);
  });

  it('15.2 XFCC smuggling: headers outside the grammar are no certificate', async () => {
    const element = envoyElement(attacker);
    for (const value of [
      `${element};Subject="again"`, // a key twice in one element
      `${element};Hash=${hex(attacker)}`,
      `${element};Cert="${encodeURIComponent(attacker.cert)}"`,
      `${element};Chain="a";Chain="b"`,
      element.replace('Subject="CN=attacker"', 'Subject="CN=attacker"xDNS=a'), // text after a closing quote
      element.replace('Subject="CN=attacker"', 'Subject="CN=attacker'), // unterminated quote
      `${envoyElement(attacker, {})};Subject="a\\`, // escape at the end
      element.replace('Subject="CN=attacker"', 'Subject="CN=a;b"'), // bare ';' in quotes
      element.replace('By=', 'Bx='), // unknown key
      element.replace(';Hash=', '; Hash='), // whitespace around a separator
      `Hash=${hex(victim)}, ${element}`,
      `${element},`, // empty element
      `${element};=x`, // empty key
      `${envoyElement(attacker, {})};Subject`, // key without '='
      `${element};`,
      `,${element}`,
      element.replace('By=spiffe://proxy.example', 'By=spiffe://"proxy"'), // quote in a bare value
      `Hash=${hex(attacker)}0`,
      `Hash=${hex(attacker).slice(1)}`,
      `URI=spiffe://client.example,${element}`, // URI/DNS before the last element
      `DNS=client.example,${element}`,
      [element, element], // two header lines
    ]) {
      await noCertificate('envoy', value);
    }
  });
});

describe('RFC 9440 Client-Cert', () => {
  it('15.2 XFCC smuggling: Client-Cert with parameters, in a list, in two lines or with trailing bytes is no certificate', async () => {
    const real = clientCertHeader(attacker.der);
    expect(await statuses('rfc9440', ` ${real} `, attacker)).toEqual(ALL_200); // RFC 8941 §4.2: surrounding spaces
    for (const value of [
      `${real};a=1`,
      `${real};victim=${clientCertHeader(victim.der)}`,
      `${clientCertHeader(victim.der)}, ${real}`,
      `${real}, ${clientCertHeader(victim.der)}`,
      [clientCertHeader(victim.der), real],
      `(${real})`,
      real.replace(/=*:$/, '=A:'),
    ]) {
      await noCertificate('rfc9440', value);
    }
    // Client-Cert-Chain by the same rule: members without parameters.
    expect(parseClientCertChain(`${clientCertHeader(victim.der)}, ${real}`)).toHaveLength(2);
    expect(parseClientCertChain(`${clientCertHeader(victim.der)}, ${real};a=1`)).toBeUndefined();
    // A certificate followed by other bytes: not that certificate, and not a thumbprint of the whole.
    const trailing = Buffer.concat([attacker.der, Buffer.from([0, 1, 2])]);
    const whole = { x5t: createHash('sha256').update(trailing).digest('base64url') };
    expect(await statuses('rfc9440', clientCertHeader(trailing), whole)).toEqual(ALL_401);
    expect(await statuses('rfc9440', clientCertHeader(trailing), attacker)).toEqual(ALL_401);
  });
});

describe('nginx $ssl_client_escaped_cert', () => {
  it('15.2 XFCC smuggling: anything but exactly one URL-encoded PEM certificate is no certificate', async () => {
    expect(await statuses('nginx', nginxCertHeader(attacker.cert), attacker)).toEqual(ALL_200);
    expect(await statuses('nginx', nginxCertHeader(padded.cert), padded)).toEqual(ALL_200);
    const body = (pem: string) => pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, '');
    const pem = (b64: string) => `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
    for (const value of [
      `${nginxCertHeader(victim.cert)}, ${nginxCertHeader(attacker.cert)}`,
      nginxCertHeader(victim.cert + attacker.cert),
      [nginxCertHeader(victim.cert), nginxCertHeader(attacker.cert)],
      nginxCertHeader(`x${attacker.cert}`),
      nginxCertHeader(`${attacker.cert}x`),
      // Node's decoder stops at '=': the certificate before it would be read, the rest ignored.
      nginxCertHeader(pem(`${body(attacker.cert)}${body(attacker.cert).endsWith('=') ? '' : '='}${body(victim.cert)}`)),
      nginxCertHeader(pem(body(attacker.cert).replace(/(.{20})/, '$1 '))),
      `${nginxCertHeader(attacker.cert)}%`,
    ]) {
      await noCertificate('nginx', value);
    }
    // Non-zero padding bits: another text for the same bytes.
    const b64 = body(padded.cert);
    expect(b64.endsWith('==')).toBe(true);
    const last = b64.at(-3) as string;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const bumped = `${b64.slice(0, -3)}${alphabet[alphabet.indexOf(last) + 1]}==`;
    expect(Buffer.from(bumped, 'base64')).toEqual(Buffer.from(padded.der));
    expect(await statuses('nginx', nginxCertHeader(pem(bumped)), padded)).toEqual(ALL_401);
  });
});
