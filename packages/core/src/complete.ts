/**
 * The second phase, on an authenticated request whose body is at hand (step 5): an
 * `access_token` in the body is refused (RFC 6750 §2.2), and the body signatures a route asks
 * for are verified (FAPI 2.0 Message Signing, UK Open Banking `x-jws-signature`, Open Finance
 * Brasil signed JWT bodies).
 */

import type { ClientCertificate } from './binding/mtls.js';
import type { ResolvedMessageSigning } from './config/resolve.js';
import { bodyHasToken } from './credentials.js';
import type { GuardErrorReason } from './errors.js';
import type { Authentication, Authorized, Refusal } from './outcomes.js';
import type { GuardParts } from './parts.js';
import type { CompiledPolicy } from './policy.js';
import { type JwtBodyFailure, type VerifiedJwtBody, verifyJwtBody } from './regimes/br-signed-jwt.js';
import { type ObSignatureFailure, type VerifiedObSignature, verifyObSignature } from './regimes/uk-ob-signature.js';
import { announcesBody, type GuardRequest, headerLines } from './request.js';
import type { ClientKeys } from './signatures/client-keys.js';
import { acceptSignature, type ResponseSigningContext, type VerifiedRequestSignature, verifyRequestSignature } from './signatures/fapi.js';
import type { VerifiedAccessToken } from './tokens/jwt.js';

/** UK.OBIE.Signature.* failures as refusal reasons; a key set that cannot be fetched is a 503, never an accepted request. */
const OB_FAILURES: Readonly<Record<ObSignatureFailure, GuardErrorReason>> = {
  Missing: 'ob_signature_missing',
  Malformed: 'ob_signature_malformed',
  MissingClaim: 'ob_signature_claim_missing',
  InvalidClaim: 'ob_signature_claim_invalid',
  Invalid: 'ob_signature_invalid',
  Unavailable: 'signature_keys_unavailable',
};

/** Signed-body failures as refusal reasons; a key set or replay store that cannot be reached is a 503, never an accepted request. */
const BR_FAILURES: Readonly<Record<JwtBodyFailure, GuardErrorReason>> = {
  media_type: 'br_jwt_media_type',
  malformed: 'br_jwt_malformed',
  header: 'br_jwt_invalid',
  claims: 'br_jwt_invalid',
  signature: 'br_jwt_invalid',
  replayed: 'br_jwt_replayed',
  unavailable: 'signature_keys_unavailable',
};

/**
 * What needs the body, on an authenticated request: the body-token refusal and step 5. `earlier`:
 * what an earlier layer authorized for this request; the value returned carries what it
 * established too (its verified signatures, the responses it signs), so that the latest value is
 * the whole of the request's authorization and signs its response once.
 */
export async function completeRequest(
  parts: GuardParts,
  request: GuardRequest,
  policy: CompiledPolicy,
  found: Authentication,
  interaction?: string,
  earlier?: Authorized,
): Promise<Authorized | Refusal> {
  const { scheme, token, bound, scopes, profile, fapiCustomer } = found;
  const claims = token.claims;
  // RFC 6750 §2.2 (FAPI-RS-03): an adapter that authenticates before its parser runs shows the
  // parsed body only now; a token in it next to the header is still refused.
  if (bodyHasToken(request)) {
    return { reason: 'credentials_ambiguous', usedScheme: scheme, detail: 'Authorization header and access_token in the body', token };
  }
  const brazil = openFinanceBrasilClient(parts, policy, claims.client_id);
  if (brazil) return { ...brazil, usedScheme: scheme, token };
  // What an earlier layer verified is not verified again (a signed JWT body's jti is spent once).
  const verifySignature = policy.signedRequest !== undefined && earlier?.signature === undefined;
  const signed =
    verifySignature || policy.signResponse ? await checkSignature(parts, request, policy, token, interaction, verifySignature) : undefined;
  if (signed && !signed.ok) return { ...signed, usedScheme: scheme, token };
  const jws =
    policy.jwsSignature?.request && earlier?.jwsSignature === undefined
      ? await checkObSignature(parts, request, policy, claims.client_id, bound.certificate)
      : undefined;
  if (jws && !jws.ok) return { ...jws, usedScheme: scheme, token };
  const jwtBody =
    policy.jwtBody?.request && earlier?.jwtBody === undefined ? await checkJwtBody(parts, request, claims.client_id) : undefined;
  if (jwtBody && !jwtBody.ok) return { ...jwtBody, usedScheme: scheme, token };
  const authorized: Authorized = {
    ok: true,
    token,
    claims,
    scopes,
    clientId: claims.client_id,
    subject: claims.sub,
    issuer: claims.iss,
    binding: bound.binding,
    headers: bound.headers,
    profile: profile.name,
    fapiCustomer,
    ...(bound.certificate ? { certificate: bound.certificate } : {}),
    ...pick('signature', signed?.verified ?? earlier?.signature),
    ...pick('jwsSignature', jws?.verified ?? earlier?.jwsSignature),
    ...pick('jwtBody', jwtBody?.ok ? jwtBody.verified : earlier?.jwtBody),
  };
  const { marks } = parts;
  if (policy.jwtBody?.response || (earlier && marks.brSigning.has(earlier))) marks.brSigning.add(authorized);
  if (policy.jwsSignature?.response || (earlier && marks.obSigning.has(earlier))) marks.obSigning.add(authorized);
  const context = signingContext(signed?.context, earlier && (marks.signedRequests.get(earlier) ?? marks.signing.get(earlier)));
  if (context?.requestSignature) marks.signedRequests.set(authorized, context);
  if (context && (policy.signResponse || (earlier && marks.signing.has(earlier)))) marks.signing.set(authorized, context);
  marks.layers.set(authorized, found);
  return authorized;
}

