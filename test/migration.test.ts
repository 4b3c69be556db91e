/**
 * The migration guide from express-oauth2-jwt-bearer, proven: the same routes served by an app
 * written for that library and by the migrated app, the same requests sent to both, and the table
 * of what changes compared with the one printed in docs/migration-express-oauth2-jwt-bearer.md.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fapiGuard } from '@fapi-guard/express';
import { fapiGuard as sideBySideGuard } from '@fapi-guard/express/side-by-side';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import express from 'express';
import { auth, requiredScopes } from 'express-oauth2-jwt-bearer';
import ts from 'typescript';

const AUDIENCE = 'https://api.bank.example';

/** Before: the app as written for express-oauth2-jwt-bearer (DPoP allowed, its default). */
function beforeApp(issuer: string) {
  const app = express();
  app.use(auth({ issuerBaseURL: issuer, audience: AUDIENCE, tokenSigningAlg: 'ES256' }));
  app.get('/accounts', requiredScopes('accounts'), (req, res) => {
    // Both libraries declare `req.auth`; in an app with only this one it is `{ payload, header, token }`.
    const { payload } = (req as unknown as { auth: { payload: { client_id?: string } } }).auth;
    res.json({ client: payload.client_id });
  });
  return app;
}

/** After: the same route on fapi-guard, as the guide shows it. */
function afterApp(issuer: string) {
  const fapi = fapiGuard({ issuer, audience: AUDIENCE, publicUrl: AUDIENCE });
  const app = express();
  app.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (req, res) => {
    res.json({ client: req.auth?.clientId });
  });
  return app;
}

async function listen(app: express.Express): Promise<{ server: Server; url: string }> {
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

interface Exchange {
  status: number;
  challenge: string;
}

/** One request of the table: how to make it for an app whose proofs name `htu`. */
interface Case {
  name: string;
  send: (url: string, htu: string) => Promise<Response>;
}

/** The first challenge's scheme and error, the part of `WWW-Authenticate` a client acts on. */
function summary(response: Response): Exchange {
  const header = response.headers.get('www-authenticate') ?? '';
  const scheme = header.split(' ', 1)[0] ?? '';
  const error = /error="([^"]+)"/.exec(header)?.[1];
  return { status: response.status, challenge: header === '' ? '—' : `${scheme}${error ? ` ${error}` : ''}` };
}

