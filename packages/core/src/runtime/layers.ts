/**
 * Layered protection: an app-wide guard and stricter checks on routers and routes, as teams
 * write authentication in every framework. The first layer a request reaches authenticates it
 * (credentials, token, binding, DPoP proof and its replay check); each further layer of the same
 * guard checks only its own policy against that result ({@link Guard.authorizeLayer}).
 *
 * The mark "this guard authorized this request" is kept here, by the framework's own request
 * object, in a WeakMap: no header, body or property the client or a body parser could set
 * forges it, and it goes with the request (each request on a keep-alive connection and each
 * HTTP/2 stream is a new object).
 */
import type { Authorized, Guard } from '../guard.js';

const marks = new WeakMap<Guard, WeakMap<object, Authorized>>();

/** What `guard` authorized for this request object, if a layer of it already ran. */
export function authorizationOf(guard: Guard, request: object): Authorized | undefined {
  return marks.get(guard)?.get(request);
}

/** Marks `request` (the framework's request object) as authorized by `guard`, for later layers. */
export function rememberAuthorization(guard: Guard, request: object, auth: Authorized): void {
  let byRequest = marks.get(guard);
  if (!byRequest) {
    byRequest = new WeakMap();
    marks.set(guard, byRequest);
  }
  byRequest.set(request, auth);
}

/** Requests a layer refused, whatever its guard (the framework's request objects). */
const refusals = new WeakSet<object>();

/** Marks `request` as refused by a layer (an earlier layer, of this guard or another, may have claimed its idempotency key). */
export function rememberRefusal(request: object): void {
  refusals.add(request);
}

/**
 * True when a layer refused this request. Any guard's: a refusal is no outcome of the payment,
 * whichever guard's layer claimed the key (two guards over one store, an app-wide and a route's).
 */
export function refusedByLayer(request: object): boolean {
  return refusals.has(request);
}
