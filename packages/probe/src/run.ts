/** `runProbe(options)`: gets the tokens, runs the case table, returns the report. */
import type { JWK } from 'jose';
import { CASES, type Level, type Missed, type Outcome, type Requirement } from './cases.js';
import { AccessTokenExpired, type Binding, Context, describe, describeRequest, type FaultToken } from './context.js';
import { type ClientCertificate, NetworkError, RequestBudgetExceeded, Sender } from './http.js';
import { type DpopKey, dpopKeyFromJwk } from './jws.js';
import { dataClaim, isFapi1, type MessageSigner, messageSigner, PROFILES, type ProbeProfile, type SignerInput } from './regimes.js';
import { type AuthorizationServer, connect } from './tokens.js';

export interface ProbeOptions {
  /** The protected resource URL (https, or http on loopback). */
  resource: string;
  /** Method of the resource. @default 'GET' */
  method?: string;
  /** Body sent with every request (e.g. for a POST resource), with its content type. */
  body?: { contentType: string; value: string };
  /** Extra request headers sent with every request. @default {} */
  headers?: Record<string, string>;
  /** Scope the resource requires; requested with the token. @default none */
  scope?: string;
  /**
   * A scope the client may obtain that does NOT cover the resource: a second token is requested
   * with it for `token.insufficient-scope`. @default none (case not run)
   */
  insufficientScope?: string;
  /**
   * A token you already have, bound like `accessToken`, whose scope does not cover the resource:
   * used for `token.insufficient-scope` instead of requesting one with `insufficientScope`.
   * @default none
   */
  insufficientScopeToken?: string;
  /** Get tokens by a client-credentials grant here. Either this or `accessToken`. */
  authorizationServer?: AuthorizationServer;
  /** A token the user already has (bound to `dpopKey` or `certificate`). */
  accessToken?: string;
  /** The DPoP private key (JWK). With an authorization server and no certificate, one is generated. */
  dpopKey?: JWK;
  /** The client certificate (PEM) for certificate-bound tokens (RFC 8705). */
  certificate?: ClientCertificate;
  /** A second certificate, for `mtls.other-certificate`. @default none (case not run) */
  otherCertificate?: ClientCertificate;
  /** The issuer's public keys, for the HMAC-confusion case. @default fetched from the discovered jwks_uri */
  jwksUri?: string;
  /** Tokens signed by the authorization server with one defect each, for the cases that need them. @default {} */
  faultTokens?: Partial<Record<FaultToken, string>>;
  /**
   * The regime the deployment serves. `fapi1-advanced`, `uk-ob` and `br-of` (FAPI 1.0 Advanced)
   * need certificate-bound tokens (`certificate`, no `dpopKey`): the DPoP cases are not run, the
   * mTLS ones are, and the interaction-id echo is a MUST (Part 1 §6.2.1 #11). `uk-ob` signs each
   * request's body with `x-jws-signature`, `br-of` sends it as a signed JWT (`signer`), and their
   * cases send a missing or a tampered signature.
   * @default 'fapi2'
   */
  profile?: ProbeProfile;
  /** The client's signing key and identity, for `uk-ob` and `br-of`. Required with those profiles. */
  signer?: SignerInput;
  /** Run only the cases whose id starts with one of these. @default every case */
  only?: string[];
  /** Requests per second, at most (resource and authorization server together). @default 10 */
  rate?: number;
  /** Requests in the whole run, at most; the run stops when they are spent. @default 200 */
  maxRequests?: number;
  /** Total time for one request in ms, connection to last body byte (100..120000): a server trickling an endless body cannot hold the run. @default 10000 */
  timeoutMs?: number;
  /** Accept any TLS server certificate. @default false */
  insecureTls?: boolean;
  /** Extra CA certificates (PEM) to trust. */
  ca?: string;
  /**
   * A MUST case that could not run (a fault token or second certificate not supplied) fails the
   * run. Without it, the report lists those MUSTs as not run and the run can still pass.
   * @default false
   */
  strict?: boolean;
}

