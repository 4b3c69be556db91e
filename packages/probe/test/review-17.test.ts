/**
 * Review 17: fapi-probe's cases held against the text they cite (RFC 6750 §3, RFC 9110 §11.2 and
 * §11.6.1, RFC 9449 §7.1/§9, RFC 3986), with small servers on 127.0.0.1. Each test in the first
 * describe FAILS on the current code; "held" lists what was tried and held.
 *
 * Findings
 *
 * 1. An empty WWW-Authenticate passes the MUSTs (too loose).
 *    cases.ts refused() counts the field's presence (`headers['www-authenticate'].length > 0`), and
 *    errors.challenge-syntax flags a 401 only when the field is absent; challenge.ts parseField
 *    reads "" (or ",") as zero challenges without complaint.
 *    Spec: RFC 9110 §11.6.1 "A server generating a 401 (Unauthorized) response MUST send a
 *    WWW-Authenticate header field containing at least one challenge"; WWW-Authenticate =
 *    #challenge, and RFC 6750 §3 asks for a challenge ("Bearer" followed by auth-params).
 *    Set-up: 401 with `WWW-Authenticate: ` (empty value) to a request without credentials.
 *    Fix: count challenges, not fields: refused() should require parseChallenges(...).ok with at
 *    least one challenge; errors.challenge-syntax should report a field list with no challenge
 *    (parseChallenges returning zero challenges for non-empty input list) as a problem.
 *
 * 2. realm is held to the error/error_description character set (too strict).
 *    challenge.ts challengeProblems: `name === 'realm'` is tested against NQSCHAR.
 *    Spec: RFC 6750 §3 restricts the characters of "scope", "error", "error_description" and
 *    "error_uri" only; of realm it says "A \"realm\" attribute MAY be included ... The \"realm\"
 *    attribute MUST NOT appear more than once." realm is an ordinary quoted-string (RFC 9110
 *    §5.6.4, §11.5): quoted-pair (\") and obs-text are allowed.
 *    Set-up: `DPoP realm="the \"accounts\" API", algs="ES256"` and `DPoP realm="Zürich", algs="ES256"`.
 *    Fix: drop 'realm' from the NQSCHAR test (keep it in SINGLE).
 *
 * 3. OWS before a list comma after a bare auth-scheme is refused (too strict).
 *    challenge.ts parseField: after the scheme only SP or "," is accepted (`fail('SP expected
 *    after the auth-scheme')`), so HTAB before "," fails.
 *    Spec: RFC 9110 §5.6.1 `1#element => element *( OWS "," OWS element )`, OWS = *( SP / HTAB );
 *    WWW-Authenticate = #challenge (§11.6.1).
 *    Set-up: `WWW-Authenticate: DPoP\t, Bearer realm="api"`.
 *    Fix: after the scheme, skip OWS and continue when a "," (or the end) follows; only then
 *    require 1*SP before a token68 or auth-param.
 *
 * 4. A repeated auth-param other than the seven listed passes (too loose).
 *    challenge.ts challengeProblems checks repeats only for SINGLE names and only in Bearer/DPoP
 *    challenges.
 *    Spec: RFC 9110 §11.2 "the name token is matched case-insensitively and each parameter name
 *    MUST only occur once per challenge" (the case cites RFC 9110 §11.6.1, whose grammar is §11.2's).
 *    Set-up: `DPoP algs="ES256", foo=a, FOO=b`.
 *    Fix: flag any name repeated within one challenge, whatever the scheme.
 *
 * 5. error_uri is checked for characters only, not as a URI-reference (too loose).
 *    challenge.ts URI_CHARS = %x21 / %x23-5B / %x5D-7E lets "{", "}", "|", "^", "`", "<", ">" through.
 *    Spec: RFC 6750 §3 "Values for the \"error_uri\" attribute MUST conform to the URI-reference
 *    syntax and thus MUST NOT include characters outside the set ..."; RFC 3986 §2 has no "{" "}".
 *    Set-up: `DPoP algs="ES256", error_uri="https://docs.example/{errors}"`.
 *    Fix: also test the value against the RFC 3986 URI-reference character classes (unreserved,
 *    reserved, "%" HEXDIG HEXDIG) and at most one "#".
 *
 * 6. metadata.document accepts the root identifier for a document reached through resource_metadata
 *    (too loose; the case's own requirement text says otherwise).
 *    cases.ts metadataCandidates: a linked URL under /.well-known/oauth-protected-resource adds the
 *    identifiers the well-known URL was built from (`shaped`) to `expected`, so a link to the root
 *    document with "resource": "<origin>/" passes for a resource at <origin>/accounts.
 *    Spec: RFC 9728 §3.3 "If the protected resource metadata was retrieved from a URL returned by
 *    the protected resource via the WWW-Authenticate resource_metadata parameter, then the resource
 *    value returned MUST be identical to the URL that the client used to make the request to the
 *    resource server." (The prefix rule is only an expired draft, draft-mcguinness-oauth-rfc9728bis.)
 *    Set-up: 401 `DPoP algs="ES256", resource_metadata="<origin>/.well-known/oauth-protected-resource"`,
 *    that document `{"resource":"<origin>/"}`.
 *    Fix: for a linked document expect exactly the request URL (ctx.init.resource); keep `shaped`
 *    for the well-known candidates only.
 *
 * 7. dpop.nonce is "n/a" at a server that hands out nonces on its 200s but never checks them
 *    (too loose: a MUST reported as not applying).
 *    cases.ts dpop.nonce runs only when ctx.nonceRequested (a use_dpop_nonce answer was seen);
 *    context.ts keeps a DPoP-Nonce from any answer (ctx.nonce) and sends it in every proof.
 *    Spec: RFC 9449 §4.3 #10 "if the server provided a nonce value to the client, the nonce claim
 *    matches the server-provided nonce value"; §8.2/§9: a server provides a nonce with the DPoP-Nonce
 *    header, also on a successful answer ("the client MUST use the new nonce value supplied").
 *    Set-up: every 200 carries `DPoP-Nonce: n-1`; proofs without a nonce or with a made-up one are accepted.
 *    Fix: run the case when the server provided any nonce (ctx.nonce !== undefined), and say
 *    "not applicable" only when no DPoP-Nonce was ever seen.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ProbeReport, runProbe } from '@fapi-guard/probe';
import { close, dpopJwk, serve } from './support';

const TOKEN = 'opaque-token';
const result = (report: ProbeReport, id: string) => report.results.find((r) => r.id === id);

/** The probe at `${url}/accounts` with an opaque token and a fresh DPoP key, running only `only` (and the baseline). */
const probeOnly = async (url: string, only: string[], timeoutMs = 10_000) =>
  runProbe({ resource: `${url}/accounts`, accessToken: TOKEN, dpopKey: await dpopJwk(), only, rate: 50, timeoutMs });

