/**
 * Property-based tests (fast-check) for certificate headers from a trusted proxy (issue 15
 * item 2): whatever the client writes into the header before the proxy adds its part, and
 * whatever the SANs of the client's own certificate hold (Envoy copies them unquoted), the guard
 * uses the certificate the nearest proxy wrote or none — never another one — and never answers
 * 5xx. Envoy XFCC, RFC 9440 Client-Cert and nginx; in the core with many runs, and through real
 * HTTP on Express, Koa and Fastify.
 *
 * Fixed seed; a long run: FUZZ_RUNS=5000 npx jest test/fuzz-proxy-headers
 */
import { createHash } from 'node:crypto';
import { CertificateSource, type ClientCertificateFormat } from '@fapi-guard/core';
import { clientCertHeader, createCertificate, MockIssuer, nginxCertHeader, type TestCertificate } from '@fapi-guard/testing';
import fc from 'fast-check';
import { send } from './support/http';
import { PROXY_FORMATS, PROXY_HEADER, startBehindProxies } from './support/proxies';

const AUDIENCE = 'https://rs.example.com';
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
/** Core-level runs: no network, so many more. */
const CORE_RUNS = RUNS * 100;
const SEED = 20261129;

let as: MockIssuer;
/** The certificate a stolen token is bound to. */
let victim: TestCertificate;
/** The client's own certificate: the one the proxy saw and writes. */
let attacker: TestCertificate;
let proxies: Awaited<ReturnType<typeof startBehindProxies>>;
let requests = 0;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  victim = await createCertificate({ subject: 'CN=victim' });
  attacker = await createCertificate({ subject: 'CN=attacker' });
  proxies = await startBehindProxies({ issuer: as.issuer, audience: AUDIENCE });
});
afterAll(async () => {
  await proxies.close();
  await as.stop();
  // Reported with TEST_REPORT=1 (npm run test:fuzz sets it); a passing `npm test` stays quiet.
  if (process.env.TEST_REPORT) {
    process.stdout.write(`fuzz-proxy-headers: ${requests} requests (${RUNS} HTTP / ${CORE_RUNS} core runs per property, seed ${SEED})\n`);
  }
});

const hex = (cert: TestCertificate) => createHash('sha256').update(cert.der).digest('hex');

/**
 * Pieces a client assembles hostile header text from, like a fuzzer's dictionary: separators,
 * quotes and escapes; the victim's values, alone and as whole pairs, items or forged
 * boundaries; short arbitrary text.
 */
function pieces(format: ClientCertificateFormat): fc.Arbitrary<string> {
  const separators = fc.constantFrom(',', ';', '"', '\\', '=', ' ', ', ', ':', '%', '",');
  const dictionary: Record<ClientCertificateFormat, () => string[]> = {
    envoy: () => {
      const hash = `Hash=${hex(victim)}`;
      const cert = `Cert="${encodeURIComponent(victim.cert)}"`;
      return [
        hash,
        cert,
        `,${hash}`,
        `;${hash}`,
        `;${cert}`,
        `",${hash}`,
        'Subject="',
        'x="',
        'URI=a',
        'DNS=b',
        'By=p',
        `Hash=${hex(attacker)}`,
      ];
    },
    rfc9440: () => {
      const item = clientCertHeader(victim.der);
      return [item, `${item}, `, `;a=${item}`, Buffer.from(victim.der).toString('base64'), '?1', '(', ')'];
    },
    nginx: () => [nginxCertHeader(victim.cert), `${nginxCertHeader(victim.cert)}, `, victim.cert, '-----END CERTIFICATE-----', '%0A', '='],
  };
  return fc.oneof(
    { arbitrary: separators, weight: 2 },
    { arbitrary: fc.constantFrom(...dictionary[format]()), weight: 4 },
    { arbitrary: fc.string({ maxLength: 6, unit: 'grapheme-ascii' }), weight: 1 },
  );
}
const text = (format: ClientCertificateFormat, maxLength: number) =>
  fc.array(pieces(format), { maxLength }).map((parts) => parts.join('').replace(/[^\t\x20-\x7e]/g, ''));

