/**
 * What the guard decided for a request, by the platform's request object: the authorization for
 * `@FapiAuth()`. Whether a guard already ran for the request (a policy on both the controller
 * and the handler puts the guard on both) is kept by the core (`protectNodeRequest`): the DPoP
 * proof is checked once, each further run checks only its policy.
 */
import type { Authorized } from '@fapi-guard/core';

const authorizations = new WeakMap<object, Authorized>();

export function authorize(request: object, auth: Authorized): void {
  authorizations.set(request, auth);
}

export function authorizationOf(request: object): Authorized | undefined {
  return authorizations.get(request);
}
