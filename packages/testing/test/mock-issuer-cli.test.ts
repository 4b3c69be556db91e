/**
 * The mock issuer on its own (`npx fapi-mock-issuer --port … --audience …`, the package's bin) and
 * its token endpoint's RFC 8707 `resource` parameter: one issuer, tokens for several APIs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { decodeJwt } from 'jose';

const cli = join(__dirname, '..', 'dist', 'cli.js');

function start(args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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

async function waitFor(check: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
}

const tokenRequest = (issuer: string, form: [string, string][]) =>
  fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams([['grant_type', 'client_credentials'], ...form]),
  });

describe('fapi-mock-issuer (bin)', () => {
  it('serves discovery, JWKS and DPoP-bound tokens for its audiences until SIGTERM, then exits 0', async () => {
    const proc = start(['--port', '0', '--audience', 'https://api-a.example', '--resource', 'https://api-b.example']);
    try {
      await waitFor(() => proc.output().includes('\n'));
      const { issuer } = JSON.parse(proc.output().split('\n')[0] as string) as { issuer: string };
      expect(issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const metadata = (await (await fetch(`${issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, string>;
      expect(metadata.issuer).toBe(issuer);
      expect(((await (await fetch(metadata.jwks_uri as string)).json()) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);

      const client = await DpopClient.create();
      const proof = await client.proof({ htm: 'POST', htu: `${issuer}/token` });
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'accounts' }),
      });
      const answer = (await res.json()) as { access_token: string; token_type: string };
      expect(answer.token_type).toBe('DPoP');
      const claims = decodeJwt(answer.access_token);
      expect(claims).toMatchObject({ iss: issuer, aud: 'https://api-a.example', scope: 'accounts', cnf: { jkt: client.jkt } });
      // RFC 8707: another API the issuer serves, and one it does not.
      const b = (await (await tokenRequest(issuer, [['resource', 'https://api-b.example']])).json()) as { access_token: string };
      expect(decodeJwt(b.access_token).aud).toBe('https://api-b.example');
      const other = await tokenRequest(issuer, [['resource', 'https://api-c.example']]);
      expect(other.status).toBe(400);
      expect(await other.json()).toMatchObject({ error: 'invalid_target' });
    } finally {
      proc.child.kill('SIGTERM');
    }
    expect(await proc.exited).toBe(0);
    expect(proc.output()).toContain('stopped (SIGTERM)');
  });

  it.each([
    [['--port', '0'], /--audience is required/],
    [['--port', 'eighty', '--audience', 'https://api.example'], /--port must be a port number/],
    [['--port', '65536', '--audience', 'https://api.example'], /--port must be a port number/],
    [['--audiences', 'https://api.example'], /Unknown option '--audiences'/],
  ])('refuses %j with exit code 2 and says why', async (args, message) => {
    const proc = start(args);
    expect(await proc.exited).toBe(2);
    expect(proc.output()).toMatch(message);
  });
});

describe('MockIssuer token endpoint: RFC 8707 resource indicators', () => {
  let issuer: MockIssuer;
  beforeAll(async () => {
    issuer = await MockIssuer.start({ audience: 'https://api-a.example' });
  });
  afterAll(() => issuer.stop());

  const aud = async (form: [string, string][]) => {
    const res = await tokenRequest(issuer.issuer, form);
    expect(res.status).toBe(200);
    return decodeJwt(((await res.json()) as { access_token: string }).access_token).aud;
  };

  it('uses the audience option without a resource, the resource when given, and every one when several are', async () => {
    expect(await aud([])).toBe('https://api-a.example');
    expect(await aud([['resource', 'https://api-b.example/v1']])).toBe('https://api-b.example/v1');
    expect(
      await aud([
        ['resource', 'https://api-b.example'],
        ['resource', 'urn:bank:ledger'],
      ]),
    ).toEqual(['https://api-b.example', 'urn:bank:ledger']);
  });

  it.each(['api-b.example', 'https://api-b.example#frag', ''])(
    'refuses the resource %j with invalid_target (RFC 8707 §2)',
    async (resource) => {
      const res = await tokenRequest(issuer.issuer, [['resource', resource]]);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'invalid_target' });
    },
  );
});
