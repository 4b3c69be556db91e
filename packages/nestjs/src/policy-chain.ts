/**
 * The route policy of a handler served by a controller, from every policy along the controller's
 * class chain. Each class of the chain (the controller, then each class it extends) may carry a
 * policy; the handler's own policy goes over the policy of the class that declares the handler
 * (its keys replace that class's keys). Then every class's policy must hold, as Nest's own
 * `@UseGuards()` accumulate along the chain: the layers are conjoined key by key, exactly (scopes
 * added up, acr values intersected, the shorter maximum age, …). A pair of layers that cannot be
 * conjoined into one policy, or a subclass that would loosen what a class it extends requires,
 * stops start-up with both classes named.
 */
import type { ClientCertificate, RoutePolicy } from '@fapi-guard/core';
import { declaredHandler } from './handlers.js';
import { FAPI_POLICY, type FunctionRef } from './tokens.js';

/** One class's policy for a route, with the handler's keys over it where the class declares it. */
export interface PolicyLayer {
  /** The class (or, for a handler declared outside the chain, the handler). */
  readonly owner: FunctionRef;
  readonly policy: RoutePolicy;
  /** The decorated objects the policy comes from: routes with the same sources share one policy. */
  readonly sources: readonly object[];
}

const ownPolicy = (target: object) => Reflect.getOwnMetadata(FAPI_POLICY, target) as RoutePolicy | undefined;

/** True when `handler` is one of the class's own methods. */
function declaresOwn(owner: FunctionRef, handler: FunctionRef): boolean {
  const prototype = (owner as { prototype?: object }).prototype;
  return prototype !== undefined && Object.values(Object.getOwnPropertyDescriptors(prototype)).some((d) => d.value === handler);
}

/** The policy layers of `handler` on `controller`, from the controller up to its base classes. */
export function policyLayers(controller: FunctionRef, handler: FunctionRef): PolicyLayer[] {
  const declared = declaredHandler(handler);
  const onHandler = ownPolicy(declared);
  const layers: PolicyLayer[] = [];
  // Stryker disable next-line ConditionalExpression: equivalent, a handler without a policy has none to place (fromHandler stays undefined); true from the start only spares looking for the class that declares it
  let handlerPlaced = onHandler === undefined;
  // Up to Function.prototype (a class's chain ends there; it carries no policy and declares no handler) or a parent that is no function.
  for (let owner: unknown = controller; typeof owner === 'function'; owner = Object.getPrototypeOf(owner)) {
    const onClass = ownPolicy(owner);
    const declares = !handlerPlaced && declaresOwn(owner as FunctionRef, declared);
    if (declares) handlerPlaced = true;
    const fromHandler = declares ? onHandler : undefined;
    if (!onClass && !fromHandler) continue;
    layers.push({
      owner: owner as FunctionRef,
      policy: { ...onClass, ...fromHandler },
      sources: [onClass, fromHandler].filter((source): source is RoutePolicy => source !== undefined),
    });
  }
  // A handler put on the prototype by other means (a mixin): its policy is a layer of its own.
  if (!handlerPlaced && onHandler) layers.push({ owner: declared, policy: onHandler, sources: [onHandler] });
  return layers;
}

/** One key's values, from the most derived layer that sets it to the base-most (conjoin passes a key set by at least one). */
type Values<K extends keyof RoutePolicy> = readonly [Value<K>, ...Value<K>[]];
type Value<K extends keyof RoutePolicy> = { owner: FunctionRef; value: NonNullable<RoutePolicy[K]> };

const nameOf = (owner: FunctionRef) => owner.name || 'an anonymous class';

function conflict(key: string, values: Values<keyof RoutePolicy>, why: string): Error {
  return new Error(
    `fapi-guard: the route policy key "${key}" of ${values.map((v) => nameOf(v.owner)).join(' and ')} cannot hold together: ${why}`,
  );
}

/** All values equal (by `same`), or a start-up error. */
function agreeing<K extends keyof RoutePolicy>(
  key: K,
  why: string,
  same: (a: NonNullable<RoutePolicy[K]>, b: NonNullable<RoutePolicy[K]>) => boolean,
) {
  return (values: Values<K>): RoutePolicy[K] => {
    const [first, ...rest] = values;
    if (rest.some((v) => !same(v.value, first.value))) throw conflict(key, values, why);
    return first.value;
  };
}

const sameList = (a: unknown, b: unknown) =>
  Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((item) => (b as unknown[]).includes(item));

/** The same idempotency setting, `'required'` and `{ mode: 'required' }` alike (conjoin passes set values only). */
function sameIdempotency(a: NonNullable<RoutePolicy['idempotency']>, b: NonNullable<RoutePolicy['idempotency']>): boolean {
  const form = (v: NonNullable<RoutePolicy['idempotency']>) => (typeof v === 'string' ? { mode: v } : v);
  const [x, y] = [form(a), form(b)];
  const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
  return [...keys].every((key) => x[key as keyof typeof x] === y[key as keyof typeof y]);
}

