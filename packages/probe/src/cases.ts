/**
 * Every case the probe runs, as a table: id, requirement IDs (docs/requirements.json), level,
 * what it sends, what it expects, and how. A case sends at most three requests. Cases marked
 * `collect` send nothing: they judge every exchange of the run, so they come last.
 */
import { randomUUID } from 'node:crypto';
import { challengeProblems, param, parseChallenges } from './challenge.js';
import { type Binding, type Context, challenges, describe, errorOf, type FaultToken } from './context.js';
import type { Exchange } from './http.js';
import { decodeJwt, forgeHmac, forgeNone, forgeUntrusted, newDpopKey, type ProofFault, tamper } from './jws.js';

export type Level = 'MUST' | 'SHOULD' | 'MAY';

export type Outcome = { status: 'pass' | 'fail'; observed: string } | { status: 'not-run'; reason: string };

export interface ProbeCase {
  id: string;
  requirements: string[];
  level: Level;
  /** Only with this binding. */
  binding?: Binding;
  sends: string;
  expects: string;
  /** Judges the whole run instead of sending requests. */
  collect?: boolean;
  run(ctx: Context): Promise<Outcome>;
}

const accepted = (e: Exchange) => e.status >= 200 && e.status < 300;
const notRun = (reason: string): Outcome => ({ status: 'not-run', reason });
const verdict = (pass: boolean, observed: string): Outcome => ({ status: pass ? 'pass' : 'fail', observed });

/** Refused with one of `statuses` and, when given, one of `errors`. */
function refused(exchanges: Exchange | Exchange[], statuses: number[], errors?: string[]): Outcome {
  const list = Array.isArray(exchanges) ? exchanges : [exchanges];
  const pass = list.every((e) => statuses.includes(e.status) && (!errors || errors.includes(errorOf(e) ?? '')));
  return verdict(pass, list.map(describe).join('; '));
}

// RFC 9449 §7.1: a bad proof is invalid_dpop_proof; a malformed request may be 400 invalid_request.
const BAD_PROOF = { statuses: [400, 401], errors: ['invalid_dpop_proof', 'invalid_request'] };
// A token that fails validation: 401 invalid_token (RFC 6750 §3.1, RFC 9068 §4).
const BAD_TOKEN = { statuses: [401], errors: ['invalid_token'] };
// The binding does not match: the token is not usable by this sender (either code is in use).
const BAD_BINDING = { statuses: [400, 401], errors: ['invalid_token', 'invalid_dpop_proof'] };
// Several or misplaced credentials: 400 invalid_request (RFC 6750 §3.1); never success.
const BAD_REQUEST = { statuses: [400], errors: ['invalid_request'] };

const proofCase = (id: string, requirements: string[], fault: ProofFault, sends: string): ProbeCase => ({
  id,
  requirements,
  level: 'MUST',
  binding: 'dpop',
  sends,
  expects: '400/401 invalid_dpop_proof (or 400 invalid_request)',
  run: async (ctx) => refused(await ctx.call({ proof: fault }), BAD_PROOF.statuses, BAD_PROOF.errors),
});

const forged = (id: string, requirements: string[], sends: string, forge: (ctx: Context) => Promise<string[]> | string[]): ProbeCase => ({
  id,
  requirements,
  level: 'MUST',
  sends,
  expects: '401 invalid_token',
  run: async (ctx) => {
    if (!decodeJwt(ctx.token)) return notRun('the access token is not a JWT');
    const tokens = await forge(ctx);
    if (tokens.length === 0) return notRun('the issuer keys are unknown (give the issuer or --jwks-uri)');
    const answers: Exchange[] = [];
    for (const token of tokens) answers.push(await ctx.call({ token }));
    return refused(answers, BAD_TOKEN.statuses, BAD_TOKEN.errors);
  },
});

