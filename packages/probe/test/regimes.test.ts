/**
 * fapi-probe --profile fapi1-advanced | uk-ob | br-of: against the example API running in each
 * regime over its own mutual-TLS listener (every case passes), and against resource servers with
 * one known defect in the regime's signing (exactly the cases for that defect fail).
 */
import { createServer as createHttpsServer } from 'node:https';
import { fapiTlsOptions, type GuardOptions, type RoutePolicy } from '@fapi-guard/core';
import { fapiGuard } from '@fapi-guard/express';
import { type ProbeOptions, type ProbeReport, runProbe } from '@fapi-guard/probe';
import { createCertificate, type MockIssuer, type TestCertificate } from '@fapi-guard/testing';
import express from 'express';
import { readConfig } from '../../../examples/payments-api/src/config';
import { type RegimeClient, type RegimeSetup, setUpRegime } from '../../../examples/payments-api/src/regime';
import { type RunningExample, startExample } from '../../../examples/payments-api/src/server';
import { cli, freePort } from './support';

const RATE = 50; // the tests' own servers
const payment = JSON.stringify({ amount: { amount: '10.00', currency: 'GBP' }, creditorAccount: 'GB29NWBK60161331926819' });

const withStatus = (report: ProbeReport, status: ProbeReport['results'][number]['status']) =>
  report.results
    .filter((r) => r.status === status)
    .map((r) => r.id)
    .sort();
const ran = (report: ProbeReport) => report.results.map((r) => r.id);

let serverCert: TestCertificate;
let otherCertificate: TestCertificate;
beforeAll(async () => {
  serverCert = await createCertificate({ subject: 'CN=127.0.0.1', hosts: ['127.0.0.1'] });
  otherCertificate = await createCertificate();
});

/** The probe's inputs for the regime's demo client: its certificate-bound token, certificate and signing key. */
async function probeOptions(
  mock: MockIssuer,
  client: RegimeClient,
  url: string,
  profile: NonNullable<ProbeOptions['profile']>,
): Promise<ProbeOptions> {
  const bound = (options: Parameters<MockIssuer['mint']>[0]) =>
    mock.mint({ x5t: client.certificate.x5t, audience: url, claims: { client_id: client.clientId }, ...options });
  const scope = 'payments:write accounts';
  const signing = profile === 'uk-ob' || profile === 'br-of';
  return {
    resource: `${url}${signing ? '/payments' : '/accounts'}`,
    ...(signing ? { method: 'POST', body: { contentType: 'application/json', value: payment } } : {}),
    profile,
    accessToken: await bound({ scope }),
    insufficientScopeToken: await bound({ scope: 'other' }),
    certificate: { cert: client.certificate.cert, key: client.certificate.key },
    otherCertificate: { cert: otherCertificate.cert, key: otherCertificate.key },
    jwksUri: mock.jwksUri,
    faultTokens: {
      'wrong-typ': await bound({ scope, fault: 'wrong-typ' }),
      expired: await bound({ scope, fault: 'expired' }),
      'wrong-audience': await bound({ scope, fault: 'wrong-audience', audience: undefined }),
      unbound: await mock.mint({ scope, audience: url, claims: { client_id: client.clientId } }),
    },
    ...(signing
      ? {
          signer: {
            key: { ...client.signingKey.export({ format: 'jwk' }), kid: client.kid },
            iss: client.iss,
            trustAnchor: client.trustAnchor,
          },
        }
      : {}),
    ca: serverCert.cert,
    rate: RATE,
  };
}

describe.each([
  ['uk-ob', 'uk-ob', ['uk-ob.signature-missing', 'uk-ob.signature-tampered']],
  ['br-of', 'br-of', ['br-of.jwt-missing', 'br-of.jwt-tampered']],
  ['uk-ob', 'fapi1-advanced', []],
] as const)('fapi-probe against the example API with FAPI_REGIME=%s, --profile %s', (regime, profile, regimeCases) => {
  let example: RunningExample;
  let url: string;
  beforeAll(async () => {
    const port = await freePort();
    url = `https://127.0.0.1:${port}`;
    example = await startExample({
      ...readConfig({ FAPI_REGIME: regime }),
      port,
      audience: url,
      publicUrl: url,
      tls: { cert: serverCert.cert, key: serverCert.key },
    });
  });
  afterAll(() => example.close());

  it('FAPIA-RS-01 FAPIA-RS-05 every case passes: mTLS cases run, DPoP cases do not, the interaction-id echo is a MUST', async () => {
    const report = await runProbe(await probeOptions(example.mock as MockIssuer, example.regimeClient as RegimeClient, url, profile));
    expect(report.profile).toBe(profile);
    expect(report.binding).toBe('mtls');
    expect(withStatus(report, 'fail')).toEqual([]);
    expect(withStatus(report, 'not-run')).toEqual([]);
    for (const id of ['mtls.no-certificate', 'mtls.other-certificate', ...regimeCases]) {
      expect(report.results.find((r) => r.id === id)).toMatchObject({ status: 'pass', level: 'MUST' });
    }
    expect(report.results.find((r) => r.id === 'interaction-id.echo')).toMatchObject({ status: 'pass', level: 'MUST' });
    expect(ran(report).filter((id) => id.startsWith('dpop.'))).toEqual([]);
    // The other regime's cases are not run.
    const others = ['uk-ob.', 'br-of.'].filter((p) => !profile.startsWith(p.slice(0, 5)));
    expect(ran(report).filter((id) => others.some((p) => id.startsWith(p)))).toEqual([]);
  });
});

