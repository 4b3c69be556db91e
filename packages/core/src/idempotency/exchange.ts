/**
 * One idempotent exchange, framework-free: after the guard authorized a request on a route with
 * `idempotency`, {@link beginIdempotency} reads the key, fingerprints the request and claims the
 * key for the authenticated client; the adapter then either answers at once (a refusal, or the
 * stored response of the first request) or lets the handler run and hands the response it sent
 * to {@link IdempotencyTicket.finish}.
 *
 * Keys are scoped to the client (draft §5 "Security Considerations": a composite lookup key;
 * UK Open Banking: "from the same TPP"): issuer, `client_id` and key are hashed into the store
 * key, so another client's identical key is another entry, and no client-chosen text reaches
 * the store's key space.
 */
import { createHash } from 'node:crypto';
import type { GuardError, GuardErrorReason } from '../errors.js';
import type { Authorized, Guard } from '../guard.js';
import { logValue } from '../observe/log-value.js';
import type { CompiledPolicy } from '../policy.js';
import type { GuardRequest } from '../request.js';
import {
  payloadFingerprint,
  requestFingerprint,
  sameRequest,
  sameTarget,
  unverifiedClaimsFingerprint,
  unverifiedJwtClaims,
} from './fingerprint.js';
import { readIdempotencyKey } from './key.js';
import { MemoryIdempotencyStore } from './memory.js';
import type { IdempotencyStore, StoredResponse } from './store.js';

/**
 * The body bytes of the request, read (bounded) only once a key was found, or why there are none:
 * past the bound (413), or not readable — read elsewhere, aborted (body_unavailable).
 */
export type BodyBytes = { ok: true; body: Uint8Array } | { ok: false; reason: 'too_large' | 'unavailable' | 'aborted' | 'used' };

/** What the handler sent: the whole response, or only its status when the body outgrew `maxResponseBytes`. */
export type SentResponse =
  | StoredResponse
  | { readonly status: number; readonly tooLarge: true; readonly layers?: number }
  /**
   * The handler ran to its end, and another middleware's answer went out in its place (a timeout's
   * 504): the request was processed, its answer is not known. Kept as processed, never freed.
   */
  | { readonly handled: true; readonly layers?: number };

export interface IdempotencyTicket {
  /** Records what was sent (a 5xx frees the key instead). Never rejects; store failures are logged. */
  finish(sent: SentResponse): Promise<void>;
  /** Frees the key without recording anything: the request was refused before its handler ran. Never rejects. */
  release(): Promise<void>;
  /** Largest body kept, from the route's policy. */
  readonly maxResponseBytes: number;
}

export type IdempotencyStart =
  /** Not an idempotent exchange (no `idempotency` on the route, a safe method, or an optional key left out). */
  | { kind: 'pass' }
  | { kind: 'refused'; error: GuardError }
  /** A retry of a finished request: send this, exactly, and do not run the handler. */
  | { kind: 'replay'; response: StoredResponse }
  | { kind: 'claimed'; ticket: IdempotencyTicket };

/** RFC 9110 §9.2.1: safe methods change nothing, so there is nothing to deduplicate. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

const defaultStores = new WeakMap<Guard, IdempotencyStore>();

/** The guard's store: `idempotency.store`, or one per-process store per guard, made on first use. */
export function idempotencyStoreOf(guard: Guard): IdempotencyStore {
  const configured = guard.options.idempotency.store;
  if (configured) return configured;
  let store = defaultStores.get(guard);
  if (!store) {
    store = new MemoryIdempotencyStore();
    defaultStores.set(guard, store);
  }
  return store;
}

/** The store key of `key` sent by the client `auth` authenticated. */
export function idempotencyStoreKey(auth: Pick<Authorized, 'issuer' | 'clientId'>, key: string): string {
  return createHash('sha256')
    .update(JSON.stringify([auth.issuer, auth.clientId, key]))
    .digest('base64url');
}

/** The store's name for the client `auth` authenticated (issuer and `client_id`), for per-client bounds. */
export function idempotencyClientKey(auth: Pick<Authorized, 'issuer' | 'clientId'>): string {
  return createHash('sha256')
    .update(JSON.stringify([auth.issuer, auth.clientId]))
    .digest('base64url');
}