describe('migration from express-oauth2-jwt-bearer', () => {
  let issuer: MockIssuer;
  let before: { server: Server; url: string };
  let after: { server: Server; url: string };
  let client: DpopClient;

  beforeAll(async () => {
    issuer = await MockIssuer.start({ audience: AUDIENCE });
    client = await DpopClient.create();
    before = await listen(beforeApp(issuer.issuer));
    after = await listen(afterApp(issuer.issuer));
  });
  afterAll(async () => {
    for (const { server } of [before, after]) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    await issuer.stop();
  });

  const dpopCall = async (url: string, htu: string, scope: string) => {
    const token = await issuer.mint({ jkt: client.jkt, scope });
    const proof = await client.proof({ htm: 'GET', htu: `${htu}/accounts`, accessToken: token });
    return fetch(`${url}/accounts`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
  };

  const cases: Case[] = [
    { name: 'no credentials', send: (url) => fetch(`${url}/accounts`) },
    {
      name: 'unbound token, `Bearer`, right scope',
      send: async (url) => fetch(`${url}/accounts`, { headers: { authorization: `Bearer ${await issuer.mint({ scope: 'accounts' })}` } }),
    },
    { name: 'DPoP-bound token and proof, right scope', send: (url, htu) => dpopCall(url, htu, 'accounts') },
    { name: 'DPoP-bound token and proof, other scope', send: (url, htu) => dpopCall(url, htu, 'payments') },
    {
      name: 'DPoP-bound token sent as `Bearer` (downgrade)',
      send: async (url) =>
        fetch(`${url}/accounts`, { headers: { authorization: `Bearer ${await issuer.mint({ jkt: client.jkt, scope: 'accounts' })}` } }),
    },
    {
      name: 'the same DPoP proof sent twice (replay)',
      send: async (url, htu) => {
        const token = await issuer.mint({ jkt: client.jkt, scope: 'accounts' });
        const proof = await client.proof({ htm: 'GET', htu: `${htu}/accounts`, accessToken: token });
        const headers = { authorization: `DPoP ${token}`, dpop: proof };
        await fetch(`${url}/accounts`, { headers });
        return fetch(`${url}/accounts`, { headers });
      },
    },
    {
      name: 'expired token',
      send: async (url, htu) => {
        const token = await issuer.mint({ jkt: client.jkt, scope: 'accounts', fault: 'expired' });
        const proof = await client.proof({ htm: 'GET', htu: `${htu}/accounts`, accessToken: token });
        return fetch(`${url}/accounts`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
      },
    },
    {
      name: 'token in the query string',
      send: async (url) => fetch(`${url}/accounts?access_token=${await issuer.mint({ jkt: client.jkt, scope: 'accounts' })}`),
    },
  ];

  it('answers each request as the table in the guide says', async () => {
    const rows: string[] = [];
    for (const c of cases) {
      const b = summary(await c.send(before.url, before.url));
      const a = summary(await c.send(after.url, AUDIENCE));
      rows.push(`| ${c.name} | ${b.status} ${b.challenge} | ${a.status} ${a.challenge} |`);
    }
    const table = ['| request | express-oauth2-jwt-bearer | fapi-guard |', '| --- | --- | --- |', ...rows].join('\n');
    const guide = readFileSync(join(__dirname, '..', 'docs', 'migration-express-oauth2-jwt-bearer.md'), 'utf8');
    // Cell padding and the width of separator rows are the formatter's, not content.
    const cells = (text: string) => text.replace(/ *\| */g, '|').replace(/\|-+(?=\|)/g, '|---');
    expect(cells(guide)).toContain(cells(table));
  });
});

/**
 * The side-by-side phase (issue 25 §4): one app, routes not yet migrated on
 * express-oauth2-jwt-bearer, migrated ones on fapi-guard in the layered pattern, each library's
 * authorization on its own request property.
 */
function sideBySideApp(issuer: string) {
  const fapi = sideBySideGuard({ issuer, audience: AUDIENCE, publicUrl: AUDIENCE }, { property: 'fapi' });
  const app = express();
  const v1 = express.Router();
  v1.use(auth({ issuerBaseURL: issuer, audience: AUDIENCE, tokenSigningAlg: 'ES256' }));
  v1.get('/accounts', requiredScopes('accounts'), (req, res) => {
    // This suite's program also holds @fapi-guard/express's `req.auth`; an app with side-by-side only has this one.
    const { payload } = (req as unknown as { auth: { payload: { client_id?: string } } }).auth;
    res.json({ client: payload.client_id, fapi: 'fapi' in req });
  });
  app.use('/v1', v1);
  app.use('/v2', fapi.protect());
  app.get('/v2/accounts', fapi.requireScopes('accounts'), (req, res) => {
    const authorization = fapi.authorization(req);
    res.json({
      client: authorization.clientId,
      sameAsProperty: (req as unknown as { fapi: unknown }).fapi === authorization,
      auth: 'auth' in req,
    });
  });
  return app;
}

describe('side by side with express-oauth2-jwt-bearer', () => {
  let issuer: MockIssuer;
  let app: { server: Server; url: string };
  let client: DpopClient;

  beforeAll(async () => {
    issuer = await MockIssuer.start({ audience: AUDIENCE });
    client = await DpopClient.create();
    app = await listen(sideBySideApp(issuer.issuer));
  });
  afterAll(async () => {
    app.server.closeAllConnections();
    await new Promise((resolve) => app.server.close(resolve));
    await issuer.stop();
  });

  it('routes not migrated answer as before; migrated ones as fapi-guard; neither library sees the other’s property', async () => {
    const bearer = { authorization: `Bearer ${await issuer.mint({ scope: 'accounts', claims: { client_id: 'old-client' } })}` };
    const v1 = await fetch(`${app.url}/v1/accounts`, { headers: bearer });
    expect(v1.status).toBe(200);
    expect(await v1.json()).toEqual({ client: 'old-client', fapi: false });
    // The same unbound token on a migrated route: FAPI 2.0 §5.3.4 #5.
    expect((await fetch(`${app.url}/v2/accounts`, { headers: bearer })).status).toBe(401);
    const token = await issuer.mint({ jkt: client.jkt, scope: 'accounts', claims: { client_id: 'new-client' } });
    const proof = await client.proof({ htm: 'GET', htu: `${AUDIENCE}/v2/accounts`, accessToken: token });
    const v2 = await fetch(`${app.url}/v2/accounts`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
    expect(v2.status).toBe(200);
    expect(await v2.json()).toEqual({ client: 'new-client', sameAsProperty: true, auth: false });
  });

  it('fapi.authorization(req) on a request no protect() let through throws instead of handing over nothing', () => {
    const fapi = sideBySideGuard({ issuer: issuer.issuer, audience: AUDIENCE, publicUrl: AUDIENCE });
    expect(() => fapi.authorization({} as express.Request)).toThrow('fapi-guard: authorization() on a request no protect() let through');
  });

  it('an unknown or mistyped adapter option stops start-up', () => {
    const options = { issuer: issuer.issuer, audience: AUDIENCE, publicUrl: AUDIENCE };
    expect(() => fapiGuard(options, { propery: 'fapi' } as never)).toThrow('fapi-guard: unknown @fapi-guard/express option "propery"');
    expect(() => fapiGuard(options, { property: '' })).toThrow('option property must be a non-empty string');
  });

  /** Type-checks `source` in a directory of the repository (packages resolve as an app's would), libraries included. */
  function typeErrors(source: string): string[] {
    const dir = mkdtempSync(join(__dirname, '.side-by-side-'));
    try {
      const file = join(dir, 'app.ts');
      writeFileSync(file, source);
      const program = ts.createProgram([file], {
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        target: ts.ScriptTarget.ES2022,
        types: ['node'],
      });
      return ts.getPreEmitDiagnostics(program).map((d) => `TS${d.code}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const appSource = (entry: string) => `
import express from 'express';
import { auth, requiredScopes } from 'express-oauth2-jwt-bearer';
import { fapiGuard } from '${entry}';
const fapi = fapiGuard({ issuer: 'https://as.example', audience: 'https://api.example' }, { property: 'fapi' });
const app = express();
app.get('/v1/accounts', auth(), requiredScopes('accounts'), (req, res) => { res.json(req.auth?.payload.client_id); });
app.get('/v2/accounts', fapi.protect({ scopes: ['accounts'] }), (req, res) => { res.json(fapi.authorization(req).clientId); });
`;

  it('both packages type-check together with @fapi-guard/express/side-by-side; the main entry clashes (TS2717)', () => {
    expect(typeErrors(appSource('@fapi-guard/express/side-by-side'))).toEqual([]);
    expect(typeErrors(appSource('@fapi-guard/express'))).toContain('TS2717');
  }, 60_000);
});
