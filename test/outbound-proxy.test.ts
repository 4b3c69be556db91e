/**
 * Egress through a forward proxy (`outbound`): discovery, JWK set and introspection fetches go
 * through a real proxy on loopback — absolute form for http targets (RFC 9112 §3.2.2), a CONNECT
 * tunnel with TLS end to end for https targets (RFC 9110 §9.3.6) — `NO_PROXY` excludes hosts, and
 * a proxy that is down is a 503 with Retry-After until it is back.
 */
import { createHash } from 'node:crypto';
import { Agent, createServer, request as httpRequest, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, connect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createGuard, type GuardOptions } from '@fapi-guard/core';
import { createCertificate, MockIssuer } from '@fapi-guard/testing';
import { startExpressApp } from './support/express-app';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';

/** A forward proxy: forwards absolute-form requests, opens CONNECT tunnels, and counts both. */
class ForwardProxy {
  readonly forwarded: string[] = [];
  readonly tunnels: string[] = [];
  readonly authorizations: (string | undefined)[] = [];
  refuseConnect = false;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  async start(port = 0): Promise<this> {
    const server = createServer((req, res) => {
      this.forwarded.push(String(req.url));
      this.authorizations.push(req.headers['proxy-authorization']);
      const target = new URL(String(req.url));
      const { 'proxy-authorization': _, ...headers } = req.headers;
      const upstream = httpRequest(target, { method: req.method, headers, agent: false }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', () => res.writeHead(502).end());
      req.pipe(upstream);
    });
    server.on('connect', (req, client: Socket) => {
      this.tunnels.push(String(req.url));
      this.authorizations.push(req.headers['proxy-authorization']);
      if (this.refuseConnect) {
        client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
        return;
      }
      const [host, port] = String(req.url).split(':') as [string, string];
      const upstream = connect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on('close', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

let as: MockIssuer;
let proxy: ForwardProxy;
beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
});
afterAll(() => as.stop());
beforeEach(async () => {
  proxy = await new ForwardProxy().start();
});
afterEach(() => proxy.stop());

async function withApi(options: Partial<GuardOptions>, run: (get: (token: string) => ReturnType<typeof send>) => Promise<void>) {
  const api = await startExpressApp(
    { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger: false, ...options } as GuardOptions,
    (app, fapi) => {
      app.get('/accounts', fapi.protect({ scopes: ['accounts'], allowBearer: true }), (_req, res) => void res.json({ ok: true }));
    },
  );
  try {
    await run((token) => send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${token}` } }));
  } finally {
    await api.close();
  }
}

const PROXY_VARIABLES = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY'];

/** Runs with exactly these proxy variables set (and no others), then restores the environment. */
async function withProxyEnv(vars: Record<string, string>, run: () => Promise<void>): Promise<void> {
  const saved = PROXY_VARIABLES.map((name) => [name, process.env[name]] as const);
  for (const name of PROXY_VARIABLES) delete process.env[name];
  Object.assign(process.env, vars);
  try {
    await run();
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

describe('outbound.proxy', () => {
  it('DEC-09 discovery and the JWK set go through the proxy in absolute form, with its credentials', async () => {
    await withApi({ outbound: { proxy: `http://rs:s%3Acret@127.0.0.1:${proxy.port}` } }, async (get) => {
      expect((await get(await as.mint({ scope: 'accounts' }))).status).toBe(200);
    });
    expect(proxy.forwarded).toEqual([`${as.issuer}/.well-known/oauth-authorization-server`, as.jwksUri]);
    expect(proxy.authorizations).toEqual([`Basic ${Buffer.from('rs:s:cret').toString('base64')}`, expect.any(String)]);
  });

  it('INTRO-05 introspection over https goes through a CONNECT tunnel; TLS and the client certificate stay end to end', async () => {
    const ca = await createCertificate({ subject: 'CN=CA', ca: true });
    const serverCert = await createCertificate({ hosts: ['127.0.0.1'], issuer: ca });
    const rsCert = await createCertificate({ subject: 'CN=rs-client', issuer: ca });
    let seen: string | undefined;
    const endpoint = createHttpsServer(
      { cert: serverCert.cert, key: serverCert.key, requestCert: true, rejectUnauthorized: false },
      (req, res) => {
        const raw = (req.socket as TLSSocket).getPeerCertificate().raw;
        seen = raw ? createHash('sha256').update(raw).digest('base64url') : undefined;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ active: true, iss: as.issuer, aud: AUDIENCE, client_id: 'c', scope: 'accounts' }));
      },
    );
    await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', () => r()));
    const authority = `127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
    const introspection = (trusted: string) => ({
      endpoint: `https://${authority}/introspect`,
      ca: trusted,
      clientId: 'rs-client',
      clientAuth: { method: 'tls_client_auth' as const, cert: rsCert.cert, key: rsCert.key },
      cache: false as const,
    });
    try {
      await withApi({ tokenFormat: 'opaque', introspection: introspection(ca.cert), outbound: { proxy: proxy.url } }, async (get) => {
        expect((await get('opaque-token-value')).status).toBe(200);
        expect(seen).toBe(rsCert.x5t);
        expect(proxy.tunnels).toEqual([authority]);
        // The proxy refuses the tunnel: 503, not a direct connection around it.
        proxy.refuseConnect = true;
        const refused = await get('opaque-token-value');
        expect(refused.status).toBe(503);
        expect(refused.headers['retry-after']).toBeDefined();
        expect(proxy.tunnels).toHaveLength(2);
      });
      // The tunnel does not weaken the certificate check: a CA that did not issue the server's is refused.
      const other = await createCertificate({ subject: 'CN=Other CA', ca: true });
      await withApi({ tokenFormat: 'opaque', introspection: introspection(other.cert), outbound: { proxy: proxy.url } }, async (get) => {
        expect((await get('opaque-token-value')).status).toBe(503);
        expect(seen).toBe(rsCert.x5t);
        expect(proxy.tunnels).toHaveLength(3);
      });
    } finally {
      endpoint.closeAllConnections();
      endpoint.close();
    }
  });

  it("DEC-09 proxy: 'env' uses HTTP_PROXY, and NO_PROXY sends the issuer's host around it", async () => {
    await withProxyEnv({ HTTP_PROXY: proxy.url }, () =>
      withApi({ outbound: { proxy: 'env' } }, async (get) => {
        expect((await get(await as.mint({ scope: 'accounts' }))).status).toBe(200);
      }),
    );
    expect(proxy.forwarded).toHaveLength(2);
    const direct = as.requests.jwks;
    await withProxyEnv({ HTTP_PROXY: proxy.url, NO_PROXY: 'example.com,127.0.0.1' }, () =>
      withApi({ outbound: { proxy: 'env' } }, async (get) => {
        expect((await get(await as.mint({ scope: 'accounts' }))).status).toBe(200);
      }),
    );
    expect(proxy.forwarded).toHaveLength(2);
    expect(as.requests.jwks).toBe(direct + 1);
    // Without `outbound`, proxy variables are not read: egress stays as configured in code.
    await withProxyEnv({ HTTP_PROXY: proxy.url }, () =>
      withApi({}, async (get) => {
        expect((await get(await as.mint({ scope: 'accounts' }))).status).toBe(200);
      }),
    );
    expect(proxy.forwarded).toHaveLength(2);
  });

  it('DEC-09 a proxy that is down is a 503 with Retry-After; the guard recovers once it is back', async () => {
    const port = proxy.port;
    await proxy.stop();
    await withApi({ outbound: { proxy: `http://127.0.0.1:${port}` }, keys: { cooldownMs: 0 } }, async (get) => {
      const token = await as.mint({ scope: 'accounts' });
      const down = await get(token);
      expect(down.status).toBe(503);
      expect(down.headers['retry-after']).toMatch(/^\d+$/);
      proxy = await new ForwardProxy().start(port);
      expect((await get(token)).status).toBe(200);
      expect(proxy.forwarded).toHaveLength(2);
    });
  });

  it("uses the application's agent for every call when given one", async () => {
    let connections = 0;
    class CountingAgent extends Agent {
      override createConnection(...args: Parameters<Agent['createConnection']>) {
        connections++;
        return super.createConnection(...args);
      }
    }
    const agent = new CountingAgent();
    await withApi({ outbound: { agent } }, async (get) => {
      expect((await get(await as.mint({ scope: 'accounts' }))).status).toBe(200);
    });
    agent.destroy();
    expect(connections).toBe(2);
  });

  it('refuses at start-up a proxy URL that is not http://, a proxy with an agent, and an unknown key', () => {
    const base = { issuer: as.issuer, audience: AUDIENCE };
    expect(() => createGuard({ ...base, outbound: { proxy: 'https://proxy.example:3128' } })).toThrow(/must be an http:\/\/ proxy URL/);
    expect(() => createGuard({ ...base, outbound: { proxy: 'proxy.example' } })).toThrow(/outbound.proxy is not a URL/);
    expect(() => createGuard({ ...base, outbound: { proxy: 'env', agent: new Agent() } })).toThrow(/cannot be combined/);
    expect(() => createGuard({ ...base, outbound: { proxi: 'env' } as never })).toThrow(/outbound.proxi/);
  });
});
