/**
 * The decision, once per request: a refusal rendered as a `GuardError` (RFC 6750 §3, RFC 9449
 * §7.1 challenges and headers), the interaction id added to a success, the decision event
 * reported to `onDecision`, and what the operator must see without one (rate-limited notices).
 */
import type { DecisionEvent } from './config/options.js';
import { type AuthScheme, brErrorEnvelope, EXPOSE, GuardError, obErrorEnvelope, REASONS, renderChallenges } from './errors.js';
import type { InteractionId } from './interaction.js';
import { logValue } from './observe/log-value.js';
import type { Authorized, Binding, Pass, Refusal } from './outcomes.js';
import { FAILURE_LOG_WINDOW_MS, type GuardParts, HINT_LOG_WINDOW_MS } from './parts.js';
import type { CompiledPolicy } from './policy.js';
import { signJwtBody } from './regimes/br-signed-jwt.js';
import type { GuardRequest } from './request.js';
import type { AccessTokenClaims, VerifiedAccessToken } from './tokens/jwt.js';

/** The sender constraint a token asks for: `cnf.jkt` (checked first, as in `bind`), `cnf.x5t#S256`, or none. */
function requestedBinding(claims: Readonly<AccessTokenClaims>): Binding['type'] {
  const cnf = claims.cnf as Record<string, unknown> | undefined;
  if (typeof cnf?.jkt === 'string') return 'dpop';
  if (typeof cnf?.['x5t#S256'] === 'string') return 'mtls';
  return 'bearer';
}

function schemesOf(parts: GuardParts, policy: CompiledPolicy): AuthScheme[] {
  // DPoP where a profile the route serves accepts it; mTLS-bound tokens travel with Bearer (RFC 8705 §3).
  const dpopServed = parts.opts.profiles.all.some((p) => p.dpop && (policy.profiles === undefined || policy.profiles.includes(p.name)));
  const schemes: AuthScheme[] = dpopServed ? ['DPoP'] : [];
  if (policy.allowBearer || parts.opts.mtls) schemes.push('Bearer');
  return schemes;
}

/**
 * The metadata URL a challenge to a request for `url` may name. RFC 9728 §3.3: a client uses a
 * document reached from a challenge only if its `resource` is the URL the client requested; any
 * other request's challenge would point to a document that client must discard (clients find it
 * at the well-known URL built from the resource identifier instead, §3.1).
 */
function metadataFor(parts: GuardParts, url: string | undefined): string | undefined {
  return url !== undefined && url === parts.published.metadataResource ? parts.published.resourceMetadataUrl : undefined;
}

/**
 * `auth`: the authorization a refusal after the checks answers for (an idempotency key refused by
 * a layer behind the one whose answers are signed): its answers' form holds for the refusal too.
 * `url`: the request's URL, whose challenge may name the metadata document.
 */
