/**
 * Idempotency across the layers of one guard, in process (idempotency/layers.ts), driven as an
 * adapter drives it: each layer asks `idempotencyApplies`, then `idempotencyAtLayer`, with the
 * same request object. Covered: how layers are counted (with idempotency or not, per request, per
 * guard); which layer answers a retry (the one as deep as the first request's, counted from the
 * guard's first layer; an earlier release's record counted from the layer that opened the
 * exchange), in the form of that layer (`renderAt`), reported once; a later layer's own key rules
 * and their refusals (every claim freed, `rememberRefusal`); a later layer with other settings
 * (the same key claimed again, another header's key claimed with the earlier one kept, an answer
 * the later key holds); two guards on one request; `finish` after a later layer's refusal.
 * docs/packages/core.md, "Idempotency keys" (Layers); over HTTP on every adapter:
 * test/idempotency-layers.test.ts.
 */
import type { BodyBytes, IdempotencyStart, IdempotencyTicket } from '../src/idempotency/exchange';
import { requestFingerprint } from '../src/idempotency/fingerprint';
import { idempotencyApplies, idempotencyAtLayer } from '../src/idempotency/layers';
import {
  type Authorized,
  type CompiledPolicy,
  createGuard,
  type DecisionEvent,
  type Guard,
  type GuardOptions,
  type IdempotencyOutcome,
  type IdempotencyPolicy,
  idempotencyStoreKey,
  MemoryIdempotencyStore,
  type RoutePolicy,
} from '../src/index';
import { refusedByLayer, rememberRefusal } from '../src/runtime/layers';

const ISSUER = 'https://as.example.com';
const ORIGIN = 'https://rs.example.com';
const URL_ = `${ORIGIN}/payments`;
const T0 = 1_900_000_000_000;
const BODY = '{"amount":"10.00"}';
const FP = requestFingerprint('POST', URL_, Buffer.from(BODY));

type SpyStore = {
  claim: jest.Mock;
  complete: jest.Mock;
  release: jest.Mock;
  inner: MemoryIdempotencyStore;
};

/** The in-memory store, each call recorded (no `extend`: no renewal timers). */
function spyStore(): SpyStore {
  const inner = new MemoryIdempotencyStore();
  return {
    inner,
    claim: jest.fn((k: string, f: string, l: number, c: string) => inner.claim(k, f, l, c)),
    complete: jest.fn((k: string, t: string, o: IdempotencyOutcome, ttl: number) => inner.complete(k, t, o, ttl)),
    release: jest.fn((k: string, t: string) => inner.release(k, t)),
  };
}

function setup(store: SpyStore = spyStore(), extra: Partial<GuardOptions> = {}) {
  const events: DecisionEvent[] = [];
  const guard = createGuard({
    issuer: ISSUER,
    audience: ORIGIN,
    publicUrl: ORIGIN,
    clock: () => T0,
    logger: { warn: jest.fn(), error: jest.fn() },
    onDecision: (e) => events.push(e),
    idempotency: { store },
    ...extra,
  });
  const policy = (p: RoutePolicy) => guard.policy(p);
  return { guard, store, events, policy };
}

const AUTH = { issuer: ISSUER, clientId: 'c', headers: {} } as unknown as Authorized;
const sk = (key: string) => idempotencyStoreKey(AUTH, key);
const CLIENT = expect.any(String);
const post = (headers: Record<string, string>) => ({
  method: 'POST',
  url: URL_,
  headers: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, [value]])),
});
const readBody = async (): Promise<BodyBytes> => ({ ok: true, body: Buffer.from(BODY) });

type Step = IdempotencyStart | 'skipped';

/** One layer of `guard`, as an adapter runs it: `skipped` when it has no idempotency work. */
async function layer(
  guard: Guard,
  policy: CompiledPolicy,
  key: object,
  headers: Record<string, string>,
  exchangeRequest: () => ReturnType<typeof post> | ReturnType<Guard['refuse']> = () => post(headers),
): Promise<Step> {
  if (!idempotencyApplies(guard, policy, key)) return 'skipped';
  return idempotencyAtLayer(guard, policy, AUTH, key, exchangeRequest, readBody);
}

