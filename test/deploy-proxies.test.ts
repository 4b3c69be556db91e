/**
 * The proxy configurations of docs/deploy/, run for real: Debian's nginx, HAProxy and Caddy
 * terminate TLS with client certificates on a free loopback port in front of the protected API,
 * and forward the certificate (RFC 9440 `Client-Cert`, or nginx's URL-encoded PEM), the
 * `X-Forwarded-*` headers and the request. A missing binary is a failure: `.ci/run` (and
 * `npm test`'s pretest) installs them with tools/ensure-test-tools.sh.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientCertificateFormat } from '@fapi-guard/core';
import { createCertificate, DpopClient, MockIssuer, type TestCertificate } from '@fapi-guard/testing';
import { type Framework, type StartedApp, startApp } from './support/apps';
import { send } from './support/http';

const DOCS = join(__dirname, '..', 'docs', 'deploy');
const AUDIENCE = 'https://payments.example';

interface ProxyCase {
  name: 'nginx' | 'haproxy' | 'caddy';
  file: string;
  /** The header the proxy writes and its format. */
  header: string;
  format: ClientCertificateFormat;
  /** A different adapter behind each proxy: the proxy, not the framework, is under test. */
  framework: Framework;
  /** Command line for a config file in `dir`. */
  command(config: string, dir: string): { bin: string; args: string[]; env?: NodeJS.ProcessEnv };
  /** The documented file as this test runs it (wrapped where the file is a fragment). */
  wrap(doc: string, dir: string): string;
}

