/**
 * Every case the probe runs, as a table: id, requirement IDs (docs/requirements.json), level,
 * what it sends, what it expects, and how. A case sends at most three requests. Cases marked
 * `collect` send nothing: they judge every exchange of the run, so they come last.
 */
import { randomUUID } from 'node:crypto';
import { challengeAdvice, challengeProblems, param, parseChallenges } from './challenge.js';
import { type Binding, type Context, challenges, describe, errorOf, type FaultToken, type Logged } from './context.js';
import { staleToken } from './freshness.js';
import { type Exchange, RequestBudgetExceeded } from './http.js';
import { decodeJwt, forgeHmac, forgeNone, forgeUntrusted, newDpopKey, type ProofFault, tamper } from './jws.js';
import type { ProbeProfile } from './regimes.js';

/**
 * A case's level is the level of the requirement it tests, as the specification words it.
 * `ADVICE`: no specification the probe judges requires it; it is fapi-guard's stricter choice
 * (or another profile's rule), reported as advice and never failing a run.
 */
export type Level = 'MUST' | 'SHOULD' | 'MAY' | 'ADVICE';

/** The text a case tests, with its source: shipped in the package so a report explains itself. */
export interface Requirement {
  /** e.g. `RFC 9449 §4.3 #9`. */
  source: string;
  text: string;
}

/** What a case found missing, at the level of that part (not of the case): e.g. a MUST case whose SHOULD part was missed. */
export interface Missed {
  level: Level;
  /** The part missed, e.g. `error code`; absent when it is the case's whole requirement. */
  what?: string;
  /** Where that part is written, e.g. `RFC 6750 §3.1`. */
  source: string;
}

export type Outcome =
  | {
      status: 'pass' | 'fail';
      observed: string;
      /** What to change, when it depends on what was found (else the case's `fix`). */
      fix?: string;
      /** Exchanges of other cases the verdict rests on (cases that judge the whole run). */
      evidence?: Logged[];
    }
  /** The case's MUST was met (or it has none), a weaker expectation was not: `note` says which, `missed` at which level. */
  | { status: 'advice'; observed: string; note: string; missed: Missed }
  /** The case could not run here (a missing input, a spent budget). */
  | { status: 'not-run'; reason: string }
  /** The case does not apply to this server (no metadata published, no nonces used). */
  | { status: 'not-applicable'; reason: string };

export interface ProbeCase {
  id: string;
  /** Requirement IDs of the repository's catalogue (docs/requirements.json). */
  requirements: string[];
  level: Level;
  /** What the case holds the server to, quoted or closely paraphrased, with the section. */
  requirement: Requirement;
  /** Only with this binding. */
  binding?: Binding;
  /** Only under these profiles (`--profile`). @default every profile */
  profiles?: ProbeProfile[];
  /** The level under a profile whose specification words it otherwise than `level`. */
  levels?: Partial<Record<ProbeProfile, Level>>;
  sends: string;
  expects: string;
  /** One line: what to change in the server when this case fails. */
  fix: string;
  /** Judges the whole run instead of sending requests. */
  collect?: boolean;
  /** Runs even when the baseline request was refused (it does not compare with it). */
  independent?: boolean;
  run(ctx: Context): Promise<Outcome>;
}

const accepted = (e: Exchange) => e.status >= 200 && e.status < 300;
const notRun = (reason: string): Outcome => ({ status: 'not-run', reason });
const notApplicable = (reason: string): Outcome => ({ status: 'not-applicable', reason });
const verdict = (pass: boolean, observed: string): Outcome => ({ status: pass ? 'pass' : 'fail', observed });

/** What RFC 6750 §3.1 / RFC 9449 §7.1 / RFC 8705 §3 ask a refusal to look like. */
interface Shape {
  statuses: number[];
  errors: string[];
  /** Where the shape is written, and at which level (most are SHOULD). */
  source: string;
  /** The section alone, for the advice label. */
  section: string;
  level: 'MUST' | 'SHOULD';
}

const RFC6750 = 'RFC 6750 §3.1, a SHOULD';
// A bad proof is invalid_dpop_proof (RFC 9449 §7.1); a malformed request may be 400 invalid_request.
const BAD_PROOF: Shape = {
  statuses: [400, 401],
  errors: ['invalid_dpop_proof', 'invalid_request'],
  source: 'RFC 9449 §7.1 error codes, a SHOULD',
  section: 'RFC 9449 §7.1',
  level: 'SHOULD',
};
// A token that fails validation: 401 invalid_token (RFC 6750 §3.1, RFC 9068 §4).
const BAD_TOKEN: Shape = { statuses: [401], errors: ['invalid_token'], source: RFC6750, section: 'RFC 6750 §3.1', level: 'SHOULD' };
// The binding does not match: the token is not usable by this sender (either code is in use).
const BAD_BINDING: Shape = {
  statuses: [400, 401],
  errors: ['invalid_token', 'invalid_dpop_proof'],
  source: RFC6750,
  section: 'RFC 6750 §3.1',
  level: 'SHOULD',
};
// Several or misplaced credentials, a malformed request: 400 invalid_request (RFC 6750 §3.1).
const BAD_REQUEST: Shape = { statuses: [400], errors: ['invalid_request'], source: RFC6750, section: 'RFC 6750 §3.1', level: 'SHOULD' };
// RFC 8705 §3: a certificate mismatch "MUST be rejected ... using an HTTP 401 status code and the invalid_token error code".
const BAD_CERTIFICATE: Shape = { statuses: [401], errors: ['invalid_token'], source: 'RFC 8705 §3', section: 'RFC 8705 §3', level: 'MUST' };

const shapeText = (s: Shape) => `${s.statuses.join('/')} ${s.errors.join(' or ')}`;

/** The MUST of every refusal: a 4xx with a challenge (RFC 6750 §3, RFC 9110 §11.6.1), never 2xx. */
const REFUSED = 'refused: a 4xx with WWW-Authenticate (MUST)';
const expectsRefusal = (shape: Shape) =>
  shape.level === 'MUST' ? `${shapeText(shape)} (MUST, ${shape.source})` : `${REFUSED}; ideally ${shapeText(shape)} (${shape.source})`;

/**
 * Judges refusals: a MUST failure when a request was accepted, or refused without a 4xx and a
 * `WWW-Authenticate` challenge (RFC 6750 §3: "the resource server MUST include the HTTP
 * WWW-Authenticate response header field"); advice when only the SHOULD shape (status, error code
 * in the challenge) differs.
 */
