/**
 * What the decision event's `status` and `binding` (and so the metrics labels of the same names)
 * mean, over real HTTP: `status` is the guard's answer (200 for an allowed request whatever the
 * handler then sends), `binding` the sender constraint proven, or on a refusal the one the token
 * asks for; absent only when the refusal came before the token was verified.
 */
import { type DecisionEvent, DecisionMetrics } from '@fapi-guard/core';
import { createCertificate, DpopClient, MockIssuer } from '@fapi-guard/testing';
import { type StartedApp, startApp } from './support/apps';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';

describe.each(['express', 'hono'] as const)('decision labels on %s', (framework) => {
  let as: MockIssuer;
  let app: StartedApp;
  let client: DpopClient;
  const events: DecisionEvent[] = [];
  const metrics = new DecisionMetrics();

  beforeAll(async () => {
    as = await MockIssuer.start({ audience: AUDIENCE });
    client = await DpopClient.create('ES256');
    app = await startApp(framework, {
      issuer: as.issuer,
      audience: AUDIENCE,
      logger: false,
      onDecision: (event) => {
        events.push(event);
        metrics.record(event);
      },
    });
  });
  afterAll(async () => {
    await app.close();
    await as.stop();
  });

  /** The one decision a request made. */
  async function decide(path: string, headers: Record<string, string>, method = 'GET', body?: string) {
    events.length = 0;
    const res = await send(`${app.url}${path}`, { method, headers, ...(body ? { body } : {}) });
    expect(events).toHaveLength(1);
    return { res, event: events[0] as DecisionEvent };
  }
  const dpop = async (token: string, method: string, path: string) => ({
    authorization: `DPoP ${token}`,
    dpop: await client.proof({ htm: method, htu: `${AUDIENCE}${path}`, accessToken: token }),
  });

  it('an allowed request answered 201 by its handler is status 200 (the guard passed it) with the binding proven', async () => {
    const token = await as.mint({ scope: 'payments:write', jkt: client.jkt });
    const { res, event } = await decide(
      '/payments',
      { ...(await dpop(token, 'POST', '/payments')), 'content-type': 'application/json' },
      'POST',
      '{"amount":"1"}',
    );
    expect(res.status).toBe(201);
    expect(event).toMatchObject({ outcome: 'allow', status: 200, binding: 'dpop' });
  });

  it('a refusal after the token was verified carries the binding the token asks for', async () => {
    const narrow = await as.mint({ scope: 'payments:read', jkt: client.jkt });
    expect((await decide('/accounts', await dpop(narrow, 'GET', '/accounts'))).event).toMatchObject({
      outcome: 'deny',
      status: 403,
      reason: 'scope_insufficient',
      binding: 'dpop',
    });
    const bound = await as.mint({ scope: 'accounts', jkt: client.jkt });
    expect((await decide('/accounts', { authorization: `DPoP ${bound}` })).event).toMatchObject({
      reason: 'dpop_proof_missing',
      binding: 'dpop',
    });
    const certificate = await createCertificate();
    const mtls = await as.mint({ scope: 'accounts', x5t: certificate.x5t });
    expect((await decide('/accounts', { authorization: `Bearer ${mtls}` })).event).toMatchObject({
      reason: 'certificate_missing',
      binding: 'mtls',
    });
    const unbound = await as.mint({ scope: 'accounts' });
    expect((await decide('/accounts', { authorization: `Bearer ${unbound}` })).event).toMatchObject({
      reason: 'binding_missing',
      binding: 'bearer',
    });
  });

  it('a refusal before the token was verified has no binding', async () => {
    expect((await decide('/accounts', {})).event).toMatchObject({ reason: 'credentials_missing' });
    expect((await decide('/accounts', {})).event.binding).toBeUndefined();
    const expired = await as.mint({ scope: 'accounts', jkt: client.jkt, fault: 'expired' });
    const { event } = await decide('/accounts', await dpop(expired, 'GET', '/accounts'));
    expect(event).toMatchObject({ reason: 'token_expired' });
    expect(event.binding).toBeUndefined();
  });

  it('the metrics labels follow the event', () => {
    const text = metrics.prometheus();
    expect(text).toContain('fapi_guard_decisions_total{outcome="allow",status="200",reason="",binding="dpop"} 1');
    expect(text).toContain('fapi_guard_decisions_total{outcome="deny",status="403",reason="scope_insufficient",binding="dpop"} 1');
    expect(text).toContain('fapi_guard_decisions_total{outcome="deny",status="401",reason="certificate_missing",binding="mtls"} 1');
    expect(text).toContain('fapi_guard_decisions_total{outcome="deny",status="401",reason="credentials_missing",binding=""} 2');
  });
});