/** A request through `policies` in order, up to the first layer that answers (the handler would run after the last). */
async function through(guard: Guard, policies: CompiledPolicy[], headers: Record<string, string>, key: object = {}) {
  const steps: Step[] = [];
  for (const policy of policies) {
    const step = await layer(guard, policy, key, headers);
    steps.push(step);
    if (step !== 'skipped' && (step.kind === 'refused' || step.kind === 'replay')) break;
  }
  const tickets = steps.flatMap((s) => (s !== 'skipped' && s.kind === 'claimed' ? [s.ticket] : []));
  return { key, steps, tickets, kinds: steps.map((s) => (s === 'skipped' ? s : s.kind)) };
}

const RESPONSE = { status: 201, headers: [['content-type', 'application/json']] as [string, string][], body: Buffer.from('{"id":1}') };
const finishAll = (tickets: IdempotencyTicket[]) => Promise.all(tickets.map((t) => t.finish(RESPONSE)));
const refusal = (step: Step | undefined) =>
  step !== undefined && step !== 'skipped' && step.kind === 'refused' ? [step.error.reason, step.error.status, step.error.detail] : step;
/** The store keys released, in order. */
const released = (store: SpyStore) => store.release.mock.calls.map((c) => c[0]);

describe('counting the layers', () => {
  it('IDEM-16 every layer that authorized the request is counted, with idempotency or not; the depth is kept with the response', async () => {
    const { guard, store, policy } = setup();
    const plain = policy({});
    const idem = policy({ idempotency: 'optional' });
    // No layer with idempotency and no exchange: no work for either layer.
    const none = {};
    expect([idempotencyApplies(guard, plain, none), idempotencyApplies(guard, plain, none)]).toEqual([false, false]);
    // An optional key left out opens nothing: the next layer has no work.
    expect((await through(guard, [idem, plain], {})).steps).toEqual([{ kind: 'pass' }, 'skipped']);
    // The route's layer claims at the guard's second layer; a third without idempotency still counts.
    const first = await through(guard, [plain, idem, plain], { 'idempotency-key': '"k"' });
    expect(first.steps).toEqual(['skipped', { kind: 'claimed', ticket: expect.anything() }, { kind: 'pass' }]);
    await finishAll(first.tickets);
    // One layer alone: depth 1.
    const single = await through(guard, [idem], { 'idempotency-key': '"one"' });
    await finishAll(single.tickets);
    expect(store.claim.mock.calls).toEqual([
      [sk('k'), FP, 86_400_000, CLIENT],
      [sk('one'), FP, 86_400_000, CLIENT],
    ]);
    expect(store.complete.mock.calls.map((c) => [c[0], c[2]])).toStrictEqual([
      [sk('k'), { state: 'done', fingerprint: FP, response: { ...RESPONSE, layers: 3 } }],
      [sk('one'), { state: 'done', fingerprint: FP, response: { ...RESPONSE, layers: 1 } }],
    ]);
    expect(store.release).not.toHaveBeenCalled();
  });

  it('IDEM-16 layers and exchanges are kept per request: two requests on one guard, interleaved', async () => {
    const { guard, store, policy } = setup();
    const plain = policy({});
    const idem = policy({ idempotency: 'required' });
    const [r1, r2] = [{}, {}];
    const steps = [
      await layer(guard, idem, r1, { 'idempotency-key': '"r1"' }),
      await layer(guard, idem, r2, { 'idempotency-key': '"r2"' }),
      await layer(guard, plain, r1, { 'idempotency-key': '"r1"' }),
      await layer(guard, plain, r1, { 'idempotency-key': '"r1"' }),
      await layer(guard, plain, r2, { 'idempotency-key': '"r2"' }),
    ];
    expect(steps.map((s) => (s === 'skipped' ? s : s.kind))).toEqual(['claimed', 'claimed', 'pass', 'pass', 'pass']);
    for (const s of steps) if (s !== 'skipped' && s.kind === 'claimed') await s.ticket.finish(RESPONSE);
    expect(store.complete.mock.calls.map((c) => [c[0], c[2].response.layers])).toEqual([
      [sk('r1'), 3],
      [sk('r2'), 2],
    ]);
  });
});

