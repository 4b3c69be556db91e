/**
 * What the guard decided for a request, by the platform's request object: the authorization for
 * `@FapiAuth()`, and whether the guard already ran (a policy on both the controller and the
 * handler puts the guard on both; it checks once: a DPoP proof cannot be used twice).
 */
import type { Authorized } from '@fapi-guard/core';

const authorizations = new WeakMap<object, Authorized>();

export function authorize(request: object, auth: Authorized): void {
  authorizations.set(request, auth);
}

export function authorizationOf(request: object): Authorized | undefined {
  return authorizations.get(request);
}
