/**
 * One idempotent exchange across the layers of one guard (an app-wide `protect()`, a router's,
 * the route's). The first layer whose policy has `idempotency` claims the key; each later layer
 * still checks the request with its own policy (scopes, step-up, request signature, its own key
 * rules) before anything is answered:
 *
 * - a retry's stored response is sent by the layer as deep as the one that let the first request
 *   through to its handler (the depth is kept with the response, counted from the guard's first
 *   layer), never by an earlier one: a retry is answered only to a request that passed every
 *   check the first one passed;
 * - a later layer that refuses the first request frees the key: a refusal of the guard is no
 *   outcome of the payment to repeat to a corrected retry;
 * - a later layer whose own idempotency settings differ (another header, lifetime, size bound)
 *   governs when the request carries a key under them: the same key is claimed again under the
 *   later layer's settings (the earlier claim freed), another key (another header) is claimed
 *   too, the earlier claim kept with it; without one, the earlier layer's claim goes on.
 *
 * The exchange is kept by the framework's request object (Node's `IncomingMessage`, Hono's
 * `Context`), as the layers' authorization marks are (runtime/layers.ts).
 */
import type { GuardError } from '../errors.js';
import type { Authorized, Guard } from '../guard.js';
import type { CompiledPolicy } from '../policy.js';
import { refusedByLayer, rememberRefusal } from '../runtime/layers.js';
import {
  type BodyBytes,
  type IdempotencyStart,
  type IdempotencyTicket,
  idempotencyKeyOf,
  openExchange,
  type RenderAt,
} from './exchange.js';
import type { CompiledIdempotency } from './policy.js';

interface Exchange {
  /** The settings of the layer that opened the exchange. */
  settings: CompiledIdempotency;
  /** Layers of the guard that authorized this request so far (the first one too, with idempotency or not). */
  depth: number;
  /** The key's claim (first request), freed if a later layer refuses. */
  ticket?: IdempotencyTicket;
  /** The key read (under `settings`), where one was. */
  idempotencyKey?: string;
  /**
   * Claims of earlier layers under other keys (another header) for the same request, kept with
   * this one: each is recorded with the same answer by its own recorder, all freed on a refusal.
   */
  held?: readonly IdempotencyTicket[];
  /**
   * What the key held (the stored response, or a refusal: another request under the key, a
   * response not kept), answered once `depth` reaches `layers`; `report` when it is sent.
   */
  deferred?: { start: IdempotencyStart; layers: number; report(): void; renderAt?: RenderAt };
}

const exchanges = new WeakMap<Guard, WeakMap<object, Exchange>>();

/** How many layers of each guard have authorized each request so far (each asks idempotencyApplies once). */
const positions = new WeakMap<Guard, WeakMap<object, number>>();

/** The store keys each request holds claims on, whatever guard's layers claimed them (exchange.ts `held`). */
const heldClaims = new WeakMap<object, Set<string>>();

function heldBy(request: object): Set<string> {
  let held = heldClaims.get(request);
  if (!held) {
    held = new Set();
    heldClaims.set(request, held);
  }
  return held;
}

const PASS: IdempotencyStart = { kind: 'pass' };

/** True when an earlier layer of `guard` opened an idempotent exchange for this request. */
function exchangeOf(guard: Guard, request: object): Exchange | undefined {
  return exchanges.get(guard)?.get(request);
}

/**
 * True when the layer with `policy` has idempotency work for this request: its own key rules, or
 * an exchange an earlier layer opened (each layer counts, and the deepest answers a retry).
 * Each layer of the guard calls it once, after it authorized the request: it counts the layer,
 * whether or not it has idempotency work, so that a layer's place is the same for every request
 * to the route (a first request with a key for an app-wide layer, a retry with the route's only).
 */
