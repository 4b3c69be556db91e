/**
 * The example API as users run it: `npm start` (dist/main.js with the embedded issuer),
 * `npm run demo`, and every route with DPoP-bound tokens over HTTP.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DecisionEvent, SignatureJwk, SignedExchangeRecord } from '@fapi-guard/core';
import { clientCertHeader, createCertificate, DpopClient, MessageSigningClient, verifySignedResponse } from '@fapi-guard/testing';
import { createVerifier, httpbis } from 'http-message-signatures';
import { send } from '../../../test/support/http';
import { type ExampleConfig, readConfig } from '../src/config';
import { createLogger, logDecisions } from '../src/log';
import { type RunningExample, startExample } from '../src/server';

const dist = join(__dirname, '..', 'dist');

/** A loopback port free a moment ago (the example's default audience names its port). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function run(
  script: string,
  env: Record<string, string>,
  args: string[] = [],
): { child: ChildProcess; output: () => string; exited: Promise<number> } {
  const child = spawn(process.execPath, [join(dist, script), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
  return { child, output: () => out, exited };
}

async function waitFor(check: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('npm start', () => {
  it('starts with the embedded issuer, prints how to call it, and answers with the DPoP challenge', async () => {
    const proc = run('main.js', { PORT: '0', HOST: '127.0.0.1', FAPI_ISSUER: '', FAPI_AUDIENCE: 'https://payments.example' });
    try {
      // The banner is several writes: wait for its last line before reading it.
      await waitFor(() => proc.output().includes('npm run demo'));
      const base = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(proc.output())?.[1] as string;
      expect(proc.output()).toContain('embedded MockIssuer');
      expect(proc.output()).toContain('npm run demo');
      expect((await fetch(`${base}/health`)).status).toBe(200);
      const res = await fetch(`${base}/accounts`);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('DPoP algs="ES256 PS256 EdDSA"');
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  });

  it('prints how to get a 200, and `npm run call` gets one with a real client (oauth4webapi)', async () => {
    const port = await freePort();
    const proc = run('main.js', { PORT: String(port), HOST: '127.0.0.1', FAPI_ISSUER: '', FAPI_AUDIENCE: '', FAPI_PUBLIC_URL: '' });
    try {
      await waitFor(() => proc.output().includes('npm run call'));
      expect(proc.output()).toContain('npm run call -- GET /accounts    → 200');
      for (const [method, path, status] of [
        ['GET', '/accounts', '200 OK'],
        ['POST', '/payments', '201 Created'],
      ]) {
        const call = run('call.js', { FAPI_API_URL: `http://127.0.0.1:${port}` }, [method as string, path as string]);
        expect(await call.exited).toBe(0);
        expect(call.output()).toContain(`${method} `);
        expect(call.output()).toContain(`→ ${status}`);
      }
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  });

  it('`npm run call` with no API at FAPI_API_URL names the URL it tried and the variable to set', async () => {
    const url = `http://127.0.0.1:${await freePort()}`; // nothing listens there
    const call = run('call.js', { FAPI_API_URL: url }, ['GET', '/accounts']);
    expect(await call.exited).toBe(1);
    expect(call.output()).toContain(`is the example running at ${url}? start it with: npm start (or set FAPI_API_URL to where it listens)`);
  });

  it('15.12 log injection: a kid with CR/LF and ANSI escapes cannot forge a log line', async () => {
    const proc = run('main.js', { PORT: '0', HOST: '127.0.0.1', FAPI_ISSUER: '', FAPI_AUDIENCE: 'https://payments.example' });
    try {
      await waitFor(() => /issuer +(http:\/\/127\.0\.0\.1:\d+)/.test(proc.output()));
      const base = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(proc.output())?.[1] as string;
      const issuer = /issuer +(http:\/\/127\.0\.0\.1:\d+)/.exec(proc.output())?.[1] as string;
      const forged = 'allow 200 POST /payments client=client-1';
      const segment = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const header = { alg: 'ES256', typ: 'at+jwt', kid: `k1"\r\n${forged}\u001b[2K` };
      const token = `${segment(header)}.${segment({ iss: issuer })}.${Buffer.alloc(64).toString('base64url')}`;
      expect((await fetch(`${base}/accounts`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
      await waitFor(() => proc.output().includes('token_key_unknown'));
      // Decisions are JSON lines: every line is the banner's text or one whole JSON object, so a
      // CR/LF in a header cannot start a line of its own.
      const lines = proc
        .output()
        .split(/\r?\n/)
        .filter((line) => line.startsWith('{'));
      const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(
        proc
          .output()
          .split(/\r?\n/)
          .filter((line) => line.startsWith('allow')),
      ).toEqual([]);
      expect(entries.filter((entry) => entry.outcome === 'allow')).toEqual([]);
      expect(proc.output()).not.toContain('\u001b');
      const deny = entries.find((entry) => entry.reason === 'token_key_unknown') as Record<string, unknown>;
      expect(deny).toMatchObject({
        msg: 'decision',
        outcome: 'deny',
        status: 401,
        method: 'GET',
        url: 'https://payments.example/accounts',
      });
      // The detail holds the kid as the guard escaped it, inside one JSON string.
      expect(deny.detail).toContain(`kid \\"k1\\"\\r\\n${forged}\\u001b[2K\\" at ${issuer}`);
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  });

  it('refuses an unsafe configuration at start-up with a message naming the variable', async () => {
    const proc = run('main.js', { PORT: '0', FAPI_ISSUER: 'http://as.example.com' });
    expect(await proc.exited).toBe(1);
    expect(proc.output()).toContain('FAPI_ISSUER "http://as.example.com" must use https');
  });
});

describe("configuration through the library's guardOptionsFromEnv", () => {
  it('reads every guard variable the library reads, so one set of names serves both', async () => {
    const config = readConfig({
      FAPI_ISSUER: 'https://as.bank.example',
      FAPI_AUDIENCE: 'https://payments.example',
      FAPI_CLOCK_TOLERANCE_SEC: '5',
      FAPI_DPOP_MAX_AGE_SEC: '30',
      FAPI_INTROSPECTION_CLIENT_ID: 'rs',
      FAPI_INTROSPECTION_CLIENT_SECRET: 's',
      FAPI_INTROSPECTION_SIGNED_RESPONSE: 'true',
    });
    expect(config.issuer).toEqual(['https://as.bank.example']);
    expect(config.guard).toMatchObject({
      clockToleranceSec: 5,
      dpop: { maxAgeSec: 30 },
      introspection: { clientId: 'rs', signedResponse: true },
    });
    // The example's own variables are declared; a typo is not a silently skipped setting.
    expect(() => readConfig({ FAPI_FRAMEWORK: 'koa', FAPI_ALLOW_BEARER: 'true', FAPI_API_URL: 'http://x' })).not.toThrow();
    expect(() => readConfig({ FAPI_AUDIENCES: 'https://payments.example' })).toThrow(
      /FAPI_AUDIENCES is not a fapi-guard variable; did you mean FAPI_AUDIENCE\?/,
    );
    expect(() => readConfig({ FAPI_INTROSPECTION_SIGNED_RESPONSE_ALG: 'ES256' })).toThrow(
      /did you mean FAPI_INTROSPECTION_SIGNED_RESPONSE\?/,
    );
  });

  it('stops at start-up on a value the guard refuses, naming the variable', async () => {
    await expect(startExample({ ...readConfig({ FAPI_CLOCK_TOLERANCE_SEC: '61' }), port: 0 })).rejects.toThrow(
      'fapi-guard: FAPI_CLOCK_TOLERANCE_SEC must be between 0 and 60 seconds',
    );
    await expect(startExample({ ...readConfig({ FAPI_ALGORITHMS: 'RS256' }), port: 0 })).rejects.toThrow(
      /FAPI_ALGORITHMS "RS256" is outside FAPI 2.0/,
    );
  });
});

/** Runs an npm script from the repository root, as the README says, in its own process group. */
function npmRun(script: string, env: Record<string, string>, args: string[] = []) {
  const child = spawn('npm', ['run', script, ...(args.length ? ['--', ...args] : [])], {
    cwd: join(__dirname, '..', '..', '..'),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/** Build output the README's commands must not print before their answer. */
const BUILD_NOISE = /turbo|Tasks:|Packages in scope|Cached:/;
/** What a command printed after npm's own two-line banner (`> start`, `> node …`). */
const answer = (output: string) =>
  output
    .split('\n')
    .filter((line) => !line.startsWith('> ') && line.trim() !== '')
    .join('\n');

describe('npm start / npm run call from the repository root', () => {
  it('answer without build output, and `npm start` stopped by its PID takes the server with it (no orphan)', async () => {
    const port = await freePort();
    const start = npmRun('start', { PORT: String(port), HOST: '127.0.0.1', FAPI_ISSUER: '', FAPI_AUDIENCE: '', FAPI_PUBLIC_URL: '' });
    try {
      await waitFor(() => start.output().includes('npm run demo'), 120_000);
      expect(answer(start.output())).not.toMatch(BUILD_NOISE);
      expect(answer(start.output())).toMatch(/^fapi-guard example payments API \(express\) on http:\/\/127\.0\.0\.1:\d+/);
      const call = npmRun('call', { FAPI_API_URL: `http://127.0.0.1:${port}` }, ['GET', '/accounts']);
      expect(await call.exited).toBe(0);
      expect(answer(call.output())).not.toMatch(BUILD_NOISE);
      expect(call.output()).toContain('→ 200 OK');
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    } finally {
      // The PID of the command the user started (npm), not of the server it runs.
      process.kill(start.child.pid as number, 'SIGTERM');
    }
    await start.exited;
    // Nothing listens on the port any more: the server went with the command.
    const stillUp = async () =>
      fetch(`http://127.0.0.1:${port}/health`).then(
        () => true,
        () => false,
      );
    const until = Date.now() + 10_000;
    while ((await stillUp()) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(await stillUp()).toBe(false);
  }, 240_000);
});

describe('decision log (src/log.ts)', () => {
  it('writes each decision as the line pino would write, at the logger level, in batches', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'fapi-log-')), 'log');
    const logger = createLogger(openSync(file, 'w'));
    const log = logDecisions(logger);
    const deny: DecisionEvent = {
      outcome: 'deny',
      status: 401,
      method: 'GET',
      url: 'https://payments.example/accounts',
      durationMs: 1.5,
      reason: 'token_key_unknown',
      detail: 'kid "k1\r\nallow 200\u001b[2K"',
    };
    const failure: DecisionEvent = { ...deny, status: 500, reason: 'internal', detail: 'unexpected: boom' };
    log(deny);
    logger.info(deny, 'decision');
    log(failure);
    logger.warn(failure, 'decision');
    // Below 4 KiB nothing is written yet: lines are batched, not written one by one.
    expect(readFileSync(file, 'utf8')).toBe('');
    logger.level = 'warn';
    log(deny);
    log(failure);
    await new Promise((resolve) => logger.flush(resolve));
    const lines = readFileSync(file, 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    const entries = lines.map((line) => {
      const { time, ...rest } = JSON.parse(line) as Record<string, unknown>;
      expect(typeof time).toBe('number');
      return rest;
    });
    expect(entries).toHaveLength(5);
    expect(entries[0]).toEqual(entries[1]);
    expect(entries[0]).toMatchObject({ level: 30, name: 'payments-api', pid: process.pid, msg: 'decision', ...deny });
    expect(entries[2]).toEqual(entries[3]);
    expect(entries[2]).toMatchObject({ level: 40, msg: 'decision', ...failure });
    // At level warn the 401 is dropped, the 500 kept.
    expect(entries[4]).toEqual(entries[2]);
  });
});

describe('npm run demo', () => {
  it('walks through every case with the expected outcomes', async () => {
    const proc = run('demo.js', {});
    expect(await proc.exited).toBe(0);
    expect(proc.output()).toContain('Every outcome was the expected one.');
    expect(proc.output()).toContain('error="invalid_dpop_proof"');
    expect(proc.output()).toContain('error="use_dpop_nonce"');
    // IDEM-04: the retried payment is the stored answer (the demo fails on a second payment id).
    expect(proc.output()).toContain('retries with the same key: the stored answer, the same payment id, no second payment');
    expect(proc.output()).toContain('This idempotency key was already used for a different request');
  });
});

describe.each(['express', 'koa', 'fastify', 'nestjs', 'nestjs-fastify', 'hono'] as const)('routes on %s', (framework) => {
  let api: RunningExample;
  let client: DpopClient;
  beforeAll(async () => {
    api = await startExample({
      ...readConfig({ FAPI_FRAMEWORK: framework }),
      port: 0,
      audience: 'https://payments.example',
      publicUrl: 'https://payments.example',
    });
    client = await DpopClient.create('ES256');
  });
  afterAll(() => api.close());

  async function call(method: string, path: string, scope: string, body?: unknown, extra: Record<string, string> = {}) {
    const token = await api.mock?.mint({ scope, jkt: client.jkt, audience: 'https://payments.example' });
    const send = async (nonce?: string) =>
      fetch(`${api.url}${path}`, {
        method,
        headers: {
          authorization: `DPoP ${token}`,
          dpop: await client.proof({ htm: method, htu: `https://payments.example${path}`, accessToken: token, nonce }),
          ...(body ? { 'content-type': 'application/json' } : {}),
          ...extra,
        },
        body: body ? JSON.stringify(body) : undefined,
      });
    const first = await send();
    const nonce = first.headers.get('dpop-nonce');
    return first.status === 401 && nonce ? send(nonce) : first;
  }

  it('serves accounts to the accounts scope only', async () => {
    expect((await call('GET', '/accounts', 'accounts')).status).toBe(200);
    expect((await call('GET', '/accounts/acc-001', 'accounts')).status).toBe(200);
    expect((await call('GET', '/accounts/acc-999', 'accounts')).status).toBe(404);
    expect((await call('GET', '/accounts', 'payments:read')).status).toBe(403);
    expect((await fetch(`${api.url}/health`)).status).toBe(200);
    expect((await fetch(`${api.url}/accounts`)).headers.get('www-authenticate')).toBe('DPoP algs="ES256 PS256 EdDSA"');
    const metadata = await fetch(`${api.url}/.well-known/oauth-protected-resource`);
    expect(await metadata.json()).toMatchObject({ resource: 'https://payments.example', resource_name: 'Example payments API' });
  });

  it('creates payments with payments:write and reads them with payments:read', async () => {
    const payment = { amount: { amount: '12.34', currency: 'EUR' }, creditorAccount: 'DE89370400440532013000' };
    const created = await call('POST', '/payments', 'payments:write', payment);
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toMatch(/^\/payments\/[0-9a-f-]{36}$/);
    const id = ((await created.json()) as { data: { id: string } }).data.id;
    expect((await call('GET', `/payments/${id}`, 'payments:read')).status).toBe(200);
    expect((await call('GET', `/payments/${id}`, 'payments:write')).status).toBe(403);
    expect((await call('POST', '/payments', 'payments:read', payment)).status).toBe(403);
    expect((await call('POST', '/payments', 'payments:write', { amount: { amount: '1', currency: 'EUR' } })).status).toBe(400);
  });

  it('IDEM-04 IDEM-06 a payment retried with the same Idempotency-Key is made once; another payment with it is refused', async () => {
    const payment = { amount: { amount: '5.00', currency: 'EUR' }, creditorAccount: 'DE89370400440532013000' };
    const key = { 'idempotency-key': `"${crypto.randomUUID()}"` };
    const first = await call('POST', '/payments', 'payments:write', payment, key);
    expect(first.status).toBe(201);
    const retry = await call('POST', '/payments', 'payments:write', payment, key);
    expect(retry.status).toBe(201);
    expect(retry.headers.get('location')).toBe(first.headers.get('location'));
    expect(await retry.text()).toBe(await first.text());
    expect((await call('POST', '/payments', 'payments:write', { ...payment, creditorAccount: 'X' }, key)).status).toBe(422);
  });
});

/** The example from these environment variables, on a free port, for the origin https://payments.example. */
function startPayments(env: NodeJS.ProcessEnv, config: Partial<ExampleConfig> = {}): Promise<RunningExample> {
  return startExample({
    ...readConfig(env),
    port: 0,
    audience: 'https://payments.example',
    publicUrl: 'https://payments.example',
    ...config,
  });
}

describe('certificate-bound tokens from a trusted proxy (FAPI_CLIENT_CERT_HEADER)', () => {
  it('accepts a token bound to the certificate the proxy forwards, and nothing else', async () => {
    const api = await startExample({
      ...readConfig({ FAPI_CLIENT_CERT_HEADER: 'client-cert' }),
      port: 0,
      audience: 'https://payments.example',
      publicUrl: 'https://payments.example',
    });
    try {
      const cert = await createCertificate();
      const token = await api.mock?.mint({ scope: 'accounts', x5t: cert.x5t, audience: 'https://payments.example' });
      const call = (value: string) => fetch(`${api.url}/accounts`, { headers: { authorization: `Bearer ${token}`, 'client-cert': value } });
      const ok = await call(clientCertHeader(cert.der));
      expect(ok.status).toBe(200);
      expect(ok.headers.get('cache-control')).toBe('no-store');
      expect((await call(clientCertHeader((await createCertificate()).der))).status).toBe(401);
    } finally {
      await api.close();
    }
  });
});

describe.each(['express', 'koa', 'fastify', 'nestjs', 'nestjs-fastify', 'hono'] as const)(
  'certificate-bound tokens over the own TLS listener (TLS_CERT) on %s',
  (framework) => {
    it('MTLS-05 accepts a token bound to the client certificate of the connection, and not with another', async () => {
      const server = await createCertificate({ subject: 'CN=127.0.0.1', hosts: ['127.0.0.1'] });
      const api = await startPayments({ FAPI_FRAMEWORK: framework }, { tls: { cert: server.cert, key: server.key } });
      try {
        const cert = await createCertificate();
        const token = await api.mock?.mint({ scope: 'accounts', x5t: cert.x5t, audience: 'https://payments.example' });
        const call = async (client: { cert: string; key: string }) =>
          (await send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${token}` }, tls: { ca: server.cert, ...client } }))
            .status;
        expect(await call(cert)).toBe(200);
        expect(await call(await createCertificate())).toBe(401);
      } finally {
        await api.close();
      }
    });
  },
);

describe.each(['express', 'koa', 'fastify', 'nestjs', 'nestjs-fastify', 'hono'] as const)(
  'signed payments on %s (FAPI_MESSAGE_SIGNING=required)',
  (framework) => {
    let api: RunningExample;
    let client: DpopClient;
    const signer = MessageSigningClient.generate('ecdsa-p256-sha256', 'tpp-signing-1');
    const records: SignedExchangeRecord[] = [];
    beforeAll(async () => {
      const dir = mkdtempSync(join(tmpdir(), 'fapi-example-'));
      const clientsFile = join(dir, 'clients.json');
      // The mock issuer's default client is client-1: its signing keys are registered by file, as an operator would.
      writeFileSync(clientsFile, JSON.stringify({ 'client-1': { jwks: signer.jwks } }));
      api = await startExample(
        {
          ...readConfig({ FAPI_FRAMEWORK: framework, FAPI_MESSAGE_SIGNING: 'required', FAPI_SIGNING_CLIENTS: clientsFile }),
          port: 0,
          audience: 'https://payments.example',
          publicUrl: 'https://payments.example',
        },
        undefined,
        { messageSigning: { onSignedExchange: (record) => void records.push(record) } },
      );
      client = await DpopClient.create('ES256');
    });
    afterAll(() => api.close());

    /** A signed POST /payments: the DPoP nonce is fetched first, then proof and signature are made for the final request. */
    async function pay(payment: unknown, sign = true) {
      const token = (await api.mock?.mint({ scope: 'payments:write', jkt: client.jkt, audience: 'https://payments.example' })) as string;
      const url = 'https://payments.example/payments';
      const body = JSON.stringify(payment);
      const headers: Record<string, string> = {
        authorization: `DPoP ${token}`,
        dpop: await client.proof({ htm: 'POST', htu: url, accessToken: token }),
        'content-type': 'application/json',
      };
      const first = await fetch(`${api.url}/payments`, { method: 'POST', headers, body });
      await first.body?.cancel();
      headers.dpop = await client.proof({ htm: 'POST', htu: url, accessToken: token, nonce: first.headers.get('dpop-nonce') as string });
      if (sign) Object.assign(headers, signer.sign({ method: 'POST', url, headers, body }));
      const res = await fetch(`${api.url}/payments`, { method: 'POST', headers, body });
      return { res, text: await res.text(), request: { method: 'POST', url, headers } };
    }

    it('SIG-02 SIG-10 SIG-11 SIG-13 accepts a signed payment and signs the answer; an independent verifier checks it with the published keys', async () => {
      const payment = { amount: { amount: '12.34', currency: 'EUR' }, creditorAccount: 'DE89370400440532013000' };
      const { res, text, request } = await pay(payment);
      expect(res.status).toBe(201);
      expect(JSON.parse(text).data.amount).toEqual(payment.amount);
      const metadata = (await (await fetch(`${api.url}/.well-known/oauth-protected-resource`)).json()) as { jwks_uri: string };
      expect(metadata.jwks_uri).toBe('https://payments.example/.well-known/jwks.json');
      const jwks = (await (await fetch(`${api.url}${new URL(metadata.jwks_uri).pathname}`)).json()) as { keys: SignatureJwk[] };
      const headers = Object.fromEntries(res.headers.entries());
      // http-message-signatures: an RFC 9421 implementation that shares no code with fapi-guard.
      const verified = await httpbis.verifyMessage(
        {
          keyLookup: async ({ keyid }) => {
            const jwk = jwks.keys.find((k) => k.kid === keyid);
            return jwk
              ? { id: keyid, algs: ['ed25519'], verify: createVerifier(createPublicKey({ key: jwk, format: 'jwk' }), 'ed25519') }
              : null;
          },
          requiredFields: ['@status', 'content-digest', '@method', '@target-uri', 'signature', 'signature-input'],
          requiredParams: ['created', 'keyid', 'tag'],
        },
        { status: res.status, headers },
        request,
      );
      expect(verified).toBe(true);
      expect(headers['content-digest']).toBe(`sha-256=:${createHash('sha256').update(text).digest('base64')}:`);
      expect(verifySignedResponse({ request, response: { status: res.status, headers, body: text }, jwks })).toMatchObject({ ok: true });
      expect(records.map((r) => r.direction)).toEqual(['request', 'response']);
    });

    it('SIG-03 refuses an unsigned payment with 401 and Accept-Signature', async () => {
      const { res } = await pay({ amount: { amount: '1.00', currency: 'EUR' }, creditorAccount: 'X' }, false);
      expect(res.status).toBe(401);
      expect(res.headers.get('accept-signature')).toBe(
        'sig1=("@method" "@target-uri" "authorization" "dpop" "content-digest");tag="fapi-2-request"',
      );
    });
  },
);