/** `advice`: a SHOULD, MAY or ADVICE case missed, or a MUST case met its MUST but not a SHOULD part. */
export type CaseStatus = 'pass' | 'fail' | 'advice' | 'not-run' | 'not-applicable';

export interface CaseResult {
  id: string;
  requirements: string[];
  level: Level;
  /** The requirement's text and section, as shipped with the probe. */
  requirement: Requirement;
  sends: string;
  expects: string;
  status: CaseStatus;
  /** What came back (pass/fail/advice) or why the case did not run. */
  observed: string;
  /** fail: what to change; advice: what would meet the weaker expectation. */
  fix?: string;
  /**
   * fail and advice: the level of what was missed, which is not always the case's level (a MUST
   * case met its MUST but missed a SHOULD part: `{ level: 'SHOULD', what: 'error code', source: 'RFC 6750 §3.1' }`).
   */
  missed?: Missed;
  /** Each request the case sent, one line, and the answer, one line (status, challenge, error, error_description). */
  exchanges: Array<{ sent: string; received: string }>;
  /** Requests this case sent. */
  requests: number;
}

/** 0: no MUST failed; 1: a MUST failed (or, with `strict`, could not run); 2: the probe could not judge. */
export type ExitCode = 0 | 1 | 2;

export interface ProbeReport {
  resource: string;
  method: string;
  binding: Binding;
  profile: ProbeProfile;
  startedAt: string;
  strict: boolean;
  results: CaseResult[];
  /** Requests sent in all, to the resource and to the authorization server. */
  requests: number;
  /** Why the run could not judge the server (the baseline request was refused or unanswered). */
  notJudged?: string;
  /**
   * `unreachable`: no HTTP answer to the baseline request (connection, DNS, TLS, timeout); no
   * other request was sent. `baseline`: the correct request was refused or could not be sent.
   */
  notJudgedCause?: 'unreachable' | 'baseline';
  /** MUST cases that did not run (a missing input, the baseline, a spent budget). */
  mustNotRun: string[];
  /** A MUST case failed, or (strict) a MUST case did not run. */
  failed: boolean;
  exitCode: ExitCode;
}

const BASELINE = 'baseline.valid';
/** The reason of every case that did not run after the baseline failed: the report shows it once. */
export const NOT_RUN_BASELINE = 'not run (baseline failed)';
export const NOT_RUN_UNREACHABLE = 'not run (resource unreachable)';

