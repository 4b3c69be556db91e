/**
 * The one outbound path in-process (tokens/http.ts): URL check before sending, size bounds, the
 * deadline, status and media type as answered, a forward proxy in absolute form, and how
 * `outbound` options resolve. Servers on 127.0.0.1; the CONNECT tunnel and TLS through it are
 * proven in test/outbound-proxy.test.ts.
 */
import { Agent, createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, connect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createCertificate, type TestCertificate } from '@fapi-guard/testing';
import { exchange, hostOf, postForm, resolveOutbound, ServiceUnavailable } from '../src/tokens/http';

interface Seen {
  method: string | undefined;
  url: string | undefined;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A server that records each request and answers with `handler`. */
async function listen(handler: (req: IncomingMessage, res: import('node:http').ServerResponse) => void) {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      handler(req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    seen,
    origin,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

const get = (url: string, extra: Partial<Parameters<typeof exchange>[1]> = {}) =>
  exchange(url, { method: 'GET', headers: { accept: 'application/json' }, timeoutMs: 2000, maxBytes: 100, what: 'jwks_uri', ...extra });

describe('exchange', () => {
  let target: Awaited<ReturnType<typeof listen>>;
  beforeAll(async () => {
    target = await listen((req, res) => {
      if (req.url === '/declared-large') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '101' });
        res.end('x'.repeat(101));
      } else if (req.url === '/streamed-large') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('x'.repeat(60));
        setTimeout(() => res.end('x'.repeat(60)), 20);
      } else if (req.url === '/exact') {
        res.writeHead(200, { 'content-type': 'Application/JSON; Charset=UTF-8' });
        res.end('y'.repeat(100));
      } else if (req.url === '/silent') {
        // never answers
      } else if (req.url === '/slow-body') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{');
      } else if (req.url === '/cut') {
        // The connection drops in the middle of the declared body.
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '50' });
        res.write('{"keys":');
        setTimeout(() => res.socket?.destroy(), 20);
      } else if (req.url === '/redirect') {
        res.writeHead(302, { location: '/exact' });
        res.end();
      } else {
        res.writeHead(201);
        res.end('created');
      }
    });
  });
  afterAll(() => target.close());

  it('FAPI 2.0 §5.2.1 refuses a plain http URL off loopback before sending anything', async () => {
    const call = get('http://as.example.com/jwks');
    await expect(call).rejects.toBeInstanceOf(ServiceUnavailable);
    await expect(call).rejects.toThrow('jwks_uri "http://as.example.com/jwks" must use https');
  });

  it('answers the status, the media type in lower case and the body; a 3xx is an answer, never followed', async () => {
    expect(await get(`${target.origin}/exact`)).toEqual({
      status: 200,
      contentType: 'application/json; charset=utf-8',
      body: 'y'.repeat(100),
    });
    expect(await get(`${target.origin}/redirect`)).toEqual({ status: 302, contentType: '', body: '' });
    expect(target.seen.at(-1)?.url).toBe('/redirect');
  });

  it('refuses a Content-Length past maxBytes before reading the body', async () => {
    await expect(get(`${target.origin}/declared-large`)).rejects.toThrow(
      `GET jwks_uri ${target.origin}: Content-Length 101 exceeds 100 bytes`,
    );
  });

  it('drops an answer without Content-Length at the first chunk past maxBytes', async () => {
    const call = get(`${target.origin}/streamed-large`);
    await expect(call).rejects.toBeInstanceOf(ServiceUnavailable);
    await expect(call).rejects.toThrow(`GET jwks_uri ${target.origin}: answer exceeds 100 bytes`);
  });

  it('DEC-09 a deadline for the whole exchange: no answer, or a body that never ends', async () => {
    await expect(get(`${target.origin}/silent`, { timeoutMs: 200 })).rejects.toThrow(`GET jwks_uri ${target.origin}: no answer in 200 ms`);
    await expect(get(`${target.origin}/slow-body`, { timeoutMs: 200 })).rejects.toBeInstanceOf(ServiceUnavailable);
  });

  it('DEC-09 a connection that drops in the middle of the body is a ServiceUnavailable naming the call', async () => {
    const call = get(`${target.origin}/cut`);
    await expect(call).rejects.toBeInstanceOf(ServiceUnavailable);
    await expect(call).rejects.toThrow(new RegExp(`^GET jwks_uri ${target.origin.replace(/\./g, '\\.')}: \\w`));
  });

  it('leaves no timer behind once the answer is in (the deadline is cleared when the exchange closes)', async () => {
    const deadlines: NodeJS.Timeout[] = [];
    const setTimer = global.setTimeout;
    const spy = jest.spyOn(global, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      const timer = setTimer(fn, ms);
      if (ms === 60_000) deadlines.push(timer);
      return timer;
    }) as typeof setTimeout);
    try {
      await get(`${target.origin}/exact`, { timeoutMs: 60_000 });
    } finally {
      spy.mockRestore();
    }
    await new Promise((resolve) => setImmediate(resolve));
    expect(deadlines).toHaveLength(1);
    // Node marks a cleared (or run) timer destroyed.
    expect((deadlines[0] as unknown as { _destroyed: boolean })._destroyed).toBe(true);
  });

  it('DEC-09 a refused connection is a ServiceUnavailable naming the call', async () => {
    const call = get('http://127.0.0.1:1/jwks');
    await expect(call).rejects.toBeInstanceOf(ServiceUnavailable);
    await expect(call).rejects.toThrow(/^GET jwks_uri http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
  });

  it('postForm sends the body with its Content-Length and the headers given', async () => {
    const body = 'token=abc&x=%C3%A9';
    const answer = await postForm(`${target.origin}/form`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
      timeoutMs: 2000,
      what: 'introspection_endpoint',
    });
    expect(answer).toEqual({ status: 201, contentType: '', body: 'created' });
    const request = target.seen.at(-1);
    expect(request?.method).toBe('POST');
    expect(request?.body).toBe(body);
    expect(request?.headers['content-length']).toBe(String(body.length));
    expect(request?.headers['content-type']).toBe('application/x-www-form-urlencoded');
  });

  it("uses the application's agent when one is given", async () => {
    const agent = new Agent({ keepAlive: false });
    let used = 0;
    const createConnection = agent.createConnection.bind(agent);
    agent.createConnection = ((...args: Parameters<typeof createConnection>) => {
      used++;
      return createConnection(...args);
    }) as typeof agent.createConnection;
    await get(`${target.origin}/exact`, { outbound: { agent, proxyFor: () => undefined } });
    expect(used).toBe(1);
    agent.destroy();
  });
});

