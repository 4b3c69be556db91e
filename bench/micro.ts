/**
 * The guard's own cost per request, in-process, without HTTP: `guard.check` on the DPoP path
 * (minus the proof's signature check, measured separately) and on the mTLS path. For finding
 * per-request work that could be done once: `node bench/dist/bench/micro.js`.
 */
import { verify } from 'node:crypto';
import { createGuard, type GuardRequest, headersFromRaw } from '@fapi-guard/core';
import { clientCertHeader, createCertificate, MockIssuer } from '@fapi-guard/testing';
import { proofFactory } from './proofs';

const AUDIENCE = 'https://api.bench.example';
const N = Number(process.env.MICRO_N ?? 30_000);
/** `MICRO_ONLY=mtls` or `dpop`: one path, for profiling. */
const ONLY = process.env.MICRO_ONLY;

async function rate(
  label: string,
  warm: GuardRequest[],
  requests: GuardRequest[],
  check: (r: GuardRequest) => Promise<unknown>,
): Promise<number> {
  for (const r of warm) await check(r);
  // CPU time of this process (user + system): on a shared machine wall time also counts the
  // neighbours' turns.
  const started = process.cpuUsage();
  for (const r of requests) await check(r);
  const { user, system } = process.cpuUsage(started);
  const us = (user + system) / requests.length;
  console.log(`${label}: ${us.toFixed(2)} µs CPU per request`);
  return us;
}

async function main(): Promise<void> {
  const as = await MockIssuer.start({ audience: AUDIENCE });
  const client = proofFactory();
  const cert = await createCertificate();
  const dpopGuard = createGuard({
    issuer: as.issuer,
    audience: AUDIENCE,
    publicUrl: AUDIENCE,
    interactionId: false,
    dpop: { verifyOn: 'main' },
  });
  const mtlsGuard = createGuard({
    issuer: as.issuer,
    audience: AUDIENCE,
    publicUrl: AUDIENCE,
    interactionId: false,
    mtls: { proxy: { trustedPeers: ['127.0.0.1'] } },
  });
  const dpopPolicy = dpopGuard.policy({ scopes: ['accounts'] });
  const mtlsPolicy = mtlsGuard.policy({ scopes: ['accounts'] });
  const dpopToken = await as.mint({ scope: 'accounts', jkt: client.jkt, lifetimeSec: 600 });
  const mtlsToken = await as.mint({ scope: 'accounts', x5t: cert.x5t, lifetimeSec: 600 });
  const proofs = client.make(N + 2000, `${AUDIENCE}/accounts`, dpopToken);
  const raw = (extra: string[]) => ['Host', 'api.bench.example', 'User-Agent', 'bench', 'Accept', '*/*', ...extra];
  const dpopRequests = proofs.map((proof) => ({
    method: 'GET',
    url: `${AUDIENCE}/accounts`,
    headers: headersFromRaw(raw(['Authorization', `DPoP ${dpopToken}`, 'DPoP', proof])),
  }));
  const certHeader = clientCertHeader(cert.der);
  const mtlsRequests = Array.from({ length: N }, () => ({
    method: 'GET',
    url: `${AUDIENCE}/accounts`,
    remoteAddress: '127.0.0.1',
    headers: headersFromRaw(raw(['Authorization', `Bearer ${mtlsToken}`, 'Client-Cert', certHeader])),
  }));
  const check = async (guard: typeof dpopGuard, policy: typeof dpopPolicy, r: GuardRequest) => {
    const result = await guard.check(r, policy);
    if (!result.ok) throw new Error(result.reason);
  };
  if (ONLY === 'mtls') {
    await rate('guard.check mTLS (proxy header)', mtlsRequests.slice(0, 2000), mtlsRequests, (r) => check(mtlsGuard, mtlsPolicy, r));
    await as.stop();
    return;
  }
  const dpop = await rate('guard.check DPoP (ES256 proof)', dpopRequests.slice(0, 2000), dpopRequests.slice(2000), (r) =>
    check(dpopGuard, dpopPolicy, r),
  );
  // The proof signature alone, as the guard verifies it.
  const key = (await import('node:crypto')).createPublicKey({
    key: JSON.parse(Buffer.from((proofs[0] as string).split('.')[0] as string, 'base64url').toString()).jwk,
    format: 'jwk',
  });
  const verifyUs = await rate('crypto.verify of the proof', dpopRequests.slice(0, 2000), dpopRequests.slice(2000), async (r) => {
    const [h, p, s] = String(r.headers.dpop?.[0]).split('.') as [string, string, string];
    verify('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
  });
  console.log(`guard work besides the signature: ${(dpop - verifyUs).toFixed(2)} µs`);
  await rate('guard.check mTLS (proxy header)', mtlsRequests.slice(0, 2000), mtlsRequests, (r) => check(mtlsGuard, mtlsPolicy, r));
  await as.stop();
}

void main();
