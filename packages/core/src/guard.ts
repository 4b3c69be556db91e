/**
 * `createGuard(options)`: the one entry point adapters call. It builds the guard's parts once
 * (parts.ts) and runs each request through the pipeline: authenticate.ts (credentials, token,
 * binding, policy), complete.ts (what needs the body), settle.ts (the decision and its report);
 * respond.ts signs responses and publish.ts serves the guard's own documents.
 */
import { authenticateRequest, checkLayer } from './authenticate.js';
import { compileRoute } from './compile.js';
import { completeRequest } from './complete.js';
import { renameForEnvironment } from './config/env-names.js';
import type { DecisionEvent, GuardOptions } from './config/options.js';
import type { ResolvedOptions } from './config/resolve.js';
import { bodyHasToken } from './credentials.js';
import type { GuardError, GuardErrorReason } from './errors.js';
import { interactionId } from './interaction.js';
import type { Authenticated, Authentication, Authorized, Pass, Refusal, ResponseParts, SignedOutgoing } from './outcomes.js';
import { buildParts } from './parts.js';
import type { CompiledPolicy, RoutePolicy } from './policy.js';
import { publishedDocument } from './publish.js';
import type { ConnectionInfo, GuardHeaders, GuardRequest, UrlResult } from './request.js';
import { signOutgoing, signsResponse } from './respond.js';
import { notify, report, settle, toError } from './settle.js';
import type { OutgoingResponse } from './signatures/fapi.js';
import type { IssuerKeys } from './tokens/issuer.js';

export type { Authenticated, Authorized, Binding, SignedOutgoing } from './outcomes.js';

export interface Guard {
  /**
   * Checks one request against one route policy: {@link Guard.authenticate} then
   * {@link Guard.complete}, for a request whose body is at hand. Never throws, never rejects.
   */
  check(request: GuardRequest, policy?: RoutePolicy | CompiledPolicy): Promise<Authorized | GuardError>;
  /**
   * The first phase of `check`, on the headers alone: credentials, token, binding (DPoP proof,
   * client certificate) and the route policy. It needs neither `body` nor `rawBody`, so adapters
   * call it before reading the body: only an authenticated client's body is read. Never rejects.
   */
  authenticate(request: GuardRequest, policy?: RoutePolicy | CompiledPolicy): Promise<Authenticated | GuardError>;
  /**
   * The second phase, once for each value `authenticate` returned: refuses an `access_token` in a
   * form `body` (RFC 6750 §2.2) and verifies the request signature over `rawBody` on
   * `signedRequest` routes (FAPI 2.0 Message Signing). `request` is the one `authenticate` saw,
   * with the body added. Rejects only when given a value it did not issue, or one already used.
   */
  complete(authenticated: Authenticated, request: GuardRequest): Promise<Authorized | GuardError>;
  /**
   * A further layer on a request `auth` came from (a route's check behind an app-wide one): nothing
   * is verified again — not the token, not the DPoP proof, whose `jti` is spent — and `policy` is
   * checked against what the first layer established, so every layer's requirements hold:
   * scopes, claims, step-up and `authorization_details`; no unbound token unless `allowBearer`;
   * the `clientCertificate` rule; a checked nonce if `dpopNonce`; no `access_token` in the body
   * parsed since; a request signature (`signedRequest`) and response signing (`signResponse`)
   * when no earlier layer did them. Resolves to `auth` itself when nothing is added, else to a new
   * value. Rejects only when `auth` was not issued by this guard. Refusals are reported to
   * `onDecision`; a layer that lets the request through is not (the first layer was).
   */
  authorizeLayer(auth: Authorized, request: GuardRequest, policy?: RoutePolicy | CompiledPolicy): Promise<Authorized | GuardError>;
  /** Validates a route policy once, at start-up (throws on a policy that cannot work). */
  policy(policy?: RoutePolicy): CompiledPolicy;
  /** Builds the absolute URL the client addressed, from `publicUrl` / `trustedProxies`. */
  requestUrl(connection: ConnectionInfo): UrlResult;
  /** The refusal for a request whose URL cannot be trusted (adapters call this). */
  refuse(reason: GuardErrorReason, detail: string, policy?: CompiledPolicy, headers?: GuardHeaders, auth?: Authorized): GuardError;
  /**
   * Reports the idempotency decision on a request `auth` allowed (a {@link DecisionEvent} with
   * `idempotency` set): a refusal, or a replay with the stored response's `status`. `started` is
   * `performance.now()` when the decision began. 5xx refusals also reach the logger.
   */
  reportIdempotency(
    auth: Authorized,
    request: Pick<GuardRequest, 'method' | 'url'>,
    outcome: GuardError | { replayed: number },
    started: number,
  ): void;
  /**
   * The RFC 9728 metadata response for `GET`/`HEAD` of the well-known path, or `undefined` for
   * any other request (or when `resourceMetadata` is off). Adapters serve it.
   */
  metadataResponse(method: string, path: string): ResponseParts | undefined;
  /** The well-known path of the metadata document, when published. */
  readonly metadataPath: string | undefined;
  /** Paths of the documents `metadataResponse` answers: the metadata document and the response-signing JWK set. */
  readonly publishedPaths: readonly string[];
  /**
   * Signs a response of a route with `signResponse` (FAPI 2.0 Message Signing §5.6.2.1), bound to
   * the request `auth` came from, or with `jwsSignature.response` (UK Open Banking). Returns the
   * headers to set (`Content-Digest`, `Signature-Input`, `Signature`, and `Cache-Control` with
   * `no-transform` so that nothing re-codes the signed content; or `x-jws-signature`, with no
   * `record`; or, with `jwtBody.response` (Open Finance Brasil), a `body` that replaces the
   * response body), or `undefined` when the route does not sign. Adapters call it with the final
   * status, headers and body bytes.
   */
  signResponse(auth: Authorized, response: OutgoingResponse): SignedOutgoing | undefined;
  /** True when `auth` came from a route whose responses must be signed. */
  signsResponse(auth: Authorized | null | undefined): boolean;
  /**
   * Resolves once every issuer's verification keys are loaded (discovery and JWK set; static
   * key sets at once); rejects with each issuer's reason otherwise. A readiness probe can await it
   * on every call: it fetches only what is missing, at most once per `keys.cooldownMs` after a
   * failure, and never waits longer than the fetch timeouts (`keys.timeoutMs` for each of the
   * two discovery locations and the JWK set).
   */
  ready(): Promise<void>;
  /** Issuer key sets, by issuer identifier (for health checks and metrics). */
  readonly issuers: ReadonlyMap<string, IssuerKeys>;
  readonly options: Readonly<ResolvedOptions>;
}

