/**
 * How the policies along a controller's class chain become one route policy (issue 24, III.1):
 * each key conjoined exactly, or a start-up error naming the classes. The routes themselves are
 * tested over HTTP in test/review3-findings.test.ts.
 */
import 'reflect-metadata';
import type { ClientCertificate, RoutePolicy } from '@fapi-guard/core';
import { Get } from '@nestjs/common';
import { FapiPolicy, RequireScopes } from '../src/decorators';
import { conjoin, type PolicyLayer, policyLayers } from '../src/policy-chain';

const layer = (name: string, policy: RoutePolicy): PolicyLayer => ({ owner: { name }, policy, sources: [policy] });
const both = (derived: RoutePolicy, base: RoutePolicy) => conjoin([layer('Derived', derived), layer('Base', base)]);

describe('III.1 conjoin: one policy that holds exactly when every class’s holds', () => {
  it('III.1 one layer is its own policy', () => {
    const policy = { scopes: ['a'] };
    expect(conjoin([layer('Only', policy)])).toBe(policy);
  });

  it('III.1 scopes add up; maxAuthAgeSec takes the shorter; authorizationDetails all hold', () => {
    expect(both({ scopes: ['b'], maxAuthAgeSec: 300 }, { scopes: ['a', 'b'], maxAuthAgeSec: 60 })).toEqual({
      scopes: ['b', 'a'],
      maxAuthAgeSec: 60,
    });
    expect(both({ maxAuthAgeSec: 59 }, { maxAuthAgeSec: 60 })).toEqual({ maxAuthAgeSec: 59 });
    expect(both({ authorizationDetails: [{ type: 'x' }] }, { authorizationDetails: [{ type: 'y' }] })).toEqual({
      authorizationDetails: [{ type: 'x' }, { type: 'y' }],
    });
    expect(both({ scopes: ['a'] }, { acrValues: ['m'] })).toEqual({ scopes: ['a'], acrValues: ['m'] });
  });

  it('III.1 acrValues: the values every class accepts, in the derived class’s order; none in common stops start-up', () => {
    expect(both({ acrValues: ['c', 'b', 'a'] }, { acrValues: ['a', 'b'] })).toEqual({ acrValues: ['b', 'a'] });
    expect(() => both({ acrValues: ['c'] }, { acrValues: ['a'] })).toThrow(
      'fapi-guard: the route policy key "acrValues" of Derived and Base cannot hold together: no acr value is accepted by all',
    );
  });

  it('III.review idempotency: one class’s setting holds; the same setting in two forms agrees; two settings stop start-up', () => {
    expect(both({ scopes: ['a'] }, { idempotency: 'required' })).toEqual({ scopes: ['a'], idempotency: 'required' });
    expect(both({ idempotency: { mode: 'required' } }, { idempotency: 'required' })).toEqual({ idempotency: { mode: 'required' } });
    expect(() => both({ idempotency: 'optional' }, { idempotency: 'required' })).toThrow(
      'fapi-guard: the route policy key "idempotency" of Derived and Base cannot hold together: two idempotency settings are not one; keep one',
    );
    expect(() => both({ idempotency: { mode: 'required', ttlSec: 60 } }, { idempotency: 'required' })).toThrow(/"idempotency"/);
  });

  it('III.1 anyScopes: the same list holds; two different lists stop start-up', () => {
    expect(both({ anyScopes: ['b', 'a'] }, { anyScopes: ['a', 'b'] })).toEqual({ anyScopes: ['b', 'a'] });
    expect(() => both({ anyScopes: ['a'] }, { anyScopes: ['a', 'b'] })).toThrow(/"anyScopes" of Derived and Base cannot hold together/);
    expect(() => both({ anyScopes: ['a', 'c'] }, { anyScopes: ['a', 'b'] })).toThrow(/"anyScopes"/);
  });

  it('III.1 claims: checks of different claims add up; one claim checked twice stops start-up', () => {
    const check = { equals: 'x' };
    expect(both({ claims: { a: check } }, { claims: { b: { includes: 'y' } } })).toEqual({ claims: { a: check, b: { includes: 'y' } } });
    expect(both({ claims: { a: check } }, { claims: { a: check } })).toEqual({ claims: { a: check } });
    expect(() => both({ claims: { a: check } }, { claims: { a: { equals: 'x' } } })).toThrow(/claim "a" is checked by both/);
  });

  it('III.1 allowBearer: true only when every class says so; one class alone stops start-up', () => {
    expect(both({ allowBearer: true }, { allowBearer: true })).toEqual({ allowBearer: true });
    expect(both({ allowBearer: false }, {})).toEqual({ allowBearer: false });
    expect(() => both({ allowBearer: true }, { scopes: ['a'] })).toThrow(
      'fapi-guard: the route policy key "allowBearer: true" of Derived would loosen the policy of Base on the same route',
    );
    expect(() => both({ allowBearer: false }, { allowBearer: true })).toThrow(
      /"allowBearer: true" of Base would loosen the policy of Derived/,
    );
  });

  it('III.1 dpopNonce: false only when every class says so; true wins over the default', () => {
    expect(both({ dpopNonce: false }, { dpopNonce: false })).toEqual({ dpopNonce: false });
    expect(both({ dpopNonce: true }, {})).toEqual({ dpopNonce: true });
    expect(() => both({ dpopNonce: false }, {})).toThrow(/"dpopNonce: false" of Derived would loosen the policy of Base/);
    expect(() => both({ dpopNonce: true }, { dpopNonce: false })).toThrow(/"dpopNonce: false" of Base/);
  });

  it('III.1 signedRequest: required over optional; signResponse: signed when any class asks', () => {
    expect(both({ signedRequest: 'optional' }, { signedRequest: 'required' })).toEqual({ signedRequest: 'required' });
    expect(both({ signedRequest: 'optional' }, { signedRequest: 'optional' })).toEqual({ signedRequest: 'optional' });
    expect(both({ signedRequest: 'optional' }, {})).toEqual({ signedRequest: 'optional' });
    expect(both({ signResponse: false }, { signResponse: true })).toEqual({ signResponse: true });
    expect(both({ signResponse: false }, { signResponse: false })).toEqual({ signResponse: false });
  });

  it('III.1 the start-up errors name every class and the reason, word for word', () => {
    const three = (key: 'allowBearer', a: RoutePolicy, b: RoutePolicy, c: RoutePolicy) =>
      conjoin([layer('Derived', a), layer('Middle', b), layer('Base', c)])[key];
    expect(() => three('allowBearer', { allowBearer: true }, { allowBearer: true }, { scopes: ['a'] })).toThrow(
      'fapi-guard: the route policy key "allowBearer: true" of Derived and Middle would loosen the policy of Base on the same route (policies along the class chain all hold); set it on each, or on none',
    );
    expect(() => conjoin([layer('Derived', { allowBearer: true }), layer('Middle', {}), layer('Base', {})])).toThrow(
      'of Derived would loosen the policy of Middle and Base on the same route',
    );
    expect(() => both({ anyScopes: ['a'] }, { anyScopes: ['b'] })).toThrow(
      'fapi-guard: the route policy key "anyScopes" of Derived and Base cannot hold together: two any-of lists are not one any-of list; keep one',
    );
    expect(() => both({ claims: { a: { equals: 'x' } } }, { claims: { a: { equals: 'y' } } })).toThrow(
      'fapi-guard: the route policy key "claims" of Derived and Base cannot hold together: claim "a" is checked by both',
    );
    expect(() => conjoin([layer('', { acrValues: ['a'] }), layer('Base', { acrValues: ['b'] })])).toThrow(
      'the route policy key "acrValues" of an anonymous class and Base cannot hold together',
    );
  });

  it('III.1 a key that no class sets is left out; one that some class sets is written once, conjoined', () => {
    const policy = both({ scopes: ['a'] }, { maxAuthAgeSec: 60 });
    expect(Object.keys(policy).sort()).toEqual(['maxAuthAgeSec', 'scopes']);
    expect(both({ signResponse: false }, {})).toStrictEqual({ signResponse: false });
    expect(both({}, { authorizationDetails: [{ type: 'x' }] })).toStrictEqual({ authorizationDetails: [{ type: 'x' }] });
  });

  it('III.1 anyScopes: lists agree as sets of the same size, never by a prefix or a non-list', () => {
    expect(both({ anyScopes: ['a', 'b'] }, { anyScopes: ['b', 'a'] })).toEqual({ anyScopes: ['a', 'b'] });
    expect(() => both({ anyScopes: ['a', 'b'] }, { anyScopes: ['a'] })).toThrow(/"anyScopes"/);
    expect(() => both({ anyScopes: ['a'] }, { anyScopes: ['a', 'a'] })).toThrow(/"anyScopes"/);
    // Policies are compiled (checked) before they are conjoined; a value that is no list never agrees.
    expect(() => both({ anyScopes: 'a' as never }, { anyScopes: 'a' as never })).toThrow(/"anyScopes"/);
    expect(() => both({ anyScopes: ['a'] }, { anyScopes: 'a' as never })).toThrow(/"anyScopes"/);
    expect(() => both({ anyScopes: 'a' as never }, { anyScopes: ['a'] })).toThrow(/"anyScopes"/);
  });

  it('III.review idempotency: absent in one class is no conflict; the object forms agree member by member', () => {
    expect(both({ idempotency: { mode: 'required', ttlSec: 60 } }, { idempotency: { ttlSec: 60, mode: 'required' } })).toEqual({
      idempotency: { mode: 'required', ttlSec: 60 },
    });
    expect(() => both({ idempotency: { mode: 'required', ttlSec: 60 } }, { idempotency: { mode: 'required' } })).toThrow(/"idempotency"/);
    expect(() => both({ idempotency: { mode: 'required' } }, { idempotency: { mode: 'required', ttlSec: 60 } })).toThrow(/"idempotency"/);
  });

  it('III.1 profiles: a client is served where every class serves its profile; none in common stops start-up', () => {
    expect(both({ profiles: ['fapi2', 'fapi1-advanced'] }, { profiles: ['fapi1-advanced', 'fapi2', 'oauth2'] })).toEqual({
      profiles: ['fapi2', 'fapi1-advanced'],
    });
    expect(both({ profiles: ['fapi2'] }, {})).toEqual({ profiles: ['fapi2'] });
    expect(() => both({ profiles: ['fapi2'] }, { profiles: ['fapi1-advanced'] })).toThrow(
      'fapi-guard: the route policy key "profiles" of Derived and Base cannot hold together: no profile is served by all',
    );
  });

  it('III.1 jwsSignature and jwtBody: a request signature any class requires is required; a response any class signs is signed', () => {
    expect(both({ jwsSignature: { request: 'optional' } }, { jwsSignature: { request: 'required' } })).toStrictEqual({
      jwsSignature: { request: 'required' },
    });
    expect(both({ jwsSignature: { request: 'optional' } }, { jwsSignature: { response: true } })).toStrictEqual({
      jwsSignature: { request: 'optional', response: true },
    });
    expect(both({ jwsSignature: { response: false } }, { jwsSignature: { response: false } })).toStrictEqual({ jwsSignature: {} });
    expect(both({ jwtBody: { request: 'required' } }, { jwtBody: { response: true } })).toStrictEqual({
      jwtBody: { request: 'required', response: true },
    });
    expect(both({ jwtBody: { response: false } }, { jwtBody: { response: false } })).toStrictEqual({ jwtBody: {} });
    expect(both({ jwtBody: { response: true } }, { scopes: ['a'] })).toStrictEqual({ jwtBody: { response: true }, scopes: ['a'] });
  });

  it('III.1 clientCertificate: every class’s check must accept the certificate', () => {
    const certificate = { thumbprint: 't' } as unknown as ClientCertificate;
    const yes = () => true;
    const no = () => false;
    const check = (a: (c: ClientCertificate) => boolean, b: (c: ClientCertificate) => boolean) =>
      (both({ clientCertificate: a }, { clientCertificate: b }).clientCertificate as (c: ClientCertificate) => boolean)(certificate);
    expect(check(yes, yes)).toBe(true);
    expect(check(yes, no)).toBe(false);
    expect(check(no, yes)).toBe(false);
    expect(both({ clientCertificate: yes }, {}).clientCertificate).toBe(yes);
  });
});