describe('which layer answers a retry', () => {
  it('IDEM-16 IDEM-04 the stored response is sent by the layer as deep as the first request’s, never earlier, reported once', async () => {
    const { guard, store, events, policy } = setup();
    const layers = [policy({ idempotency: 'optional' }), policy({}), policy({})];
    const headers = { 'idempotency-key': '"k"' };
    const first = await through(guard, layers, headers);
    expect(first.kinds).toEqual(['claimed', 'pass', 'pass']);
    await finishAll(first.tickets);
    const key = {};
    expect(await layer(guard, layers[0] as CompiledPolicy, key, headers)).toEqual({ kind: 'pass' });
    expect(await layer(guard, layers[1] as CompiledPolicy, key, headers)).toEqual({ kind: 'pass' });
    expect(events).toEqual([]);
    expect(await layer(guard, layers[2] as CompiledPolicy, key, headers)).toStrictEqual({
      kind: 'replay',
      response: { ...RESPONSE, layers: 3 },
    });
    expect(events.map((e) => [e.idempotency, e.reason, e.status])).toEqual([['replayed', 'idempotency_replayed', 201]]);
    // The retry only looked the key up.
    expect(store.claim).toHaveBeenCalledTimes(2);
    expect([store.complete.mock.calls.length, store.release.mock.calls.length]).toEqual([1, 0]);
  });

  it('IDEM-16 the depth is counted from the guard’s first layer when only the route’s layer has idempotency', async () => {
    const { guard, events, policy } = setup();
    const layers = [policy({}), policy({ idempotency: 'required' }), policy({})];
    const headers = { 'idempotency-key': '"k"' };
    const first = await through(guard, layers, headers);
    expect(first.kinds).toEqual(['skipped', 'claimed', 'pass']);
    await finishAll(first.tickets);
    const retry = await through(guard, layers, headers);
    expect(retry.kinds).toEqual(['skipped', 'pass', 'replay']);
    expect(events.map((e) => e.idempotency)).toEqual(['replayed']);
  });

  it('IDEM-16 IDEM-11 a response not kept is told at the same depth, in the form of the layer that tells it', async () => {
    const ofb = {
      messageSigning: {
        openFinanceBrasil: { organisationId: 'bank', clients: { c: { organisationId: 'org', jwksUri: 'https://keys.example/c.jwks' } } },
      },
    } as Partial<GuardOptions>;
    const { guard, events, policy } = setup(spyStore(), ofb);
    const signedBodies = policy({ jwtBody: { request: 'required' } });
    const layers = [policy({}), policy({ idempotency: 'required' }), signedBodies];
    const headers = { 'idempotency-key': '"k"' };
    const first = await through(guard, layers, headers);
    expect(first.kinds).toEqual(['skipped', 'claimed', 'pass']);
    await Promise.all(first.tickets.map((t) => t.finish({ status: 201, tooLarge: true })));
    const retry = await through(guard, layers, headers);
    expect(retry.kinds).toEqual(['skipped', 'pass', 'refused']);
    const answer = retry.steps[2];
    const error = answer !== 'skipped' && answer?.kind === 'refused' ? answer.error : undefined;
    const description =
      'The request with this idempotency key was processed but its response was not kept; look the result up instead of retrying';
    expect([error?.reason, error?.status, error?.detail]).toEqual([
      'idempotency_response_unkept',
      409,
      'the response exceeded maxResponseBytes',
    ]);
    // The Open Finance Brasil envelope of the layer that answers, not the opening layer's OAuth body.
    expect(error?.body).toEqual({
      errors: [{ code: 'UNAUTHORIZED', title: description, detail: description }],
      meta: { requestDateTime: new Date(T0).toISOString().replace(/\.\d{3}Z$/, 'Z') },
    });
    expect(events.map((e) => [e.idempotency, e.reason])).toEqual([['refused', 'idempotency_response_unkept']]);
  });

  it('IDEM-16 a response an earlier release recorded is told one layer past the layers it counted from the opening one', async () => {
    const store = spyStore();
    const { guard, events, policy } = setup(store);
    // An earlier release recorded the request part of the fingerprint and 2 layers from the opening one.
    const requestPart = FP.slice(FP.indexOf('.') + 1);
    const claim = await store.inner.claim(sk('k'), requestPart, 60_000, 'c');
    if (!claim.claimed) throw new Error('not claimed');
    await store.inner.complete(
      sk('k'),
      claim.token,
      { state: 'done', fingerprint: requestPart, response: { ...RESPONSE, layers: 2 } },
      60_000,
    );
    const layers = [policy({}), policy({ idempotency: 'required' }), policy({}), policy({})];
    const retry = await through(guard, layers, { 'idempotency-key': '"k"' });
    expect(retry.kinds).toEqual(['skipped', 'pass', 'refused']);
    expect(refusal(retry.steps[2])).toEqual([
      'idempotency_response_unkept',
      409,
      'the response was recorded by an earlier release of fapi-guard',
    ]);
    expect(events.map((e) => [e.idempotency, e.reason])).toEqual([['refused', 'idempotency_response_unkept']]);
  });
});