describe('fapi-probe --profile: usage', () => {
  it('refuses a FAPI 1.0 profile with a DPoP key, a signing profile without a signer or body, and an unknown profile', async () => {
    const base = { resource: 'https://127.0.0.1:1/payments', accessToken: 'x' };
    await expect(runProbe({ ...base, profile: 'fapi1-advanced', dpopKey: { kty: 'EC' } })).rejects.toThrow(
      'profile fapi1-advanced takes certificate-bound tokens only',
    );
    const certificate = { cert: serverCert.cert, key: serverCert.key };
    await expect(runProbe({ ...base, profile: 'uk-ob', certificate })).rejects.toThrow("give the client's signing key and its iss");
    await expect(runProbe({ ...base, profile: 'br-of', certificate, signer: { key: { kty: 'RSA' }, iss: 'x' } })).rejects.toThrow(
      'give the body',
    );
    await expect(runProbe({ ...base, profile: 'fapi3' as never, certificate })).rejects.toThrow('profile "fapi3" is not one of');
  });
});

describe('fapi-probe --profile on the command line', () => {
  it('names the profiles when given another, and needs both --signing-key and --signing-iss', async () => {
    const unknown = await cli(['--resource', 'https://127.0.0.1:1/payments', '--token', 'x', '--profile', 'fapi3']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--profile "fapi3": the profiles are fapi2, fapi1-advanced, uk-ob, br-of');
    const half = await cli(['--resource', 'https://127.0.0.1:1/payments', '--token', 'x', '--profile', 'uk-ob', '--signing-iss', 'a']);
    expect(half.code).toBe(2);
    expect(half.stderr).toContain('give both --signing-key and --signing-iss');
  });
});

/**
 * A resource server with one defect in the regime's signing: the example's guard settings (FAPI
 * 1.0 Advanced over mutual TLS, the regime's key store) with `POST /payments` under `policy`.
 */
async function defectiveServer(policy: RoutePolicy, mock: MockIssuer, port: number, setup: RegimeSetup) {
  const url = `https://127.0.0.1:${port}`;
  const options: GuardOptions = {
    issuer: mock.issuer,
    audience: url,
    profile: 'fapi1-advanced',
    mtls: true,
    messageSigning: setup.messageSigning,
  };
  const fapi = fapiGuard(options);
  const app = express();
  app.post('/payments', fapi.protect(policy), express.json(), (_req, res) => void res.status(201).json({ data: { status: 'accepted' } }));
  const server = createHttpsServer(fapiTlsOptions({ cert: serverCert.cert, key: serverCert.key, clientCertificates: 'request' }), app);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await setup.close();
    },
  };
}

describe.each([
  [
    'uk-ob',
    'x-jws-signature optional (a payment without one is taken)',
    { jwsSignature: { request: 'optional', response: true } },
    ['uk-ob.signature-missing'],
  ],
  ['uk-ob', 'x-jws-signature not checked at all', {}, ['uk-ob.signature-missing', 'uk-ob.signature-tampered']],
  ['br-of', 'the signed JWT body not checked (any body taken)', {}, ['br-of.jwt-missing', 'br-of.jwt-tampered']],
] as const)('fapi-probe --profile %s against a server with one defect: %s', (regime, _defect, policy, expected) => {
  it('UKOB-02 UKOB-09 BR-02 BR-06 fails exactly the cases of that defect', async () => {
    const example = await startExample({ ...readConfig({ FAPI_REGIME: regime }), port: 0, audience: 'https://unused.example' });
    const port = await freePort();
    const setup = await setUpRegime(regime);
    const server = await defectiveServer({ scopes: ['payments:write'], ...policy } as RoutePolicy, example.mock as MockIssuer, port, setup);
    try {
      const report = await runProbe(await probeOptions(example.mock as MockIssuer, setup.client, server.url, regime));
      expect(report.results.find((r) => r.id === 'baseline.valid')?.status).toBe('pass');
      expect(withStatus(report, 'fail')).toEqual([...expected].sort());
      expect(report.exitCode).toBe(1);
    } finally {
      await server.close();
      await example.close();
    }
  });
});
