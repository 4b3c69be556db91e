/**
 * What each regime's request signature costs the API, in process and on the event loop: FAPI 2.0
 * Message Signing (RFC 9421, Ed25519 and RSA-PSS-SHA512), UK Open Banking `x-jws-signature`
 * (detached PS256 JWS) and Open Finance Brasil signed JWT bodies (PS256, with the `jti` claim in
 * the in-memory replay store). Each scheme verifies freshly signed requests for at most
 * BENCH_SECONDS (default 2) or 20 000 requests, one after the other.
 *
 *   npm run bench:regimes
 */
import { constants, generateKeyPairSync, randomUUID, sign, verify } from 'node:crypto';
import {
  ClientKeys,
  MemoryReplayStore,
  type ObKey,
  obVerificationKey,
  tokenHash,
  verifyJwtBody,
  verifyObSignature,
  verifyRequestSignature,
} from '@fapi-guard/core';
import { MessageSigningClient } from '@fapi-guard/testing';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const MAX = 20_000;
const URL = 'https://rs.example.com/payments';
const BODY = new TextEncoder().encode(
  JSON.stringify({
    Data: { Initiation: { InstructionIdentification: 'ACME412', InstructedAmount: { Amount: '165.88', Currency: 'GBP' } } },
    Risk: {},
  }),
);
const nowSec = () => Date.now() / 1000;

/**
 * Verifications per second of `verifyOne` over requests prepared by `prepare` (signing is not
 * timed), and the CPU time of each (this process, user + system: wall time also counts the
 * neighbours' turns on a shared machine).
 */
async function measure(name: string, prepare: (i: number) => unknown, verifyOne: (input: unknown) => Promise<boolean>): Promise<void> {
  const count = Math.min(MAX, 200 + 4_000 * SECONDS);
  const inputs = Array.from({ length: count }, (_, i) => prepare(i));
  // Warm-up (JIT, key import, caches), not timed: the first 200 requests.
  for (const input of inputs.splice(0, 200)) await verifyOne(input);
  const started = performance.now();
  const cpu = process.cpuUsage();
  let done = 0;
  for (const input of inputs) {
    if (!(await verifyOne(input))) throw new Error(`${name}: a valid request was refused`);
    done++;
    if (performance.now() - started > SECONDS * 1000) break;
  }
  const { user, system } = process.cpuUsage(cpu);
  const seconds = (performance.now() - started) / 1000;
  const cells = [
    String(Math.round(done / seconds)).padStart(8),
    ((seconds * 1e6) / done).toFixed(0).padStart(6),
    ((user + system) / done).toFixed(0).padStart(10),
  ];
  console.log(`| ${name.padEnd(44)} | ${cells.join(' | ')} |`);
}

/** CPU time of the signature check alone (`crypto.verify`, key imported once), the floor of each scheme. */
function rawVerify(name: string, type: 'ed25519' | 'rsa', algorithm: string | null, options: object = {}): void {
  const keys = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
  const data = Buffer.from(BODY);
  const signature = sign(algorithm, data, { key: keys.privateKey, ...options });
  const key = { key: keys.publicKey, ...options };
  for (let i = 0; i < 300; i++) verify(algorithm, data, key, signature);
  const n = 3000;
  const cpu = process.cpuUsage();
  for (let i = 0; i < n; i++) verify(algorithm, data, key, signature);
  const { user, system } = process.cpuUsage(cpu);
  console.log(`| ${name.padEnd(44)} | ${((user + system) / n).toFixed(1).padStart(10)} |`);
}