function refused(exchanges: Exchange | Exchange[], shape: Shape): Outcome {
  const list = Array.isArray(exchanges) ? exchanges : [exchanges];
  const observed = list.map(describe).join('; ');
  const mustMet = list.every((e) => e.status >= 400 && e.status < 500 && carriesChallenge(e));
  const shaped = list.every((e) => shape.statuses.includes(e.status) && shape.errors.includes(errorOf(e) ?? ''));
  if (!mustMet || (shape.level === 'MUST' && !shaped)) return { status: 'fail', observed };
  if (shaped) return { status: 'pass', observed };
  const statusMet = list.every((e) => shape.statuses.includes(e.status));
  const errorMet = list.every((e) => shape.errors.includes(errorOf(e) ?? ''));
  return {
    status: 'advice',
    observed,
    note: `answer ${shapeText(shape)}, the code in the WWW-Authenticate challenge (${shape.source})`,
    missed: {
      level: shape.level,
      what: statusMet ? 'error code' : errorMet ? 'status code' : 'status and error code',
      source: shape.section,
    },
  };
}

/**
 * A `WWW-Authenticate` field with at least one challenge (RFC 9110 §11.6.1): an empty list (``,
 * `,`) has none. One that does not parse counts as sent; errors.challenge-syntax judges it.
 */
function carriesChallenge(e: Exchange): boolean {
  const values = e.headers['www-authenticate'] ?? [];
  if (values.length === 0) return false;
  const parsed = parseChallenges(values);
  return !parsed.ok || parsed.challenges.length > 0;
}

/** Refused at all (any 4xx), for cases whose spec text only forbids accepting. */
function notAccepted(exchanges: Exchange[]): Outcome {
  const observed = exchanges.map(describe).join('; ');
  return verdict(
    exchanges.every((e) => e.status >= 400 && e.status < 500),
    observed,
  );
}

const proofCase = (
  id: string,
  requirements: string[],
  fault: ProofFault,
  sends: string,
  requirement: Requirement,
  fix: string,
): ProbeCase => ({
  id,
  requirements,
  level: 'MUST',
  requirement,
  binding: 'dpop',
  sends,
  expects: expectsRefusal(BAD_PROOF),
  fix,
  run: async (ctx) => refused(await ctx.call({ proof: fault }), BAD_PROOF),
});

// RFC 9449 §4.3: "To validate a DPoP proof, the receiving server MUST ensure the following: ..."
const check43 = (n: number, text: string): Requirement => ({
  source: `RFC 9449 §4.3 #${n}`,
  text: `To validate a DPoP proof, the receiving server MUST ensure that ${text}`,
});

const forged = (
  id: string,
  requirements: string[],
  sends: string,
  requirement: Requirement,
  fix: string,
  forge: (ctx: Context) => Promise<string[]> | string[],
): ProbeCase => ({
  id,
  requirements,
  level: 'MUST',
  requirement,
  sends,
  expects: expectsRefusal(BAD_TOKEN),
  fix,
  run: async (ctx) => {
    if (!decodeJwt(ctx.token)) return notApplicable('the access token is not a JWT (nothing to forge)');
    const tokens = await forge(ctx);
    if (tokens.length === 0)
      return notRun('the issuer keys are unknown (give the issuer, or --jwks-uri; library: authorizationServer, jwksUri)');
    const answers: Exchange[] = [];
    for (const token of tokens) answers.push(await ctx.call({ token }));
    return refused(answers, BAD_TOKEN);
  },
});

const faultToken = (
  id: string,
  requirements: string[],
  kind: FaultToken,
  sends: string,
  requirement: Requirement,
  fix: string,
  shape = BAD_TOKEN,
): ProbeCase => ({
  id,
  requirements,
  level: 'MUST',
  requirement,
  sends,
  expects: expectsRefusal(shape),
  fix,
  run: async (ctx) => {
    const token = ctx.init.faultTokens[kind];
    if (!token)
      return notRun(
        `needs a token signed by the authorization server with this defect (--fault-token ${kind}=…; library: faultTokens['${kind}'])`,
      );
    const stale = staleToken(token, kind);
    if (stale) return notRun(stale);
    return refused(await ctx.call({ token }), shape);
  },
});

const CHALLENGE_SYNTAX_FIX = 'build WWW-Authenticate with a quoting routine (quoted-string for values with spaces), each parameter once';

const RFC9068_4 = (n: number, text: string): Requirement => ({ source: `RFC 9068 §4 #${n}`, text });

