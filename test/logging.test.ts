/**
 * Failures visible by default (`logger`): issuer, introspection and store failures reach the
 * logger with their reason, rate-limited, never with a token, a proof or a secret; a refusal that
 * a configuration change would fix (DPoP htu at another origin: no `publicUrl` behind a proxy)
 * logs one hint. Through real HTTP; the hint on Express, Koa and Fastify.
 */
import { Writable } from 'node:stream';
import { createGuard, type GuardLogger, type GuardOptions, guardOptionsFromEnv } from '@fapi-guard/core';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import pino from 'pino';
import { FRAMEWORKS, startApp } from './support/apps';
import { startExpressApp } from './support/express-app';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const SECRET = 'rs-client-secret-0123456789';

interface Entry {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}

function capture(): { entries: Entry[]; logger: GuardLogger; text(): string } {
  const entries: Entry[] = [];
  const push = (level: string) => (obj: Record<string, unknown>, msg: string) => entries.push({ level, obj, msg });
  return { entries, logger: { warn: push('warn'), error: push('error'), info: push('info') }, text: () => JSON.stringify(entries) };
}

let as: MockIssuer;
let client: DpopClient;
beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  as.introspectionClients.set('rs', SECRET);
  client = await DpopClient.create('ES256');
});
afterAll(() => as.stop());

async function dpopHeaders(token: string, htu = `${AUDIENCE}/accounts`) {
  return { authorization: `DPoP ${token}`, dpop: await client.proof({ htm: 'GET', htu, accessToken: token }) };
}

/** An Express app behind the public URL, reporting to `logger`. */
function startLogged(logger: GuardLogger, options: Partial<GuardOptions>) {
  return startExpressApp({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, logger, ...options });
}

describe('failures reach the logger with their reason, never a token or a secret', () => {
  it('an issuer whose keys cannot be fetched: the fetch failure and the 503s, once per window', async () => {
    const log = capture();
    const api = await startLogged(log.logger, {});
    const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
    const proofs: string[] = [];
    as.setAvailable(false);
    try {
      for (let i = 0; i < 5; i++) {
        const headers = await dpopHeaders(token);
        proofs.push(headers.dpop);
        const res = await send(`${api.url}/accounts`, { headers });
        expect(res.status).toBe(503);
        expect(res.headers['retry-after']).toBeDefined();
      }
    } finally {
      as.setAvailable(true);
      await api.close();
    }
    const fetchFailures = log.entries.filter((e) => e.msg.includes('issuer keys could not be fetched'));
    expect(fetchFailures).toHaveLength(1); // one fetch per cool-down (30 s)
    expect(fetchFailures[0]?.obj).toMatchObject({ issuer: as.issuer, reason: expect.stringMatching(/answered 503/) });
    const refusals = log.entries.filter((e) => e.obj.reason === 'issuer_unavailable');
    expect(refusals).toHaveLength(1); // five 503s, one line
    expect(refusals[0]).toMatchObject({ level: 'error', obj: { status: 503, detail: expect.stringMatching(/no keys for/) } });
    for (const secret of [token, ...proofs]) expect(log.text()).not.toContain(secret);
  });

  it('an introspection endpoint that fails: the reason, never the token or the client secret', async () => {
    const log = capture();
    const api = await startLogged(log.logger, {
      introspection: { clientId: 'rs', clientAuth: { method: 'client_secret_basic', clientSecret: SECRET } },
    });
    const token = await as.mintOpaque({ scope: 'accounts', jkt: client.jkt });
    as.introspection = { fail: 500 };
    try {
      expect((await send(`${api.url}/accounts`, { headers: await dpopHeaders(token) })).status).toBe(503);
      expect((await send(`${api.url}/accounts`, { headers: await dpopHeaders(token) })).status).toBe(503);
    } finally {
      as.introspection = {};
      await api.close();
    }
    const refusals = log.entries.filter((e) => e.obj.reason === 'issuer_unavailable');
    expect(refusals).toHaveLength(1);
    expect(refusals[0]?.obj.detail).toMatch(/introspection endpoint answered 500/);
    expect(log.text()).not.toContain(token);
    expect(log.text()).not.toContain(SECRET);
    expect(log.text()).not.toContain(Buffer.from(`rs:${SECRET}`).toString('base64'));
  });

  it('DEC-09 a replay store that fails: 503 with Retry-After and one log line with the reason', async () => {
    const log = capture();
    const api = await startLogged(log.logger, {
      dpop: {
        replayStore: {
          claim: async () => {
            throw new Error('connection refused by the store');
          },
        },
      },
    });
    const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await send(`${api.url}/accounts`, { headers: await dpopHeaders(token) });
        expect(res.status).toBe(503);
        expect(res.headers['retry-after']).toBe('1');
      }
    } finally {
      await api.close();
    }
    expect(log.entries).toEqual([
      {
        level: 'error',
        msg: 'fapi-guard: requests refused with 503: A required service is unavailable; try again later',
        obj: { reason: 'store_unavailable', status: 503, detail: 'replay store: connection refused by the store' },
      },
    ]);
    expect(log.text()).not.toContain(token);
  });

  it('an introspection cache that fails: logged as a warning, the endpoint answers instead', async () => {
    const log = capture();
    const failing = async () => {
      throw new Error('cache down');
    };
    const api = await startLogged(log.logger, {
      introspection: {
        clientId: 'rs',
        clientAuth: { method: 'client_secret_basic', clientSecret: SECRET },
        cache: { store: { get: failing, set: failing } },
      },
    });
    const token = await as.mintOpaque({ scope: 'accounts', jkt: client.jkt });
    try {
      expect((await send(`${api.url}/accounts`, { headers: await dpopHeaders(token) })).status).toBe(200);
    } finally {
      await api.close();
    }
    expect(log.entries).toEqual([
      { level: 'warn', msg: expect.stringMatching(/introspection cache failed/), obj: { reason: 'cache down' } },
    ]);
  });
});