export async function runProbe(options: ProbeOptions): Promise<ProbeReport> {
  const resource = new URL(options.resource);
  if (resource.protocol !== 'https:' && !(resource.protocol === 'http:' && isLoopback(resource.hostname))) {
    throw new Error(`resource ${options.resource}: https required (http only on loopback)`);
  }
  const rate = options.rate ?? 10;
  const maxRequests = options.maxRequests ?? 200;
  const timeoutMs = options.timeoutMs ?? 10_000;
  if (!(rate > 0 && rate <= 50)) throw new Error('rate must be between 0 and 50 requests per second');
  if (!(Number.isInteger(maxRequests) && maxRequests > 0 && maxRequests <= 1000)) throw new Error('maxRequests must be an integer 1..1000');
  if (!(Number.isInteger(timeoutMs) && timeoutMs >= 100 && timeoutMs <= 120_000))
    throw new Error('timeoutMs must be an integer 100..120000');
  const sender = new Sender({
    rate,
    maxRequests,
    timeoutMs,
    insecureTls: options.insecureTls ?? false,
    ...(options.ca ? { ca: options.ca } : {}),
  });
  const binding: Binding = options.certificate && !options.dpopKey ? 'mtls' : 'dpop';
  const profile = options.profile ?? 'fapi2';
  if (!PROFILES.includes(profile)) throw new Error(`profile "${String(profile).slice(0, 40)}" is not one of ${PROFILES.join(', ')}`);
  // FAPI 1.0 Part 2 §6.2.1 #2: certificate-bound tokens only.
  if (isFapi1(profile) && binding !== 'mtls') {
    throw new Error(`profile ${profile} takes certificate-bound tokens only: give the client certificate, not a DPoP key`);
  }
  let signer: MessageSigner | undefined;
  if (profile === 'uk-ob' || profile === 'br-of') {
    if (!options.signer) throw new Error(`profile ${profile} signs each request: give the client's signing key and its iss`);
    if (!options.body) throw new Error(`profile ${profile} signs the request body: give the body (a payment request)`);
    if (profile === 'br-of') dataClaim(options.body.value);
    signer = await messageSigner(profile, options.signer);
  }
  let dpopKey: DpopKey | undefined;
  if (binding === 'dpop') {
    if (options.dpopKey) dpopKey = await dpopKeyFromJwk(options.dpopKey);
    else if (options.authorizationServer) dpopKey = await (await import('./jws.js')).newDpopKey();
    else throw new Error('a given access token needs its DPoP key (dpopKey) or its client certificate (certificate)');
  }
  const started = new Date().toISOString();
  let token = options.accessToken;
  let insufficientToken = options.insufficientScopeToken;
  let issuerKeys: JWK[] | undefined;
  let jwksUri = options.jwksUri;
  if (options.authorizationServer) {
    const session = await connect(
      options.authorizationServer,
      { ...(dpopKey ? { dpopKey } : {}), certificate: options.certificate },
      sender,
    );
    token ??= await session.token(options.scope);
    if (options.insufficientScope && !insufficientToken) insufficientToken = await session.token(options.insufficientScope);
    jwksUri ??= session.metadata.jwks_uri;
  }
  if (!token) throw new Error('give an authorization server or an access token');
  if (jwksUri) issuerKeys = await fetchKeys(sender, jwksUri);
  const ctx = new Context({
    sender,
    resource: resource.href,
    method: (options.method ?? 'GET').toUpperCase(),
    binding,
    token,
    ...(dpopKey ? { dpopKey } : {}),
    ...(options.certificate ? { certificate: options.certificate } : {}),
    ...(options.otherCertificate ? { otherCertificate: options.otherCertificate } : {}),
    ...(issuerKeys ? { issuerKeys } : {}),
    ...(insufficientToken ? { insufficientToken } : {}),
    faultTokens: options.faultTokens ?? {},
    ...(options.body ? { body: options.body } : {}),
    headers: options.headers ?? {},
    ...(signer ? { signer } : {}),
  });
  const selected = CASES.filter(
    (c) =>
      (!c.binding || c.binding === binding) &&
      (!c.profiles || c.profiles.includes(profile)) &&
      (c.id === BASELINE || !options.only || options.only.some((p) => c.id.startsWith(p))),
  ).map((c) => ({ ...c, level: c.levels?.[profile] ?? c.level }));
  const results: CaseResult[] = [];
  let notJudged: string | undefined;
  let unreachable: NetworkError | undefined;
  // The baseline first; cases that send next; those that judge the whole run read every exchange last.
  for (const c of [...selected.filter((s) => !s.collect), ...selected.filter((s) => s.collect)]) {
    const before = sender.count;
    const logged = ctx.log.length;
    let outcome: Outcome;
    // No answer at all: nothing more is sent to that origin, metadata URLs included.
    if (unreachable) outcome = { status: 'not-run', reason: NOT_RUN_UNREACHABLE };
    else if (notJudged && !c.independent) outcome = { status: 'not-run', reason: NOT_RUN_BASELINE };
    else {
      try {
        outcome = await c.run(ctx);
      } catch (e) {
        if (c.id === BASELINE && e instanceof NetworkError) unreachable = e;
        // A spent budget or an expired token stops the case; a connection error (a crash, a reset) is a failure.
        outcome =
          e instanceof RequestBudgetExceeded || e instanceof AccessTokenExpired
            ? { status: 'not-run', reason: (e as Error).message }
            : { status: 'fail', observed: `no answer: ${(e as Error).message}` };
      }
    }
    if (c.id === BASELINE && outcome.status !== 'pass') {
      notJudged = unreachable
        ? unanswered(unreachable, resource.href)
        : outcome.status === 'fail'
          ? `the correct request was not accepted (${outcome.observed}): every other case compares with it`
          : `the correct request could not be sent (${outcome.status === 'not-run' || outcome.status === 'not-applicable' ? outcome.reason : outcome.observed})`;
    }
    results.push(toResult(c, outcome, ctx.log.slice(logged), sender.count - before));
  }
  const mustNotRun = results.filter((r) => r.level === 'MUST' && r.status === 'not-run').map((r) => r.id);
  const strict = options.strict ?? false;
  const mustFailed = results.some((r) => r.status === 'fail' && r.id !== BASELINE);
  const failed = mustFailed || (strict && mustNotRun.length > 0);
  return {
    resource: resource.href,
    method: ctx.init.method,
    binding,
    profile,
    startedAt: started,
    strict,
    results,
    requests: sender.count,
    ...(notJudged ? { notJudged, notJudgedCause: unreachable ? 'unreachable' : 'baseline' } : {}),
    mustNotRun,
    failed,
    exitCode: notJudged ? 2 : failed ? 1 : 0,
  };
}

