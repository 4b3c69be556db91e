/**
 * The first phase, on the headers alone (steps 1–4 of a request): the credentials, the access
 * token (local JWT checks or introspection), the client's profile, the sender constraint (DPoP
 * proof, client certificate) and the route policy. No body is read before the client has
 * authenticated: an unauthenticated client must not hold the request by trickling a body.
 */

import type { DpopResult } from './binding/dpop.js';
import type { ClientCertificate } from './binding/mtls.js';
import { readCredentials } from './credentials.js';
import { type AuthScheme, EXPOSE } from './errors.js';
import type { Authentication, Bound, Refusal } from './outcomes.js';
import type { GuardParts } from './parts.js';
import { type CompiledPolicy, checkPolicy, grantedScopes } from './policy.js';
import { type FapiCustomerHeaders, readFapiCustomerHeaders } from './regimes/fapi-headers.js';
import type { Profile } from './regimes/profiles.js';
import { type GuardRequest, headerLines } from './request.js';
import type { Introspector } from './tokens/introspection.js';
import { isJwtFrom, type TokenResult, tokenHash, type VerifiedAccessToken } from './tokens/jwt.js';

function acceptsCertificate(rule: (certificate: ClientCertificate) => boolean, certificate: ClientCertificate): boolean {
  try {
    return rule(certificate) === true;
  } catch {
    return false;
  }
}

/** Step 2: local JWT checks, introspection, or both, as `tokenFormat` and `introspectJwts` say. */
function verifyToken(parts: GuardParts, token: string): TokenResult | Promise<TokenResult> {
  const { opts, introspector } = parts;
  const local = opts.tokenFormat === 'jwt' || (opts.tokenFormat === 'auto' && isJwtFrom(token, parts.issuers));
  if (local) {
    const verified = parts.jwt.verify(token);
    if (!opts.introspectJwts || !introspector) return verified;
    return (async () => {
      const result = await verified;
      // The endpoint answers for its own issuer's tokens (RFC 7662 §1): another trusted issuer's
      // token is never sent to it (attack review 16).
      if (!result.ok || result.token.claims.iss !== introspector.issuer) return result;
      // Revocation check: the AS must still call the token active (FAPI 2.0 §5.3.4 #3).
      const status = await introspector.introspect(token, result.token.hash);
      return status.ok ? result : status;
    })();
  }
  return (introspector as Introspector).introspect(token, tokenHash(token));
}

/**
 * Steps 1–4, on the headers alone: no body is read before the client has authenticated
 * (an unauthenticated client must not hold the request by trickling a body).
 */
export async function authenticateRequest(
  parts: GuardParts,
  request: GuardRequest,
  policy: CompiledPolicy,
): Promise<Authentication | Refusal> {
  const credentials = readCredentials(request);
  if (!credentials.ok) return credentials;
  const { scheme } = credentials;
  // No profile of this API accepts DPoP (FAPI 1.0 Advanced alone): the scheme is as unknown as Basic.
  if (scheme === 'DPoP' && parts.opts.dpopAlgorithms.length === 0) {
    return { reason: 'credentials_missing', detail: 'the DPoP scheme is not accepted by this API' };
  }
  // Cached tokens and in-process replay stores answer at once: no promise to wait for.
  const pendingToken = verifyToken(parts, credentials.token);
  const verified = pendingToken instanceof Promise ? await pendingToken : pendingToken;
  if (!verified.ok) return { ...verified, usedScheme: scheme };
  const token = verified.token;
  const claims = token.claims;

  const served = serveUnder(parts, request, scheme, token);
  if (!served.ok) return { ...served, usedScheme: scheme, token };
  const { profile, fapiCustomer } = served;

  const pendingBinding = bind(parts, request, scheme, credentials.token, token, policy);
  const bound = pendingBinding instanceof Promise ? await pendingBinding : pendingBinding;
  if (!bound.ok) return { ...bound, usedScheme: scheme, token };

  // A route limited to some profiles serves no client of another (the client's own is never swapped).
  if (policy.profiles !== undefined && !policy.profiles.includes(profile.name)) {
    return { reason: 'profile_not_allowed', detail: `client served under ${profile.name}`, usedScheme: scheme, token };
  }
  const scopes = grantedScopes(claims);
  const decision = checkPolicy(policy, claims, scopes, parts.opts.now() / 1000, parts.opts.clockToleranceSec);
  if (!decision.ok) return { ...decision, usedScheme: scheme, token };
  return { ok: true, scheme, token, bound, scopes, profile, fapiCustomer };
}