const CASES: ProxyCase[] = [
  {
    name: 'nginx',
    file: 'nginx.conf',
    header: 'x-ssl-client-cert',
    format: 'nginx',
    framework: 'express',
    command: (config, dir) => ({ bin: 'nginx', args: ['-c', config, '-p', dir, '-e', join(dir, 'error.log')] }),
    // The documented `server` block inside a main configuration whose every path is in `dir`.
    wrap: (doc, dir) => `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${doc}
}
`,
  },
  {
    name: 'haproxy',
    file: 'haproxy.cfg',
    header: 'client-cert',
    format: 'rfc9440',
    framework: 'koa',
    command: (config) => ({ bin: 'haproxy', args: ['-db', '-f', config] }),
    wrap: (doc, dir) => `global\n    pidfile ${dir}/haproxy.pid\n\n${doc}`,
  },
  {
    name: 'caddy',
    file: 'Caddyfile',
    header: 'client-cert',
    format: 'rfc9440',
    framework: 'fastify',
    command: (config, dir) => ({
      bin: 'caddy',
      args: ['run', '--adapter', 'caddyfile', '--config', config],
      env: { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
    }),
    // No admin endpoint, no automatic certificates, state in `dir`: added to the global options.
    wrap: (doc, dir) =>
      render(doc, {
        '    servers {': `    admin off\n    auto_https off\n    storage file_system ${dir}/storage\n    default_sni localhost\n    servers {`,
      }),
  },
];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolves once `port` accepts connections; rejects when `proc` exits first or after 15 s. */
async function listening(port: number, proc: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`exited (${proc.exitCode ?? proc.signalCode}): ${log()}`);
    const up = await new Promise<boolean>((resolve) => {
      const socket = netConnect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not listening on ${port} after 15 s: ${log()}`);
}

/** Replaces each documented deployment value; every one must be in the file (else the docs drifted). */
function render(doc: string, values: Record<string, string>): string {
  let out = doc;
  for (const [from, to] of Object.entries(values)) {
    if (!out.includes(from)) throw new Error(`docs/deploy: "${from}" not found`);
    out = out.replaceAll(from, to);
  }
  return out;
}

describe.each(CASES)('$name in front of the API (docs/deploy/$file)', (proxy) => {
  let dir: string;
  let proc: ChildProcess;
  let app: StartedApp;
  let issuer: MockIssuer;
  let server: TestCertificate;
  let client: TestCertificate;
  let other: TestCertificate;
  let port: number;
  let output = '';
  const origins = () => [`https://localhost:${port}`, `https://127.0.0.1:${port}`];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `fapi-${proxy.name}-`));
    [server, client, other] = await Promise.all([
      createCertificate({ subject: 'CN=localhost', hosts: ['localhost', '127.0.0.1'] }),
      createCertificate({ subject: 'CN=tpp-client' }),
      createCertificate({ subject: 'CN=other-client' }),
    ]);
    // HAProxy wants a CA file for `verify optional`; this CA signed none of the client certificates.
    const unrelatedCa = await createCertificate({ subject: 'CN=unrelated CA', ca: true });
    writeFileSync(join(dir, 'server.crt'), server.cert);
    writeFileSync(join(dir, 'server.key'), server.key);
    writeFileSync(join(dir, 'server.pem'), `${server.cert.trimEnd()}\n${server.key}`);
    writeFileSync(join(dir, 'client-ca.pem'), unrelatedCa.cert);
    issuer = await MockIssuer.start({ audience: AUDIENCE });
    port = await freePort();
    app = await startApp(proxy.framework, {
      issuer: issuer.issuer,
      audience: AUDIENCE,
      publicUrl: origins(),
      trustedProxies: ['127.0.0.1'],
      mtls: { proxy: { format: proxy.format, header: proxy.header, trustedPeers: ['127.0.0.1'] } },
    });
    const doc = readFileSync(join(DOCS, proxy.file), 'utf8');
    const config = join(dir, proxy.file);
    writeFileSync(
      config,
      proxy.wrap(
        render(doc, {
          '0.0.0.0': '127.0.0.1',
          ':443': `:${port}`,
          '127.0.0.1:3000': new URL(app.url).host,
          '/etc/fapi/': `${dir}/`,
        }),
        dir,
      ),
    );
    const { bin, args, env } = proxy.command(config, dir);
    proc = spawn(bin, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const spawned = new Promise<void>((resolve, reject) => {
      proc.once('spawn', resolve);
      proc.once('error', (e) => reject(new Error(`${bin} could not start (${e.message}): run tools/ensure-test-tools.sh`)));
    });
    proc.stdout?.on('data', (c) => (output += c));
    proc.stderr?.on('data', (c) => (output += c));
    await spawned;
    await listening(port, proc, () => output);
  });

  afterAll(async () => {
    if (proc && proc.exitCode === null) {
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGTERM');
      await exited;
    }
    await app?.close();
    await issuer?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const tls = (cert?: TestCertificate) => ({ ca: server.cert, ...(cert ? { cert: cert.cert, key: cert.key } : {}) });

  it(`MTLS-08 MTLS-01 the bound certificate passes through ${proxy.name}; another certificate or none fails`, async () => {
    const token = await issuer.mint({ scope: 'accounts', x5t: client.x5t });
    const headers = { authorization: `Bearer ${token}` };
    const ok = await send(`https://127.0.0.1:${port}/accounts`, { headers, tls: tls(client) });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ binding: { type: 'mtls', x5t: client.x5t } });
    expect((await send(`https://127.0.0.1:${port}/accounts`, { headers, tls: tls(other) })).status).toBe(401);
    expect((await send(`https://127.0.0.1:${port}/accounts`, { headers, tls: tls() })).status).toBe(401);
  });

  it(`15.2 header smuggling: a certificate header the client writes is overwritten or dropped by ${proxy.name}`, async () => {
    const token = await issuer.mint({ scope: 'accounts', x5t: client.x5t });
    const forged = proxy.format === 'nginx' ? encodeURIComponent(client.cert) : `:${Buffer.from(client.der).toString('base64')}:`;
    const headers = { authorization: `Bearer ${token}`, [proxy.header]: forged };
    // With no certificate of its own, and with another one: the bound certificate named in a header proves nothing.
    expect((await send(`https://127.0.0.1:${port}/accounts`, { headers, tls: tls() })).status).toBe(401);
    expect((await send(`https://127.0.0.1:${port}/accounts`, { headers, tls: tls(other) })).status).toBe(401);
    // The same request with the certificate in the handshake: the forged header did not make it invalid either.
    expect((await send(`https://127.0.0.1:${port}/accounts`, { headers, tls: tls(client) })).status).toBe(200);
  });

  it(`FAPI-RS-17 ${proxy.name} refuses TLS 1.1 and CBC suites`, async () => {
    const legacy = { ca: server.cert, minVersion: 'TLSv1.1' as const, maxVersion: 'TLSv1.1' as const, ciphers: 'ALL:@SECLEVEL=0' };
    await expect(send(`https://127.0.0.1:${port}/accounts`, { tls: legacy })).rejects.toThrow();
    const cbc = {
      ca: server.cert,
      maxVersion: 'TLSv1.2' as const,
      ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0',
    };
    await expect(send(`https://127.0.0.1:${port}/accounts`, { tls: cbc })).rejects.toThrow();
  });

  it(`DPoP htu on each publicUrl origin, chosen by the X-Forwarded-Host ${proxy.name} writes`, async () => {
    const dpop = await DpopClient.create('ES256');
    const token = await issuer.mint({ scope: 'accounts', jkt: dpop.jkt });
    for (const origin of origins()) {
      const { hostname } = new URL(origin);
      const url = `https://${hostname}:${port}/accounts`;
      const proof = (htuOrigin: string) => dpop.proof({ htm: 'GET', htu: `${htuOrigin}/accounts`, accessToken: token });
      const headers = async (htuOrigin: string, extra: Record<string, string> = {}) => ({
        authorization: `DPoP ${token}`,
        dpop: await proof(htuOrigin),
        ...extra,
      });
      expect((await send(url, { headers: await headers(origin), tls: tls() })).status).toBe(200);
      const otherOrigin = origins().find((o) => o !== origin) as string;
      expect((await send(url, { headers: await headers(otherOrigin), tls: tls() })).status).toBe(401);
      // The client's own X-Forwarded-Host does not move the request to the other origin.
      const spoofed = await headers(otherOrigin, { 'x-forwarded-host': new URL(otherOrigin).host });
      expect((await send(url, { headers: spoofed, tls: tls() })).status).toBe(401);
    }
  });
});