describe('exchange through a forward proxy (RFC 9112 §3.2.2 absolute form)', () => {
  it('sends the whole target URL to the proxy, with the target Host and the proxy credentials decoded', async () => {
    const proxy = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"via":"proxy"}');
    });
    try {
      const outbound = resolveOutbound({ proxy: `${proxy.origin.replace('http://', 'http://us%40er:p%3Ass@')}` });
      const answer = await get('http://localhost:4999/jwks?x=1', { outbound });
      expect(answer.body).toBe('{"via":"proxy"}');
      const [request] = proxy.seen;
      expect(request?.url).toBe('http://localhost:4999/jwks?x=1');
      expect(request?.headers.host).toBe('localhost:4999');
      expect(request?.headers['proxy-authorization']).toBe(`Basic ${Buffer.from('us@er:p:ss').toString('base64')}`);
      // Without credentials, no Proxy-Authorization; a user name or a password alone is sent.
      await get('http://localhost:4999/jwks', { outbound: resolveOutbound({ proxy: proxy.origin }) });
      expect(proxy.seen[1]?.headers['proxy-authorization']).toBeUndefined();
      await get('http://localhost:4999/jwks', { outbound: resolveOutbound({ proxy: proxy.origin.replace('http://', 'http://user@') }) });
      expect(proxy.seen[2]?.headers['proxy-authorization']).toBe(`Basic ${Buffer.from('user:').toString('base64')}`);
      await get('http://localhost:4999/jwks', { outbound: resolveOutbound({ proxy: proxy.origin.replace('http://', 'http://:secret@') }) });
      expect(proxy.seen[3]?.headers['proxy-authorization']).toBe(`Basic ${Buffer.from(':secret').toString('base64')}`);
    } finally {
      await proxy.close();
    }
  });
});