/**
 * Response headers that belong to one exchange, not to the payment's outcome: a retry carries
 * its own. `x-fapi-interaction-id` (FAPI 2.0 Security Profile §5.3.2.2 / UK Open Banking: the
 * resource server echoes the id of *this* request, or its own) and `DPoP-Nonce` (RFC 9449 §8.2:
 * the nonce the client must use next; the first response's may have rotated out since).
 */
const EXCHANGE_HEADERS = ['x-fapi-interaction-id', 'dpop-nonce'];

/** The stored response with the first exchange's own headers replaced by this request's. */
function ownExchangeHeaders(stored: StoredResponse, auth: Authorized): StoredResponse {
  const headers = stored.headers.filter(([name]) => !EXCHANGE_HEADERS.includes(name.toLowerCase()));
  for (const name of EXCHANGE_HEADERS) {
    const value = auth.headers[name];
    if (value !== undefined) headers.push([name, value]);
  }
  return { ...stored, headers };
}

type ExchangeRequest = Pick<GuardRequest, 'method' | 'url' | 'headers'>;

/** A refusal of the exchange, reported like the guard's own decisions (onDecision, logger). */
function refuseExchange(
  guard: Guard,
  policy: CompiledPolicy,
  auth: Authorized,
  request: ExchangeRequest,
  started: number,
  reason: GuardErrorReason,
  detail: string,
): { kind: 'refused'; error: GuardError } {
  const error = guard.refuse(reason, detail, policy, request.headers, auth);
  guard.reportIdempotency(auth, request, error, started);
  return { kind: 'refused', error };
}

/**
 * The key `policy` reads from `request`: a refusal when it is malformed, or missing where
 * required; `undefined` where none is needed (no `idempotency`, a safe method, an optional key
 * left out).
 */
export function idempotencyKeyOf(
  guard: Guard,
  policy: CompiledPolicy,
  auth: Authorized,
  request: ExchangeRequest,
): { kind: 'refused'; error: GuardError } | { kind: 'key'; key: string } | undefined {
  const settings = policy.idempotency;
  if (!settings || SAFE_METHODS.has(request.method.toUpperCase())) return undefined;
  const read = readIdempotencyKey(request.headers, settings.header, settings.syntax);
  if (!read.ok) return refuseExchange(guard, policy, auth, request, performance.now(), read.reason, read.detail);
  if (read.key !== undefined) return { kind: 'key', key: read.key };
  if (settings.mode !== 'required') return undefined;
  return refuseExchange(guard, policy, auth, request, performance.now(), 'idempotency_key_missing', `no ${settings.header} header`);
}

/** A refusal in the form of a deeper layer that answers it (that layer's envelope: settle.ts). */
export type RenderAt = (policy: CompiledPolicy, auth: Authorized) => GuardError;

/**
 * {@link beginIdempotency}, an answer from the store not yet reported: `report()` when it is
 * sent; `layers`, how many layers checked the first request (layers.ts answers after as many).
 */
export type OpenedExchange =
  | Exclude<IdempotencyStart, { kind: 'replay' | 'refused' }>
  | {
      kind: 'refused';
      error: GuardError;
      layers?: number;
      /** `layers` as an earlier release counted them: from the layer that opened the exchange, not the first. */
      countedFromOpening?: boolean;
      report?(): void;
      /** The same refusal, as a deeper layer that answers it renders it. */
      renderAt?: RenderAt;
    }
  | {
      kind: 'replay';
      response: StoredResponse;
      layers?: number;
      report(): void;
      /** A replay is counted from the first layer and sent as stored (layers.ts reads both members of either answer). */
      countedFromOpening?: undefined;
      renderAt?: undefined;
    };

/**
 * Reads the key, fingerprints the request and claims the key for the authenticated client; the
 * adapter then answers at once (a refusal, or the stored response of the first request) or runs
 * the handler and hands what it sent to the ticket.
 */