export function createGuard(options: GuardOptions): Guard {
  try {
    return buildGuard(options);
  } catch (error) {
    // Start-up errors of options read by guardOptionsFromEnv name the variables.
    throw renameForEnvironment(error, options);
  }
}

function buildGuard(options: GuardOptions): Guard {
  const parts = buildParts(options);

  /** A request between the two phases: what `complete` needs of `authenticate`. */
  const pending = new WeakMap<Authenticated, Pass & { found: Authentication }>();

  function begin(request: GuardRequest, routePolicy: RoutePolicy | CompiledPolicy | undefined): Pass {
    return {
      // The clock is read only for the decision hook's duration.
      started: parts.opts.onDecision ? performance.now() : 0,
      policy: compileRoute(parts, routePolicy),
      interaction: parts.opts.interactionId ? interactionId(request.headers) : undefined,
    };
  }

  /** RFC 9449 §7.1 / DPOP-16: an unexpected failure inside a check never grants access. */
  async function guarded<T>(step: () => Promise<T | Refusal>): Promise<T | Refusal> {
    try {
      return await step();
    } catch (e) {
      return { reason: 'internal', detail: `unexpected: ${(e as Error)?.message ?? String(e)}` };
    }
  }

  return {
    issuers: parts.issuers,
    options: parts.opts,
    async ready() {
      const outcomes = await Promise.allSettled([...parts.issuers.values()].map((keys) => keys.ready()));
      const reasons = outcomes.flatMap((o) => (o.status === 'rejected' ? [(o.reason as Error).message] : []));
      if (reasons.length > 0) throw new Error(`fapi-guard is not ready: ${reasons.join('; ')}`);
    },
    policy: (policy) => compileRoute(parts, policy),
    requestUrl: (connection) => parts.origin.resolve(connection),
    // With the request's headers the refusal carries its x-fapi-interaction-id too.
    refuse: (reason, detail, policy, headers, auth) =>
      toError(
        parts,
        { reason, detail },
        compileRoute(parts, policy),
        parts.opts.interactionId && headers ? interactionId(headers).id : undefined,
        auth,
      ),
    reportIdempotency(auth, request, outcome, started) {
      const interaction = auth.interactionId === undefined ? undefined : { id: auth.interactionId };
      if ('replayed' in outcome) {
        report(parts, request, started, auth, undefined, undefined, interaction, {
          idempotency: 'replayed',
          reason: 'idempotency_replayed',
          status: outcome.replayed,
        });
        return;
      }
      notify(parts, { reason: outcome.reason, detail: outcome.detail ?? '' }, outcome);
      report(parts, request, started, outcome, auth.token, undefined, interaction, { idempotency: 'refused' });
    },
    metadataPath: parts.published.wellKnownPath,
    publishedPaths: [parts.published.wellKnownPath, parts.published.responseJwksPath].filter((p): p is string => p !== undefined),
    signsResponse: (auth) => signsResponse(parts, auth),
    signResponse: (auth, response) => signOutgoing(parts, auth, response),
    metadataResponse: (method, path) => publishedDocument(parts, method, path),
    async check(request, routePolicy) {
      const pass = begin(request, routePolicy);
      const outcome = await guarded(async () => {
        const found = await authenticateRequest(parts, request, pass.policy);
        return found.ok ? completeRequest(parts, request, pass.policy, found, pass.interaction?.id) : found;
      });
      return settle(parts, request, pass, outcome);
    },
    async authenticate(request, routePolicy) {
      const pass = begin(request, routePolicy);
      const found = await guarded(() => authenticateRequest(parts, request, pass.policy));
      if (!found.ok) return settle(parts, request, pass, found);
      const authenticated: Authenticated = { ok: true, authenticated: true };
      pending.set(authenticated, { ...pass, found });
      return authenticated;
    },
    async complete(authenticated, request) {
      const pass = pending.get(authenticated);
      if (!pass) throw new TypeError('fapi-guard: complete() takes the value of one authenticate() call, once');
      pending.delete(authenticated);
      const outcome = await guarded(() => completeRequest(parts, request, pass.policy, pass.found, pass.interaction?.id));
      return settle(parts, request, pass, outcome);
    },
    async authorizeLayer(auth, request, routePolicy) {
      const found = parts.marks.layers.get(auth);
      if (!found) throw new TypeError('fapi-guard: authorizeLayer() takes a value this guard authorized');
      const pass = begin(request, routePolicy);
      const { policy } = pass;
      // The same exchange: a refusal here carries the interaction id the first layer answered with.
      if (auth.interactionId) pass.interaction = { id: auth.interactionId };
      const refused = checkLayer(parts, found, policy);
      if (refused) return settle(parts, request, pass, { ...refused, usedScheme: found.scheme, token: found.token });
      // Body checks and response signers no earlier layer ran (FAPI 2.0, UK Open Banking, Open Finance Brasil).
      const signs =
        (policy.signedRequest !== undefined && !auth.signature) ||
        (policy.signResponse && !parts.marks.signing.has(auth)) ||
        (policy.jwsSignature?.request !== undefined && !auth.jwsSignature) ||
        (policy.jwsSignature?.response && !parts.marks.obSigning.has(auth)) ||
        (policy.jwtBody?.request !== undefined && !auth.jwtBody) ||
        (policy.jwtBody?.response && !parts.marks.brSigning.has(auth));
      if (signs)
        return settle(
          parts,
          request,
          pass,
          await guarded(() => completeRequest(parts, request, policy, found, auth.interactionId, auth)),
          true,
        );
      // RFC 6750 §2.2: a body parsed since the first layer is looked at too.
      if (bodyHasToken(request)) {
        return settle(parts, request, pass, {
          reason: 'credentials_ambiguous',
          usedScheme: found.scheme,
          detail: 'Authorization header and access_token in the body',
          token: found.token,
        });
      }
      return auth;
    },
  };
}
