/**
 * The probe's verdict and its own safety: exit codes (2 when it cannot judge), --strict, cases
 * that judge nothing, RFC 9728 metadata candidates and origins, and the total request deadline.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ProbeOptions, type ProbeReport, runProbe, toTable } from '@fapi-guard/probe';
import { createCertificate } from '@fapi-guard/testing';
import { readConfig } from '../../../examples/payments-api/src/config';
import { startExample } from '../../../examples/payments-api/src/server';
import { CASES } from '../src/cases';
import type { Context } from '../src/context';
import { networkFailure } from '../src/http';
import { acceptAnyToken, cli, close, dpopJwk, listen, serve } from './support';

const options = async (resource: string, extra: Partial<ProbeOptions> = {}): Promise<ProbeOptions> => ({
  resource,
  accessToken: 'opaque-token',
  dpopKey: await dpopJwk(),
  rate: 50,
  ...extra,
});

const status = (report: ProbeReport, id: string) => report.results.find((r) => r.id === id)?.status;
const observed = (report: ProbeReport, id: string) => report.results.find((r) => r.id === id)?.observed ?? '';

describe('fapi-probe cannot judge: exit 2, a banner, and the dependent cases not run', () => {
  it('an unreachable resource: exit 2, "the resource is unreachable", check the URL; nothing more is sent to it, one summary line', async () => {
    const { server, url } = await serve(() => undefined);
    await close(server); // nobody listens there now
    const report = await runProbe(await options(`${url}/accounts`));
    expect(report.exitCode).toBe(2);
    expect(report.notJudgedCause).toBe('unreachable');
    expect(report.notJudged).toBe(
      `the resource is unreachable (connection refused: connect ECONNREFUSED ${url.slice('http://'.length)}): check the URL (${url}/accounts) and that the server runs and listens there; no other request was sent`,
    );
    // One request, the baseline: no metadata URL is tried on the dead origin.
    expect(report.requests).toBe(1);
    expect(report.results.filter((r) => r.status === 'fail').map((r) => r.id)).toEqual(['baseline.valid']);
    const others = report.results.filter((r) => r.id !== 'baseline.valid');
    expect(others.length).toBeGreaterThan(30);
    for (const r of others)
      expect([r.id, r.status, r.observed, r.requests]).toEqual([r.id, 'not-run', 'not run (resource unreachable)', 0]);
    const table = toTable(report);
    expect(table).not.toContain('Fix the correct request first');
    expect(table).toContain('!!! No other case was run: the probe needs an answer from the resource first.');
    // The cases that did not run are one line, not forty rows.
    expect(table.split('\n').filter((l) => l.includes('not run (resource unreachable)'))).toEqual([
      `… ${others.length} other cases not run (resource unreachable)`,
    ]);
    expect(table).toContain('RESULT: not judged (exit 2): no answer from the resource');

    const dir = mkdtempSync(join(tmpdir(), 'fapi-probe-'));
    writeFileSync(join(dir, 'dpop.jwk'), JSON.stringify(await dpopJwk()));
    const run = await cli(['--resource', `${url}/accounts`, '--token', 'opaque-token', '--dpop-key', join(dir, 'dpop.jwk')]);
    expect(run.code).toBe(2);
    expect(run.stdout).toContain('!!! THE PROBE COULD NOT JUDGE THIS SERVER (exit code 2)');
    expect(run.stderr).toContain('could not judge the server: the resource is unreachable (connection refused');
  });

  it('a TLS failure is named as one, with what to check (--ca, --insecure-tls)', async () => {
    const { createServer: createHttpsServer } = await import('node:https');
    const cert = await createCertificate({ subject: 'CN=127.0.0.1', hosts: ['127.0.0.1'] });
    const server = createHttpsServer({ cert: cert.cert, key: cert.key }, acceptAnyToken('DPoP algs="ES256"'));
    const url = (await listen(server)).replace('http:', 'https:');
    try {
      const report = await runProbe(await options(`${url}/accounts`));
      expect(report.exitCode).toBe(2);
      expect(report.notJudgedCause).toBe('unreachable');
      expect(report.notJudged).toMatch(
        /^the TLS connection to the resource failed \(TLS handshake failed: .*\): check the server certificate: trust its CA with --ca FILE/,
      );
      expect(report.requests).toBe(1);
    } finally {
      await close(server);
    }
  });

  it.each([
    ['ECONNREFUSED', 'refused'],
    ['ENOTFOUND', 'dns'],
    ['EAI_AGAIN', 'dns'],
    ['ETIMEDOUT', 'timeout'],
    ['EHOSTUNREACH', 'unreachable'],
    ['ECONNRESET', 'reset'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'tls'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'tls'],
    ['CERT_HAS_EXPIRED', 'tls'],
    [undefined, 'other'],
  ])('a network error %s is reported as %s', (code, failure) => {
    expect(networkFailure(code)).toBe(failure);
  });

  it('a refused baseline (the token is not accepted) is exit 2, not a page of identical FAIL rows', async () => {
    const { server, url } = await serve((_req, res) =>
      res.writeHead(401, { 'www-authenticate': 'DPoP algs="ES256", error="invalid_token", error_description="unknown audience"' }).end(),
    );
    try {
      const report = await runProbe(await options(`${url}/accounts`));
      expect(report.exitCode).toBe(2);
      expect(report.failed).toBe(false);
      expect(report.notJudged).toContain('401 DPoP error=invalid_token "unknown audience"');
      expect(report.results.filter((r) => r.status === 'fail').map((r) => r.id)).toEqual(['baseline.valid']);
      expect(status(report, 'credentials.missing')).toBe('not-run');
      const table = toTable(report);
      expect(table).toContain('!!! the correct request was not accepted (401 DPoP error=invalid_token "unknown audience")');
      expect(table).toContain('change:   make the correct request succeed first');
      expect(table).not.toContain('MUST cases not run');
    } finally {
      await close(server);
    }
  });

  it('usage errors exit 2', async () => {
    expect((await cli([])).code).toBe(2);
    expect((await cli(['--resource', 'http://127.0.0.1:1/x', '--fault-token', 'nonsense'])).code).toBe(2);
  });
});

describe('fapi-probe --strict', () => {
  it('a MUST case that could not run fails the run only with --strict; without it the summary names it', async () => {
    const port = await (async () => {
      const s = createServer();
      const u = await listen(s);
      await close(s);
      return Number(new URL(u).port);
    })();
    const url = `http://127.0.0.1:${port}`;
    const example = await startExample({ ...readConfig({ FAPI_FRAMEWORK: 'express' }), port, audience: url, publicUrl: url });
    try {
      const base = {
        resource: `${url}/accounts`,
        scope: 'accounts',
        authorizationServer: { issuer: example.issuer, clientId: 'probe' },
        rate: 50,
      };
      const lenient = await runProbe(base);
      const missing = ['token.expired', 'token.insufficient-scope', 'token.unbound', 'token.wrong-audience', 'token.wrong-typ'];
      expect([...lenient.mustNotRun].sort()).toEqual(missing);
      expect(lenient.exitCode).toBe(0);
      expect(toTable(lenient)).toContain(
        `MUST cases not run (not judged; --strict makes them fail the run): ${lenient.mustNotRun.join(', ')}`,
      );
      const strict = await runProbe({ ...base, strict: true });
      expect(strict.results.filter((r) => r.status === 'fail')).toEqual([]);
      expect(strict.exitCode).toBe(1);
      expect(toTable(strict)).toContain('RESULT: a MUST requirement was not run (--strict) (exit 1)');
    } finally {
      await example.close();
    }
  });
});

describe('cases that judge the whole run', () => {
  it('XFAPI-01 "0 of 0 echoed" is not a pass: with no response of the resource the case does not run', async () => {
    const echo = CASES.find((c) => c.id === 'interaction-id.echo');
    const outcome = await echo?.run({ log: [] } as unknown as Context);
    expect(outcome?.status).toBe('not-run');
  });
});

describe('DPOP-13 the proof-age cases at a server that uses nonces', () => {
  it.each([
    [false, 'fail'],
    [true, 'advice'],
  ])(
    'nonces asked for: %s -> an accepted day-old proof is %s (RFC 9449 §4.3 #11: age may come from the nonce)',
    async (nonceRequested, expected) => {
      const accepting = { nonceRequested, call: async () => ({ status: 200, headers: {}, body: '' }) } as unknown as Context;
      for (const id of ['dpop.iat-old', 'dpop.iat-future']) {
        const outcome = await CASES.find((c) => c.id === id)?.run(accepting);
        expect([id, outcome?.status]).toEqual([id, expected]);
      }
    },
  );
});

describe('RFC 9728 metadata: candidates and origins', () => {
  it('PRM-02 resource_metadata at another origin is reported, not fetched (RFC 9728 §7.3, §7.7)', async () => {
    const elsewhere = await serve((_req, res) => res.end('{"resource":"http://10.0.0.1/"}'));
    const { server, url, hits } = await serve(
      acceptAnyToken(`DPoP algs="ES256", resource_metadata="${elsewhere.url}/.well-known/oauth-protected-resource"`),
    );
    try {
      const report = await runProbe(await options(`${url}/accounts`, { only: ['metadata.', 'credentials.missing'] }));
      expect(elsewhere.hits).toEqual([]);
      expect(status(report, 'metadata.document')).toBe('not-applicable');
      expect(observed(report, 'metadata.document')).toContain(
        `not fetched: resource_metadata ${elsewhere.url}/.well-known/oauth-protected-resource is at another origin than the resource`,
      );
      // The resource's own candidates were tried instead.
      expect(hits).toContain('/.well-known/oauth-protected-resource/accounts');
    } finally {
      await close(server);
      await close(elsewhere.server);
    }
  });

  it('PRM-02 resource_metadata at the same origin is followed; its resource must be the URL requested (RFC 9728 §3.3)', async () => {
    for (const [resource, expected] of [
      ['RESOURCE', 'pass'],
      ['ORIGIN/other', 'fail'],
    ] as const) {
      const { server, url } = await serve((req, res, origin) => {
        if (req.url === '/meta')
          return void res.end(JSON.stringify({ resource: resource.replace('RESOURCE', `${origin}/accounts`).replace('ORIGIN', origin) }));
        acceptAnyToken(`DPoP algs="ES256", resource_metadata="${origin}/meta"`)(req, res);
      });
      try {
        const report = await runProbe(await options(`${url}/accounts`, { only: ['metadata.', 'credentials.missing'] }));
        expect([resource, status(report, 'metadata.document')]).toEqual([resource, expected]);
        expect(observed(report, 'metadata.document')).toContain(`200 ${url}/meta`);
      } finally {
        await close(server);
      }
    }
  });

  it('PRM-01 a network error on the advertised URL is not a failure: the RFC 9728 well-known URL is tried next', async () => {
    const { server, url, hits } = await serve((req, res, origin) => {
      if (req.url === '/meta') return void req.socket.destroy();
      if (req.url === '/.well-known/oauth-protected-resource/accounts')
        return void res.end(JSON.stringify({ resource: `${origin}/accounts` }));
      acceptAnyToken(`DPoP algs="ES256", resource_metadata="${origin}/meta"`)(req, res);
    });
    try {
      const report = await runProbe(await options(`${url}/accounts`, { only: ['metadata.', 'credentials.missing'] }));
      expect(hits).toContain('/meta');
      expect(status(report, 'metadata.document')).toBe('pass');
      expect(observed(report, 'metadata.document')).toContain(`200 ${url}/.well-known/oauth-protected-resource/accounts`);
    } finally {
      await close(server);
    }
  });

  it('PRM-01 when no candidate can be read the case is not run, and it never fails the run', async () => {
    const { server, url } = await serve((req, res) => {
      if (req.url?.startsWith('/.well-known/')) return void req.socket.destroy();
      acceptAnyToken('DPoP algs="ES256"')(req, res);
    });
    try {
      const report = await runProbe(await options(`${url}/accounts`, { only: ['metadata.'] }));
      expect(status(report, 'metadata.document')).toBe('not-run');
      expect(observed(report, 'metadata.document')).toMatch(/^no metadata could be read: /);
      expect(report.exitCode).toBe(0);
    } finally {
      await close(server);
    }
  });
});

describe('the total deadline of each request', () => {
  it('a server trickling an endless body cannot hold the run: the exchange ends at timeoutMs', async () => {
    const timers: NodeJS.Timeout[] = [];
    const { server, url } = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      // One byte every 50 ms, forever: the idle timeout alone would never fire.
      timers.push(setInterval(() => res.write('.'), 50));
    });
    try {
      const started = Date.now();
      const report = await runProbe(await options(`${url}/accounts`, { only: ['baseline.'], timeoutMs: 600 }));
      const elapsed = Date.now() - started;
      expect(report.exitCode).toBe(2);
      expect(report.notJudged).toContain('no complete answer within 600 ms');
      // Bounded by the deadline (plus the metadata candidates it then tries), not by the server.
      expect(elapsed).toBeLessThan(5_000);
    } finally {
      for (const t of timers) clearInterval(t);
      await close(server);
    }
  });
});