/** Accepts `DPoP <token>` (any proof); answers everything else 401 with these WWW-Authenticate lines. */
const challenging = (lines: string[]) => (req: IncomingMessage, res: ServerResponse) => {
  if (req.headers.authorization === `DPoP ${TOKEN}`) return void res.end('{}');
  res.writeHead(401, [...lines.flatMap((l) => ['WWW-Authenticate', l]), 'content-length', '0']).end();
};

async function withServer(handler: (req: IncomingMessage, res: ServerResponse) => void, body: (url: string) => Promise<void>) {
  const { server, url } = await serve(handler);
  try {
    await body(url);
  } finally {
    await close(server);
  }
}

describe('review 17 findings (each fails on the current code)', () => {
  it('1. RFC 9110 §11.6.1: a 401 whose WWW-Authenticate holds no challenge (empty value) fails credentials.missing and errors.challenge-syntax', async () => {
    await withServer(challenging(['']), async (url) => {
      const report = await probeOnly(url, ['credentials.missing', 'errors.challenge-syntax']);
      expect(result(report, 'baseline.valid')?.status).toBe('pass');
      expect([result(report, 'credentials.missing')?.status, result(report, 'errors.challenge-syntax')?.status]).toEqual(['fail', 'fail']);
    });
  });

  it('1b. RFC 9110 §5.6.1/§11.6.1: `WWW-Authenticate: ,` (an empty list, no challenge) fails errors.challenge-syntax', async () => {
    await withServer(challenging([',']), async (url) => {
      const report = await probeOnly(url, ['credentials.missing', 'errors.challenge-syntax']);
      expect(result(report, 'errors.challenge-syntax')?.status).toBe('fail');
    });
  });

  it('2. RFC 6750 §3 restricts error/error_description/scope/error_uri, not realm: realm="the \\"accounts\\" API" (quoted-pair) is compliant', async () => {
    await withServer(challenging(['DPoP realm="the \\"accounts\\" API", algs="ES256"']), async (url) => {
      const report = await probeOnly(url, ['credentials.missing', 'errors.challenge-syntax']);
      expect(result(report, 'credentials.missing')?.status).toBe('pass');
      expect(result(report, 'errors.challenge-syntax')?.observed).toBe('2 responses read');
      expect(result(report, 'errors.challenge-syntax')?.status).toBe('pass');
    });
  });

  it('2b. RFC 9110 §5.6.4 qdtext includes obs-text; RFC 6750 §3 sets no character rule for realm: realm="Zürich" is compliant', async () => {
    await withServer(challenging(['DPoP realm="Z\u00fcrich", algs="ES256"']), async (url) => {
      const report = await probeOnly(url, ['credentials.missing', 'errors.challenge-syntax']);
      expect(result(report, 'errors.challenge-syntax')?.status).toBe('pass');
    });
  });

  it('3. RFC 9110 §5.6.1: OWS (HTAB) before the list comma after a bare scheme — `DPoP\\t, Bearer realm="api"` — is valid', async () => {
    await withServer(challenging(['DPoP\t, Bearer realm="api"']), async (url) => {
      const report = await probeOnly(url, ['credentials.missing', 'errors.challenge-syntax']);
      expect(result(report, 'errors.challenge-syntax')?.status).toBe('pass');
      expect(result(report, 'credentials.missing')?.status).toBe('pass');
    });
  });

  it('4. RFC 9110 §11.2 "each parameter name MUST only occur once per challenge": `DPoP algs="ES256", foo=a, FOO=b` fails errors.challenge-syntax', async () => {
    await withServer(challenging(['DPoP algs="ES256", foo=a, FOO=b']), async (url) => {
      const report = await probeOnly(url, ['credentials.missing', 'errors.challenge-syntax']);
      expect(result(report, 'errors.challenge-syntax')?.status).toBe('fail');
    });
  });

  it('5. RFC 6750 §3 error_uri "MUST conform to the URI-reference syntax" (RFC 3986 has no "{"): error_uri="https://docs.example/{errors}" fails', async () => {
    await withServer(challenging(['DPoP algs="ES256", error_uri="https://docs.example/{errors}"']), async (url) => {
      const report = await probeOnly(url, ['credentials.missing', 'errors.challenge-syntax']);
      expect(result(report, 'errors.challenge-syntax')?.status).toBe('fail');
    });
  });
});

