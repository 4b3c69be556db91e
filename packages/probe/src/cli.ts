#!/usr/bin/env node
/**
 * fapi-probe: the command line of `runProbe`. Exit 0: no MUST failed; 1: a MUST failed (with
 * --strict: or could not run); 2: the probe could not judge (usage error, no token, the resource
 * unreachable or the baseline request refused).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { FaultToken } from './context.js';
import { PROFILES, type ProbeProfile } from './regimes.js';
import { toJson, toJUnit, toTable } from './report.js';
import { type ProbeOptions, runProbe } from './run.js';

const USAGE = `usage: fapi-probe --resource URL [options]

  --resource URL             protected resource to check (required)
  --method METHOD            its method (default GET)
  --body TEXT                body sent with every request, with --content-type (default application/json)
  --header "name: value"     extra header on every request (repeatable)
  --scope SCOPE              scope the resource requires
  --insufficient-scope SCOPE a scope the client may get that does not cover the resource
  tokens from an authorization server (client-credentials grant):
  --issuer URL               issuer identifier (metadata discovered)
  --client-id ID
  --client-secret SECRET     client_secret_post (or env FAPI_PROBE_CLIENT_SECRET)
  --client-key FILE          private_key_jwt: the client's private JWK
  or a token you already have:
  --token TOKEN              (or env FAPI_PROBE_TOKEN)
  --insufficient-token TOKEN a token bound like --token whose scope does not cover the resource
  binding:
  --dpop-key FILE            file holding the DPoP private JWK, JSON (generated when absent, with --issuer)
  --cert FILE --key FILE     client certificate and key (PEM) for certificate-bound tokens
  --other-cert FILE --other-key FILE   a second certificate, for mtls.other-certificate
  --jwks-uri URL             issuer keys (default: from the issuer metadata)
  --fault-token KIND=TOKEN   issuer-signed token with a defect: wrong-typ, expired, wrong-audience, unbound (repeatable);
                             mint them for each run: one past its exp is reported "not run" 
 regime:
  --profile PROFILE          fapi2 (default), fapi1-advanced, uk-ob or br-of; the FAPI 1.0 ones need --cert/--key
                             (no DPoP cases; the interaction-id echo is a MUST)
  --signing-key FILE         uk-ob, br-of: the client's private RSA JWK (with kid) that signs each request body
  --signing-iss ISS          uk-ob: http://openbanking.org.uk/iss (org/software statement id); br-of: organisation id
  --signing-tan TAN          uk-ob: http://openbanking.org.uk/tan (default openbanking.org.uk)
  --only PREFIX              run only cases whose id starts with PREFIX (repeatable; the baseline always runs)
  --rate N                   requests per second, at most (default 10, at most 50)
  --max-requests N           requests in all, at most (default 200)
  --timeout-ms N             total time per request, connection to last byte (default 10000)
  --ca FILE                  extra CA certificates (PEM) for the server
  --insecure-tls             accept any server certificate
  --strict                   a MUST case that could not run (missing fault token, ...) fails the run
  --json FILE                write the JSON report ("-" for stdout instead of the table)
  --junit FILE               write JUnit XML

exit code: 0 no MUST failed; 1 a MUST failed (--strict: or could not run);
           2 could not judge (usage error, no token, resource unreachable, baseline refused)
`;

const read = (file: string) => readFileSync(file, 'utf8');

const FAULT_KINDS: readonly FaultToken[] = ['wrong-typ', 'expired', 'wrong-audience', 'unbound'];

/** `--fault-token KIND=TOKEN`: a wrong kind or a missing token is named, with the valid kinds. */
function faultToken(entry: string): [FaultToken, string] {
  const at = entry.indexOf('=');
  const kind = at < 0 ? entry : entry.slice(0, at);
  const shown = JSON.stringify(kind.slice(0, 40));
  if (!(FAULT_KINDS as readonly string[]).includes(kind))
    throw new Error(`--fault-token: unknown kind ${shown}; the kinds are ${FAULT_KINDS.join(', ')} (write --fault-token KIND=TOKEN)`);
  const token = at < 0 ? '' : entry.slice(at + 1);
  if (token === '') throw new Error(`--fault-token ${kind}: the token is missing (write --fault-token ${kind}=TOKEN)`);
  return [kind as FaultToken, token];
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      resource: { type: 'string' },
      method: { type: 'string' },
      body: { type: 'string' },
      'content-type': { type: 'string' },
      header: { type: 'string', multiple: true },
      scope: { type: 'string' },
      'insufficient-scope': { type: 'string' },
      issuer: { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      'client-key': { type: 'string' },
      token: { type: 'string' },
      'insufficient-token': { type: 'string' },
      'dpop-key': { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      'other-cert': { type: 'string' },
      'other-key': { type: 'string' },
      'jwks-uri': { type: 'string' },
      'fault-token': { type: 'string', multiple: true },
      only: { type: 'string', multiple: true },
      profile: { type: 'string' },
      'signing-key': { type: 'string' },
      'signing-iss': { type: 'string' },
      'signing-tan': { type: 'string' },
      rate: { type: 'string' },
      'max-requests': { type: 'string' },
      'timeout-ms': { type: 'string' },
      ca: { type: 'string' },
      'insecure-tls': { type: 'boolean' },
      strict: { type: 'boolean' },
      json: { type: 'string' },
      junit: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stderr.write(USAGE);
    return 0;
  }
  if (!values.resource) {
    process.stderr.write(`fapi-probe: --resource URL is required (the protected resource to check)\n\n${USAGE}`);
    return 2;
  }
  const pair = (cert: string | undefined, key: string | undefined, name: string) => {
    if (!cert && !key) return undefined;
    if (!cert || !key) throw new Error(`give both --${name}cert and --${name}key`);
    return { cert: read(cert), key: read(key) };
  };
  const faultTokens: Partial<Record<FaultToken, string>> = {};
  for (const entry of values['fault-token'] ?? []) {
    const [kind, token] = faultToken(entry);
    faultTokens[kind] = token;
  }
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const at = h.indexOf(':');
    if (at < 1) throw new Error(`--header ${h}: "name: value"`);
    headers[h.slice(0, at).trim().toLowerCase()] = h.slice(at + 1).trim();
  }
  const number = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const certificate = pair(values.cert, values.key, '');
  const otherCertificate = pair(values['other-cert'], values['other-key'], 'other-');
  const clientSecret = values['client-secret'] ?? process.env.FAPI_PROBE_CLIENT_SECRET;
  const token = values.token ?? process.env.FAPI_PROBE_TOKEN;
  if (values.issuer && !values['client-id']) throw new Error('--issuer needs --client-id');
  const profile = values.profile ?? 'fapi2';
  if (!(PROFILES as readonly string[]).includes(profile)) {
    throw new Error(`--profile ${JSON.stringify(profile.slice(0, 40))}: the profiles are ${PROFILES.join(', ')}`);
  }
  if (Boolean(values['signing-key']) !== Boolean(values['signing-iss'])) throw new Error('give both --signing-key and --signing-iss');
  const options: ProbeOptions = {
    profile: profile as ProbeProfile,
    ...(values['signing-key']
      ? {
          signer: {
            key: JSON.parse(read(values['signing-key'])),
            iss: values['signing-iss'] as string,
            ...(values['signing-tan'] ? { trustAnchor: values['signing-tan'] } : {}),
          },
        }
      : {}),
    resource: values.resource,
    ...(values.method ? { method: values.method } : {}),
    ...(values.body !== undefined ? { body: { contentType: values['content-type'] ?? 'application/json', value: values.body } } : {}),
    headers,
    ...(values.scope ? { scope: values.scope } : {}),
    ...(values['insufficient-scope'] ? { insufficientScope: values['insufficient-scope'] } : {}),
    ...(values.issuer
      ? {
          authorizationServer: {
            issuer: values.issuer,
            clientId: values['client-id'] as string,
            ...(clientSecret !== undefined ? { clientSecret } : {}),
            ...(values['client-key'] ? { clientPrivateKey: JSON.parse(read(values['client-key'])) } : {}),
          },
        }
      : {}),
    ...(token ? { accessToken: token } : {}),
    ...(values['insufficient-token'] ? { insufficientScopeToken: values['insufficient-token'] } : {}),
    ...(values['dpop-key'] ? { dpopKey: JSON.parse(read(values['dpop-key'])) } : {}),
    ...(certificate ? { certificate } : {}),
    ...(otherCertificate ? { otherCertificate } : {}),
    ...(values['jwks-uri'] ? { jwksUri: values['jwks-uri'] } : {}),
    faultTokens,
    ...(values.only ? { only: values.only } : {}),
    ...(values.rate ? { rate: number(values.rate) } : {}),
    ...(values['max-requests'] ? { maxRequests: number(values['max-requests']) } : {}),
    ...(values['timeout-ms'] ? { timeoutMs: number(values['timeout-ms']) } : {}),
    ...(values.ca ? { ca: read(values.ca) } : {}),
    ...(values['insecure-tls'] ? { insecureTls: true } : {}),
    ...(values.strict ? { strict: true } : {}),
  };
  const report = await runProbe(options);
  if (values.json === '-') process.stdout.write(toJson(report));
  else {
    process.stdout.write(`${toTable(report)}\n`);
    if (values.json) writeFileSync(values.json, toJson(report));
  }
  if (values.junit) writeFileSync(values.junit, toJUnit(report));
  if (report.notJudged) process.stderr.write(`fapi-probe: could not judge the server: ${report.notJudged}\n`);
  return report.exitCode;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: Error) => {
    process.stderr.write(`fapi-probe: ${e.message}\n`);
    process.exitCode = 2;
  },
);
