/** A Hono app protected by fapi-guard on @hono/node-server, listening on 127.0.0.1, for HTTP-level tests. */
import type { DecisionEvent, GuardOptions } from '@fapi-guard/core';
import { type FapiGuardHono, fapiGuard } from '@fapi-guard/hono';
import { Hono } from 'hono';
import { serveHono } from './apps';

export interface RunningHono {
  url: string;
  fapi: FapiGuardHono;
  decisions: DecisionEvent[];
  close(): Promise<void>;
}

/**
 * Starts an app with the guard options given and routes mounted by `mount` (default: what
 * `startExpressApp` mounts: `GET /accounts` needing scope `accounts`, bearer allowed, echoing the
 * authorization), over HTTP, or over HTTPS asking for client certificates with `tls`.
 */
export async function startHonoApp(
  options: GuardOptions,
  mount?: (app: Hono, fapi: FapiGuardHono) => void,
  tls?: { cert: string; key: string },
): Promise<RunningHono> {
  const decisions: DecisionEvent[] = [];
  const fapi = fapiGuard({ ...options, onDecision: (e) => decisions.push(e) });
  const app = new Hono();
  if (mount) mount(app, fapi);
  else {
    app.all('/accounts', fapi.protect({ scopes: ['accounts'], allowBearer: true }), (c) => {
      const auth = c.get('auth');
      return c.json({
        clientId: auth.clientId,
        scopes: auth.scopes,
        binding: auth.binding,
        certificate: auth.certificate && { source: auth.certificate.source, chain: auth.certificate.chain?.length },
      });
    });
  }
  return { fapi, decisions, ...(await serveHono(app, tls)) };
}