describe('review 17 findings: metadata', () => {
  it('6. RFC 9728 §3.3: a document reached through resource_metadata MUST name the URL requested, not the root identifier', async () => {
    const handler = (req: IncomingMessage, res: ServerResponse, url: string) => {
      if (req.url === '/.well-known/oauth-protected-resource')
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ resource: `${url}/` }));
      if (req.url !== '/accounts') return void res.writeHead(404).end();
      if (req.headers.authorization === `DPoP ${TOKEN}`) return void res.end('{}');
      res
        .writeHead(401, { 'www-authenticate': `DPoP algs="ES256", resource_metadata="${url}/.well-known/oauth-protected-resource"` })
        .end();
    };
    const { server, url } = await serve(handler);
    try {
      const report = await probeOnly(url, ['credentials.missing', 'metadata.document']);
      expect(result(report, 'credentials.missing')?.status).toBe('pass');
      expect(result(report, 'metadata.document')?.status).toBe('fail');
    } finally {
      await close(server);
    }
  });
});

describe('review 17 findings: nonces', () => {
  it('7. RFC 9449 §4.3 #10: nonces provided on 200s (DPoP-Nonce) but never checked fail dpop.nonce, not "not applicable"', async () => {
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      if (req.headers.authorization === `DPoP ${TOKEN}` && typeof req.headers.dpop === 'string')
        return void res.writeHead(200, { 'dpop-nonce': 'n-1' }).end('{}');
      res.writeHead(401, { 'www-authenticate': 'DPoP algs="ES256"' }).end();
    };
    await withServer(handler, async (url) => {
      const report = await probeOnly(url, ['dpop.nonce']);
      expect(result(report, 'baseline.valid')?.status).toBe('pass');
      expect(result(report, 'dpop.nonce')?.status).toBe('fail');
    });
  });
});