export function toError(
  parts: GuardParts,
  refusal: Refusal,
  policy: CompiledPolicy,
  interaction?: string,
  auth?: Authorized,
  url?: string,
): GuardError {
  const headers: Record<string, string> = {};
  if (interaction) headers['x-fapi-interaction-id'] = interaction;
  const challenge = renderChallenges(refusal.reason, {
    schemes: schemesOf(parts, policy),
    usedScheme: refusal.usedScheme,
    realm: parts.opts.realm,
    dpopAlgorithms: parts.opts.dpopAlgorithms,
    scope: refusal.scope,
    acrValues: refusal.acrValues,
    maxAge: refusal.maxAge,
    resourceMetadata: metadataFor(parts, url),
  });
  if (challenge) headers['www-authenticate'] = challenge;
  if (refusal.nonce) headers['dpop-nonce'] = refusal.nonce;
  if (refusal.acceptSignature) headers['accept-signature'] = refusal.acceptSignature;
  Object.assign(headers, EXPOSE);
  // RFC 9110 §10.2.3: a 503 says when to come back; 1 s unless the failing part knows better.
  const retryAfterMs = refusal.retryAfterMs ?? (REASONS[refusal.reason].status === 503 ? 1000 : undefined);
  if (retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
  headers['cache-control'] = 'no-store';
  // A refusal behind the layer whose answers the bank signs (Open Finance Brasil) is signed as they
  // are, so it takes their envelope. (The OB envelope is only for refusals with an OB code, none of
  // which come after the checks.)
  const openFinanceBrasil = policy.jwtBody !== undefined || (auth !== undefined && parts.marks.brSigning.has(auth));
  const envelope = policy.jwsSignature
    ? obErrorEnvelope(refusal.reason, interaction)
    : openFinanceBrasil
      ? brErrorEnvelope(refusal.reason, parts.opts.now())
      : undefined;
  // Open Finance Brasil: errors are signed too, once the client (the audience) is known.
  const brazil = openFinanceBrasil ? parts.opts.messageSigning?.openFinanceBrasil : undefined;
  const audience = brazil && refusal.token && brazil.organisations.get(refusal.token.claims.client_id);
  const signed =
    brazil?.signer && audience
      ? signJwtBody(envelope, { key: brazil.signer, iss: brazil.organisationId }, audience, parts.opts.now() / 1000)
      : undefined;
  // The detail quotes request and token values (kid, htu, ...): escaped and bounded for logs.
  return new GuardError(refusal.reason, logValue(refusal.detail), headers, envelope, signed);
}

export function report(
  parts: GuardParts,
  request: Pick<GuardRequest, 'method' | 'url'>,
  started: number,
  result: Authorized | GuardError,
  token?: VerifiedAccessToken,
  note?: string,
  interaction?: InteractionId,
  extra?: Partial<Pick<DecisionEvent, 'idempotency' | 'reason' | 'status'>>,
): void {
  if (!parts.opts.onDecision) return;
  const t = result.ok ? result.token : token;
  // Every value from the request or the token enters the event through logValue (the detail
  // did so in toError): none can forge a log line.
  const event: DecisionEvent = {
    outcome: result.ok ? 'allow' : 'deny',
    status: result.ok ? 200 : result.status,
    method: logValue(request.method),
    url: logValue(request.url.split('?', 1)[0] as string),
    durationMs: performance.now() - started,
  };
  if (interaction) {
    event.interactionId = logValue(interaction.id);
    if (interaction.refused !== undefined) event.refusedInteractionId = logValue(interaction.refused);
  }
  if (!result.ok) {
    event.reason = result.reason;
    if (result.error) event.error = result.error;
    if (result.detail) event.detail = result.detail;
    if (note) event.note = logValue(note);
  } else {
    event.binding = result.binding.type;
    event.profile = result.profile;
  }
  // A refusal after the token was verified names the binding the token asks for (its cnf), so
  // metrics tell a DPoP client's failures from a bearer client's; before that, none is known.
  if (!result.ok && t) event.binding = requestedBinding(t.claims);
  if (t) {
    const { iss, client_id, sub } = t.claims as Record<string, unknown>;
    if (typeof iss === 'string') event.issuer = logValue(iss);
    if (typeof client_id === 'string') event.clientId = logValue(client_id);
    if (typeof sub === 'string') event.subject = logValue(sub);
    event.tokenHash = t.hash;
  }
  Object.assign(event, extra);
  try {
    parts.opts.onDecision(event);
  } catch {
    // A logger failure must not change the decision.
  }
}

/**
 * What the operator must see without `onDecision`: a 503 or 500 with its reason (per reason,
 * rate-limited), and a refusal that points to the configuration (a hint, rarely).
 */
export function notify(parts: GuardParts, refusal: Refusal, error: GuardError): void {
  if (error.status >= 500) {
    parts.notices.report(
      'error',
      `refusal:${refusal.reason}`,
      FAILURE_LOG_WINDOW_MS,
      { reason: refusal.reason, status: error.status, detail: error.detail },
      `fapi-guard: requests refused with ${error.status}: ${REASONS[refusal.reason].description}`,
    );
  }
  if (refusal.htuOrigin) {
    parts.notices.report(
      'warn',
      'hint:htu-origin',
      HINT_LOG_WINDOW_MS,
      { proofOrigin: logValue(refusal.htuOrigin.proof), requestOrigin: logValue(refusal.htuOrigin.request) },
      'fapi-guard: DPoP proofs name this path at another origin than the one this API computes for its requests; ' +
        `behind a proxy or load balancer set ${parts.optionName('publicUrl')} (or ${parts.optionName('trustedProxies')}) to the URL clients use (RFC 9449 §4.3 step 9)`,
    );
  }
}

/**
 * The decision: the refusal rendered, or the interaction id added; reported once (a further
 * layer's consent is not reported: the first layer's was).
 */
export function settle(parts: GuardParts, request: GuardRequest, pass: Pass, outcome: Refusal): GuardError;
export function settle(
  parts: GuardParts,
  request: GuardRequest,
  pass: Pass,
  outcome: Authorized | Refusal,
  layer?: boolean,
): Authorized | GuardError;
export function settle(
  parts: GuardParts,
  request: GuardRequest,
  pass: Pass,
  outcome: Authorized | Refusal,
  layer = false,
): Authorized | GuardError {
  let result = outcome.ok ? outcome : toError(parts, outcome, pass.policy, pass.interaction?.id, undefined, request.url);
  if (!outcome.ok && !result.ok) notify(parts, outcome, result);
  const { interaction } = pass;
  if (result.ok && interaction) {
    const context = parts.marks.signing.get(result);
    const signedRequest = parts.marks.signedRequests.get(result);
    const found = parts.marks.layers.get(result);
    const ob = parts.marks.obSigning.has(result);
    const br = parts.marks.brSigning.has(result);
    result = { ...result, interactionId: interaction.id, headers: { ...result.headers, 'x-fapi-interaction-id': interaction.id } };
    if (context) parts.marks.signing.set(result, context);
    if (signedRequest) parts.marks.signedRequests.set(result, signedRequest);
    if (found) parts.marks.layers.set(result, found);
    if (ob) parts.marks.obSigning.add(result);
    if (br) parts.marks.brSigning.add(result);
  }
  if (!(layer && result.ok))
    report(parts, request, pass.started, result, (outcome as Refusal).token, (outcome as Refusal).note, interaction);
  return result;
}