export function idempotencyApplies(guard: Guard, policy: CompiledPolicy, request: object): boolean {
  let byRequest = positions.get(guard);
  if (!byRequest) {
    byRequest = new WeakMap();
    positions.set(guard, byRequest);
  }
  byRequest.set(request, (byRequest.get(request) ?? 0) + 1);
  return policy.idempotency !== undefined || exchangeOf(guard, request) !== undefined;
}

function open(guard: Guard, request: object, exchange: Exchange): void {
  let byRequest = exchanges.get(guard);
  if (!byRequest) {
    byRequest = new WeakMap();
    exchanges.set(guard, byRequest);
  }
  byRequest.set(request, exchange);
}

/**
 * The same key kept under the same terms: one exchange. `mode` and `syntax` aside: each layer
 * checks the key against its own (below), and two syntaxes read one header value one-to-one, so
 * the earlier layer's reading names the same key.
 */
function sameSettings(a: CompiledIdempotency, b: CompiledIdempotency): boolean {
  return a.header === b.header && a.ttlMs === b.ttlMs && a.leaseMs === b.leaseMs && a.maxResponseBytes === b.maxResponseBytes;
}

/**
 * The idempotency decision of one layer, after it authorized the request (`key` is the
 * framework's request object, `exchangeRequest` what the core reads of it, built on demand).
 */
export async function idempotencyAtLayer(...at: Parameters<typeof decideAtLayer>): Promise<IdempotencyStart> {
  const start = await decideAtLayer(...at);
  // An idempotency refusal (a key missing or malformed, in flight, reused, not kept) is no outcome
  // of a payment either: any guard's claim on this request (`at[3]`) is freed, not answered with it.
  if (start.kind === 'refused') rememberRefusal(at[3]);
  return start;
}

async function decideAtLayer(
  guard: Guard,
  policy: CompiledPolicy,
  auth: Authorized,
  key: object,
  exchangeRequest: () => Parameters<typeof openExchange>[3] | GuardError,
  readBody: () => Promise<BodyBytes>,
): Promise<IdempotencyStart> {
  const exchange = exchangeOf(guard, key);
  const own = policy.idempotency;
  // This layer's place among the guard's layers that authorized the request.
  const position = positions.get(guard)?.get(key) ?? 1;
  if (!exchange) return own ? openAtLayer(guard, policy, own, auth, key, exchangeRequest, readBody, position) : PASS;
  // This layer's own key rules hold too: a key it requires, a key outside its syntax.
  const request = own ? exchangeRequest() : undefined;
  const read =
    request && ('method' in request ? idempotencyKeyOf(guard, policy, auth, request) : { kind: 'refused' as const, error: request });
  if (read?.kind === 'refused') {
    await releaseAll(exchange);
    return read;
  }
  // A later layer with rules of its own that finds a key under them governs, the layers still
  // counted from the first one, so that a retry is answered as deep:
  // - the same key (one header value) is claimed again under its rules, the earlier claim freed;
  // - another key (another header) is claimed too, the earlier claim kept with it: a retry that
  //   carries either key, or both, is answered, never processed twice;
  // - where the earlier key already holds an answer for this request, that answer stands.
  // Without a key of its own (optional here), the earlier layer's exchange goes on.
  if (own && read && !sameSettings(own, exchange.settings) && !(exchange.deferred && read.key !== exchange.idempotencyKey)) {
    // Stryker disable next-line OptionalChaining: equivalent, the guard's map exists (exchangeOf found this request in it)
    exchanges.get(guard)?.delete(key);
    const sameKey = read.key === exchange.idempotencyKey;
    // The same key is claimed again under this layer's terms (its earlier claim freed first); the
    // claims the earlier layers hold under other keys stay with the request either way.
    if (sameKey) await exchange.ticket?.release();
    const kept = [
      // Stryker disable next-line LogicalOperator: equivalent, a ticket just released ends at once when finished or released again, and an exchange without a ticket is a deferred one, excluded above
      ...(!sameKey && exchange.ticket ? [exchange.ticket] : []),
      ...(exchange.held ?? []),
    ];
    const start = await openAtLayer(guard, policy, own, auth, key, exchangeRequest, readBody, position);
    const opened = exchangeOf(guard, key);
    if (start.kind === 'claimed' && opened) {
      opened.held = kept;
      return start;
    }
    if (!(start.kind === 'pass' && !opened && !sameKey)) {
      // What the key holds answers (now, or deferred to the layer as deep as the first request's):
      // the handler does not run, and the claims kept are no outcome of a payment.
      await Promise.all(kept.map((ticket) => ticket.release()));
      return start;
    }
    // The key is one this request holds already (another guard's claim): the exchange in force
    // goes on, its claims kept.
    open(guard, key, exchange);
  }
  exchange.depth = position;
  const { deferred } = exchange;
  if (deferred && exchange.depth >= deferred.layers) {
    deferred.report();
    // A refusal leaves in the form of the layer that answers it (Open Finance Brasil: the envelope the bank signs).
    return deferred.renderAt ? { kind: 'refused', error: deferred.renderAt(policy, auth) } : deferred.start;
  }
  return PASS;
}