function toResult(c: (typeof CASES)[number], outcome: Outcome, log: Context['log'], requests: number): CaseResult {
  // A SHOULD, MAY or ADVICE case never fails a run: what it missed is advice.
  const status = outcome.status === 'fail' && c.level !== 'MUST' ? 'advice' : outcome.status;
  const fix = outcome.status === 'fail' ? (outcome.fix ?? c.fix) : outcome.status === 'advice' ? outcome.note : undefined;
  const missed: Missed | undefined =
    outcome.status === 'advice' ? outcome.missed : outcome.status === 'fail' ? { level: c.level, source: c.requirement.source } : undefined;
  // A case that judges the whole run shows the exchanges its verdict rests on.
  const shown = [...(outcome.status === 'pass' || outcome.status === 'fail' ? (outcome.evidence ?? []) : []), ...log];
  return {
    id: c.id,
    requirements: c.requirements,
    level: c.level,
    requirement: c.requirement,
    sends: c.sends,
    expects: c.expects,
    status,
    observed: 'observed' in outcome ? outcome.observed : outcome.reason,
    ...(fix ? { fix } : {}),
    ...(missed ? { missed } : {}),
    exchanges: shown.map((l) => ({ sent: describeRequest(l.request), received: describe(l.exchange) })),
    requests,
  };
}

/** No answer to the correct request: say what failed and what to check, not "fix the token". */
function unanswered(e: NetworkError, resource: string): string {
  const check: Record<NetworkError['failure'], string> = {
    refused: `check the URL (${resource}) and that the server runs and listens there`,
    dns: `check the host name in the URL (${resource})`,
    timeout: `check the URL (${resource}), that the server runs and that no firewall drops the connection (--timeout-ms / timeoutMs: the limit)`,
    unreachable: `check the URL (${resource}) and the network route to it`,
    reset: `check that the server runs and that the URL's scheme (http or https) is the one it serves (${resource})`,
    tls: 'check the server certificate: trust its CA with --ca FILE (library: ca), or --insecure-tls (insecureTls) for a staging server',
    other: `check the URL (${resource}) and that the server runs`,
  };
  const what =
    e.failure === 'tls'
      ? 'the TLS connection to the resource failed'
      : e.failure === 'timeout'
        ? 'the resource did not answer in time'
        : e.failure === 'reset'
          ? 'the resource closed the connection without a complete answer'
          : 'the resource is unreachable';
  return `${what} (${e.message}): ${check[e.failure]}; no other request was sent`;
}

/** The issuer's public keys, for the HMAC-confusion case; none when they cannot be read. */
async function fetchKeys(sender: Sender, jwksUri: string): Promise<JWK[] | undefined> {
  try {
    // Unreachable keys only keep token.hmac-confusion from running ("the issuer keys are unknown").
    const e = await sender.send({ method: 'GET', url: jwksUri, headers: { accept: 'application/json' } });
    const keys = e.status === 200 ? (JSON.parse(e.body) as { keys?: JWK[] }).keys : undefined;
    return Array.isArray(keys) ? keys : undefined;
  } catch (e) {
    if (e instanceof RequestBudgetExceeded) throw e;
    return undefined;
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
