/**
 * A route's policy, compiled once at start-up and checked against what this guard is configured
 * for: a route that asks for something the guard cannot do (a profile no client is served under,
 * message signatures without keys) stops start-up.
 */
import type { GuardParts } from './parts.js';
import { type CompiledPolicy, compilePolicy, type RoutePolicy } from './policy.js';

/** Policies compiled by some guard: compiling one again returns it as it is. */
const compiled = new WeakSet<object>();

export function compileRoute(parts: GuardParts, policy: RoutePolicy | CompiledPolicy | undefined): CompiledPolicy {
  if (policy && compiled.has(policy)) return policy as CompiledPolicy;
  const result = compilePolicy(policy as RoutePolicy | undefined, { allowBearer: parts.opts.profiles.fallback.bearerByDefault });
  const unserved = result.profiles?.find((name) => !parts.opts.profiles.all.some((p) => p.name === name));
  if (unserved !== undefined) {
    throw new TypeError(`fapi-guard: a route serves profile "${unserved}", which no client of this guard is served under`);
  }
  if (result.jwsSignature && !parts.opts.messageSigning?.ukOpenBanking) {
    throw new TypeError('fapi-guard: a route asks for x-jws-signature; configure messageSigning.ukOpenBanking');
  }
  if ((result.signedRequest || result.signResponse) && !parts.opts.messageSigning) {
    throw new TypeError('fapi-guard: a route asks for message signatures; configure messageSigning (client keys) in the guard options');
  }
  if (result.signedRequest && !parts.opts.messageSigning?.keys) {
    throw new TypeError('fapi-guard: signedRequest needs messageSigning.clients or resolveClient (where the keys of each client are)');
  }
  if (result.jwtBody && !parts.opts.messageSigning?.openFinanceBrasil) {
    throw new TypeError('fapi-guard: a route asks for a signed JWT body; configure messageSigning.openFinanceBrasil');
  }
  if (result.jwtBody?.response && !parts.opts.messageSigning?.openFinanceBrasil?.signer) {
    throw new TypeError('fapi-guard: jwtBody.response needs messageSigning.openFinanceBrasil.responseKey');
  }
  if (result.jwsSignature?.response && !parts.opts.messageSigning?.ukOpenBanking?.signer) {
    throw new TypeError('fapi-guard: jwsSignature.response needs messageSigning.ukOpenBanking.responseKey');
  }
  if (result.signResponse && !parts.opts.messageSigning?.responseKey) {
    throw new TypeError('fapi-guard: signResponse needs messageSigning.responseKey (the private JWK responses are signed with)');
  }
  compiled.add(result);
  for (const scope of [...result.scopes, ...result.anyScopes]) parts.published.knownScopes.add(scope);
  for (const detail of result.authorizationDetails) parts.published.knownDetailTypes.add(detail.type);
  return result;
}