/**
 * The client's profile and what it selects, before any proof is verified: the token's
 * algorithm, the kind of sender constraint, and the FAPI customer headers.
 */
function serveUnder(
  parts: GuardParts,
  request: GuardRequest,
  scheme: AuthScheme,
  token: VerifiedAccessToken,
): { ok: true; profile: Profile; fapiCustomer: FapiCustomerHeaders } | Refusal {
  const chosen = parts.opts.profiles.choose(token.claims.client_id, token.claims);
  if (!chosen.ok) return { reason: 'profile_unknown', detail: chosen.detail };
  const { profile } = chosen;
  const alg = token.header?.alg;
  // FAPI 1.0 Part 2 §8.6: the token verified with the guard's algorithms; the client's profile may allow fewer.
  if (alg !== undefined && !profile.algorithms.includes(alg)) {
    return { reason: 'token_algorithm', detail: `alg ${alg} is not allowed under ${profile.name}` };
  }
  // FAPI 1.0 Part 2 §6.2.1 #2: certificate-bound tokens only; a DPoP-bound one is refused however it is sent.
  if (!profile.dpop && (scheme === 'DPoP' || token.claims.cnf?.jkt !== undefined)) {
    return { reason: 'binding_not_allowed', detail: `DPoP is not accepted under ${profile.name}` };
  }
  // FAPI 1.0 Part 2 §6.2.1 #2 (FAPIA-RS-02): and no unbound token, whatever the route's allowBearer says.
  if (profile.certificateBoundOnly && token.claims.cnf?.['x5t#S256'] === undefined) {
    return { reason: 'binding_missing', detail: `an unbound token is not accepted under ${profile.name}` };
  }
  const customer = readFapiCustomerHeaders(request.headers, parts.opts.now(), parts.opts.clockToleranceSec);
  if (customer.ok) return { ok: true, profile, fapiCustomer: customer.headers };
  // Profiles that do not validate them hand over nothing malformed and refuse nothing (XFAPI-03).
  return profile.validatesCustomerHeaders
    ? { reason: 'fapi_header_invalid', detail: customer.detail }
    : { ok: true, profile, fapiCustomer: {} };
}

/**
 * Step 3, the sender constraint: every binding the token carries is checked (RFC 8705 §3, RFC 9449 §6), and a
 * token that carries none passes only on routes that allow bearer tokens (FAPI 2.0 §5.3.4 #5).
 * Synchronous unless the replay store answers through a promise.
 */
function bind(
  parts: GuardParts,
  request: GuardRequest,
  scheme: AuthScheme,
  accessToken: string,
  token: VerifiedAccessToken,
  policy: CompiledPolicy,
): Bound | Refusal | Promise<Bound | Refusal> {
  const jkt = token.claims.cnf?.jkt;
  const bound: Bound = { ok: true, binding: { type: 'bearer' }, headers: {} };
  if (scheme !== 'DPoP') {
    // RFC 9449 §7.2: a DPoP-bound token presented as a bearer token is a downgrade.
    if (jkt !== undefined) return { reason: 'binding_downgrade', detail: 'cnf.jkt token sent with the Bearer scheme' };
    return bindCertificate(parts, request, token, policy, bound, false);
  }
  const proof = parts.dpop.verify({
    proofs: headerLines(request.headers, 'dpop'),
    method: request.method,
    url: request.url,
    accessToken,
    accessTokenHash: token.hash,
    requireNonce: policy.dpopNonce ?? parts.opts.dpop.nonce.required === true,
    boundJkt: typeof jkt === 'string' ? jkt : undefined,
  });
  const afterProof = (result: DpopResult): Bound | Refusal => {
    if (!result.ok) return result;
    bound.binding = { type: 'dpop', jkt: result.jkt };
    if (result.nonced) bound.nonced = true;
    if (result.nextNonce) Object.assign(bound.headers, { 'dpop-nonce': result.nextNonce, 'cache-control': 'no-store', ...EXPOSE });
    return bindCertificate(parts, request, token, policy, bound, true);
  };
  return proof instanceof Promise ? proof.then(afterProof) : afterProof(proof);
}