describe.each(FRAMEWORKS)('configuration hint on %s', (framework) => {
  it('a DPoP proof for this path at another origin (no publicUrl behind a proxy): 401 to the client, one hint to the operator', async () => {
    const log = capture();
    // No publicUrl: the API's origin is its audience's; the client signs another public URL.
    const app = await startApp(framework, { issuer: as.issuer, audience: AUDIENCE, logger: log.logger });
    const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await send(`${app.url}/accounts`, { headers: await dpopHeaders(token, 'https://api.bank.example/accounts') });
        expect(res.status).toBe(401);
        expect(res.json.error_description).toBe('The DPoP proof is invalid');
      }
      // Another path is a client error, not a configuration problem: no hint.
      await send(`${app.url}/accounts`, { headers: await dpopHeaders(token, `${new URL(AUDIENCE).origin}/payments`) });
    } finally {
      await app.close();
    }
    expect(log.entries).toHaveLength(1);
    expect(log.entries[0]).toMatchObject({
      level: 'warn',
      msg: expect.stringMatching(/set publicUrl/),
      obj: { proofOrigin: 'https://api.bank.example', requestOrigin: new URL(AUDIENCE).origin },
    });
  });
});

describe('configuration hint of a guard configured from the environment', () => {
  it('names FAPI_PUBLIC_URL and FAPI_TRUSTED_PROXIES, the variables to set, not the options', async () => {
    const log = capture();
    const app = await startExpressApp({ ...guardOptionsFromEnv({ FAPI_ISSUER: as.issuer, FAPI_AUDIENCE: AUDIENCE }), logger: log.logger });
    const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
    try {
      const res = await send(`${app.url}/accounts`, { headers: await dpopHeaders(token, 'https://api.bank.example/accounts') });
      expect(res.status).toBe(401);
    } finally {
      await app.close();
    }
    expect(log.entries).toHaveLength(1);
    expect(log.entries[0]?.msg).toMatch(/set FAPI_PUBLIC_URL \(or FAPI_TRUSTED_PROXIES\) to the URL clients use/);
  });
});

describe('the logger option', () => {
  const store = {
    claim: async (): Promise<boolean> => {
      throw new Error('store down');
    },
  };
  async function refuseOnce(options: Partial<GuardOptions>): Promise<void> {
    const guard = createGuard({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, dpop: { replayStore: store }, ...options });
    const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
    const { authorization, dpop } = await dpopHeaders(token);
    const headers = { authorization: [authorization], dpop: [dpop] };
    const result = await guard.check({ method: 'GET', url: `${AUDIENCE}/accounts`, headers }, { scopes: ['accounts'] });
    expect(result.ok || result.status).toBe(503);
  }

  function stderrLines(run: () => Promise<void>): Promise<string[]> {
    const lines: string[] = [];
    const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    return run().then(
      () => {
        spy.mockRestore();
        return lines;
      },
      (e) => {
        spy.mockRestore();
        throw e;
      },
    );
  }

  it('by default: one JSON line on stderr', async () => {
    const lines = await stderrLines(() => refuseOnce({}));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/\n$/);
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      level: 'error',
      name: 'fapi-guard',
      reason: 'store_unavailable',
      detail: 'replay store: store down',
      time: expect.any(Number),
    });
  });

  it('false: nothing', async () => {
    expect(await stderrLines(() => refuseOnce({ logger: false }))).toEqual([]);
  });

  it('a real pino logger', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    await refuseOnce({ logger: pino({ level: 'info' }, destination) });
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      level: 50,
      msg: expect.stringMatching(/refused with 503/),
      reason: 'store_unavailable',
      detail: 'replay store: store down',
    });
  });

  it('refuses a logger without warn and error at start-up', () => {
    expect(() => createGuard({ issuer: as.issuer, audience: AUDIENCE, logger: { warn: () => undefined } as never })).toThrow(
      /logger must have warn/,
    );
  });
});