/** Frees every claim the exchange holds (a refusal is no outcome of the payment). */
async function releaseAll(exchange: Exchange): Promise<void> {
  await Promise.all([exchange.ticket?.release(), ...(exchange.held ?? []).map((ticket) => ticket.release())]);
}

/**
 * The first layer of the exchange under `settings`: claims the key, or finds what it holds.
 * `depth`: this layer's place among the guard's layers that authorized the request.
 */
async function openAtLayer(
  guard: Guard,
  policy: CompiledPolicy,
  settings: CompiledIdempotency,
  auth: Authorized,
  key: object,
  exchangeRequest: () => Parameters<typeof openExchange>[3] | GuardError,
  readBody: () => Promise<BodyBytes>,
  depth: number,
): Promise<IdempotencyStart> {
  const request = exchangeRequest();
  if (!('method' in request)) return { kind: 'refused', error: request };
  const start = await openExchange(guard, policy, auth, request, readBody, heldBy(key));
  // The key read, where openExchange read one and went on to the store (no refusal reported twice).
  const keyRead = () => {
    const read = idempotencyKeyOf(guard, policy, auth, request);
    // Stryker disable next-line ConditionalExpression,OptionalChaining: equivalent, called only after openExchange read a key of this request under this policy
    return read?.kind === 'key' ? read.key : undefined;
  };
  if (start.kind === 'claimed') {
    const exchange: Exchange = { settings, depth, idempotencyKey: keyRead() };
    const { ticket } = start;
    exchange.ticket = {
      maxResponseBytes: ticket.maxResponseBytes,
      release: () => ticket.release(),
      // A later layer's refusal went out through the recorder: the key is freed, not answered with it.
      // The depth is the request's deepest layer (a later layer may have opened the exchange in force).
      finish: (sent) =>
        refusedByLayer(key) ? ticket.release() : ticket.finish({ ...sent, layers: (exchangeOf(guard, key) ?? exchange).depth }),
    };
    open(guard, key, exchange);
    return { kind: 'claimed', ticket: exchange.ticket };
  }
  if (start.kind === 'pass') return start;
  const answer: IdempotencyStart =
    start.kind === 'replay' ? { kind: 'replay', response: start.response } : { kind: 'refused', error: start.error };
  const report = () => start.report?.();
  // Deeper layers checked the first request: the layer as deep answers, once it has checked this one.
  // (A record of an earlier release counted the layers from the one that opened the exchange.)
  const layers = start.countedFromOpening ? depth + (start.layers ?? 1) - 1 : (start.layers ?? 1);
  if (layers > depth) {
    const { renderAt } = start;
    open(guard, key, {
      settings,
      depth,
      idempotencyKey: keyRead(),
      deferred: { start: answer, layers, report, ...(renderAt ? { renderAt } : {}) },
    });
    return PASS;
  }
  report();
  return answer;
}