export async function beginIdempotency(
  guard: Guard,
  policy: CompiledPolicy,
  auth: Authorized,
  request: ExchangeRequest,
  readBody: () => Promise<BodyBytes>,
): Promise<IdempotencyStart> {
  const start = await openExchange(guard, policy, auth, request, readBody);
  if (start.kind === 'pass' || start.kind === 'claimed') return start;
  start.report?.();
  return start.kind === 'replay' ? { kind: 'replay', response: start.response } : { kind: 'refused', error: start.error };
}

export async function openExchange(
  guard: Guard,
  policy: CompiledPolicy,
  auth: Authorized,
  request: ExchangeRequest,
  readBody: () => Promise<BodyBytes>,
  /**
   * The store keys this request already holds claims on, by any guard's layers: another guard
   * over the same store (an app-wide guard and a route's) leaves the exchange to the claim in
   * force instead of finding its own request in flight.
   */
  held?: Set<string>,
): Promise<OpenedExchange> {
  const read = idempotencyKeyOf(guard, policy, auth, request);
  if (read?.kind !== 'key') return read ?? { kind: 'pass' };
  const settings = policy.idempotency as NonNullable<CompiledPolicy['idempotency']>;
  const started = performance.now();
  const refuse = (reason: GuardErrorReason, detail: string) => refuseExchange(guard, policy, auth, request, started, reason, detail);
  const body = await readBody();
  if (!body.ok) {
    return body.reason === 'too_large'
      ? refuse('body_too_large', 'request body exceeds idempotency.maxRequestBytes')
      : refuse('body_unavailable', 'the body was read before fapi-guard could fingerprint it: mount rawBody() before the body parsers');
  }
  // Open Finance Brasil signs each attempt anew: its verified `data` claim is what a retry repeats.
  // A layer ahead of the one that verifies the body (an app-wide key layer), or on a route that
  // never does, reads the claims unverified: all of them but the two made anew, `jti` and `iat`.
  // A stored answer is sent no earlier than at the layer as deep as the first request's, which has
  // verified this request's body by then where the route verifies one (layers.ts).
  const method = request.method.toUpperCase();
  const fingerprintOf = (): string => {
    if (auth.jwtBody) return payloadFingerprint(method, request.url, auth.jwtBody.data);
    const unverified = guard.options.messageSigning?.openFinanceBrasil
      ? unverifiedJwtClaims(request.headers['content-type']?.[0], body.body)
      : undefined;
    return unverified ? unverifiedClaimsFingerprint(method, request.url, unverified) : requestFingerprint(method, request.url, body.body);
  };
  const fingerprint = fingerprintOf();
  const storeKey = idempotencyStoreKey(auth, read.key);
  if (held?.has(storeKey)) return { kind: 'pass' };
  const store = idempotencyStoreOf(guard);
  const claimedAt = guard.options.now();
  let claim: Awaited<ReturnType<IdempotencyStore['claim']>>;
  try {
    claim = await store.claim(storeKey, fingerprint, settings.leaseMs, idempotencyClientKey(auth));
  } catch (e) {
    return refuse('store_unavailable', `idempotency store: ${(e as Error)?.message ?? String(e)}`);
  }
  if (!claim.claimed) {
    const { record } = claim;
    // What the key holds is told only as late as the first request was answered (layers.ts): at the
    // layer as deep, on the same route. A request to another route (another method or target URI)
    // may pass fewer layers: it is answered at once, so that its handler never runs under a used key.
    // (A fingerprint of an earlier release, without its target part, names the same route when it names the same request.)
    const layers = !(sameTarget(record.fingerprint, fingerprint) || sameRequest(record.fingerprint, fingerprint))
      ? undefined
      : record.state === 'done'
        ? record.response.layers
        : record.state === 'unkept'
          ? record.layers
          : undefined;
    // An earlier release's record (no target part) counted the layers from the one that opened the exchange.
    const countedFromOpening = !record.fingerprint.includes('.');
    const answer = (reason: GuardErrorReason, detail: string) => {
      const error = guard.refuse(reason, detail, policy, request.headers, auth);
      return {
        kind: 'refused' as const,
        error,
        layers,
        countedFromOpening,
        report: () => guard.reportIdempotency(auth, request, error, started),
        renderAt: (at: CompiledPolicy, by: Authorized) => guard.refuse(reason, detail, at, request.headers, by),
      };
    };
    // A key in flight on the same route is 409 at once, even where the fingerprints differ: a
    // layer that has not verified an Open Finance Brasil body fingerprints it otherwise than the
    // layer that claimed the key did, and 422 would tell the client of a retry still being
    // processed to pay again under a new key. Once the first request ends, the retry is told (422).
    if (record.state === 'in_flight' && sameTarget(record.fingerprint, fingerprint))
      return answer('idempotency_key_in_flight', 'the first request has not finished');
    // draft §2.7: the same key with another request is 422, whatever state the first one is in.
    if (!sameRequest(record.fingerprint, fingerprint))
      return answer('idempotency_key_reused', 'fingerprint differs from the first request');
    if (record.state === 'in_flight') return answer('idempotency_key_in_flight', 'the first request has not finished');
    if (record.state === 'unkept') return answer('idempotency_response_unkept', 'the response exceeded maxResponseBytes');
    // An earlier release's response: its depth may be counted from a route layer that claimed the
    // key again (that release counted from there), so no layer can tell it is as deep as the first
    // request's. Never replayed: the payment was processed, the client looks it up (409).
    if (countedFromOpening) return answer('idempotency_response_unkept', 'the response was recorded by an earlier release of fapi-guard');
    const report = () => guard.reportIdempotency(auth, request, { replayed: record.response.status }, started);
    return { kind: 'replay', response: ownExchangeHeaders(record.response, auth), layers, report };
  }
  const { token } = claim;
  held?.add(storeKey);
  const logger = guard.options.logger;
  // The lease bounds how long a claim outlives a process that died; while this process still
  // runs the request, the claim is renewed (every half lease, up to the key's lifetime), so that
  // a handler slower than leaseSec is never overtaken by a retry processed a second time.
  const extend = store.extend?.bind(store);
  const renewal = extend
    ? setInterval(
        () => {
          if (guard.options.now() - claimedAt + settings.leaseMs > settings.ttlMs) return clearInterval(renewal);
          extend(storeKey, token, settings.leaseMs).catch((e: unknown) =>
            logger.error(
              { err: logValue((e as Error)?.message ?? String(e)) },
              'fapi-guard: the idempotency store could not renew a claim',
            ),
          );
        },
        Math.max(50, settings.leaseMs / 2),
      )
    : undefined;
  renewal?.unref();
  let ended = false;
  const ticket: IdempotencyTicket = {
    maxResponseBytes: settings.maxResponseBytes,
    async release() {
      if (ended) return;
      ended = true;
      held?.delete(storeKey);
      clearInterval(renewal);
      await store
        .release(storeKey, token)
        .catch((e: unknown) =>
          logger.error({ err: logValue((e as Error)?.message ?? String(e)) }, 'fapi-guard: the idempotency store could not free a key'),
        );
    },
    async finish(sent) {
      if (ended) return;
      ended = true;
      held?.delete(storeKey);
      clearInterval(renewal);
      try {
        // Server errors are not answers to repeat: the key is freed and a retry is processed.
        if (!('handled' in sent) && sent.status >= 500) return await store.release(storeKey, token);
        const ttlMs = Math.max(1, settings.ttlMs - (guard.options.now() - claimedAt));
        const outcome =
          'tooLarge' in sent || 'handled' in sent
            ? { state: 'unkept' as const, fingerprint, ...(sent.layers === undefined ? {} : { layers: sent.layers }) }
            : { state: 'done' as const, fingerprint, response: sent };
        await store.complete(storeKey, token, outcome, ttlMs);
      } catch (e) {
        // The claim stays until its lease ends: retries get 409, never a second processing.
        logger.error(
          { err: logValue((e as Error)?.message ?? String(e)) },
          'fapi-guard: the idempotency store could not record a finished request',
        );
      }
    },
  };
  return { kind: 'claimed', ticket };
}