describe('exchange through a CONNECT tunnel (RFC 9110 §9.3.6): https targets, TLS end to end', () => {
  let ca: TestCertificate;
  let origin: Server;
  let authority: string;
  /** Requests the origin got through the tunnel, with the TLS server name the client sent (SNI, RFC 6066 §3). */
  const inside: Array<{ url: string | undefined; host: string | undefined; sni: string | false | null }> = [];
  /** CONNECT requests the proxy saw (request target, Host, Proxy-Authorization); `refuse` answers 403. */
  const tunnels: Array<{ url: string | undefined; host: string | undefined; authorization: string | undefined }> = [];
  let refuse = false;
  let proxy: Server;
  let proxyUrl: string;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    ca = await createCertificate({ subject: 'CN=CA', ca: true });
    const cert = await createCertificate({ hosts: ['127.0.0.1', 'as.example.com'], issuer: ca });
    origin = createHttpsServer({ cert: cert.cert, key: cert.key }, (req, res) => {
      inside.push({ url: req.url, host: req.headers.host, sni: (req.socket as TLSSocket).servername });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"via":"tunnel"}');
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    authority = `127.0.0.1:${(origin.address() as AddressInfo).port}`;
    proxy = createServer();
    proxy.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    proxy.on('connect', (req, client: Socket) => {
      tunnels.push({ url: req.url, host: req.headers.host, authorization: req.headers['proxy-authorization'] });
      if (refuse) {
        client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
        return;
      }
      // as.example.com:443 is this test's origin server (its certificate names that host too).
      const [host, port] = req.url === 'as.example.com:443' ? authority.split(':') : String(req.url).split(':');
      const upstream = connect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.on('close', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    origin.closeAllConnections();
    await new Promise((resolve) => proxy.close(resolve));
    await new Promise((resolve) => origin.close(resolve));
  });
  beforeEach(() => {
    refuse = false;
    tunnels.length = 0;
    inside.length = 0;
  });

  it('asks the proxy for a tunnel to host:port, then sends the request inside it with the target’s Host and path', async () => {
    const outbound = resolveOutbound({ proxy: proxyUrl.replace('http://', 'http://rs:s%3Acret@') });
    const answer = await get(`https://${authority}/jwks?x=1`, { outbound, tls: { ca: ca.cert } });
    expect(answer).toEqual({ status: 200, contentType: 'application/json', body: '{"via":"tunnel"}' });
    expect(tunnels).toEqual([{ url: authority, host: authority, authorization: `Basic ${Buffer.from('rs:s:cret').toString('base64')}` }]);
    // No server name for an IP address (RFC 6066 §3).
    expect(inside).toEqual([{ url: '/jwks?x=1', host: authority, sni: false }]);
  });

  it('a target on the default port: CONNECT to host:443, Host without the port, the certificate checked for the name', async () => {
    const outbound = resolveOutbound({ proxy: proxyUrl });
    expect(await get('https://as.example.com/jwks', { outbound, tls: { ca: ca.cert } })).toMatchObject({ status: 200 });
    expect(tunnels.map((t) => t.url)).toEqual(['as.example.com:443']);
    expect(inside).toEqual([{ url: '/jwks', host: 'as.example.com', sni: 'as.example.com' }]);
  });

  it('verifies the target’s certificate through the tunnel: a CA it does not trust is a ServiceUnavailable', async () => {
    const outbound = resolveOutbound({ proxy: proxyUrl });
    await expect(get(`https://${authority}/jwks`, { outbound })).rejects.toBeInstanceOf(ServiceUnavailable);
    expect(inside).toEqual([]);
  });

  it('DEC-09 a refused CONNECT is a ServiceUnavailable that names the proxy, the tunnel and the status; the default port is 443', async () => {
    refuse = true;
    const outbound = resolveOutbound({ proxy: proxyUrl });
    const proxyHost = new URL(proxyUrl).host;
    await expect(get(`https://${authority}/jwks`, { outbound, tls: { ca: ca.cert } })).rejects.toThrow(
      new ServiceUnavailable(`proxy ${proxyHost} refused CONNECT ${authority}: 403`),
    );
    await expect(get('https://as.example.com/jwks', { outbound })).rejects.toThrow(
      new ServiceUnavailable(`proxy ${proxyHost} refused CONNECT as.example.com:443: 403`),
    );
    expect(tunnels.map((t) => t.url)).toEqual([authority, 'as.example.com:443']);
  });

  it('DEC-09 a proxy that is down is a ServiceUnavailable that names it', async () => {
    const outbound = resolveOutbound({ proxy: 'http://127.0.0.1:1' });
    await expect(get(`https://${authority}/jwks`, { outbound })).rejects.toThrow(/^proxy 127\.0\.0\.1:1: .*ECONNREFUSED/);
  });
});

describe('exchange over https directly', () => {
  let ca: TestCertificate;
  let client: TestCertificate;
  let origin: Server;
  let url: string;
  /** TLS connections the origin accepted, and the client certificate each request came with. */
  let connections = 0;
  const presented: Array<string | undefined> = [];

  beforeAll(async () => {
    ca = await createCertificate({ subject: 'CN=CA', ca: true });
    const cert = await createCertificate({ hosts: ['127.0.0.1'], issuer: ca });
    client = await createCertificate({ subject: 'CN=rs-client', issuer: ca });
    origin = createHttpsServer({ cert: cert.cert, key: cert.key, requestCert: true, rejectUnauthorized: false }, (req, res) => {
      presented.push((req.socket as TLSSocket).getPeerCertificate().subject?.CN as string | undefined);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    origin.on('secureConnection', () => connections++);
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(origin.address() as AddressInfo).port}/introspect`;
  });
  afterAll(async () => {
    origin.closeAllConnections();
    await new Promise((resolve) => origin.close(resolve));
  });

  it('trusts the CA given, and presents the client certificate on a connection of its own each time (never a pooled one)', async () => {
    connections = 0;
    presented.length = 0;
    expect(await get(url, { tls: { ca: ca.cert } })).toMatchObject({ status: 200 });
    const tls = { ca: ca.cert, cert: client.cert, key: client.key };
    expect(await get(url, { tls })).toMatchObject({ status: 200 });
    expect(await get(url, { tls })).toMatchObject({ status: 200 });
    expect(presented).toEqual([undefined, 'rs-client', 'rs-client']);
    expect(connections).toBe(3);
  });

  it('FAPI 2.0 §5.2.1 refuses a server whose certificate no trusted CA signed', async () => {
    await expect(get(url)).rejects.toThrow(/^GET jwks_uri https:\/\/127\.0\.0\.1:\d+: unable to verify the first certificate$/);
  });

  it('DEC-09 a failure before anything is sent (the proxy for the URL cannot be known) is a ServiceUnavailable naming the call', async () => {
    const outbound = {
      proxyFor: () => {
        throw new ServiceUnavailable('HTTPS_PROXY is not a URL');
      },
    };
    await expect(get(url, { outbound })).rejects.toThrow(
      new ServiceUnavailable(`GET jwks_uri ${new URL(url).origin}: HTTPS_PROXY is not a URL`),
    );
  });
});

describe('hostOf', () => {
  it('connects to an IPv6 literal without its brackets, to a name or IPv4 address as written', () => {
    expect(hostOf(new URL('http://[::1]:3128'))).toBe('::1');
    expect(hostOf(new URL('https://[2001:db8::7]/jwks'))).toBe('2001:db8::7');
    expect(hostOf(new URL('http://proxy.internal:3128'))).toBe('proxy.internal');
    expect(hostOf(new URL('http://127.0.0.1:3128'))).toBe('127.0.0.1');
  });
});

describe('resolveOutbound', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const name of ['HTTPS_PROXY', 'HTTP_PROXY', 'ALL_PROXY', 'NO_PROXY', 'https_proxy', 'http_proxy', 'all_proxy', 'no_proxy']) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  });

  it('nothing to resolve without a proxy or an agent', () => {
    expect(resolveOutbound(undefined)).toBeUndefined();
    expect(resolveOutbound({})).toBeUndefined();
  });

  it('refuses a proxy with an agent, a proxy that is not a URL, and one not spoken to in plain http, at start-up', () => {
    expect(() => resolveOutbound({ proxy: 'http://p:3128', agent: new Agent() })).toThrow(
      new TypeError('fapi-guard: outbound.proxy and outbound.agent cannot be combined (the agent decides how to connect)'),
    );
    expect(() => resolveOutbound({ proxy: 'proxy:3128:x' })).toThrow(
      new TypeError('fapi-guard: outbound.proxy must be an http:// proxy URL (got proxy:)'),
    );
    expect(() => resolveOutbound({ proxy: 'not a url' })).toThrow(new TypeError('fapi-guard: outbound.proxy is not a URL'));
    expect(() => resolveOutbound({ proxy: 'https://p:3128' })).toThrow(
      new TypeError('fapi-guard: outbound.proxy must be an http:// proxy URL (got https:)'),
    );
  });

  it('a fixed proxy serves every target', () => {
    const outbound = resolveOutbound({ proxy: 'http://p.internal:3128' });
    expect(outbound?.proxyFor(new URL('https://as.example.com/jwks'))?.href).toBe('http://p.internal:3128/');
    expect(outbound?.agent).toBeUndefined();
  });

  it('an agent alone: the agent, no proxy (the proxy variables are not read)', () => {
    process.env.HTTPS_PROXY = 'http://envproxy:8080';
    process.env.HTTP_PROXY = 'http://envproxy:8080';
    const agent = new Agent();
    const outbound = resolveOutbound({ agent });
    expect(outbound?.agent).toBe(agent);
    expect(outbound?.proxyFor(new URL('https://as.example.com'))).toBeUndefined();
  });

  it("'env' reads the variables at each call, NO_PROXY excepted; a bad variable is a 503 then, not a start-up error", () => {
    const outbound = resolveOutbound({ proxy: 'env' });
    delete process.env.HTTPS_PROXY;
    delete process.env.https_proxy;
    delete process.env.ALL_PROXY;
    delete process.env.all_proxy;
    expect(outbound?.proxyFor(new URL('https://as.example.com/jwks'))).toBeUndefined();
    process.env.HTTPS_PROXY = 'http://envproxy:8080';
    expect(outbound?.proxyFor(new URL('https://as.example.com/jwks'))?.href).toBe('http://envproxy:8080/');
    process.env.NO_PROXY = 'as.example.com';
    expect(outbound?.proxyFor(new URL('https://as.example.com/jwks'))).toBeUndefined();
    delete process.env.NO_PROXY;
    process.env.HTTPS_PROXY = 'https://envproxy:8443';
    let thrown: unknown;
    try {
      outbound?.proxyFor(new URL('https://as.example.com/jwks'));
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ServiceUnavailable);
    expect((thrown as Error).message).toBe('fapi-guard: HTTPS_PROXY / HTTP_PROXY must be an http:// proxy URL (got https:)');
  });
});
