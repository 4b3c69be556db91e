/**
 * The migration guide from express-oauth2-jwt-bearer, proven: the same routes served by an app
 * written for that library and by the migrated app, the same requests sent to both, and the table
 * of what changes compared with the one printed in docs/migration-express-oauth2-jwt-bearer.md.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fapiGuard } from '@fapi-guard/express';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import express from 'express';
import { auth, requiredScopes } from 'express-oauth2-jwt-bearer';

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
