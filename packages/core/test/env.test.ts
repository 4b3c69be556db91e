import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createGuard, GUARD_ENV_VARIABLES, guardOptionsFromEnv, headersFromRaw } from '@fapi-guard/core';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { OPTION_VARIABLES } from '../src/config/env-names';

const minimal = { FAPI_ISSUER: 'https://as.bank.example', FAPI_AUDIENCE: 'https://api.bank.example' };
/** The mark that makes createGuard's start-up errors name the variables (kept by object spread). */
const FROM_ENV = Symbol.for('fapi-guard.options-from-env');
const fromEnv = <T extends object>(options: T) => ({ ...options, [FROM_ENV]: true });

describe('guard options from environment variables', () => {
  it('maps the minimal environment onto issuer and audience', () => {
    expect(guardOptionsFromEnv(minimal)).toEqual(fromEnv({ issuers: ['https://as.bank.example'], audience: ['https://api.bank.example'] }));
  });

  it('maps every variable onto the option it documents', () => {
    const options = guardOptionsFromEnv({
      FAPI_ISSUER: 'https://as.bank.example',
      FAPI_JWKS_URI: 'https://as.bank.example/jwks',
      FAPI_AUDIENCE: 'https://api.bank.example, https://api2.bank.example',
      FAPI_PUBLIC_URL: 'https://api.bank.example',
      FAPI_TRUSTED_PROXIES: '10.0.0.0/8,192.168.1.1',
      FAPI_PROFILE: 'oauth2',
      FAPI_ALGORITHMS: 'ES256,PS256',
      FAPI_CLOCK_TOLERANCE_SEC: '5',
      FAPI_REALM: 'bank',
      FAPI_TOKEN_FORMAT: 'auto',
      FAPI_INTROSPECT_JWTS: 'true',
      FAPI_RESOURCE_METADATA: 'true',
      FAPI_CLIENT_CERT_HEADER: 'client-cert',
      FAPI_CLIENT_CERT_FORMAT: 'rfc9440',
      FAPI_CLIENT_CERT_TRUSTED_PEERS: '10.1.2.3',
      FAPI_CLIENT_CERT_SECRET_HEADER: 'x-proxy-secret',
      FAPI_CLIENT_CERT_SECRET: 's3cret-of-the-proxy-0123',
      FAPI_DPOP_MAX_AGE_SEC: '30',
      FAPI_DPOP_NONCE_REQUIRED: 'true',
      FAPI_DPOP_NONCE_SECRET: 'x'.repeat(32),
      FAPI_INTROSPECTION_CLIENT_ID: 'rs',
      FAPI_INTROSPECTION_AUTH_METHOD: 'client_secret_post',
      FAPI_INTROSPECTION_CLIENT_SECRET: 'secret',
      FAPI_INTROSPECTION_ENDPOINT: 'https://as.bank.example/introspect',
      FAPI_INTROSPECTION_SIGNED_RESPONSE: 'false',
      FAPI_INTROSPECTION_CACHE_TTL_SEC: '20',
      FAPI_INTROSPECTION_ISSUER: 'https://as.bank.example',
    });
    expect(options).toEqual(
      fromEnv({
        issuers: [{ issuer: 'https://as.bank.example', jwksUri: 'https://as.bank.example/jwks' }],
        audience: ['https://api.bank.example', 'https://api2.bank.example'],
        publicUrl: ['https://api.bank.example'],
        trustedProxies: ['10.0.0.0/8', '192.168.1.1'],
        profile: 'oauth2',
        algorithms: ['ES256', 'PS256'],
        clockToleranceSec: 5,
        realm: 'bank',
        tokenFormat: 'auto',
        introspectJwts: true,
        resourceMetadata: true,
        mtls: {
          proxy: {
            header: 'client-cert',
            format: 'rfc9440',
            trustedPeers: ['10.1.2.3'],
            sharedSecret: { header: 'x-proxy-secret', value: 's3cret-of-the-proxy-0123' },
          },
        },
        dpop: { maxAgeSec: 30, nonce: { required: true, secret: 'x'.repeat(32) } },
        introspection: {
          clientId: 'rs',
          clientAuth: { method: 'client_secret_post', clientSecret: 'secret' },
          endpoint: 'https://as.bank.example/introspect',
          issuer: 'https://as.bank.example',
          signedResponse: false,
          cache: { maxTtlSec: 20 },
        },
      }),
    );
    // The same validation as options written in code accepts it.
    expect(() => createGuard(options)).not.toThrow();
  });

  it('reads every variable it documents: each one changes the options or is refused by name', () => {
    // Companions a variable needs before it is read at all.
    const companions: Record<string, Record<string, string>> = {
      FAPI_CLIENT_CERT: { FAPI_CLIENT_CERT_HEADER: 'client-cert', FAPI_CLIENT_CERT_TRUSTED_PEERS: '10.0.0.1' },
      FAPI_INTROSPECTION: { FAPI_INTROSPECTION_CLIENT_ID: 'rs', FAPI_INTROSPECTION_CLIENT_SECRET: 'secret' },
    };
    for (const name of Object.keys(GUARD_ENV_VARIABLES)) {
      const group = Object.entries(companions).find(([p]) => name.startsWith(p))?.[1] ?? {};
      // A variable that turns a group on is compared with the group off.
      const before = name in group ? minimal : { ...minimal, ...group };
      const changed = { ...minimal, ...group, [name]: '7' };
      let after: unknown;
      try {
        after = guardOptionsFromEnv(changed);
      } catch (e) {
        expect((e as Error).message).toContain(name);
        continue;
      }
      expect(after).not.toEqual(guardOptionsFromEnv(before));
    }
  });

  it('is documented: the core reference page (docs/packages/core.md) lists exactly the variables read', () => {
    const readme = readFileSync(join(__dirname, '..', '..', '..', 'docs', 'packages', 'core.md'), 'utf8');
    const listed = [...readme.matchAll(/^\| `(FAPI_[A-Z0-9_]+)` +\|/gm)].map((m) => m[1]);
    expect(listed).toEqual(Object.keys(GUARD_ENV_VARIABLES));
  });

  it('refuses an unknown FAPI_ variable and names the nearest one', () => {
    expect(() => guardOptionsFromEnv({ ...minimal, FAPI_AUDIENCES: 'x' })).toThrow(
      /FAPI_AUDIENCES is not a fapi-guard variable; did you mean FAPI_AUDIENCE\? Or, if your application reads it itself, pass guardOptionsFromEnv\(env, \{ allow: \['FAPI_AUDIENCES'\] \}\)$/,
    );
    expect(() => guardOptionsFromEnv({ ...minimal, FAPI_CLIENT_CERT_HEADR: 'client-cert' })).toThrow(
      /did you mean FAPI_CLIENT_CERT_HEADER/,
    );
    // Neither a typo nor declared: the message says how to declare it.
    expect(() => guardOptionsFromEnv({ ...minimal, FAPI_FRAMEWORK: 'koa' })).toThrow(
      "environment variable FAPI_FRAMEWORK is not a fapi-guard variable; if your application reads it itself, pass guardOptionsFromEnv(env, { allow: ['FAPI_FRAMEWORK'] })",
    );
    // Variables the application reads itself are declared, and other prefixes are not ours.
    expect(() => guardOptionsFromEnv({ ...minimal, FAPI_FRAMEWORK: 'koa', PORT: '1' }, { allow: ['FAPI_FRAMEWORK'] })).not.toThrow();
  });

  it('refuses values of the wrong form, naming the variable', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ FAPI_CLOCK_TOLERANCE_SEC: '10s' }, /FAPI_CLOCK_TOLERANCE_SEC must be a whole number/],
      [{ FAPI_CLOCK_TOLERANCE_SEC: '-1' }, /FAPI_CLOCK_TOLERANCE_SEC must be a whole number/],
      [{ FAPI_RESOURCE_METADATA: 'yes' }, /FAPI_RESOURCE_METADATA must be true or false/],
      [{ FAPI_PROFILE: 'fapi1' }, /FAPI_PROFILE must be one of fapi2, fapi1-advanced, oauth2/],
      [{ FAPI_TOKEN_FORMAT: 'JWT' }, /FAPI_TOKEN_FORMAT must be one of jwt, opaque, auto/],
      [{ FAPI_CLIENT_CERT_FORMAT: 'envoy' }, /FAPI_CLIENT_CERT_FORMAT needs FAPI_CLIENT_CERT_HEADER/],
      [
        { FAPI_CLIENT_CERT_HEADER: 'x', FAPI_CLIENT_CERT_SECRET: 's' },
        /FAPI_CLIENT_CERT_SECRET_HEADER is required with FAPI_CLIENT_CERT_SECRET/,
      ],
      [{ FAPI_INTROSPECTION_CLIENT_SECRET: 's' }, /FAPI_INTROSPECTION_CLIENT_SECRET needs FAPI_INTROSPECTION_CLIENT_ID/],
      [{ FAPI_INTROSPECTION_CLIENT_ID: 'rs' }, /FAPI_INTROSPECTION_CLIENT_SECRET is required for client_secret_basic/],
      [
        { FAPI_INTROSPECTION_CLIENT_ID: 'rs', FAPI_INTROSPECTION_AUTH_METHOD: 'private_key_jwt', FAPI_INTROSPECTION_PRIVATE_KEY: '{' },
        /FAPI_INTROSPECTION_PRIVATE_KEY must be a private JWK in JSON/,
      ],
      [
        { FAPI_INTROSPECTION_CLIENT_ID: 'rs', FAPI_INTROSPECTION_CLIENT_SECRET: 's', FAPI_INTROSPECTION_PRIVATE_KEY: '{}' },
        /FAPI_INTROSPECTION_PRIVATE_KEY is not used with client_secret_basic/,
      ],
      [{ FAPI_ISSUER: 'https://a.example,https://b.example', FAPI_JWKS_URI: 'https://a.example/j' }, /one FAPI_ISSUER only/],
    ];
    for (const [extra, message] of bad) expect(() => guardOptionsFromEnv({ ...minimal, ...extra })).toThrow(message);
    expect(() => guardOptionsFromEnv({ FAPI_AUDIENCE: 'https://api.bank.example' })).toThrow(/FAPI_ISSUER is required/);
    expect(() => guardOptionsFromEnv({ FAPI_ISSUER: 'https://as.bank.example', FAPI_AUDIENCE: ' ' })).toThrow(/FAPI_AUDIENCE is required/);
  });

  it('leaves the checks of createGuard in force: an unsafe value from the environment fails at start-up', () => {
    expect(() => createGuard(guardOptionsFromEnv({ ...minimal, FAPI_ISSUER: 'http://as.bank.example' }))).toThrow(/must use https/);
    expect(() => createGuard(guardOptionsFromEnv({ ...minimal, FAPI_ALGORITHMS: 'HS256' }))).toThrow(/HS256" is not allowed/);
    expect(() => createGuard(guardOptionsFromEnv({ ...minimal, FAPI_CLOCK_TOLERANCE_SEC: '61' }))).toThrow(
      'fapi-guard: FAPI_CLOCK_TOLERANCE_SEC must be between 0 and 60 seconds',
    );
  });

  it("names the variable, not the option it sets, in createGuard's start-up errors, also when spread into other options", () => {
    const fails = (env: Record<string, string>) => () =>
      createGuard({ ...guardOptionsFromEnv({ ...minimal, ...env }), onDecision: () => {} });
    expect(fails({ FAPI_DPOP_NONCE_SECRET: 'short' })).toThrow(/^fapi-guard: FAPI_DPOP_NONCE_SECRET must be at least 32 bytes/);
    expect(fails({ FAPI_DPOP_MAX_AGE_SEC: '301' })).toThrow(/^fapi-guard: FAPI_DPOP_MAX_AGE_SEC must be between 1 and 300 seconds$/);
    expect(fails({ FAPI_ISSUER: 'http://as.bank.example' })).toThrow(/^fapi-guard: FAPI_ISSUER "http:\/\/as.bank.example" must use https/);
    expect(fails({ FAPI_ALGORITHMS: 'ES256,HS256' })).toThrow(
      /^fapi-guard: FAPI_ALGORITHMS "HS256" is not allowed: only asymmetric signature algorithms/,
    );
    expect(fails({ FAPI_AUDIENCE: 'urn:bank:api' })).toThrow(/: set FAPI_PUBLIC_URL, e.g. FAPI_PUBLIC_URL='https:\/\/api.example'$/);
    expect(fails({ FAPI_TRUSTED_PROXIES: 'proxy.internal' })).toThrow(
      /^fapi-guard: FAPI_TRUSTED_PROXIES entry "proxy.internal" is not an IP/,
    );
    expect(fails({ FAPI_CLIENT_CERT_HEADER: 'client-cert', FAPI_CLIENT_CERT_TRUSTED_PEERS: 'proxy' })).toThrow(
      /^fapi-guard: FAPI_CLIENT_CERT_TRUSTED_PEERS entry "proxy" is not an IP/,
    );
    expect(fails({ FAPI_OUTBOUND_PROXY: 'ftp://proxy' })).toThrow(/^fapi-guard: FAPI_OUTBOUND_PROXY must be an http:\/\/ proxy URL/);
    expect(
      fails({
        FAPI_INTROSPECTION_CLIENT_ID: 'rs',
        FAPI_INTROSPECTION_CLIENT_SECRET: 's',
        FAPI_INTROSPECTION_ISSUER: 'https://other.example',
      }),
    ).toThrow(/^fapi-guard: FAPI_INTROSPECTION_ISSUER must name one of the configured issuers/);
    // The same mistakes written in code keep the option names.
    expect(() => createGuard({ issuer: 'https://as.bank.example', audience: 'https://api.bank.example', clockToleranceSec: 61 })).toThrow(
      /^fapi-guard: clockToleranceSec must be between 0 and 60 seconds$/,
    );
    expect(() => createGuard({ issuer: 'https://as.bank.example', audience: 'urn:bank:api' })).toThrow(
      /set publicUrl, e.g. publicUrl: 'https/,
    );
  });

  it('knows the option of every variable it reads, so each can be named in a start-up error', () => {
    expect(new Set(Object.values(OPTION_VARIABLES))).toEqual(new Set(Object.keys(GUARD_ENV_VARIABLES)));
  });

  it('refuses a certificate header with neither trusted peers nor a shared secret, naming the variables (RFC 9440 §4)', () => {
    expect(() => guardOptionsFromEnv({ ...minimal, FAPI_CLIENT_CERT_HEADER: 'client-cert' })).toThrow(
      'fapi-guard: environment variable FAPI_CLIENT_CERT_HEADER needs FAPI_CLIENT_CERT_TRUSTED_PEERS (the proxy addresses), or FAPI_CLIENT_CERT_SECRET_HEADER and FAPI_CLIENT_CERT_SECRET',
    );
    const secret = { FAPI_CLIENT_CERT_SECRET_HEADER: 'x-proxy-secret', FAPI_CLIENT_CERT_SECRET: 's3cret-of-the-proxy-0123' };
    expect(() => guardOptionsFromEnv({ ...minimal, FAPI_CLIENT_CERT_HEADER: 'client-cert', ...secret })).not.toThrow();
    expect(() =>
      guardOptionsFromEnv({ ...minimal, FAPI_CLIENT_CERT_HEADER: 'client-cert', FAPI_CLIENT_CERT_TRUSTED_PEERS: '10.0.0.1' }),
    ).not.toThrow();
  });

  describe('a guard configured from the environment, over HTTP', () => {
    let issuer: MockIssuer;
    let server: Server;
    let url: string;

    beforeAll(async () => {
      issuer = await MockIssuer.start({ audience: 'https://api.bank.example' });
      const guard = createGuard(
        guardOptionsFromEnv({
          FAPI_ISSUER: issuer.issuer,
          FAPI_AUDIENCE: 'https://api.bank.example',
          FAPI_PUBLIC_URL: 'https://api.bank.example',
        }),
      );
      server = createServer(async (req, res) => {
        const result = await guard.check(
          { method: req.method as string, url: `https://api.bank.example${req.url}`, headers: headersFromRaw(req.rawHeaders) },
          guard.policy({ scopes: ['accounts'] }),
        );
        res.writeHead(result.ok ? 200 : result.status).end(result.ok ? result.clientId : result.error);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
      await issuer.stop();
    });

    it('accepts a DPoP-bound token for the configured public URL and refuses a missing scope', async () => {
      const client = await DpopClient.create();
      const token = await issuer.mint({ jkt: client.jkt, scope: 'accounts' });
      const proof = await client.proof({ htm: 'GET', htu: 'https://api.bank.example/accounts', accessToken: token });
      const ok = await fetch(`${url}/accounts`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
      expect(ok.status).toBe(200);
      const narrow = await issuer.mint({ jkt: client.jkt, scope: 'payments' });
      const proof2 = await client.proof({ htm: 'GET', htu: 'https://api.bank.example/accounts', accessToken: narrow });
      const refused = await fetch(`${url}/accounts`, { headers: { authorization: `DPoP ${narrow}`, dpop: proof2 } });
      expect(refused.status).toBe(403);
    });
  });
});