/**
 * A loosening flag (`allowBearer: true`, `dpopNonce: false`) holds only when every layer of the
 * route says so; the guard's default stands for a layer that does not set it.
 */
function unanimous<K extends 'allowBearer' | 'dpopNonce'>(key: K, loosening: boolean, layers: readonly PolicyLayer[]) {
  return (values: Values<K>): RoutePolicy[K] => {
    const loose = values.filter((v) => v.value === loosening);
    if (loose.length > 0 && loose.length < layers.length) {
      const strict = layers.filter((layer) => layer.policy[key] !== loosening).map((layer) => nameOf(layer.owner));
      throw new Error(
        `fapi-guard: the route policy key "${key}: ${loosening}" of ${loose.map((v) => nameOf(v.owner)).join(' and ')} would loosen ` +
          `the policy of ${strict.join(' and ')} on the same route (policies along the class chain all hold); set it on each, or on none`,
      );
    }
    return values[0].value;
  };
}

/** How each key of several layers becomes one key that holds exactly when every layer's holds. */
type Conjoin = { readonly [K in keyof Required<RoutePolicy>]: (values: Values<K>) => RoutePolicy[K] };

function conjoiners(layers: readonly PolicyLayer[]): Conjoin {
  return {
    scopes: (values) => [...new Set(values.flatMap((v) => v.value))],
    anyScopes: agreeing('anyScopes', 'two any-of lists are not one any-of list; keep one', sameList),
    claims: (values) => {
      const merged: Record<string, NonNullable<RoutePolicy['claims']>[string]> = {};
      for (const { value } of values) {
        for (const [name, check] of Object.entries(value)) {
          if (name in merged && merged[name] !== check) throw conflict('claims', values, `claim "${name}" is checked by both`);
          merged[name] = check;
        }
      }
      return merged;
    },
    allowBearer: unanimous('allowBearer', true, layers),
    dpopNonce: unanimous('dpopNonce', false, layers),
    clientCertificate: (values) => {
      if (values.length === 1) return values[0].value;
      const checks = values.map((v) => v.value);
      return (certificate: ClientCertificate) => checks.every((check) => check(certificate) === true);
    },
    acrValues: (values) => {
      const [preferred, ...others] = values;
      // In the most derived class's order of preference (RFC 9470 §3: the order of acr_values).
      const common = preferred.value.filter((acr) => others.every((v) => v.value.includes(acr)));
      if (common.length === 0) throw conflict('acrValues', values, 'no acr value is accepted by all');
      return common;
    },
    maxAuthAgeSec: (values) => Math.min(...values.map((v) => v.value)),
    authorizationDetails: (values) => values.flatMap((v) => v.value),
    signedRequest: (values) => (values.some((v) => v.value === 'required') ? 'required' : 'optional'),
    signResponse: (values) => values.some((v) => v.value),
    // Profiles: a client is served where every class serves its profile.
    profiles: (values) => {
      const [first, ...others] = values;
      const common = first.value.filter((name) => others.every((v) => v.value.includes(name)));
      if (common.length === 0) throw conflict('profiles', values, 'no profile is served by all');
      return common;
    },
    // Regime signatures: a request signature any class requires is required; a response any class signs is signed.
    jwsSignature: (values) => ({
      ...(values.some((v) => v.value.request !== undefined)
        ? { request: values.some((v) => v.value.request === 'required') ? 'required' : 'optional' }
        : {}),
      ...(values.some((v) => v.value.response) ? { response: true } : {}),
    }),
    jwtBody: (values) => ({
      ...(values.some((v) => v.value.request === 'required') ? { request: 'required' } : {}),
      ...(values.some((v) => v.value.response) ? { response: true } : {}),
    }),
    // Two layers' key settings (header, syntax, lifetimes) are not one setting: they must agree.
    idempotency: agreeing('idempotency', 'two idempotency settings are not one; keep one', sameIdempotency),
  };
}

/**
 * One policy that holds exactly when each layer's holds (layers from the most derived class to
 * the base-most). Each layer must be a valid policy already (compiled before).
 */
export function conjoin(layers: readonly PolicyLayer[]): RoutePolicy {
  if (layers.length === 1) return (layers[0] as PolicyLayer).policy;
  const rules = conjoiners(layers);
  const policy: Record<string, unknown> = {};
  for (const key of Object.keys(rules) as (keyof RoutePolicy)[]) {
    const values = layers.flatMap(({ owner, policy: layer }) => (layer[key] === undefined ? [] : [{ owner, value: layer[key] }]));
    // A key no layer sets is left out; every rule gives a value for the keys that are set.
    if (values.length === 0) continue;
    policy[key] = (rules[key] as (values: Values<typeof key>) => unknown)(values as unknown as Values<typeof key>);
  }
  return policy as RoutePolicy;
}