describe('held', () => {
  it('RFC 9110 §11.6.1: several WWW-Authenticate lines, several challenges per line, token68 of another scheme, BWS around "=", scheme and param names in any case', async () => {
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      const auth = req.headers.authorization;
      if (auth === `DPoP ${TOKEN}`) return void res.end('{}');
      const lines = auth
        ? ['Newauth abc==, Basic realm="x"', 'dpop ERROR="invalid_request" , Algs = "ES256 PS256"']
        : ['Newauth abc==, Basic realm="x"', 'dpop ALGS="ES256 PS256",  REALM = "api",,'];
      res.writeHead(auth ? 400 : 401, [...lines.flatMap((l) => ['WWW-Authenticate', l]), 'content-length', '0']).end();
    };
    await withServer(handler, async (url) => {
      const report = await probeOnly(url, ['credentials.missing', 'credentials.malformed', 'errors.']);
      for (const id of [
        'credentials.missing',
        'credentials.malformed',
        'errors.challenge-syntax',
        'errors.dpop-algs',
        'errors.status-codes',
      ])
        expect([id, result(report, id)?.status]).toEqual([id, 'pass']);
    });
  });

  it('RFC 6750 §3.1: a 400 invalid_request for a malformed Authorization is a pass; the JSON body\'s "error" is never read', async () => {
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      if (req.headers.authorization === `DPoP ${TOKEN}`) return void res.end('{}');
      res
        .writeHead(req.headers.authorization ? 400 : 401, {
          'www-authenticate': req.headers.authorization ? 'DPoP algs="ES256", error="invalid_request"' : 'DPoP algs="ES256"',
          'content-type': 'application/json',
        })
        .end('{"error":"server_error"}');
    };
    await withServer(handler, async (url) => {
      const report = await probeOnly(url, ['credentials.malformed']);
      expect(result(report, 'credentials.malformed')?.status).toBe('pass');
    });
  });

  it('RFC 9449 §9: a nonce-demanding server that rotates DPoP-Nonce on every 200 (chunked bodies) passes baseline and dpop.nonce', async () => {
    let current = 'n-0';
    let n = 0;
    const nonceOf = (proofJwt: string | undefined) => {
      try {
        return JSON.parse(Buffer.from((proofJwt ?? '').split('.')[1] ?? '', 'base64url').toString('utf8')).nonce as unknown;
      } catch {
        return undefined;
      }
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      const proofJwt = req.headers.dpop;
      if (req.headers.authorization !== `DPoP ${TOKEN}` || typeof proofJwt !== 'string')
        return void res.writeHead(401, { 'www-authenticate': 'DPoP algs="ES256"' }).end();
      if (nonceOf(proofJwt) !== current)
        return void res.writeHead(401, { 'www-authenticate': 'DPoP algs="ES256", error="use_dpop_nonce"', 'dpop-nonce': current }).end();
      current = `n-${++n}`;
      res.writeHead(200, { 'DPoP-Nonce': current, 'content-type': 'application/json' });
      res.write('{"a":');
      res.end('1}');
    };
    await withServer(handler, async (url) => {
      const report = await probeOnly(url, ['dpop.nonce']);
      expect(result(report, 'baseline.valid')?.status).toBe('pass');
      expect(result(report, 'dpop.nonce')?.status).toBe('pass');
    });
  });

  it('a hostile 401: 64 KiB of WWW-Authenticate is a bounded "no answer", not a crash or a pass', async () => {
    const huge = `DPoP algs="${'A'.repeat(64 * 1024)}"`;
    await withServer(challenging([huge]), async (url) => {
      const report = await probeOnly(url, ['credentials.missing']);
      expect(result(report, 'credentials.missing')?.status).toBe('fail');
      expect(result(report, 'credentials.missing')?.observed).toMatch(/^no answer/);
    });
  });

  it('a hostile 401: a 5 MiB body is read up to 1 MiB and judged', async () => {
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      if (req.headers.authorization === `DPoP ${TOKEN}`) return void res.end('{}');
      res.writeHead(401, { 'www-authenticate': 'DPoP algs="ES256"' });
      const chunk = Buffer.alloc(64 * 1024, 'x');
      for (let i = 0; i < 80; i++) res.write(chunk);
      res.end();
    };
    await withServer(handler, async (url) => {
      const report = await probeOnly(url, ['credentials.missing']);
      expect(result(report, 'credentials.missing')?.status).toBe('pass');
    });
  });

  it('a hostile baseline: an endless slow-drip body ends at the total deadline (timeoutMs), not held open', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const handler = (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      let sent = 0;
      const t = setInterval(() => {
        // Bounded on our side too: at most 200 bytes, 20 s.
        if (++sent > 200 || res.destroyed) {
          clearInterval(t);
          timers.delete(t);
          return void res.end();
        }
        res.write(' ');
      }, 100);
      timers.add(t);
    };
    try {
      await withServer(handler, async (url) => {
        const started = Date.now();
        const report = await probeOnly(url, ['credentials.missing'], 600);
        expect(Date.now() - started).toBeLessThan(5000);
        expect(report.notJudgedCause).toBe('unreachable');
        expect(report.exitCode).toBe(2);
      });
    } finally {
      for (const t of timers) clearInterval(t);
    }
  });

  it('a redirect is not followed: a 302 baseline is "not judged", and the Location is never requested', async () => {
    const { server, url, hits } = await serve((_req, res) => res.writeHead(302, { location: '/elsewhere' }).end());
    try {
      const report = await probeOnly(url, ['credentials.missing']);
      expect(report.notJudgedCause).toBe('baseline');
      expect(hits).toEqual(['/accounts']);
    } finally {
      await close(server);
    }
  });
});