export const CASES: ProbeCase[] = [
  // --- baseline ---------------------------------------------------------------------------
  {
    id: 'baseline.valid',
    requirements: ['FAPI-RS-08'],
    level: 'MUST',
    requirement: {
      source: 'FAPI 2.0 Security Profile §5.3.4',
      text: 'Resource servers shall accept access tokens in the Authorization header (RFC 6750 §2.1) and shall support sender-constrained access tokens (RFC 8705 or RFC 9449).',
    },
    independent: true,
    sends: 'the token with its binding (DPoP proof or client certificate), as a correct client does',
    expects: '2xx (every other case is measured against this one; if it is refused, the run cannot judge)',
    fix: 'make the correct request succeed first: check the token audience, issuer, accepted algorithms and the binding (htu behind proxies)',
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
    requirement: {
      source: 'RFC 6750 §3',
      text: 'If the protected resource request does not include authentication credentials or does not contain an access token that enables access to the protected resource, the resource server MUST include the HTTP "WWW-Authenticate" response header field. (§3.1: if the request lacks any authentication information, the resource server SHOULD NOT include an error code.)',
    },
    sends: 'no Authorization field (and no proof)',
    expects: `${REFUSED}; ideally 401 with a challenge for the token scheme and no error code (RFC 6750 §3.1)`,
    fix: 'answer a request without credentials with 401 and a WWW-Authenticate challenge (e.g. `DPoP algs="ES256"` or `Bearer realm="api"`)',
    run: async (ctx) => {
      const e = await ctx.call({ token: null, proof: 'none' });
      const must = refused(e, { ...BAD_TOKEN, errors: [''] });
      if (must.status === 'fail') return must;
      const scheme = ctx.init.binding === 'dpop' ? 'dpop' : 'bearer';
      const offered = challenges(e).some((c) => c.scheme.toLowerCase() === scheme);
      if (e.status === 401 && offered && errorOf(e) === undefined) return { status: 'pass', observed: describe(e) };
      return {
        status: 'advice',
        observed: describe(e),
        note: `answer 401 with a ${scheme === 'dpop' ? 'DPoP' : 'Bearer'} challenge and no error code (RFC 6750 §3.1: SHOULD NOT include an error code)`,
        missed: { level: 'SHOULD', what: 'a challenge for the token scheme, no error code', source: 'RFC 6750 §3.1' },
      };
    },
  },
  {
    id: 'credentials.malformed',
    requirements: ['BEARER-02', 'DPOP-01'],
    level: 'MUST',
    requirement: {
      source: 'RFC 6750 §3; RFC 9449 §7.1',
      text: 'The Authorization value of the DPoP and Bearer schemes is a token68; a request that "does not contain an access token that enables access" is refused and the resource server MUST include WWW-Authenticate. invalid_request: the request "is otherwise malformed" (SHOULD respond 400).',
    },
    sends: 'Authorization with the right scheme and a value that is not a token68 ("a b,c")',
    expects: `${REFUSED}; ideally 400 invalid_request or 401 invalid_token (RFC 6750 §3.1)`,
    fix: 'refuse an Authorization value that is not one token68 with 400 and `error="invalid_request"` in the challenge',
    run: async (ctx) =>
      refused(await ctx.call({ token: 'a b,c' }), {
        statuses: [400, 401],
        errors: ['invalid_request', 'invalid_token'],
        source: RFC6750,
        section: 'RFC 6750 §3.1',
        level: 'SHOULD',
      }),
  },
  {
    id: 'credentials.query',
    requirements: ['FAPI-RS-01', 'FAPI-RS-02'],
    level: 'MUST',
    requirement: {
      source: 'FAPI 2.0 Security Profile §5.3.4 #2',
      text: 'Resource servers shall not accept access tokens in the query parameters stated in Section 2.3 of OAuth 2.0 Bearer Token Usage [RFC6750].',
    },
    sends: 'the token only as ?access_token= (with its proof or certificate)',
    expects: 'a 4xx, never 2xx',
    fix: 'read the access token from the Authorization header only; ignore or refuse ?access_token=',
    run: async (ctx) => notAccepted([await ctx.call({ token: null, query: { access_token: ctx.token }, proof: undefined })]),
  },
  {
    id: 'credentials.body',
    requirements: ['FAPI-RS-01', 'FAPI-RS-03'],
    level: 'ADVICE',
    requirement: {
      source: 'RFC 6750 §2.2; FAPI 2.0 Security Profile §5.3.4 #1',
      text: 'FAPI 2.0 names only the Authorization header; RFC 6750 §2.2 lets a client use the form body only where the header is unavailable, and DPoP (RFC 9449 §7.1) has no body form. Refusing body tokens is our stricter choice, not a requirement.',
    },
    sends: 'the token only as access_token in a form-encoded body (with its proof or certificate)',
    expects: 'a 4xx, never 2xx',
    fix: 'read the access token from the Authorization header only; ignore access_token in a form body',
    run: async (ctx) => notAccepted([await ctx.call({ token: null, form: { access_token: ctx.token } })]),
  },
  {
    id: 'credentials.header-and-query',
    requirements: ['BEARER-02'],
    level: 'SHOULD',
    requirement: {
      source: 'RFC 6750 §3.1',
      text: 'invalid_request: the request ... uses more than one method for including an access token ... The resource server SHOULD respond with the HTTP 400 (Bad Request) status code. (The query token is not accepted by this request: credentials.query checks the FAPI 2.0 MUST.)',
    },
    sends: 'the token in Authorization and again as ?access_token=',
    expects: '400 invalid_request',
    fix: 'answer a request carrying the token both in the header and in ?access_token= with 400 `error="invalid_request"`',
    run: async (ctx) => refused(await ctx.call({ query: { access_token: ctx.token } }), { ...BAD_REQUEST, level: 'MUST' }),
  },
  {
    id: 'credentials.duplicate-authorization',
    requirements: ['BEARER-02'],
    level: 'SHOULD',
    requirement: {
      source: 'RFC 6750 §3.1; RFC 9110 §5.3',
      text: 'invalid_request: the request ... repeats the same parameter ... or is otherwise malformed; the resource server SHOULD respond with 400. (Authorization is not a list field: RFC 9110 §5.3 forbids a sender to repeat it.)',
    },
    sends: 'two Authorization fields carrying the same valid credentials',
    expects: '400 invalid_request',
    fix: 'refuse a request with more than one Authorization field with 400 `error="invalid_request"` (many frameworks silently keep one: read the raw header list)',
    run: async (ctx) => {
      const scheme = ctx.init.binding === 'dpop' ? 'DPoP' : 'Bearer';
      const value = `${scheme} ${ctx.token}`;
      return refused(await ctx.call({ authorization: [value, value] }), { ...BAD_REQUEST, level: 'MUST' });
    },
  },
  {
    id: 'dpop.duplicate-header',
    requirements: ['DPOP-03'],
    level: 'MUST',
    requirement: check43(1, 'there is not more than one DPoP HTTP request header field.'),
    binding: 'dpop',
    sends: 'two DPoP fields, each a valid proof',
    expects: expectsRefusal(BAD_PROOF),
    fix: 'count the DPoP fields in the raw request and refuse more than one (a joined "a, b" value is two)',
    run: async (ctx) => {
      const { proof } = await import('./jws.js');
      const second = await proof(ctx.init.dpopKey as never, {
        htm: ctx.init.method,
        htu: ctx.htu,
        accessToken: ctx.token,
        ...(ctx.nonce ? { nonce: ctx.nonce } : {}),
      });
      return refused(await ctx.call({ extraDpop: [second] }), BAD_PROOF);
    },
  },
  // --- access tokens ------------------------------------------------------------------------
  forged(
    'token.untrusted-key',
    ['FAPI-RS-04', 'JWTAT-05'],
    "the token's claims signed by a key the issuer does not publish",
    RFC9068_4(
      5,
      'The resource server MUST validate the signature of all incoming JWT access tokens according to RFC 7515 using the algorithm specified in the JWT "alg" Header Parameter ... using the keys provided by the authorization server.',
    ),
    "verify the signature with the issuer's published keys only (never a key named in the token)",
    async (ctx) => [await forgeUntrusted(decodeJwt(ctx.token) as never)],
  ),
  forged(
    'token.alg-none',
    ['FAPI-RS-12', 'JWTBCP-02'],
    'the token\'s claims with alg "none" and no signature',
    RFC9068_4(5, 'The resource server MUST reject any JWT in which the value of "alg" is "none".'),
    'fix the list of accepted algorithms (PS256, ES256, EdDSA); never accept "none"',
    (ctx) => [forgeNone(decodeJwt(ctx.token) as never)],
  ),
  forged(
    'token.hmac-confusion',
    ['FAPI-RS-11', 'JWTBCP-01'],
    "HS256 tokens keyed with the issuer's public key (JWK JSON, SPKI PEM)",
    {
      source: 'RFC 8725 §3.1; FAPI 2.0 Security Profile §5.4.1',
      text: 'Libraries MUST enable the caller to specify a supported set of algorithms and MUST NOT use any other algorithms when performing cryptographic operations; each key MUST be used with exactly one algorithm. FAPI 2.0 allows PS256, ES256 and EdDSA only.',
    },
    'pin the accepted algorithms to asymmetric ones (PS256, ES256, EdDSA); never verify HS256 with a public key',
    (ctx) => {
      const jwt = decodeJwt(ctx.token) as NonNullable<ReturnType<typeof decodeJwt>>;
      const key = ctx.init.issuerKeys?.find((k) => k.kid === jwt.header.kid) ?? ctx.init.issuerKeys?.[0];
      return key ? forgeHmac(jwt, key) : [];
    },
  ),
  forged(
    'token.tampered',
    ['FAPI-RS-04', 'JWTBCP-03'],
    'the token with its scope claim widened and the signature kept',
    {
      source: 'FAPI 2.0 Security Profile §5.3.4 #3; RFC 8725 §3.3',
      text: 'Resource servers shall verify the validity, integrity, expiration and revocation status of access tokens. All cryptographic operations used in the JWT MUST be validated and the entire JWT MUST be rejected if any of them fail to validate.',
    },
    'verify the signature over the exact header and payload received, and refuse the token when it fails',
    (ctx) => [tamper(ctx.token)],
  ),
  faultToken(
    'token.wrong-typ',
    ['JWTAT-01', 'JWTBCP-10'],
    'wrong-typ',
    'a token signed by the issuer with typ other than at+jwt',
    RFC9068_4(
      1,
      'The resource server MUST verify that the "typ" header value is "at+jwt" or "application/at+jwt" and reject tokens carrying any other value.',
    ),
    'require typ "at+jwt" (or "application/at+jwt") in the access token header',
  ),
  faultToken(
    'token.expired',
    ['FAPI-RS-05', 'JWTAT-06'],
    'expired',
    'a token signed by the issuer whose exp has passed',
    RFC9068_4(
      6,
      'The current time MUST be before the time represented by the "exp" claim. Implementers MAY provide for some small leeway, usually no more than a few minutes, to account for clock skew.',
    ),
    'check exp (with at most a small leeway) on every request',
  ),
  faultToken(
    'token.wrong-audience',
    ['AUD-01', 'JWTAT-04'],
    'wrong-audience',
    'a token signed by the issuer for another audience',
    RFC9068_4(
      4,
      'The resource server MUST validate that the "aud" claim contains a resource indicator value corresponding to an identifier the resource server expects for itself. The JWT access token MUST be rejected if "aud" does not contain a resource indicator of the current resource server as a valid audience.',
    ),
    "configure the expected audience (this API's resource identifier) and refuse tokens whose aud does not contain it",
  ),
  faultToken(
    'token.unbound',
    ['FAPI-RS-09'],
    'unbound',
    'a token signed by the issuer without cnf',
    {
      source: 'FAPI 2.0 Security Profile §5.3.4 #5',
      text: 'Resource servers shall only accept sender-constrained access tokens (mTLS, RFC 8705, or DPoP, RFC 9449).',
    },
    'refuse tokens without cnf (no jkt, no x5t#S256): plain bearer tokens are not allowed under FAPI 2.0',
    BAD_BINDING,
  ),
  {
    id: 'token.insufficient-scope',
    requirements: ['FAPI-RS-07', 'BEARER-06'],
    level: 'MUST',
    requirement: {
      source: 'FAPI 2.0 Security Profile §5.3.4 #4; RFC 6750 §3.1',
      text: 'Resource servers shall verify that the access token authorizes access to the requested resource. insufficient_scope: the request requires higher privileges than provided by the access token; the resource server SHOULD respond with 403 and MAY include the "scope" attribute.',
    },
    sends: 'a valid, bound token whose scope does not cover the resource',
    expects: `${REFUSED}; ideally 403 insufficient_scope (${RFC6750})`,
    fix: 'check the scope (or authorization_details) against the route and answer 403 `error="insufficient_scope"`',
    run: async (ctx) => {
      if (!ctx.init.insufficientToken)
        return notRun(
          'needs --insufficient-scope (a scope the client may get that does not cover the resource) or --insufficient-token (library: insufficientScope, insufficientScopeToken)',
        );
      const stale = staleToken(ctx.init.insufficientToken, 'insufficient-scope');
      if (stale) return notRun(stale);
      return refused(await ctx.call({ token: ctx.init.insufficientToken }), {
        statuses: [403],
        errors: ['insufficient_scope'],
        source: RFC6750,
        section: 'RFC 6750 §3.1',
        level: 'SHOULD',
      });
    },
  },
  // --- DPoP (RFC 9449 §4.3, §7) -------------------------------------------------------------
  {
    id: 'dpop.missing-proof',
    requirements: ['DPOP-02'],
    level: 'MUST',
    requirement: {
      source: 'RFC 9449 §7.1; FAPI 2.0 Security Profile §5.3.4 #5',
      text: 'A DPoP-bound access token is sent with the DPoP scheme together with a DPoP proof in the DPoP header; resource servers shall only accept sender-constrained access tokens, so a DPoP-bound token without a proof is not usable.',
    },
    binding: 'dpop',
    sends: 'the DPoP-bound token with the DPoP scheme and no DPoP field',
    expects: expectsRefusal(BAD_PROOF),
    fix: 'require a DPoP proof whenever the token carries cnf.jkt or comes with the DPoP scheme',
    run: async (ctx) => refused(await ctx.call({ proof: 'none' }), BAD_PROOF),
  },
  proofCase(
    'dpop.typ',
    ['DPOP-06'],
    'typ',
    'a proof with typ "JWT"',
    check43(4, 'the typ JOSE Header Parameter has the value dpop+jwt.'),
    'require typ "dpop+jwt" in the proof header',
  ),
  proofCase(
    'dpop.alg-none',
    ['DPOP-07', 'FAPI-RS-12'],
    'alg-none',
    'a proof with alg "none"',
    check43(
      5,
      'the alg JOSE Header Parameter indicates a registered asymmetric digital signature algorithm, is not none, is supported by the application, and is acceptable per local policy.',
    ),
    'accept proofs signed with your list of asymmetric algorithms only; never "none"',
  ),
  proofCase(
    'dpop.alg-hmac',
    ['DPOP-07'],
    'alg-hmac',
    'a proof signed HS256 with the public key as secret',
    check43(5, 'the alg JOSE Header Parameter indicates a registered asymmetric digital signature algorithm (not a MAC).'),
    'accept proofs signed with asymmetric algorithms only; never HS256',
  ),
  proofCase(
    'dpop.jwk-private',
    ['DPOP-09'],
    'jwk-private',
    'a proof whose jwk header holds the private key',
    check43(7, 'the public key contained in the jwk JOSE Header Parameter does not contain a private key.'),
    'refuse a proof whose jwk has private members (d, p, q, ...)',
  ),
  proofCase(
    'dpop.jwk-missing',
    ['DPOP-04', 'DPOP-08'],
    'jwk-missing',
    'a proof without a jwk header',
    check43(6, 'the JWT signature verifies with the public key contained in the jwk JOSE Header Parameter (a proof without jwk cannot).'),
    'require the jwk header and verify the proof with it',
  ),
  proofCase(
    'dpop.signature',
    ['DPOP-08'],
    'signature',
    'a proof signed by another key than its jwk',
    check43(6, 'the JWT signature verifies with the public key contained in the jwk JOSE Header Parameter.'),
    'verify the proof signature with the key in its jwk header',
  ),
  proofCase(
    'dpop.htm',
    ['DPOP-10'],
    'htm',
    'a proof whose htm is another method',
    check43(8, 'the htm claim matches the HTTP method of the current request.'),
    'compare htm with the request method',
  ),
  proofCase(
    'dpop.htu',
    ['DPOP-11'],
    'htu',
    'a proof whose htu is another path of the same origin',
    check43(
      9,
      'the htu claim matches the HTTP URI value for the HTTP request in which the JWT was received, ignoring any query and fragment parts.',
    ),
    'compare htu with the URL the client addressed (behind a proxy: the public origin, not the internal one)',
  ),
  {
    ...proofCase(
      'dpop.iat-old',
      ['DPOP-13'],
      'iat-old',
      'a proof made a day ago',
      {
        source: 'RFC 9449 §4.3 #11; §11.1',
        text: 'The creation time of the JWT, as determined by either the iat claim or a server managed timestamp via the nonce claim, is within an acceptable window. Servers MUST only accept DPoP proofs for a limited time after their creation (preferably only for a relatively brief period on the order of seconds or minutes).',
      },
      'refuse proofs whose iat lies outside a short window (seconds or minutes)',
    ),
    run: async (ctx) => iatJudged(ctx, refused(await ctx.call({ proof: 'iat-old' }), BAD_PROOF)),
  },
  {
    ...proofCase(
      'dpop.iat-future',
      ['DPOP-13'],
      'iat-future',
      'a proof dated a day ahead',
      check43(
        11,
        'the creation time of the JWT, as determined by either the iat claim or a server managed timestamp via the nonce claim, is within an acceptable window.',
      ),
      'refuse proofs whose iat lies ahead of the server clock by more than a small skew',
    ),
    run: async (ctx) => iatJudged(ctx, refused(await ctx.call({ proof: 'iat-future' }), BAD_PROOF)),
  },
  {
    id: 'dpop.iat-window',
    requirements: ['FAPI-RS-19'],
    level: 'ADVICE',
    requirement: {
      source: 'RFC 9449 §11.1; FAPI 2.0 Security Profile §5.3.2.1 note',
      text: 'RFC 9449 leaves the window to the server. Our advice follows FAPI 2.0 for JWTs an authorization server receives: accept iat up to 10 seconds ahead, refuse more than 60 seconds ahead, and keep the past window short (seconds, not ten minutes).',
    },
    binding: 'dpop',
    sends: 'a proof made ten minutes ago, then one dated two minutes ahead',
    expects: 'both refused',
    fix: 'narrow the proof window: at most about a minute old, at most 10-60 seconds ahead',
    run: async (ctx) => notAccepted([await ctx.call({ proof: 'iat-minutes-old' }), await ctx.call({ proof: 'iat-minutes-ahead' })]),
  },
  proofCase(
    'dpop.jti-missing',
    ['DPOP-05'],
    'jti-missing',
    'a proof without jti',
    check43(3, 'all required claims per Section 4.2 are contained in the JWT (jti, htm, htu, iat; ath with an access token).'),
    'require jti in every proof',
  ),
  proofCase(
    'dpop.ath-missing',
    ['DPOP-05', 'DPOP-14'],
    'ath-missing',
    'a proof without ath',
    check43(
      12,
      'if presented to a protected resource in conjunction with an access token, the value of the ath claim equals the hash of that access token.',
    ),
    'require ath and compare it with the base64url SHA-256 of the presented token',
  ),
  {
    ...proofCase(
      'dpop.ath-wrong',
      ['DPOP-14'],
      'ath-wrong',
      'a proof whose ath is the hash of another token',
      check43(
        12,
        'if presented to a protected resource in conjunction with an access token, the value of the ath claim equals the hash of that access token.',
      ),
      'compare ath with the base64url SHA-256 of the presented token',
    ),
    expects: expectsRefusal(BAD_BINDING),
    run: async (ctx) => refused(await ctx.call({ proof: 'ath-wrong' }), BAD_BINDING),
  },
  {
    id: 'dpop.other-key',
    requirements: ['DPOP-15'],
    level: 'MUST',
    requirement: check43(12, 'the public key to which the access token is bound matches the public key from the DPoP proof.'),
    binding: 'dpop',
    sends: "a valid proof by a key other than the token's cnf.jkt",
    expects: expectsRefusal(BAD_BINDING),
    fix: "compare the RFC 7638 thumbprint of the proof's jwk with the token's cnf.jkt",
    run: async (ctx) => {
      const key = await newDpopKey(ctx.init.dpopKey?.alg);
      return refused(await ctx.call({ proof: { key } }), BAD_BINDING);
    },
  },
  {
    id: 'dpop.replay',
    requirements: ['DPOP-23', 'FAPI-RS-20'],
    level: 'MAY',
    requirement: {
      source: 'RFC 9449 §11.1; FAPI 2.0 Security Profile §5.3.4',
      text: 'In the context of the target URI, servers can store the jti value of each DPoP proof for the time window in which the respective DPoP proof JWT would be accepted to prevent multiple uses of the same DPoP proof. (A replay cache is one way; server nonces are another.)',
    },
    binding: 'dpop',
    sends: 'a valid request, then the same proof (same jti) again',
    expects: 'first 2xx, second 400/401',
    fix: 'remember (htu, jti) of accepted proofs for the acceptance window, in a store shared by every instance',
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
    requirement: {
      source: 'RFC 9449 §4.3 #10; §9',
      text: 'If the server provided a nonce value to the client, the nonce claim matches the server-provided nonce value. (§9: the resource server signals a missing or stale nonce with 401, error "use_dpop_nonce" in the DPoP challenge, and a DPoP-Nonce header.)',
    },
    binding: 'dpop',
    sends: 'when the server provided a nonce: a proof without nonce, then one with a made-up nonce',
    expects: `${REFUSED}; ideally 401 use_dpop_nonce with a DPoP-Nonce field (RFC 9449 §9)`,
    fix: 'once you hand out nonces, refuse proofs without the current nonce with 401 `error="use_dpop_nonce"` and a DPoP-Nonce header',
    run: async (ctx) => {
      // Provided by a use_dpop_nonce refusal or on any other answer (§8.2, §9): either way step 10 holds.
      if (ctx.nonce === undefined) return notApplicable('the server never provided a nonce (DPoP-Nonce)');
      const answers = [
        await ctx.call({ proof: { nonce: null }, retryNonce: false }),
        await ctx.call({ proof: { nonce: `fapi-probe-${randomUUID()}` }, retryNonce: false }),
      ];
      const r = refused(answers, {
        statuses: [401],
        errors: ['use_dpop_nonce'],
        source: 'RFC 9449 §9',
        section: 'RFC 9449 §9',
        level: 'SHOULD',
      });
      const withNonce = answers.every((e) => (e.headers['dpop-nonce'] ?? []).length === 1);
      if (r.status === 'pass' && !withNonce)
        return {
          status: 'advice',
          observed: r.observed,
          note: 'send one DPoP-Nonce header with each use_dpop_nonce answer (RFC 9449 §9)',
          missed: { level: 'SHOULD', what: 'DPoP-Nonce header', source: 'RFC 9449 §9' },
        };
      return r;
    },
  },
  {
    id: 'dpop.downgrade-to-bearer',
    requirements: ['DPOP-17'],
    level: 'MUST',
    requirement: {
      source: 'RFC 9449 §7.2',
      text: 'Protected resources simultaneously supporting both the DPoP and Bearer schemes need to update how the evaluation process is performed for bearer tokens to prevent downgraded usage of a DPoP-bound access token. Specifically, such a protected resource MUST reject a DPoP-bound access token received as a bearer token per [RFC6750].',
    },
    binding: 'dpop',
    sends: 'the DPoP-bound token with the Bearer scheme, without and then with a valid proof',
    expects: 'a 4xx, never 2xx',
    fix: 'when a token has cnf.jkt, refuse it under the Bearer scheme (require the DPoP scheme and a proof)',
    run: async (ctx) => notAccepted([await ctx.call({ scheme: 'Bearer', proof: 'none' }), await ctx.call({ scheme: 'Bearer' })]),
  },
  // --- mutual TLS (RFC 8705) ----------------------------------------------------------------
  {
    id: 'mtls.no-certificate',
    requirements: ['MTLS-04'],
    level: 'MUST',
    requirement: {
      source: 'RFC 8705 §3',
      text: 'The protected resource MUST obtain the client certificate used for mutual TLS authentication and MUST verify that the certificate matches the certificate associated with the access token. If they do not match, the resource access attempt MUST be rejected with an error, per [RFC6750], using an HTTP 401 status code and the "invalid_token" error code.',
    },
    binding: 'mtls',
    sends: 'the certificate-bound token over a connection without a client certificate',
    expects: expectsRefusal(BAD_CERTIFICATE),
    fix: 'refuse a token with cnf.x5t#S256 when the connection has no client certificate, with 401 `error="invalid_token"`',
    run: async (ctx) => refused(await ctx.call({ certificate: null }), BAD_CERTIFICATE),
  },
  {
    id: 'mtls.other-certificate',
    requirements: ['MTLS-01', 'MTLS-02'],
    level: 'MUST',
    requirement: {
      source: 'RFC 8705 §3',
      text: 'The protected resource MUST verify that the certificate matches the certificate associated with the access token. If they do not match, the resource access attempt MUST be rejected with an error, per [RFC6750], using an HTTP 401 status code and the "invalid_token" error code.',
    },
    binding: 'mtls',
    sends: 'the certificate-bound token over a connection with another client certificate',
    expects: expectsRefusal(BAD_CERTIFICATE),
    fix: "compare the SHA-256 of the connection's certificate (DER, base64url) with cnf.x5t#S256",
    run: async (ctx) => {
      const other = ctx.init.otherCertificate;
      if (!other) return notRun('needs a second client certificate (--other-cert, --other-key; library: otherCertificate)');
      return refused(await ctx.call({ certificate: other }), BAD_CERTIFICATE);
    },
  },
  // --- RFC 9728 protected resource metadata -------------------------------------------------
  {
    id: 'metadata.document',
    requirements: ['PRM-01', 'PRM-02'],
    level: 'MUST',
    requirement: {
      source: 'RFC 9728 §3; §3.3',
      text: "Metadata, when published, is a JSON document at the well-known URL formed from the resource identifier. The resource value returned MUST be identical to the protected resource's resource identifier value into which the well-known URI path suffix was inserted; when the metadata URL came from the resource_metadata parameter of WWW-Authenticate, it MUST be identical to the URL that the client used to make the request.",
    },
    independent: true,
    sends:
      "GET the metadata URL named by resource_metadata (only at the resource's own origin, RFC 9728 §7.3, §7.7), then /.well-known/oauth-protected-resource path-inserted, then at the root",
    expects:
      'when published: 200 JSON whose resource equals the identifier the URL was built from (reached through resource_metadata: the URL requested)',
    fix: 'serve the metadata with "resource" set to exactly the resource identifier (RFC 9728 §3.3)',
    run: async (ctx) => judgeMetadata(ctx),
  },
  {
    id: 'metadata.bearer-methods',
    requirements: ['FAPI-RS-03', 'PRM-03'],
    level: 'ADVICE',
    requirement: {
      source: 'RFC 9728 §2',
      text: 'bearer_methods_supported is OPTIONAL. Advertising ["header"] only matches FAPI 2.0, which reads access tokens from the Authorization header (our advice, not a requirement).',
    },
    independent: true,
    sends: 'nothing more: reads the metadata document fetched by metadata.document',
    expects: 'bearer_methods_supported absent or exactly ["header"]',
    fix: 'advertise bearer_methods_supported: ["header"] (or leave it out)',
    collect: true,
    run: async (ctx) => {
      const found = ctx.log.find((l) => !l.protected && l.exchange.status === 200 && json(l.exchange.body));
      if (!found) return notApplicable('no metadata document');
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
    requirement: {
      source: 'RFC 9110 §11.6.1; RFC 6750 §3',
      text: 'A server generating a 401 response MUST send a WWW-Authenticate header field containing at least one challenge. The Bearer scheme MUST be followed by one or more auth-param values; realm, scope, error, error_description and error_uri MUST NOT appear more than once, and their values MUST NOT include characters outside the allowed sets.',
    },
    sends: 'nothing more: reads every response of the run',
    expects: 'each 401 has WWW-Authenticate; every WWW-Authenticate follows RFC 9110 §11.6.1 and RFC 6750 §3',
    fix: CHALLENGE_SYNTAX_FIX,
    collect: true,
    run: async (ctx) => {
      const problems = new Set<string>();
      const advice = new Set<string>();
      // The exchanges each finding rests on, shown under it (the first few of each kind).
      const absent: Logged[] = [];
      const malformed: Logged[] = [];
      for (const logged of ctx.log) {
        const values = logged.exchange.headers['www-authenticate'] ?? [];
        if (logged.exchange.status === 401 && !carriesChallenge(logged.exchange)) absent.push(logged);
        const parsed = parseChallenges(values);
        const found: string[] = parsed.ok ? parsed.challenges.flatMap(challengeProblems) : [parsed.error];
        if (found.length > 0) malformed.push(logged);
        for (const p of found) problems.add(p);
        if (parsed.ok) for (const p of parsed.challenges.flatMap(challengeAdvice)) advice.add(p);
      }
      if (absent.length > 0 || problems.size > 0) {
        const observed = [
          ...(absent.length > 0 ? [`${absent.length} of ${ctx.log.length} responses were 401 without a WWW-Authenticate challenge`] : []),
          ...problems,
        ].join('; ');
        const fix = [
          ...(absent.length > 0
            ? [
                'send a WWW-Authenticate challenge with every 401, e.g. `DPoP algs="ES256", error="invalid_token"` (RFC 9110 §11.6.1; for a request without credentials credentials.missing reports the same gap)',
              ]
            : []),
          ...(problems.size > 0 ? [CHALLENGE_SYNTAX_FIX] : []),
        ].join('; ');
        return { status: 'fail', observed, fix, evidence: [...absent.slice(0, 3), ...malformed.slice(0, 3)] };
      }
      const observed = `${ctx.log.length} responses read`;
      if (advice.size > 0)
        return {
          status: 'advice',
          observed,
          note: [...advice].join('; '),
          missed: { level: 'ADVICE', what: 'registered error code', source: 'RFC 6750 §6.2' },
        };
      return { status: 'pass', observed };
    },
  },
  {
    id: 'errors.status-codes',
    requirements: ['BEARER-06'],
    level: 'SHOULD',
    requirement: {
      source: 'RFC 6750 §3.1; RFC 9449 §7.1, §9',
      text: 'invalid_request: the resource server SHOULD respond with 400; invalid_token: SHOULD respond with 401; insufficient_scope: SHOULD respond with 403.',
    },
    sends: 'nothing more: reads every response of the run',
    expects: 'invalid_request→400, invalid_token→401, insufficient_scope→403, invalid_dpop_proof→400/401, use_dpop_nonce→401',
    fix: 'send each error code with its status: invalid_request 400, invalid_token 401, insufficient_scope 403',
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
    requirement: {
      source: 'RFC 9449 §7.1',
      text: 'algs: a space-delimited list of the JWS alg values that the resource server supports for validating DPoP proof JWTs; it tells a client which key type to use.',
    },
    binding: 'dpop',
    sends: 'nothing more: reads every 401 of the run',
    expects: 'each DPoP challenge carries algs',
    fix: 'add algs="ES256 PS256 ..." to every DPoP challenge',
    collect: true,
    run: async (ctx) => {
      const dpop = ctx.log.flatMap((l) => challenges(l.exchange)).filter((c) => c.scheme.toLowerCase() === 'dpop');
      if (dpop.length === 0) return verdict(false, 'no DPoP challenge seen (a DPoP resource answers with a DPoP challenge)');
      const without = dpop.filter((c) => param(c, 'algs') === undefined).length;
      return verdict(without === 0, `${dpop.length} DPoP challenges, ${without} without algs`);
    },
  },
  // --- regime request signing (--profile uk-ob | br-of) ----------------------------------------
  {
    id: 'uk-ob.signature-missing',
    requirements: ['UKOB-09'],
    level: 'MUST',
    profiles: ['uk-ob'],
    requirement: {
      source: 'OB Read/Write API v3.1.x, Message Signing: verifying a signature; error UK.OBIE.Signature.Missing',
      text: 'The ASPSP must verify the x-jws-signature of a payment request and reject a request that requires one and carries none (400, UK.OBIE.Signature.Missing).',
    },
    sends: 'the correct request without its x-jws-signature',
    expects: 'refused with a 4xx, never accepted (OB: 400 UK.OBIE.Signature.Missing)',
    fix: 'require x-jws-signature on payment endpoints (fapi-guard: jwsSignature: { request: "required" })',
    run: async (ctx) => regimeRefusal(await ctx.call({ signature: 'missing' })),
  },
  {
    id: 'uk-ob.signature-tampered',
    requirements: ['UKOB-02'],
    level: 'MUST',
    profiles: ['uk-ob'],
    requirement: {
      source: 'OB Read/Write API v3.1.x, Message Signing: verifying a signature (payload); RFC 7515 App. F',
      text: 'The detached JWS covers the exact bytes of the request body; a body that differs from what was signed fails verification and the request is rejected (400, UK.OBIE.Signature.Invalid).',
    },
    sends: 'the correct request, its body changed after signing (one JSON member added)',
    expects: 'refused with a 4xx, never accepted (OB: 400 UK.OBIE.Signature.Invalid)',
    fix: 'verify x-jws-signature over the body bytes as received, before any parser',
    run: async (ctx) => regimeRefusal(await ctx.call({ signature: 'tampered' })),
  },
  {
    id: 'br-of.jwt-tampered',
    requirements: ['BR-02', 'BR-06'],
    level: 'MUST',
    profiles: ['br-of'],
    requirement: {
      source: 'Open Finance Brasil, Como assinar o payload, Passo 2-3; RFC 7515 §5.2',
      text: "The request body is a JWT signed by the client (PS256); the resource server validates its signature against the client's keys and rejects a body whose signature does not verify.",
    },
    sends: 'the correct request, the data claim of its signed JWT changed after signing',
    expects: 'refused with a 4xx, never accepted (Brazil: 400 BAD_SIGNATURE)',
    fix: 'verify the signed JWT body against the client organisation keys before using its data claim',
    run: async (ctx) => regimeRefusal(await ctx.call({ signature: 'tampered' })),
  },
  {
    id: 'br-of.jwt-missing',
    requirements: ['BR-06'],
    level: 'MUST',
    profiles: ['br-of'],
    requirement: {
      source: 'Open Finance Brasil, Como assinar o payload, Passo 3',
      text: 'Payment and consent requests send their payload as a signed JWT (application/jwt); the same payload unsigned, as JSON, is rejected.',
    },
    sends: 'the correct request with the payload as plain JSON (application/json), unsigned',
    expects: 'refused with a 4xx, never accepted',
    fix: 'accept only signed JWT bodies on these endpoints (fapi-guard: jwtBody: { request: "required" })',
    run: async (ctx) => regimeRefusal(await ctx.call({ signature: 'missing' })),
  },
  {
    id: 'interaction-id.echo',
    requirements: ['XFAPI-01', 'FAPIA-RS-05'],
    level: 'ADVICE',
    // FAPI 1.0 Part 1 §6.2.1 #11 "shall": a MUST for the regimes built on FAPI 1.0 Advanced.
    levels: { 'fapi1-advanced': 'MUST', 'uk-ob': 'MUST', 'br-of': 'MUST' },
    requirement: {
      source: 'FAPI 1.0 Part 1 §6.2.1 #11',
      text: 'The resource server shall set the response header x-fapi-interaction-id to the value received from the corresponding FAPI client request header or to a RFC4122 UUID value if the request header was not provided. FAPI 2.0 does not require it; ecosystems built on FAPI 1.0 (UK Open Banking, Brazil Open Finance) still do.',
    },
    sends: 'nothing more: every request of the run carried a fresh x-fapi-interaction-id',
    expects: 'every response of the protected resource, success or error, echoes it',
    fix: 'copy the request x-fapi-interaction-id to every response, errors included (a new UUID when absent)',
    collect: true,
    run: async (ctx) => {
      const protectedLog = ctx.log.filter((l) => l.protected);
      if (protectedLog.length === 0) return notRun('no response of the protected resource to read');
      const missing = protectedLog.filter((l) => l.exchange.headers['x-fapi-interaction-id']?.[0] !== l.interactionId);
      return verdict(missing.length === 0, `${protectedLog.length - missing.length} of ${protectedLog.length} echoed`);
    },
  },
];

/**
 * A regime refusal: any 4xx passes (the regimes answer in their own error envelopes, not always
 * with a challenge); an accepted request or a 5xx fails.
 */
function regimeRefusal(e: Exchange): Outcome {
  return verdict(e.status >= 400 && e.status < 500, `${e.status}${regimeErrorCode(e) ? ` ${regimeErrorCode(e)}` : ''}`);
}

/** The OB `Errors[0].ErrorCode`, or the Brazil `errors[0].code` (read, not verified, from a signed JWT answer). */
function regimeErrorCode(e: Exchange): string | undefined {
  const ob = json(e.body) as { Errors?: { ErrorCode?: unknown }[] } | undefined;
  if (typeof ob?.Errors?.[0]?.ErrorCode === 'string') return ob.Errors[0].ErrorCode.slice(0, 80);
  const claims = decodeJwt(e.body.trim())?.claims as { data?: { errors?: { code?: unknown }[] } } | undefined;
  const code = claims?.data?.errors?.[0]?.code;
  return typeof code === 'string' ? code.slice(0, 80) : undefined;
}

/**
 * RFC 9449 §4.3 #11: the creation time may come "from a server managed timestamp via the nonce
 * claim": a server that asks for nonces may judge time by them, so an accepted iat is advice there.
 */
function iatJudged(ctx: Context, outcome: Outcome): Outcome {
  if (outcome.status !== 'fail' || !ctx.nonceRequested) return outcome;
  return {
    status: 'advice',
    observed: outcome.observed,
    note: 'this server uses nonces and may judge proof age by them; still refuse an iat a day off',
    missed: { level: 'ADVICE', what: 'proof age by iat', source: 'RFC 9449 §4.3 #11' },
  };
}

function json(body: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(body);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

interface MetadataCandidate {
  url: string;
  /** The `resource` values RFC 9728 §3.3 allows for a document found at this URL. */
  expected: string[];
}

/**
 * RFC 9728 §3.3: a document reached through `resource_metadata` names the URL the client
 * requested; one at a well-known URL names the identifier the URL was built from (the root
 * resource with or without its "/").
 */
function wellKnown(origin: string, path: string): MetadataCandidate {
  const id = path === '' ? origin : `${origin}${path}`;
  return { url: `${origin}/.well-known/oauth-protected-resource${path}`, expected: path === '' ? [id, `${id}/`] : [id] };
}

/**
 * The candidate metadata URLs, in order: `resource_metadata` from a challenge if it is at the
 * resource's own origin (RFC 9728 §7.3, §7.7: another origin is not fetched — a probe pointed at
 * a server must not be steered into the user's network), then the path-inserted well-known URL
 * (§3.1), then the root one.
 */
function metadataCandidates(ctx: Context): { candidates: MetadataCandidate[]; refused: string[] } {
  const resource = new URL(ctx.init.resource);
  const refusedUrls: string[] = [];
  const candidates: MetadataCandidate[] = [];
  const linked = ctx.log
    .flatMap((l) => challenges(l.exchange))
    .map((c) => param(c, 'resource_metadata'))
    .find((v) => v !== undefined);
  if (linked !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(linked);
    } catch {
      refusedUrls.push(`resource_metadata ${JSON.stringify(linked.slice(0, 200))} is not a URL`);
    }
    if (url && url.origin === resource.origin) {
      // RFC 9728 §3.3: a document reached through resource_metadata names the URL the client
      // requested, whatever well-known path it sits at.
      candidates.push({ url: url.href, expected: [ctx.init.resource] });
    } else if (url) refusedUrls.push(`not fetched: resource_metadata ${url.href} is at another origin than the resource`);
  }
  const path = resource.pathname === '/' ? '' : resource.pathname;
  candidates.push(wellKnown(resource.origin, path), wellKnown(resource.origin, ''));
  const seen = new Set<string>();
  return { candidates: candidates.filter((c) => !seen.has(c.url) && seen.add(c.url)), refused: refusedUrls };
}

async function judgeMetadata(ctx: Context): Promise<Outcome> {
  const { candidates, refused: skipped } = metadataCandidates(ctx);
  const unreachable: string[] = [];
  for (const { url, expected } of candidates) {
    let e: Exchange;
    try {
      e = await ctx.get(url);
    } catch (error) {
      // A network error says nothing about the server's metadata: try the next candidate.
      if (error instanceof RequestBudgetExceeded) throw error;
      unreachable.push(`${url}: ${(error as Error).message}`);
      continue;
    }
    const doc = e.status === 200 ? json(e.body) : undefined;
    // Not published here (RFC 9728 metadata is optional; some servers guard every path).
    if (!doc) {
      if (e.status >= 500) unreachable.push(`${url}: ${e.status}`);
      continue;
    }
    const note = skipped.length > 0 ? ` (${skipped.join('; ')})` : '';
    const resourceValue = doc.resource;
    return verdict(
      typeof resourceValue === 'string' && expected.includes(resourceValue),
      `200 ${url}: resource ${JSON.stringify(resourceValue)} (expected ${expected.map((x) => JSON.stringify(x)).join(' or ')})${note}`,
    );
  }
  const reasons = [...skipped, ...unreachable];
  if (unreachable.length > 0) return notRun(`no metadata could be read: ${reasons.join('; ')}`);
  return notApplicable(`no metadata published (RFC 9728 metadata is optional)${reasons.length > 0 ? `; ${reasons.join('; ')}` : ''}`);
}