/** `{ [name]: value }`, or nothing when there is no value. */
function pick<K extends string, V>(name: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [name]: value }) as { [P in K]?: V };
}

/**
 * The response-signing context of a layer, bound to the request signature whichever layer
 * verified it (FAPI 2.0 Message Signing §5.6.2.1: the response covers the request's signature).
 */
function signingContext(
  own: ResponseSigningContext | undefined,
  earlier: ResponseSigningContext | undefined,
): ResponseSigningContext | undefined {
  if (!own || own.requestSignature || !earlier?.requestSignature) return own ?? earlier;
  return { ...own, requestSignature: earlier.requestSignature, requestRecord: earlier.requestRecord };
}

/**
 * Open Finance Brasil: a route with a signed request or signed answers serves only a client with an
 * organisation id, the `aud` of the bank's answers and the `iss` of its requests; `undefined` when it is served.
 */
function openFinanceBrasilClient(parts: GuardParts, policy: CompiledPolicy, clientId: string): Refusal | undefined {
  if (!policy.jwtBody?.request && !policy.jwtBody?.response) return undefined;
  if (parts.opts.messageSigning?.openFinanceBrasil?.organisations.has(clientId)) return undefined;
  return { reason: 'br_client_unknown', detail: `client ${clientId} has no organisation id in openFinanceBrasil.clients` };
}

/** Open Finance Brasil: the body is a JWT signed by the client that holds the token, for this URL, used once. */
async function checkJwtBody(
  parts: GuardParts,
  request: GuardRequest,
  clientId: string,
): Promise<{ ok: true; verified: VerifiedJwtBody } | Refusal> {
  const settings = parts.opts.messageSigning?.openFinanceBrasil as NonNullable<ResolvedMessageSigning['openFinanceBrasil']>;
  // Known: a client without an organisation was refused before (openFinanceBrasilClient).
  const organisationId = settings.organisations.get(clientId) as string;
  const body = request.rawBody;
  if (body === undefined && announcesBody(request.headers)) {
    return {
      reason: 'body_unavailable',
      detail: 'the request has a body but no raw bytes reached the guard (mount rawBody() before body parsers)',
    };
  }
  const result = await verifyJwtBody(
    { contentType: headerLines(request.headers, 'content-type')[0], body: body ?? new Uint8Array(), url: request.url },
    { clientId, organisationId },
    { ...settings, replayStore: parts.opts.dpop.replayStore },
    parts.opts.now() / 1000,
  );
  if (result.ok) return result;
  return { reason: BR_FAILURES[result.failure], detail: result.detail };
}

/**
 * UK Open Banking `x-jws-signature` over the exact body bytes, by the client that holds the
 * token (its `iss` from `clients`, else `resolveIssuer` with its certificate).
 */