describe('a later layer’s own key rules', () => {
  it('IDEM-16 IDEM-03 a later layer’s required key left out is refused once and frees the earlier claim; the request is marked refused', async () => {
    const { guard, store, events, policy } = setup();
    const layers = [policy({ idempotency: 'optional' }), policy({ idempotency: { mode: 'required', header: 'x-route-key' } })];
    const first = await through(guard, layers, { 'idempotency-key': '"k"' });
    expect(first.kinds).toEqual(['claimed', 'refused']);
    expect(refusal(first.steps[1])).toEqual(['idempotency_key_missing', 400, 'no x-route-key header']);
    expect(store.release.mock.calls).toEqual([[sk('k'), expect.any(String)]]);
    expect(events.map((e) => [e.idempotency, e.reason])).toEqual([['refused', 'idempotency_key_missing']]);
    expect(refusedByLayer(first.key)).toBe(true);
    // The claimed ticket's recorder then records nothing.
    await finishAll(first.tickets);
    expect([store.complete.mock.calls.length, store.release.mock.calls.length]).toEqual([0, 1]);
    // The key is free: the corrected request is processed.
    const corrected = await through(guard, layers, { 'idempotency-key': '"k"', 'x-route-key': '"r"' });
    expect(corrected.kinds).toEqual(['claimed', 'claimed']);
  });

  it('IDEM-16 a retry whose answer waits for a deeper layer is refused by that layer’s key rules, with nothing to free', async () => {
    const { guard, store, events, policy } = setup();
    const layers = [policy({ idempotency: 'optional' }), policy({ idempotency: { mode: 'required', header: 'x-route-key' } })];
    const first = await through(guard, layers, { 'idempotency-key': '"k"', 'x-route-key': '"r"' });
    expect(first.kinds).toEqual(['claimed', 'claimed']);
    await finishAll(first.tickets);
    // The retry without the route's key: the stored payment is not sent by the first layer.
    const retry = await through(guard, layers, { 'idempotency-key': '"k"' });
    expect(retry.kinds).toEqual(['pass', 'refused']);
    expect(refusal(retry.steps[1])).toEqual(['idempotency_key_missing', 400, 'no x-route-key header']);
    expect(store.release).not.toHaveBeenCalled();
    expect(events.map((e) => e.reason)).toEqual(['idempotency_key_missing']);
    expect(refusedByLayer(retry.key)).toBe(true);
  });

  it('IDEM-16 a request a layer cannot build is refused with that layer’s error; a later layer’s frees the earlier claim', async () => {
    const { guard, store, policy } = setup();
    const idem = policy({ idempotency: 'required' });
    const error = guard.refuse('request_host_unknown', 'no such host');
    const key = {};
    expect(await layer(guard, idem, key, {}, () => error)).toStrictEqual({ kind: 'refused', error });
    expect(store.claim).not.toHaveBeenCalled();
    expect(refusedByLayer(key)).toBe(true);
    // A later layer with the same settings, then one with others: each refuses, the claim freed.
    for (const [name, settings] of [
      ['same', 'optional'],
      ['other', { mode: 'required', ttlSec: 60 }],
    ] as const) {
      store.release.mockClear();
      const later = {};
      const claimed = await layer(guard, idem, later, { 'idempotency-key': `"${name}"` });
      expect(claimed !== 'skipped' && claimed.kind).toBe('claimed');
      expect(await layer(guard, policy({ idempotency: settings }), later, {}, () => error)).toStrictEqual({ kind: 'refused', error });
      expect(store.release.mock.calls).toEqual([[sk(name), expect.any(String)]]);
    }
  });

  it('IDEM-16 a later layer without idempotency, or with the same settings (mode aside), lets the earlier claim go on', async () => {
    const { guard, store, policy } = setup();
    const layers = [policy({ idempotency: 'required' }), policy({ idempotency: 'optional' }), policy({})];
    const first = await through(guard, layers, { 'idempotency-key': '"k"' });
    expect(first.steps).toEqual([{ kind: 'claimed', ticket: expect.anything() }, { kind: 'pass' }, { kind: 'pass' }]);
    await finishAll(first.tickets);
    expect(store.claim).toHaveBeenCalledTimes(1);
    expect(store.release).not.toHaveBeenCalled();
    expect(store.complete.mock.calls.map((c) => [c[0], c[2].response.layers])).toEqual([[sk('k'), 3]]);
  });

  it('IDEM-16 a later layer with other settings and no key of its own (optional there) leaves the earlier claim in force', async () => {
    const { guard, store, policy } = setup();
    const layers = [policy({ idempotency: 'required' }), policy({ idempotency: { mode: 'optional', syntax: 'uk-ob' } })];
    const first = await through(guard, layers, { 'idempotency-key': '"k"' });
    expect(first.steps).toEqual([{ kind: 'claimed', ticket: expect.anything() }, { kind: 'pass' }]);
    await finishAll(first.tickets);
    expect([store.claim.mock.calls.length, store.release.mock.calls.length]).toEqual([1, 0]);
    expect(store.complete.mock.calls.map((c) => [c[0], c[2].response.layers])).toEqual([[sk('k'), 2]]);
  });
});