describe('III.1 policyLayers: the classes of the chain, a handler’s policy over its own class’s', () => {
  @FapiPolicy({ scopes: ['admin'], maxAuthAgeSec: 60 })
  class Base {
    @Get('declared')
    @RequireScopes('reports')
    declared() {}
    /** Not a route: not given to subclasses. */
    helper() {}
    @Get('plain')
    plain() {}
  }
  class Middle extends Base {}
  @FapiPolicy({ acrValues: ['mfa'] })
  class Derived extends Middle {
    @FapiPolicy({ maxAuthAgeSec: 30 })
    own() {}
  }

  it('III.1 an inherited handler: each class with a policy is a layer; the handler’s keys go over its declaring class’s', () => {
    const layers = policyLayers(Derived, Derived.prototype.declared);
    expect(layers.map((l) => [l.owner.name, l.policy])).toEqual([
      ['Derived', { acrValues: ['mfa'] }],
      ['Base', { scopes: ['reports'], maxAuthAgeSec: 60 }],
    ]);
    expect(conjoin(layers)).toEqual({ acrValues: ['mfa'], scopes: ['reports'], maxAuthAgeSec: 60 });
    // Derived's own handler for the inherited route stands for Base's.
    expect(Derived.prototype.declared).not.toBe(Base.prototype.declared);
    expect(Object.hasOwn(Derived.prototype, 'plain')).toBe(true);
    expect(Object.hasOwn(Derived.prototype, 'helper')).toBe(false);
    expect(Object.hasOwn(Middle.prototype, 'declared')).toBe(false);
    // It reads the route's metadata and calls the inherited method.
    expect(Reflect.getMetadata('path', Derived.prototype.declared)).toBe('declared');
    expect(policyLayers(Base, Base.prototype.declared).map((l) => l.policy)).toEqual([{ scopes: ['reports'], maxAuthAgeSec: 60 }]);
    expect(policyLayers(Middle, Middle.prototype.plain).map((l) => l.policy)).toEqual([{ scopes: ['admin'], maxAuthAgeSec: 60 }]);
    // A base method changed later is followed, as by inheritance.
    const self = {};
    Base.prototype.declared = function (this: unknown) {
      return this;
    } as never;
    expect(Derived.prototype.declared.call(self)).toBe(self);
  });

  it('III.1 an own handler of the subclass: its policy goes over its class’s, the base class’s holds', () => {
    expect(conjoin(policyLayers(Derived, Derived.prototype.own))).toEqual({ acrValues: ['mfa'], maxAuthAgeSec: 30, scopes: ['admin'] });
  });

  it('III.1 a chain that ends early — a parent without a prototype, or none — is walked to its end', () => {
    class Mixin {
      @RequireScopes('mixed')
      mixed() {}
    }
    @RequireScopes('child')
    class Child {}
    Object.setPrototypeOf(Child, () => undefined);
    @RequireScopes('orphan')
    class Orphan {}
    Object.setPrototypeOf(Orphan, null);
    expect(policyLayers(Child, Mixin.prototype.mixed).map((l) => l.policy)).toEqual([{ scopes: ['child'] }, { scopes: ['mixed'] }]);
    expect(policyLayers(Orphan, Mixin.prototype.mixed).map((l) => l.policy)).toEqual([{ scopes: ['orphan'] }, { scopes: ['mixed'] }]);
  });

  it('III.1 a handler with a policy that no class of the chain declares is a layer of its own', () => {
    class Mixin {
      @RequireScopes('mixed')
      mixed() {}
    }
    const layers = policyLayers(Derived, Mixin.prototype.mixed);
    expect(layers.map((l) => [l.owner.name, l.policy])).toEqual([
      ['Derived', { acrValues: ['mfa'] }],
      ['Base', { scopes: ['admin'], maxAuthAgeSec: 60 }],
      ['mixed', { scopes: ['mixed'] }],
    ]);
  });
});