const faultToken = (id: string, requirements: string[], kind: FaultToken, sends: string, expects = BAD_TOKEN): ProbeCase => ({
  id,
  requirements,
  level: 'MUST',
  sends,
  expects: `${expects.statuses.join('/')} ${expects.errors.join(' or ')}`,
  run: async (ctx) => {
    const token = ctx.init.faultTokens[kind];
    if (!token) return notRun(`needs a token signed by the authorization server with this defect (--fault-token ${kind}=...)`);
    return refused(await ctx.call({ token }), expects.statuses, expects.errors);
  },
});

export const CASES: ProbeCase[] = [
  // --- baseline ---------------------------------------------------------------------------
  {
    id: 'baseline.valid',
    requirements: ['FAPI-RS-08'],
    level: 'MUST',
    sends: 'the token with its binding (DPoP proof or client certificate), as a correct client does',
    expects: '2xx (every other case is measured against this one)',
    run: async (ctx) => {
      const e = await ctx.call();
      return verdict(accepted(e), describe(e));
    },
  },
  // --- credentials --------------------------------------------------------------------------
  {
    id: 'credentials.missing',
    requirements: ['BEARER-03', 'BEARER-05'],
    level: 'MUST',
    sends: 'no Authorization field (and no proof)',
    expects: '401 with a challenge for the token scheme and no error code',
    run: async (ctx) => {
      const e = await ctx.call({ token: null, proof: 'none' });
      const scheme = ctx.init.binding === 'dpop' ? 'dpop' : 'bearer';
      const offered = challenges(e).some((c) => c.scheme.toLowerCase() === scheme);
      return verdict(e.status === 401 && offered && errorOf(e) === undefined, describe(e));
    },
  },
  {
    id: 'credentials.malformed',
    requirements: ['BEARER-02', 'DPOP-01'],
    level: 'MUST',
    sends: 'Authorization with the right scheme and a value that is not a token68 ("a b,c")',
    expects: '400 invalid_request or 401 invalid_token',
    run: async (ctx) => refused(await ctx.call({ token: 'a b,c' }), [400, 401], ['invalid_request', 'invalid_token']),
  },
  {
    id: 'credentials.query',
    requirements: ['FAPI-RS-01', 'FAPI-RS-02'],
    level: 'MUST',
    sends: 'the token only as ?access_token= (with its proof or certificate)',
    expects: '400 or 401, never 2xx',
    run: async (ctx) => {
      const e = await ctx.call({ token: null, query: { access_token: ctx.token }, proof: undefined });
      return verdict(e.status === 400 || e.status === 401, describe(e));
    },
  },
  {
    id: 'credentials.body',
    requirements: ['FAPI-RS-01', 'FAPI-RS-03'],
    level: 'SHOULD',
    sends: 'the token only as access_token in a form-encoded body (with its proof or certificate)',
    expects: '400 or 401, never 2xx',
    run: async (ctx) => {
      const e = await ctx.call({ token: null, form: { access_token: ctx.token } });
      return verdict(e.status === 400 || e.status === 401, describe(e));
    },
  },
  {
    id: 'credentials.header-and-query',
    requirements: ['BEARER-02'],
    level: 'MUST',
    sends: 'the token in Authorization and again as ?access_token=',
    expects: '400 invalid_request',
    run: async (ctx) => refused(await ctx.call({ query: { access_token: ctx.token } }), BAD_REQUEST.statuses, BAD_REQUEST.errors),
  },
  {
    id: 'credentials.duplicate-authorization',
    requirements: ['BEARER-02'],
    level: 'MUST',
    sends: 'two Authorization fields carrying the same valid credentials',
    expects: '400 invalid_request',
    run: async (ctx) => {
      const scheme = ctx.init.binding === 'dpop' ? 'DPoP' : 'Bearer';
      const value = `${scheme} ${ctx.token}`;
      return refused(await ctx.call({ authorization: [value, value] }), BAD_REQUEST.statuses, BAD_REQUEST.errors);
    },
  },
  {
    id: 'dpop.duplicate-header',
    requirements: ['DPOP-03'],
    level: 'MUST',
    binding: 'dpop',
    sends: 'two DPoP fields, each a valid proof',
    expects: '400/401 invalid_dpop_proof (or 400 invalid_request)',
    run: async (ctx) => {
      const { proof } = await import('./jws.js');
      const second = await proof(ctx.init.dpopKey as never, {
        htm: ctx.init.method,
        htu: ctx.htu,
        accessToken: ctx.token,
        ...(ctx.nonce ? { nonce: ctx.nonce } : {}),
      });
      return refused(await ctx.call({ extraDpop: [second] }), BAD_PROOF.statuses, BAD_PROOF.errors);
    },
  },
  // --- access tokens ------------------------------------------------------------------------
  forged(
    'token.untrusted-key',
    ['FAPI-RS-04', 'JWTAT-05'],
    "the token's claims signed by a key the issuer does not publish",
    async (ctx) => [await forgeUntrusted(decodeJwt(ctx.token) as never)],
  ),
  forged('token.alg-none', ['FAPI-RS-12', 'JWTBCP-02'], 'the token\'s claims with alg "none" and no signature', (ctx) => [
    forgeNone(decodeJwt(ctx.token) as never),
  ]),
  forged(
    'token.hmac-confusion',
    ['FAPI-RS-11', 'JWTBCP-01'],
    "HS256 tokens keyed with the issuer's public key (JWK JSON, SPKI PEM)",
    (ctx) => {
      const jwt = decodeJwt(ctx.token) as NonNullable<ReturnType<typeof decodeJwt>>;
      const key = ctx.init.issuerKeys?.find((k) => k.kid === jwt.header.kid) ?? ctx.init.issuerKeys?.[0];
      return key ? forgeHmac(jwt, key) : [];
    },
  ),
  forged('token.tampered', ['FAPI-RS-04', 'JWTBCP-03'], 'the token with its scope claim widened and the signature kept', (ctx) => [
    tamper(ctx.token),
  ]),
  faultToken('token.wrong-typ', ['JWTAT-01', 'JWTBCP-10'], 'wrong-typ', 'a token signed by the issuer with typ other than at+jwt'),
  faultToken('token.expired', ['FAPI-RS-05', 'JWTAT-06'], 'expired', 'a token signed by the issuer whose exp has passed'),
  faultToken('token.wrong-audience', ['AUD-01', 'JWTAT-04'], 'wrong-audience', 'a token signed by the issuer for another audience'),
  faultToken('token.unbound', ['FAPI-RS-09'], 'unbound', 'a token signed by the issuer without cnf', BAD_BINDING),
  {
    id: 'token.insufficient-scope',
    requirements: ['FAPI-RS-07', 'BEARER-06'],
    level: 'MUST',
    sends: 'a valid, bound token whose scope does not cover the resource',
    expects: '403 insufficient_scope',
    run: async (ctx) => {
      if (!ctx.init.insufficientToken)
        return notRun('needs --insufficient-scope (a scope the client may get that does not cover the resource) or --insufficient-token');
      return refused(await ctx.call({ token: ctx.init.insufficientToken }), [403], ['insufficient_scope']);
    },
  },
  // --- DPoP (RFC 9449 §4.3, §7) -------------------------------------------------------------
  {
    id: 'dpop.missing-proof',
    requirements: ['DPOP-02'],
    level: 'MUST',
    binding: 'dpop',
    sends: 'the DPoP-bound token with the DPoP scheme and no DPoP field',
    expects: '400/401 invalid_dpop_proof (or 400 invalid_request)',
    run: async (ctx) => refused(await ctx.call({ proof: 'none' }), BAD_PROOF.statuses, BAD_PROOF.errors),
  },
  proofCase('dpop.typ', ['DPOP-06'], 'typ', 'a proof with typ "JWT"'),
  proofCase('dpop.alg-none', ['DPOP-07', 'FAPI-RS-12'], 'alg-none', 'a proof with alg "none"'),
  proofCase('dpop.alg-hmac', ['DPOP-07'], 'alg-hmac', 'a proof signed HS256 with the public key as secret'),
  proofCase('dpop.jwk-private', ['DPOP-09'], 'jwk-private', 'a proof whose jwk header holds the private key'),
  proofCase('dpop.jwk-missing', ['DPOP-04', 'DPOP-08'], 'jwk-missing', 'a proof without a jwk header'),
  proofCase('dpop.signature', ['DPOP-08'], 'signature', 'a proof signed by another key than its jwk'),
  proofCase('dpop.htm', ['DPOP-10'], 'htm', 'a proof whose htm is another method'),
  proofCase('dpop.htu', ['DPOP-11'], 'htu', 'a proof whose htu is another path of the same origin'),
  proofCase('dpop.iat-old', ['DPOP-13'], 'iat-old', 'a proof made ten minutes ago'),
  proofCase('dpop.iat-future', ['DPOP-13', 'FAPI-RS-19'], 'iat-future', 'a proof dated two minutes ahead'),
  proofCase('dpop.jti-missing', ['DPOP-05'], 'jti-missing', 'a proof without jti'),
  proofCase('dpop.ath-missing', ['DPOP-05', 'DPOP-14'], 'ath-missing', 'a proof without ath'),
  {
    ...proofCase('dpop.ath-wrong', ['DPOP-14'], 'ath-wrong', 'a proof whose ath is the hash of another token'),
    expects: '400/401 invalid_dpop_proof or invalid_token',
    run: async (ctx) => refused(await ctx.call({ proof: 'ath-wrong' }), BAD_BINDING.statuses, BAD_BINDING.errors),
  },
  {
    id: 'dpop.other-key',
    requirements: ['DPOP-15'],
    level: 'MUST',
    binding: 'dpop',
    sends: "a valid proof by a key other than the token's cnf.jkt",
    expects: '400/401 invalid_dpop_proof or invalid_token',
    run: async (ctx) => {
      const key = await newDpopKey(ctx.init.dpopKey?.alg);
      return refused(await ctx.call({ proof: { key } }), BAD_BINDING.statuses, BAD_BINDING.errors);
    },
  },
  {
    id: 'dpop.replay',
    requirements: ['DPOP-23', 'FAPI-RS-20'],
    level: 'SHOULD',
    binding: 'dpop',
    sends: 'a valid request, then the same proof (same jti) again',
    expects: 'first 2xx, second 400/401',
    run: async (ctx) => {
      const jti = randomUUID();
      const first = await ctx.call({ proof: { jti } });
      if (!accepted(first)) return notRun(`the first request was refused (${describe(first)})`);
      const again = await ctx.call({ proof: { jti }, retryNonce: false });
      return verdict(again.status === 400 || again.status === 401, `${describe(first)}; ${describe(again)}`);
    },
  },
  {
    id: 'dpop.nonce',
    requirements: ['DPOP-12', 'DPOP-22'],
    level: 'MUST',
    binding: 'dpop',
    sends: 'when the server asked for a nonce: a proof without nonce, then one with a made-up nonce',
    expects: '401 use_dpop_nonce with a DPoP-Nonce field, both times',
    run: async (ctx) => {
      if (!ctx.nonceRequested) return notRun('the server never answered use_dpop_nonce');
      const answers = [
        await ctx.call({ proof: { nonce: null }, retryNonce: false }),
        await ctx.call({ proof: { nonce: `fapi-probe-${randomUUID()}` }, retryNonce: false }),
      ];
      const withNonce = answers.every((e) => (e.headers['dpop-nonce'] ?? []).length === 1);
      const r = refused(answers, [401], ['use_dpop_nonce']);
      return r.status === 'not-run' ? r : verdict(r.status === 'pass' && withNonce, r.observed);
    },
  },
  {
    id: 'dpop.downgrade-to-bearer',
    requirements: ['DPOP-17'],
    level: 'MUST',
    binding: 'dpop',
    sends: 'the DPoP-bound token with the Bearer scheme, without and then with a valid proof',
    expects: '400 or 401, never 2xx',
    run: async (ctx) => {
      const answers = [await ctx.call({ scheme: 'Bearer', proof: 'none' }), await ctx.call({ scheme: 'Bearer' })];
      return verdict(
        answers.every((e) => e.status === 400 || e.status === 401),
        answers.map(describe).join('; '),
      );
    },
  },
  // --- mutual TLS (RFC 8705) ----------------------------------------------------------------
  {
    id: 'mtls.no-certificate',
    requirements: ['MTLS-04'],
    level: 'MUST',
    binding: 'mtls',
    sends: 'the certificate-bound token over a connection without a client certificate',
    expects: '401 invalid_token',
    run: async (ctx) => refused(await ctx.call({ certificate: null }), BAD_TOKEN.statuses, BAD_TOKEN.errors),
  },
  {
    id: 'mtls.other-certificate',
    requirements: ['MTLS-01', 'MTLS-02'],
    level: 'MUST',
    binding: 'mtls',
    sends: 'the certificate-bound token over a connection with another client certificate',
    expects: '401 invalid_token',
    run: async (ctx) => {
      const other = ctx.init.otherCertificate;
      if (!other) return notRun('needs a second client certificate (--other-cert, --other-key)');
      return refused(await ctx.call({ certificate: other }), BAD_TOKEN.statuses, BAD_TOKEN.errors);
    },
  },
  // --- RFC 9728 protected resource metadata -------------------------------------------------
  {
    id: 'metadata.document',
    requirements: ['PRM-01', 'PRM-02'],
    level: 'MUST',
    sends: 'GET the metadata URL named by resource_metadata, else /.well-known/oauth-protected-resource (path-inserted, then at the root)',
    expects: 'when published: 200 JSON whose resource equals the identifier the URL was built from',
    run: async (ctx) => {
      const urls = metadataUrls(ctx);
      for (const url of urls) {
        const e = await ctx.get(url);
        // Not published here (RFC 9728 metadata is optional; some servers guard every path).
        if (e.status >= 400 && e.status < 500) continue;
        const doc = json(e.body);
        const expected = resourceOf(url);
        // The root resource may be written with or without its "/" path.
        const pass = e.status === 200 && doc !== undefined && (doc.resource === expected || doc.resource === `${expected}/`);
        return verdict(pass, `${e.status} ${url}: resource ${JSON.stringify(doc?.resource)} (expected ${expected})`);
      }
      return notRun('no metadata published (4xx); RFC 9728 metadata is optional');
    },
  },
  {
    id: 'metadata.bearer-methods',
    requirements: ['FAPI-RS-03', 'PRM-03'],
    level: 'SHOULD',
    sends: 'nothing more: reads the metadata document fetched by metadata.document',
    expects: 'bearer_methods_supported absent or exactly ["header"]',
    collect: true,
    run: async (ctx) => {
      const found = ctx.log.find((l) => !l.protected && l.exchange.status === 200);
      if (!found) return notRun('no metadata document');
      const methods = json(found.exchange.body)?.bearer_methods_supported;
      const pass = methods === undefined || (Array.isArray(methods) && methods.length === 1 && methods[0] === 'header');
      return verdict(pass, `bearer_methods_supported: ${JSON.stringify(methods)}`);
    },
  },
  // --- error syntax, interaction id (judged over every exchange of the run) ------------------
  {
    id: 'errors.challenge-syntax',
    requirements: ['BEARER-03', 'BEARER-04'],
    level: 'MUST',
    sends: 'nothing more: reads every response of the run',
    expects: 'each 401 has WWW-Authenticate; every WWW-Authenticate follows RFC 9110 §11.6.1 and RFC 6750 §3',
    collect: true,
    run: async (ctx) => {
      const problems = new Set<string>();
      for (const { exchange } of ctx.log) {
        const values = exchange.headers['www-authenticate'] ?? [];
        if (exchange.status === 401 && values.length === 0) problems.add('401 without WWW-Authenticate');
        const parsed = parseChallenges(values);
        if (!parsed.ok) problems.add(parsed.error);
        else for (const c of parsed.challenges) for (const p of challengeProblems(c)) problems.add(p);
      }
      return verdict(problems.size === 0, problems.size === 0 ? `${ctx.log.length} responses read` : [...problems].join('; '));
    },
  },
  {
    id: 'errors.status-codes',
    requirements: ['BEARER-06'],
    level: 'SHOULD',
    sends: 'nothing more: reads every response of the run',
    expects: 'invalid_request→400, invalid_token→401, insufficient_scope→403, invalid_dpop_proof→400/401, use_dpop_nonce→401',
    collect: true,
    run: async (ctx) => {
      const allowed: Record<string, number[]> = {
        invalid_request: [400],
        invalid_token: [401],
        insufficient_scope: [403],
        invalid_dpop_proof: [400, 401],
        use_dpop_nonce: [400, 401],
      };
      const wrong = new Set<string>();
      for (const { exchange } of ctx.log.filter((l) => l.protected)) {
        const error = errorOf(exchange);
        if (error && allowed[error] && !allowed[error].includes(exchange.status)) wrong.add(`${error} with ${exchange.status}`);
      }
      return verdict(wrong.size === 0, wrong.size === 0 ? 'consistent' : [...wrong].join('; '));
    },
  },
  {
    id: 'errors.dpop-algs',
    requirements: ['DPOP-20'],
    level: 'SHOULD',
    binding: 'dpop',
    sends: 'nothing more: reads every 401 of the run',
    expects: 'each DPoP challenge carries algs',
    collect: true,
    run: async (ctx) => {
      const dpop = ctx.log.flatMap((l) => challenges(l.exchange)).filter((c) => c.scheme.toLowerCase() === 'dpop');
      if (dpop.length === 0) return verdict(false, 'no DPoP challenge seen');
      const without = dpop.filter((c) => param(c, 'algs') === undefined).length;
      return verdict(without === 0, `${dpop.length} DPoP challenges, ${without} without algs`);
    },
  },
  {
    id: 'interaction-id.echo',
    requirements: ['XFAPI-01'],
    level: 'MUST',
    sends: 'nothing more: every request of the run carried a fresh x-fapi-interaction-id',
    expects: 'every response of the protected resource, success or error, echoes it',
    collect: true,
    run: async (ctx) => {
      const protectedLog = ctx.log.filter((l) => l.protected);
      const missing = protectedLog.filter((l) => l.exchange.headers['x-fapi-interaction-id']?.[0] !== l.interactionId);
      return verdict(missing.length === 0, `${protectedLog.length - missing.length} of ${protectedLog.length} echoed`);
    },
  },
];

function json(body: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(body);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** RFC 9728 §3.1: the well-known segment goes between host and path. */
function metadataUrls(ctx: Context): string[] {
  const linked = ctx.log
    .flatMap((l) => challenges(l.exchange))
    .map((c) => param(c, 'resource_metadata'))
    .find((v) => v !== undefined);
  const url = new URL(ctx.init.resource);
  const path = url.pathname === '/' ? '' : url.pathname;
  const derived = [`${url.origin}/.well-known/oauth-protected-resource${path}`, `${url.origin}/.well-known/oauth-protected-resource`];
  return [...new Set([...(linked ? [linked] : []), ...derived])];
}

/** The resource identifier a metadata URL was built from (RFC 9728 §3.3). */
function resourceOf(metadataUrl: string): string {
  const url = new URL(metadataUrl);
  const path = url.pathname.replace(/^\/\.well-known\/oauth-protected-resource/, '');
  return path === '' ? url.origin : `${url.origin}${path}`;
}
