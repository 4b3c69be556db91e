/**
 * Whether a token the user gave can still test what it is meant to, read from its `exp`
 * (RFC 7519 §4.1.4). A fault token meant to test one defect must differ from a valid token in
 * that defect only: once it has expired, a server that refuses it may be refusing its `exp`, and
 * a pass would prove nothing (a missed `aud` check passed that way on a rerun).
 */
import type { FaultToken } from './context.js';
import { decodeJwt } from './jws.js';

/** What a token is for: the probe's access token, the insufficient-scope token, or a fault token. */
export type TokenRole = 'access' | 'insufficient-scope' | FaultToken;

/** Why the token cannot serve its role now (it expired, or the `expired` one has not), or undefined. */
export function staleToken(token: string, role: TokenRole, now = Date.now()): string | undefined {
  const exp = decodeJwt(token)?.claims.exp;
  // An opaque token, or one without a numeric exp: nothing to read, the server judges it.
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return undefined;
  const when = `exp ${new Date(exp * 1000).toISOString()}`;
  const seconds = Math.round(Math.abs(now / 1000 - exp));
  if (role === 'expired') {
    return exp * 1000 > now ? `the "expired" fault token has not expired (${when}, in ${seconds} s): it tests nothing yet` : undefined;
  }
  if (exp * 1000 > now) return undefined;
  const what = role === 'access' ? 'the access token' : role === 'insufficient-scope' ? 'the insufficient-scope token' : 'fault token';
  return `${what} expired (${when}, ${seconds} s ago): mint fresh tokens for each run (MockIssuer.probeArguments: lifetimeSec)`;
}