describe('a later layer with other settings', () => {
  it('IDEM-16 IDEM-14 the same key is claimed again under the later layer’s settings when any of header, ttl, lease or size differs', async () => {
    const headers = { 'idempotency-key': '"k"', 'x-key': '"k"' };
    const cases: [IdempotencyPolicy, IdempotencyPolicy, number[], number][] = [
      // ttl alone (same lease)
      [{ mode: 'optional', ttlSec: 3600, leaseSec: 60 }, { mode: 'required', ttlSec: 7200, leaseSec: 60 }, [60_000, 60_000], 7_200_000],
      // lease alone
      [{ mode: 'optional', ttlSec: 3600, leaseSec: 60 }, { mode: 'required', ttlSec: 3600, leaseSec: 120 }, [60_000, 120_000], 3_600_000],
      // maxResponseBytes alone
      [{ mode: 'optional' }, { mode: 'required', maxResponseBytes: 100 }, [86_400_000, 86_400_000], 86_400_000],
      // the header alone (the same value under both)
      [{ mode: 'optional' }, { mode: 'required', header: 'x-key' }, [86_400_000, 86_400_000], 86_400_000],
    ];
    for (const [appWide, route, leases, ttl] of cases) {
      const { guard, store, policy } = setup();
      const first = await through(guard, [policy({ idempotency: appWide }), policy({ idempotency: route }), policy({})], headers);
      expect([route, first.kinds]).toEqual([route, ['claimed', 'claimed', 'pass']]);
      expect(store.claim.mock.calls).toEqual(leases.map((lease) => [sk('k'), FP, lease, CLIENT]));
      expect(store.release.mock.calls).toEqual([[sk('k'), expect.any(String)]]);
      expect(first.tickets.map((t) => t.maxResponseBytes)).toEqual([
        appWide.maxResponseBytes ?? 1_048_576,
        route.maxResponseBytes ?? 1_048_576,
      ]);
      await finishAll(first.tickets);
      expect(store.complete.mock.calls.map((c) => [c[0], c[2].response.layers, c[3]])).toEqual([[sk('k'), 3, ttl]]);
    }
  });

  it('IDEM-16 IDEM-04 a retry with the same key is looked up again under the later layer’s settings and answered at the first request’s depth', async () => {
    const { guard, store, events, policy } = setup();
    const layers = [
      policy({ idempotency: { mode: 'optional', ttlSec: 3600, leaseSec: 60 } }),
      policy({ idempotency: { mode: 'required', ttlSec: 7200, leaseSec: 60 } }),
      policy({}),
    ];
    const headers = { 'idempotency-key': '"k"' };
    await finishAll((await through(guard, layers, headers)).tickets);
    store.claim.mockClear();
    const retry = await through(guard, layers, headers);
    expect(retry.steps).toStrictEqual([{ kind: 'pass' }, { kind: 'pass' }, { kind: 'replay', response: { ...RESPONSE, layers: 3 } }]);
    expect(store.claim.mock.calls).toEqual([
      [sk('k'), FP, 60_000, CLIENT],
      [sk('k'), FP, 60_000, CLIENT],
    ]);
    expect(store.release).toHaveBeenCalledTimes(1);
    expect(events.map((e) => e.idempotency)).toEqual(['replayed']);
    // Two layers deep, the answer comes from the second one.
    const two = setup();
    const short = [
      two.policy({ idempotency: { mode: 'optional', ttlSec: 3600, leaseSec: 60 } }),
      two.policy({ idempotency: { mode: 'required', ttlSec: 7200, leaseSec: 60 } }),
    ];
    await finishAll((await through(two.guard, short, headers)).tickets);
    expect((await through(two.guard, short, headers)).kinds).toEqual(['pass', 'replay']);
    expect(two.events.map((e) => e.idempotency)).toEqual(['replayed']);
  });

  it('IDEM-16 another header’s key is claimed too, the earlier claim kept: both record the answer at the request’s depth', async () => {
    const { guard, store, events, policy } = setup();
    const layers = [policy({ idempotency: 'optional' }), policy({ idempotency: { mode: 'required', syntax: 'uk-ob' } }), policy({})];
    const first = await through(guard, layers, { 'idempotency-key': '"a"', 'x-idempotency-key': 'b' });
    expect(first.kinds).toEqual(['claimed', 'claimed', 'pass']);
    expect(store.claim.mock.calls.map((c) => c[0])).toEqual([sk('a'), sk('b')]);
    expect(store.release).not.toHaveBeenCalled();
    // Each recorder records the same answer, with the request's depth (the exchange in force).
    await finishAll(first.tickets);
    expect(store.complete.mock.calls.map((c) => [c[0], c[2].response.layers])).toEqual([
      [sk('a'), 3],
      [sk('b'), 3],
    ]);
    store.claim.mockClear();
    // A retry with both keys: the first layer's answer waits; the route's key is not claimed.
    const retry = await through(guard, layers, { 'idempotency-key': '"a"', 'x-idempotency-key': 'b' });
    expect(retry.kinds).toEqual(['pass', 'pass', 'replay']);
    // A retry repeating the app-wide key with a new route key: the earlier key's answer stands, the new key is never claimed.
    const mixed = await through(guard, layers, { 'idempotency-key': '"a"', 'x-idempotency-key': 'new' });
    expect(mixed.kinds).toEqual(['pass', 'pass', 'replay']);
    expect(store.claim.mock.calls.map((c) => c[0])).toEqual([sk('a'), sk('a')]);
    expect(events.map((e) => e.idempotency)).toEqual(['replayed', 'replayed']);
  });

  it('IDEM-16 a deeper layer’s refusal frees every claim the request holds: the kept one and the later key’s', async () => {
    const { guard, store, policy } = setup();
    const layers = [
      policy({ idempotency: 'optional' }),
      policy({ idempotency: { mode: 'required', syntax: 'uk-ob' } }),
      policy({ idempotency: { mode: 'required', header: 'x-third' } }),
    ];
    const first = await through(guard, layers, { 'idempotency-key': '"a"', 'x-idempotency-key': 'b' });
    expect(first.kinds).toEqual(['claimed', 'claimed', 'refused']);
    expect(refusal(first.steps[2])).toEqual(['idempotency_key_missing', 400, 'no x-third header']);
    expect(released(store).sort()).toEqual([sk('a'), sk('b')].sort());
    await finishAll(first.tickets);
    expect([store.complete.mock.calls.length, store.release.mock.calls.length]).toEqual([0, 2]);
  });

  it('IDEM-16 IDEM-05 the later key in flight is 409 at once; the earlier claim is freed', async () => {
    const store = spyStore();
    const { guard, events, policy } = setup(store);
    await store.inner.claim(sk('b'), FP, 60_000, 'c');
    const layers = [policy({ idempotency: 'optional' }), policy({ idempotency: { mode: 'required', syntax: 'uk-ob' } }), policy({})];
    const first = await through(guard, layers, { 'idempotency-key': '"a"', 'x-idempotency-key': 'b' });
    expect(first.kinds).toEqual(['claimed', 'refused']);
    expect(refusal(first.steps[1])).toEqual(['idempotency_key_in_flight', 409, 'the first request has not finished']);
    expect(store.release.mock.calls).toEqual([[sk('a'), expect.any(String)]]);
    expect(events.map((e) => e.reason)).toEqual(['idempotency_key_in_flight']);
    expect(refusedByLayer(first.key)).toBe(true);
  });

  it('IDEM-16 IDEM-04 the later key holding an answer deeper: the new earlier claim is freed and the answer told at its depth', async () => {
    const { guard, store, policy } = setup();
    const layers = [policy({ idempotency: 'optional' }), policy({ idempotency: { mode: 'required', syntax: 'uk-ob' } }), policy({})];
    await finishAll((await through(guard, layers, { 'idempotency-key': '"a0"', 'x-idempotency-key': 'b' })).tickets);
    // A gateway's new Idempotency-Key per attempt, the route's key repeated.
    const retry = await through(guard, layers, { 'idempotency-key': '"a1"', 'x-idempotency-key': 'b' });
    expect(retry.kinds).toEqual(['claimed', 'pass', 'replay']);
    expect(store.release.mock.calls).toEqual([[sk('a1'), expect.any(String)]]);
    await finishAll(retry.tickets);
    expect(store.complete.mock.calls.map((c) => c[0])).toEqual([sk('a0'), sk('b')]);
  });
});