/** The element Envoy writes for the client's certificate, SAN values unquoted as Envoy does. */
const envoyElement = () =>
  fc
    .record({
      by: fc.boolean(),
      cert: fc.boolean(),
      subject: fc.boolean(),
      uri: fc.array(text('envoy', 3), { maxLength: 2 }),
      dns: fc.array(text('envoy', 3), { maxLength: 2 }),
    })
    .map((d) => {
      const pairs = d.by ? ['By=spiffe://proxy.example'] : [];
      pairs.push(`Hash=${hex(attacker)}`);
      if (d.cert) pairs.push(`Cert="${encodeURIComponent(attacker.cert)}"`);
      if (d.subject) pairs.push(`Subject="${attacker.subject}"`);
      for (const uri of d.uri) pairs.push(`URI=${uri}`);
      for (const dns of d.dns) pairs.push(`DNS=${dns}`);
      return { value: pairs.join(';'), plainSans: [...d.uri, ...d.dns].every((san) => /^[A-Za-z0-9.:/-]*$/.test(san)) };
    });

/** Client text that ends inside a quote, list or certificate, so that the proxy's part would close it. */
function unterminated(format: ClientCertificateFormat): fc.Arbitrary<string> {
  const openers: Record<ClientCertificateFormat, string[]> = {
    envoy: ['Subject="', 'x="', '"', ';Subject="'],
    rfc9440: ['(', ':', ';a='],
    nginx: ['-----BEGIN CERTIFICATE-----%0A', '%'],
  };
  return fc.tuple(text(format, 2), fc.constantFrom(...openers[format])).map(([before, opener]) => before + opener);
}

/**
 * Header lines from a trusted proxy: what the client sent (maybe nothing), then what the proxy
 * added — Envoy appends its element after a `,` (APPEND_FORWARD); a proxy that appends a
 * Client-Cert or nginx header instead of replacing it gives a second line, or a `, `-joined one.
 */
function proxied(format: ClientCertificateFormat) {
  const written = format === 'envoy' ? envoyElement() : fc.constant({ value: proxyValue(format), plainSans: true });
  return fc
    .tuple(fc.oneof(fc.constant(''), text(format, 1), text(format, 4), unterminated(format)), written, fc.constantFrom('lines', 'joined'))
    .map(([client, element, join]) => {
      const lines =
        client === ''
          ? [element.value]
          : format === 'envoy' || join === 'joined'
            ? [`${client}${format === 'envoy' ? ',' : ', '}${element.value}`]
            : [client, element.value];
      // The proxy's part alone, with SANs that hold no separator or quote: it must be read.
      return { lines, mustBeRead: client === '' && element.plainSans };
    });
}
function proxyValue(format: ClientCertificateFormat): string {
  return format === 'rfc9440' ? clientCertHeader(attacker.der) : nginxCertHeader(attacker.cert);
}

describe('fuzz: certificate headers from a trusted proxy', () => {
  for (const format of PROXY_FORMATS) {
    it(`15.2 XFCC smuggling: ${format}: the core uses the certificate the proxy wrote, or none`, () => {
      const source = new CertificateSource({ proxy: { format, trustedPeers: ['127.0.0.1'] } });
      fc.assert(
        fc.property(proxied(format), ({ lines, mustBeRead }) => {
          const found = source.lookup({
            method: 'GET',
            url: `${AUDIENCE}/accounts`,
            headers: { [PROXY_HEADER[format]]: lines },
            remoteAddress: '127.0.0.1',
          });
          expect([undefined, attacker.x5t]).toContain(found.certificate?.thumbprint);
          if (mustBeRead) expect(found.certificate?.thumbprint).toBe(attacker.x5t);
        }),
        { numRuns: CORE_RUNS, seed: SEED },
      );
    });

    it(`15.2 XFCC smuggling: ${format}: a stolen token never passes on any adapter, and nothing answers 5xx`, async () => {
      const stolen = await as.mint({ scope: 'accounts', x5t: victim.x5t });
      const own = await as.mint({ scope: 'accounts', x5t: attacker.x5t });
      await fc.assert(
        fc.asyncProperty(proxied(format), async ({ lines, mustBeRead }) => {
          for (const app of proxies.apps(format)) {
            for (const [token, allowed] of [
              [stolen, [401]],
              [own, mustBeRead ? [200] : [200, 401]],
            ] as const) {
              const res = await send(`${app.url}/accounts`, {
                headers: { authorization: `Bearer ${token}`, [PROXY_HEADER[format]]: lines },
              });
              requests++;
              expect(allowed).toContain(res.status);
            }
          }
        }),
        { numRuns: RUNS, seed: SEED },
      );
    });
  }
});