async function checkObSignature(
  parts: GuardParts,
  request: GuardRequest,
  policy: CompiledPolicy,
  clientId: string,
  certificate: ClientCertificate | undefined,
): Promise<{ ok: true; verified?: VerifiedObSignature } | Refusal> {
  const settings = parts.opts.messageSigning?.ukOpenBanking as NonNullable<ResolvedMessageSigning['ukOpenBanking']>;
  const lines = headerLines(request.headers, 'x-jws-signature');
  if (lines.length === 0 && policy.jwsSignature?.request === 'optional') return { ok: true };
  const body = request.rawBody;
  if (body === undefined && announcesBody(request.headers)) {
    return {
      reason: 'body_unavailable',
      detail: 'the request has a body but no raw bytes reached the guard (mount rawBody() before body parsers)',
    };
  }
  const iss = Object.hasOwn(settings.clients, clientId) ? settings.clients[clientId] : settings.resolveIssuer?.({ clientId, certificate });
  if (typeof iss !== 'string') return { reason: 'ob_signature_claim_invalid', detail: `client ${clientId} has no OB iss` };
  const result = await verifyObSignature(lines, body ?? new Uint8Array(), iss, settings, parts.opts.now() / 1000);
  if (result.ok) return { ok: true, verified: result.verified };
  return { reason: OB_FAILURES[result.failure], detail: result.detail };
}

/**
 * Step 5, FAPI 2.0 Message Signing (§5.6.1.2): the request signature on routes that ask for it,
 * and what the response signer must keep of the request.
 */
async function checkSignature(
  parts: GuardParts,
  request: GuardRequest,
  policy: CompiledPolicy,
  token: VerifiedAccessToken,
  interaction: string | undefined,
  verify: boolean,
): Promise<{ ok: true; verified?: VerifiedRequestSignature; context?: ResponseSigningContext } | Refusal> {
  const settings = parts.opts.messageSigning as ResolvedMessageSigning;
  const body = request.rawBody;
  // DEC-07 fails closed: announced content that the adapter could not hand over is never treated as none.
  const signaturesSent = headerLines(request.headers, 'signature-input').length > 0 || headerLines(request.headers, 'signature').length > 0;
  if (
    verify &&
    body === undefined &&
    announcesBody(request.headers) &&
    (policy.signedRequest === 'required' || (policy.signedRequest && signaturesSent))
  ) {
    return {
      reason: 'body_unavailable',
      detail: 'the request has a body but no raw bytes reached the guard (mount rawBody() before body parsers)',
    };
  }
  const message = { method: request.method, url: request.url, headers: request.headers };
  const clientId = token.claims.client_id;
  let verified: VerifiedRequestSignature | undefined;
  let context: ResponseSigningContext | undefined;
  if (verify && policy.signedRequest) {
    const result = await verifyRequestSignature({
      message,
      body,
      clientId,
      tokenHash: token.hash,
      ...(interaction ? { interactionId: interaction } : {}),
      mode: policy.signedRequest,
      keys: settings.keys as ClientKeys,
      now: parts.opts.now() / 1000,
      maxAgeSec: settings.maxAgeSec,
      maxFutureSec: settings.maxFutureSec,
    });
    if (!result.ok) {
      const refusal: Refusal = { reason: result.reason, detail: result.detail };
      if (result.reason !== 'signature_keys_unavailable')
        refusal.acceptSignature = acceptSignature(request.headers, (body?.length ?? 0) > 0);
      return refusal;
    }
    if (result.verified) {
      verified = result.verified;
      if (settings.onSignedExchange) {
        try {
          await settings.onSignedExchange(result.record);
        } catch (e) {
          // Non-repudiation: a signed request whose proof cannot be kept is not carried out.
          return { reason: 'store_unavailable', detail: `onSignedExchange failed: ${(e as Error)?.message ?? String(e)}` };
        }
      }
      context = { request: message, requestSignature: result.signature, requestRecord: result.record, clientId, tokenHash: token.hash };
    }
  }
  if (policy.signResponse) {
    context ??= { request: message, requestSignature: undefined, requestRecord: undefined, clientId, tokenHash: token.hash };
    if (interaction) context.interactionId = interaction;
  }
  return { ok: true, ...(verified ? { verified } : {}), ...(context ? { context } : {}) };
}
