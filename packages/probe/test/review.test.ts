/**
 * Findings of a reviewer who used fapi-probe from its README alone against servers with planted
 * defects: stale fault tokens, JUnit and advice levels, a 401 without a challenge, an issuer that
 * is down or wrong, usage errors, and what the output names (spec sections, htu, library options).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthorizationServerError, type ProbeReport, runProbe, toJUnit, toTable } from '@fapi-guard/probe';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import { cli, close, dpopJwk, serve } from './support';

const result = (report: ProbeReport, id: string) => report.results.find((r) => r.id === id);

/** The probe at `${url}/accounts` with an opaque token and a fresh DPoP key, running only `only` (and the baseline). */
const probeOnly = async (url: string, only: string[]) =>
  runProbe({ resource: `${url}/accounts`, accessToken: 'opaque-token', dpopKey: await dpopJwk(), only, rate: 50 });

/**
 * Verifies the mock issuer's signature, typ, exp and cnf, accepts any proof — and never looks at
 * `aud` (the planted defect). Refusals carry a DPoP challenge with invalid_token.
 */
const noAudienceCheck = (mock: () => MockIssuer) => async (req: IncomingMessage, res: ServerResponse) => {
  const refuse = () => res.writeHead(401, { 'www-authenticate': 'DPoP algs="ES256", error="invalid_token"' }).end();
  const token = /^DPoP (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
  if (!token) return refuse();
  try {
    const { payload } = await jwtVerify(token, createLocalJWKSet(mock().jwks), {
      issuer: mock().issuer,
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });
    if (!payload.cnf) return refuse();
    res.end('{}');
  } catch {
    refuse();
  }
};

/** A server with `noAudienceCheck` and a MockIssuer whose clock is `offset` ms off while set. */
async function audiencelessServer() {
  let mock: MockIssuer | undefined;
  const { server, url } = await serve((req, res) => void noAudienceCheck(() => mock as MockIssuer)(req, res));
  const clock = { offset: 0 };
  mock = await MockIssuer.start({ audience: url, clock: () => Date.now() + clock.offset });
  const stop = async () => {
    await close(server);
    await mock.stop();
  };
  return { url, mock, clock, stop };
}

describe('stale tokens are not judged: a fault token must differ from a valid token only in its defect', () => {
  it('AUD-01 a rerun with fault tokens minted ten minutes ago does not pass token.wrong-audience at a server that ignores aud', async () => {
    const { url, mock, clock, stop } = await audiencelessServer();
    const dir = mkdtempSync(join(tmpdir(), 'fapi-probe-'));
    const run = async () => {
      const args = await mock.probeArguments({
        resource: `${url}/accounts`,
        scope: 'accounts',
        client: await DpopClient.create(),
        dpopKeyFile: join(dir, 'dpop.jwk'),
      });
      clock.offset = 0; // the probe runs now; its own token is fresh
      const out = await cli([...args, '--only', 'token.', '--rate', '50', '--json', join(dir, 'report.json')]);
      return { ...out, report: JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as ProbeReport };
    };
    try {
      clock.offset = -600_000; // the fault tokens of an earlier session (300 s lifetime)
      const stale = await run();
      for (const id of ['token.wrong-audience', 'token.wrong-typ', 'token.unbound']) {
        expect([id, result(stale.report, id)?.status]).toEqual([id, 'not-run']);
        expect(result(stale.report, id)?.observed).toMatch(
          /^fault token expired \(exp \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z, 30\d s ago\): mint fresh tokens for each run \(MockIssuer\.probeArguments: lifetimeSec\)$/,
        );
        expect(result(stale.report, id)?.requests).toBe(0);
      }
      // The expired one is meant to be expired: judged.
      expect(result(stale.report, 'token.expired')?.status).toBe('pass');
      expect(stale.report.mustNotRun).toEqual(expect.arrayContaining(['token.wrong-audience', 'token.wrong-typ', 'token.unbound']));
      expect(stale.stdout).toContain('MUST cases not run');

      // Fresh fault tokens: the planted defect is found.
      const fresh = await run();
      expect(result(fresh.report, 'token.wrong-audience')?.status).toBe('fail');
      expect(fresh.code).toBe(1);
    } finally {
      await stop();
    }
  });

  it('the access token, the insufficient-scope token and the "expired" fault token are read the same way', async () => {
    const { url, mock, stop } = await audiencelessServer();
    try {
      const client = await DpopClient.create();
      const dpopKey = client.exportPrivateJwk();
      const fresh = await mock.mint({ scope: 'accounts', jkt: client.jkt });
      const stale = await mock.mint({ scope: 'other', jkt: client.jkt, lifetimeSec: -30 });
      const base = { resource: `${url}/accounts`, dpopKey, rate: 50 };

      const expiredAccess = await runProbe({ ...base, accessToken: stale, only: ['token.'] });
      expect(result(expiredAccess, 'baseline.valid')).toMatchObject({ status: 'not-run', requests: 0 });
      expect(result(expiredAccess, 'baseline.valid')?.observed).toMatch(/^the access token expired \(exp \S+Z, 3\d s ago\)/);
      expect(expiredAccess.exitCode).toBe(2);
      expect(expiredAccess.notJudged).toMatch(/^the correct request could not be sent \(the access token expired \(exp /);

      const report = await runProbe({
        ...base,
        accessToken: fresh,
        insufficientScopeToken: stale,
        faultTokens: { expired: fresh },
        only: ['token.insufficient-scope', 'token.expired'],
      });
      expect(result(report, 'token.insufficient-scope')?.status).toBe('not-run');
      expect(result(report, 'token.insufficient-scope')?.observed).toMatch(/^the insufficient-scope token expired \(exp /);
      expect(result(report, 'token.expired')?.status).toBe('not-run');
      expect(result(report, 'token.expired')?.observed).toMatch(
        /^the "expired" fault token has not expired \(exp \S+Z, in (29\d|300) s\): it tests nothing yet$/,
      );
    } finally {
      await stop();
    }
  });

  it('AUD-01 an access token that expires during the run: the cases after it are not run, never passed on its exp', async () => {
    const { url, mock, stop } = await audiencelessServer();
    try {
      const client = await DpopClient.create();
      // Valid for one to two seconds; at 4 requests/s the run outlasts it.
      const accessToken = await mock.mint({ scope: 'accounts', jkt: client.jkt, lifetimeSec: 2 });
      const report = await runProbe({
        resource: `${url}/accounts`,
        accessToken,
        dpopKey: client.exportPrivateJwk(),
        only: ['token.', 'dpop.'],
        rate: 4,
      });
      expect(result(report, 'baseline.valid')?.status).toBe('pass');
      const sent = report.results.filter(
        (r) => !r.id.startsWith('errors.') && !r.id.startsWith('metadata.') && r.id !== 'interaction-id.echo',
      );
      const first = sent.findIndex((r) => /^the access token expired \(exp /.test(r.observed));
      expect(first).toBeGreaterThan(0);
      // From then on nothing is judged on the expired token.
      for (const r of sent.slice(first))
        expect([r.id, ['not-run', 'not-applicable'].includes(r.status), r.requests]).toEqual([r.id, true, 0]);
      expect(report.mustNotRun).toContain('dpop.htu');
    } finally {
      await stop();
    }
  });

  it('MockIssuer.probeArguments: the fault tokens live lifetimeSec (default 300 s); a lifetime below 1 s is refused', async () => {
    const mock = await MockIssuer.start({ audience: 'http://127.0.0.1:1' });
    const dir = mkdtempSync(join(tmpdir(), 'fapi-probe-'));
    try {
      const lifetimes = async (lifetimeSec?: number) => {
        const args = await mock.probeArguments({
          resource: 'http://127.0.0.1:1/accounts',
          scope: 'accounts',
          client: await DpopClient.create(),
          dpopKeyFile: join(dir, 'dpop.jwk'),
          ...(lifetimeSec !== undefined ? { lifetimeSec } : {}),
        });
        const faults = args.filter((_, i) => args[i - 1] === '--fault-token').map((a) => a.split('=', 2) as [string, string]);
        return Object.fromEntries(
          faults.map(([kind, token]) => {
            const { iat, exp } = decodeJwt(token);
            return [kind, (exp as number) - (iat as number)];
          }),
        );
      };
      expect(await lifetimes()).toEqual({ 'wrong-typ': 300, expired: -120, 'wrong-audience': 300, unbound: 300 });
      expect(await lifetimes(3600)).toEqual({ 'wrong-typ': 3600, expired: -120, 'wrong-audience': 3600, unbound: 3600 });
      await expect(lifetimes(0)).rejects.toThrow('probeArguments: lifetimeSec must be a positive integer (seconds)');
    } finally {
      await mock.stop();
    }
  });
});

/**
 * Accepts a request whose DPoP proof has ath, refuses one without it with the wrong code
 * (invalid_token where RFC 9449 §7.1 names invalid_dpop_proof), and never checks htu.
 */
const athOnly = (req: IncomingMessage, res: ServerResponse) => {
  const proof = req.headers.dpop;
  if (!req.headers.authorization || typeof proof !== 'string')
    return void res.writeHead(401, { 'www-authenticate': 'DPoP algs="ES256"' }).end();
  if (decodeJwt(proof).ath === undefined)
    return void res.writeHead(401, { 'www-authenticate': 'DPoP algs="ES256", error="invalid_token"' }).end();
  res.end('{}');
};

describe('advice is labelled with the level of the part missed, in the text and in JUnit', () => {
  it('DPOP-14 a MUST case that missed only its SHOULD error code is advice typed SHOULD; a missed MUST stays MUST', async () => {
    const { server, url } = await serve(athOnly);
    try {
      const report = await probeOnly(url, ['dpop.ath-missing']);
      expect(report.exitCode).toBe(0);
      expect(result(report, 'dpop.ath-missing')).toMatchObject({
        level: 'MUST',
        status: 'advice',
        missed: { level: 'SHOULD', what: 'error code', source: 'RFC 9449 §7.1' },
      });
      const junit = toJUnit(report);
      expect(junit).toContain('<testcase classname="fapi-probe" name="dpop.ath-missing [MUST, RFC 9449 §4.3 #12]"><failure type="SHOULD" ');
      expect(junit).not.toContain('type="MUST"');
      expect(junit).toContain('<property name="exit-code" value="0"/><property name="must-failures" value="0"/>');
      const table = toTable(report);
      expect(table).toContain('advice dpop.ath-missing [SHOULD: error code, RFC 9449 §7.1]');
      expect(table).toContain('  case:     a MUST case (RFC 9449 §4.3 #12); its MUST was met, the error code was not');

      const failing = await probeOnly(url, ['dpop.ath-missing', 'dpop.htu']);
      expect(failing.exitCode).toBe(1);
      const failingJunit = toJUnit(failing);
      expect(failingJunit).toContain('name="dpop.htu [MUST, RFC 9449 §4.3 #9]"><failure type="MUST" ');
      expect(failingJunit).toContain('<property name="exit-code" value="1"/><property name="must-failures" value="1"/>');
      expect(toTable(failing)).toContain('FAIL dpop.htu [MUST, RFC 9449 §4.3 #9]');
    } finally {
      await close(server);
    }
  });
});

describe('what the output names', () => {
  it('DPOP-11 the table shows the spec section, not internal IDs; a dpop.htu failure shows the htu it sent', async () => {
    const { server, url } = await serve(athOnly);
    try {
      const report = await probeOnly(url, ['dpop.htu', 'token.wrong-typ']);
      const htu = result(report, 'dpop.htu');
      expect(htu?.status).toBe('fail');
      expect(htu?.exchanges[0]?.sent).toMatch(new RegExp(`; DPoP: eyJ\\S+…\\(\\d+ chars\\) \\(htu ${url}/fapi-probe-elsewhere\\)$`));
      const table = toTable(report);
      expect(table).toMatch(/^case +level +spec +result +req +observed$/m);
      expect(table).toMatch(/^dpop\.htu +MUST +RFC 9449 §4\.3 #9 +FAIL /m);
      expect(table).not.toContain('DPOP-11');
      expect(table).toContain(`(htu ${url}/fapi-probe-elsewhere)`);
      // A library user is told the option, not only the command-line flag.
      expect(result(report, 'token.wrong-typ')?.observed).toBe(
        "needs a token signed by the authorization server with this defect (--fault-token wrong-typ=…; library: faultTokens['wrong-typ'])",
      );
    } finally {
      await close(server);
    }
  });

  it('`npx @fapi-guard/probe` runs fapi-probe: the package has that one bin (README)', () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { name: string; bin: Record<string, string> };
    expect([pkg.name, pkg.bin]).toEqual(['@fapi-guard/probe', { 'fapi-probe': 'dist/cli.js' }]);
  });
});

describe('BEARER-03 errors.challenge-syntax says what it read', () => {
  it('a 401 without WWW-Authenticate: the request that drew it, and a change line about sending a challenge', async () => {
    const { server, url } = await serve((req, res) => (req.headers.authorization ? res.end('{}') : res.writeHead(401).end()));
    try {
      const report = await probeOnly(url, ['credentials.missing', 'errors.challenge-syntax']);
      const syntax = result(report, 'errors.challenge-syntax');
      expect(syntax?.status).toBe('fail');
      expect(syntax?.observed).toBe('1 of 2 responses were 401 without a WWW-Authenticate challenge');
      expect(syntax?.fix).toMatch(/^send a WWW-Authenticate challenge with every 401, e\.g\. `DPoP algs="ES256", error="invalid_token"`/);
      expect(syntax?.fix).not.toContain('quoting');
      expect(syntax?.exchanges).toEqual([{ sent: `GET ${url}/accounts; no Authorization`, received: '401 no WWW-Authenticate' }]);
      const table = toTable(report);
      const block = table.slice(table.indexOf('FAIL errors.challenge-syntax'));
      expect(block).toContain(`  sent:     GET ${url}/accounts; no Authorization\n  got:      401 no WWW-Authenticate\n`);
    } finally {
      await close(server);
    }
  });

  it('a malformed challenge: the quoting advice, with the request that drew it', async () => {
    const { server, url } = await serve((req, res) =>
      req.headers.authorization ? res.end('{}') : res.writeHead(401, { 'www-authenticate': 'DPoP error_description=two words' }).end(),
    );
    try {
      const report = await probeOnly(url, ['credentials.missing', 'errors.challenge-syntax']);
      const syntax = result(report, 'errors.challenge-syntax');
      expect(syntax?.status).toBe('fail');
      expect(syntax?.fix).toMatch(/^build WWW-Authenticate with a quoting routine/);
      expect(syntax?.exchanges).toEqual([{ sent: `GET ${url}/accounts; no Authorization`, received: '401 unreadable WWW-Authenticate' }]);
    } finally {
      await close(server);
    }
  });
});

describe('an issuer that is down or wrong: which step, which URL, what came back, what to check; exit 2', () => {
  const probe = (issuer: string, resource = 'http://127.0.0.1:1/accounts') =>
    runProbe({ resource, authorizationServer: { issuer, clientId: 'nobody' }, scope: 'accounts', rate: 50 });

  it('nobody listens at the issuer: discovery at its URL, connection refused', async () => {
    const { server, url } = await serve(() => undefined);
    await close(server);
    const error = await probe(url).catch((e: Error) => e);
    expect(error).toBeInstanceOf(AuthorizationServerError);
    expect((error as Error).message).toMatch(
      new RegExp(
        `^issuer discovery at ${url}/\\.well-known/oauth-authorization-server failed: connection refused: connect ECONNREFUSED \\S+: check the issuer identifier \\(--issuer; library: authorizationServer\\.issuer\\)`,
      ),
    );
    const run = await cli(['--resource', 'http://127.0.0.1:1/accounts', '--issuer', url, '--client-id', 'nobody']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      new RegExp(`^fapi-probe: issuer discovery at ${url}/\\.well-known/oauth-authorization-server failed: connection refused`),
    );
  });

  it('no metadata published: RFC 8414, then OpenID, each URL tried; the status is named', async () => {
    const notFound = await serve((_req, res) => res.writeHead(404).end());
    const broken = await serve((_req, res) => res.writeHead(500).end());
    try {
      await expect(probe(notFound.url)).rejects.toThrow(
        `issuer discovery at ${notFound.url}/.well-known/openid-configuration failed: HTTP 404: check the issuer identifier`,
      );
      expect(notFound.hits).toEqual(['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']);
      await expect(probe(broken.url)).rejects.toThrow(
        `issuer discovery at ${broken.url}/.well-known/oauth-authorization-server failed: HTTP 500: check the issuer identifier`,
      );
    } finally {
      await close(notFound.server);
      await close(broken.server);
    }
  });

  it('the token endpoint refuses the client: its URL, status, error and description, and what to check', async () => {
    const { server, url } = await serve((req, res, origin) => {
      if (req.url === '/.well-known/oauth-authorization-server')
        return void res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ issuer: origin, token_endpoint: `${origin}/token` }));
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: 'invalid_client', error_description: 'unknown client' }));
    });
    try {
      await expect(probe(url)).rejects.toThrow(
        `token request (client-credentials grant, client_id "nobody", scope "accounts") at ${url}/token failed: HTTP 401 error=invalid_client "unknown client": check the client id and its authentication`,
      );
    } finally {
      await close(server);
    }
  });
});

describe('usage errors name what is wrong (exit 2)', () => {
  it.each([
    [[], 'fapi-probe: --resource URL is required (the protected resource to check)\n\nusage: fapi-probe'],
    [
      ['--resource', 'http://127.0.0.1:1/x', '--token', 't', '--fault-token', 'expird=abc'],
      'fapi-probe: --fault-token: unknown kind "expird"; the kinds are wrong-typ, expired, wrong-audience, unbound (write --fault-token KIND=TOKEN)\n',
    ],
    [
      ['--resource', 'http://127.0.0.1:1/x', '--token', 't', '--fault-token', 'expired'],
      'fapi-probe: --fault-token expired: the token is missing (write --fault-token expired=TOKEN)\n',
    ],
    [
      ['--resource', 'http://127.0.0.1:1/x', '--token', 't', '--fault-token', 'unbound='],
      'fapi-probe: --fault-token unbound: the token is missing (write --fault-token unbound=TOKEN)\n',
    ],
  ])('%j', async (args, stderr) => {
    const run = await cli(args);
    expect(run.code).toBe(2);
    expect(run.stderr.startsWith(stderr)).toBe(true);
  });
});