/** RFC 8705 §3: a certificate-bound token needs the certificate it is bound to. */
function bindCertificate(
  parts: GuardParts,
  request: GuardRequest,
  token: VerifiedAccessToken,
  policy: CompiledPolicy,
  bound: Bound,
  constrained: boolean,
): Bound | Refusal {
  const x5t = token.claims.cnf?.['x5t#S256'];
  if (x5t !== undefined) {
    const { certificate, note } = parts.certificates.lookup(request, x5t);
    if (!certificate) return { reason: 'certificate_missing', detail: 'cnf.x5t#S256 token without a client certificate', note };
    if (certificate.thumbprint !== x5t) {
      return { reason: 'certificate_mismatch', detail: `${certificate.source} certificate thumbprint differs from cnf.x5t#S256`, note };
    }
    if (policy.clientCertificate && !acceptsCertificate(policy.clientCertificate, certificate)) {
      return { reason: 'certificate_not_allowed', detail: 'route policy refused the client certificate' };
    }
    // RFC 9440 §2.4: a response chosen by a forwarded certificate must not be cached.
    if (certificate.source === 'proxy') bound.headers['cache-control'] = 'no-store';
    bound.certificate = certificate;
    if (!constrained) bound.binding = { type: 'mtls', x5t };
    return bound;
  }
  if (!constrained && !policy.allowBearer) return { reason: 'binding_missing', detail: 'token has no cnf (sender constraint)' };
  return bound;
}

/**
 * What a further layer's `policy` adds on a request an earlier layer authenticated (see
 * {@link Guard.authorizeLayer}), in the order of the first phase: binding rules, then the policy.
 */
export function checkLayer(parts: GuardParts, found: Authentication, policy: CompiledPolicy): Refusal | undefined {
  const { bound, token, scheme, profile } = found;
  // A layer limited to some profiles serves no client of another, as on a single layer.
  if (policy.profiles !== undefined && !policy.profiles.includes(profile.name)) {
    return { reason: 'profile_not_allowed', detail: `client served under ${profile.name}` };
  }
  // FAPI 2.0 §5.3.4 #5: an unbound token passes only where every layer allows it.
  if (bound.binding.type === 'bearer' && !policy.allowBearer)
    return { reason: 'binding_missing', detail: 'token has no cnf (sender constraint)' };
  if (bound.certificate && policy.clientCertificate && !acceptsCertificate(policy.clientCertificate, bound.certificate)) {
    return { reason: 'certificate_not_allowed', detail: 'route policy refused the client certificate' };
  }
  // RFC 9449 §9: a route that requires a nonce gets one, though an earlier layer did not ask.
  if (scheme === 'DPoP' && (policy.dpopNonce ?? parts.opts.dpop.nonce.required === true) && !bound.nonced) {
    return { reason: 'dpop_nonce_required', detail: 'no nonce (required by a later layer)', nonce: parts.nonces.current() };
  }
  const decision = checkPolicy(policy, token.claims, found.scopes, parts.opts.now() / 1000, parts.opts.clockToleranceSec);
  return decision.ok ? undefined : decision;
}