async function fapi2(algorithm: 'ed25519' | 'rsa-pss-sha512'): Promise<void> {
  const client = MessageSigningClient.generate(algorithm, 'k1');
  const keys = new ClientKeys({ clients: { 'client-1': { jwks: client.jwks } } }, Date.now);
  const token = 'token';
  await measure(
    `FAPI 2.0 Message Signing (${algorithm})`,
    () => {
      const headers = { authorization: `DPoP ${token}`, 'content-type': 'application/json' };
      const signed = client.sign({ method: 'POST', url: URL, headers, body: BODY });
      const all: Record<string, string[]> = {};
      for (const [name, value] of Object.entries({ ...headers, ...signed })) all[name] = [value];
      return all;
    },
    async (headers) => {
      const result = await verifyRequestSignature({
        message: { method: 'POST', url: URL, headers: headers as Record<string, string[]> },
        body: BODY,
        clientId: 'client-1',
        tokenHash: tokenHash(token),
        mode: 'required',
        keys,
        now: nowSec(),
        maxAgeSec: 60,
        maxFutureSec: 5,
      });
      return result.ok;
    },
  );
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaJwk = { ...(rsa.publicKey.export({ format: 'jwk' }) as object), kid: 'k1' };
const ps256 = (input: string) =>
  sign('sha256', Buffer.from(input), { key: rsa.privateKey, padding: 6, saltLength: 32 }).toString('base64url');
const segment = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function ukOpenBanking(): Promise<void> {
  const iss = '0015800001041RHAAY/2kiXQyo0tedjW2somjSgH7';
  const keys = new ClientKeys<ObKey>({ resolveClient: () => ({ jwks: { keys: [rsaJwk] } }) }, Date.now, undefined, obVerificationKey);
  const settings = { version: '3.1.4' as const, trustAnchors: new Set(['openbanking.org.uk']), keys, maxAgeSec: 60, maxFutureSec: 5 };
  const IAT = 'http://openbanking.org.uk/iat';
  const ISS = 'http://openbanking.org.uk/iss';
  const TAN = 'http://openbanking.org.uk/tan';
  await measure(
    'UK Open Banking x-jws-signature (PS256)',
    () => {
      const header = segment({
        alg: 'PS256',
        kid: 'k1',
        [IAT]: Math.floor(nowSec()),
        [ISS]: iss,
        [TAN]: 'openbanking.org.uk',
        crit: [IAT, ISS, TAN],
      });
      return `${header}..${ps256(`${header}.${Buffer.from(BODY).toString('base64url')}`)}`;
    },
    async (value) => (await verifyObSignature([value as string], BODY, iss, settings, nowSec())).ok,
  );
}

async function openFinanceBrasil(): Promise<void> {
  const keys = new ClientKeys<ObKey>(
    { clients: { 'client-1': { jwks: { keys: [rsaJwk as never] } } } },
    Date.now,
    undefined,
    obVerificationKey,
  );
  const settings = { keys, replayStore: new MemoryReplayStore(), maxAgeSec: 60, maxFutureSec: 5 };
  const org = 'c2a8ea4b-19e3-4de9-a0a2-36e6c3bdbf0f';
  const data = JSON.parse(new TextDecoder().decode(BODY));
  await measure(
    'Open Finance Brasil JWT body (PS256, jti)',
    () => {
      const input = `${segment({ alg: 'PS256', typ: 'JWT', kid: 'k1' })}.${segment({ aud: URL, iss: org, iat: Math.floor(nowSec()), jti: randomUUID(), data })}`;
      return new TextEncoder().encode(`${input}.${ps256(input)}`);
    },
    async (body) =>
      (
        await verifyJwtBody(
          { contentType: 'application/jwt', body: body as Uint8Array, url: URL },
          { clientId: 'client-1', organisationId: org },
          settings,
          nowSec(),
        )
      ).ok,
  );
}

async function main(): Promise<void> {
  console.log(`node ${process.version} · in process, event loop · at most ${SECONDS} s or ${MAX} requests per scheme\n`);
  console.log('| scheme (request verification)                 | verify/s | µs/req | CPU µs/req |');
  console.log('|----------------------------------------------|---------:|-------:|-----------:|');
  await fapi2('ed25519');
  await fapi2('rsa-pss-sha512');
  await ukOpenBanking();
  await openFinanceBrasil();
  console.log('\n| the signature check alone (crypto.verify)     | CPU µs/req |');
  console.log('|----------------------------------------------|-----------:|');
  const pss = (saltLength: number) => ({ padding: constants.RSA_PKCS1_PSS_PADDING, saltLength });
  rawVerify('ed25519', 'ed25519', null);
  rawVerify('rsa-pss-sha512 (RSA 2048)', 'rsa', 'sha512', pss(64));
  rawVerify('PS256 (RSA 2048)', 'rsa', 'sha256', pss(32));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