describe('two guards on one request', () => {
  /** Two guards over one store, and the request object both see. */
  const twoGuards = () => {
    const store = spyStore();
    return { store, g1: setup(store), g2: setup(store), key: {} };
  };

  it('IDEM-16 a key this request holds by another guard’s claim is left to that claim', async () => {
    const { store, g1, g2, key } = twoGuards();
    const headers = { 'idempotency-key': '"a"' };
    const claimed = await layer(g1.guard, g1.policy({ idempotency: 'required' }), key, headers);
    expect(claimed !== 'skipped' && claimed.kind).toBe('claimed');
    expect(await layer(g2.guard, g2.policy({ idempotency: 'required' }), key, headers)).toEqual({ kind: 'pass' });
    expect(store.claim).toHaveBeenCalledTimes(1);
    // Another request on the second guard is not left to it.
    const other = await layer(g2.guard, g2.policy({ idempotency: 'required' }), {}, headers);
    expect(refusal(other)).toEqual(['idempotency_key_in_flight', 409, 'the first request has not finished']);
  });

  it('IDEM-16 a later layer’s key claimed by another guard for this request: the earlier claim goes on, nothing freed', async () => {
    const { store, g1, g2, key } = twoGuards();
    const headers = { 'idempotency-key': '"a"', 'x-idempotency-key': 'b' };
    const uk = { idempotency: { mode: 'required', syntax: 'uk-ob' } } as const;
    const g2Step = await layer(g2.guard, g2.policy(uk), key, headers);
    expect(g2Step !== 'skipped' && g2Step.kind).toBe('claimed');
    const steps = [
      await layer(g1.guard, g1.policy({ idempotency: 'optional' }), key, headers),
      await layer(g1.guard, g1.policy(uk), key, headers),
      await layer(g1.guard, g1.policy({}), key, headers),
    ];
    expect(steps.map((s) => (s === 'skipped' ? s : s.kind))).toEqual(['claimed', 'pass', 'pass']);
    expect(store.release).not.toHaveBeenCalled();
    expect(store.claim.mock.calls.map((c) => c[0])).toEqual([sk('b'), sk('a')]);
    const [first] = steps;
    if (first !== undefined && first !== 'skipped' && first.kind === 'claimed') await first.ticket.finish(RESPONSE);
    expect(store.complete.mock.calls.map((c) => [c[0], c[2].response.layers])).toEqual([[sk('a'), 3]]);
  });

  it('IDEM-16 IDEM-03 a key rule’s refusal by one guard frees the other guard’s claim when its recorder finishes', async () => {
    const { store, g1, g2, key } = twoGuards();
    const headers = { 'idempotency-key': '"a"' };
    const claimed = await layer(g1.guard, g1.policy({ idempotency: 'required' }), key, headers);
    expect(refusedByLayer(key)).toBe(false);
    const refused = await layer(g2.guard, g2.policy({ idempotency: { mode: 'required', header: 'x-route-key' } }), key, headers);
    expect(refusal(refused)).toEqual(['idempotency_key_missing', 400, 'no x-route-key header']);
    expect(refusedByLayer(key)).toBe(true);
    if (claimed !== 'skipped' && claimed.kind === 'claimed') await claimed.ticket.finish(RESPONSE);
    expect(store.complete).not.toHaveBeenCalled();
    expect(store.release.mock.calls).toEqual([[sk('a'), expect.any(String)]]);
  });
});

describe('the recorder of a claim', () => {
  it('IDEM-16 after a later layer’s refusal (scope, signature) finish frees the key instead of recording', async () => {
    const { guard, store, policy } = setup();
    const first = await through(guard, [policy({ idempotency: 'required' }), policy({})], { 'idempotency-key': '"k"' });
    expect(first.kinds).toEqual(['claimed', 'pass']);
    // What runtime/node.ts and runtime/fetch.ts do when a layer refuses the request.
    rememberRefusal(first.key);
    await finishAll(first.tickets);
    expect(store.complete).not.toHaveBeenCalled();
    expect(store.release.mock.calls).toEqual([[sk('k'), expect.any(String)]]);
  });

  it('IDEM-16 release frees the key through the layer’s ticket', async () => {
    const { guard, store, policy } = setup();
    const first = await through(guard, [policy({ idempotency: 'required' })], { 'idempotency-key': '"k"' });
    await Promise.all(first.tickets.map((t) => t.release()));
    expect(store.release.mock.calls).toEqual([[sk('k'), expect.any(String)]]);
    expect((await through(guard, [policy({ idempotency: 'required' })], { 'idempotency-key': '"k"' })).kinds).toEqual(['claimed']);
  });
});
