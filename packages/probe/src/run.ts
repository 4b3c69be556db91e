/** `runProbe(options)`: gets the tokens, runs the case table, returns the report. */
import type { JWK } from 'jose';
import { CASES, type Level, type Outcome } from './cases.js';
import { type Binding, Context, type FaultToken } from './context.js';
import { type ClientCertificate, RequestBudgetExceeded, Sender } from './http.js';
import { type DpopKey, dpopKeyFromJwk } from './jws.js';
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
  /** Run only the cases whose id starts with one of these. @default every case */
  only?: string[];
  /** Requests per second, at most (resource and authorization server together). @default 10 */
  rate?: number;
  /** Requests in the whole run, at most; the run stops when they are spent. @default 200 */
  maxRequests?: number;
  /** Per-request timeout in ms. @default 10000 */
  timeoutMs?: number;
  /** Accept any TLS server certificate. @default false */
  insecureTls?: boolean;
  /** Extra CA certificates (PEM) to trust. */
  ca?: string;
}

export interface CaseResult {
  id: string;
  requirements: string[];
  level: Level;
  sends: string;
  expects: string;
  status: Outcome['status'];
  /** What came back (pass/fail) or why the case did not run. */
  observed: string;
  /** Requests this case sent. */
  requests: number;
}

export interface ProbeReport {
  resource: string;
  method: string;
  binding: Binding;
  startedAt: string;
  results: CaseResult[];
  /** Requests sent in all, to the resource and to the authorization server. */
  requests: number;
  /** A MUST case failed. */
  failed: boolean;
}

export async function runProbe(options: ProbeOptions): Promise<ProbeReport> {
  const resource = new URL(options.resource);
  if (resource.protocol !== 'https:' && !(resource.protocol === 'http:' && isLoopback(resource.hostname))) {
    throw new Error(`resource ${options.resource}: https required (http only on loopback)`);
  }
  const rate = options.rate ?? 10;
  const maxRequests = options.maxRequests ?? 200;
  if (!(rate > 0 && rate <= 50)) throw new Error('rate must be between 0 and 50 requests per second');
  if (!(Number.isInteger(maxRequests) && maxRequests > 0 && maxRequests <= 1000)) throw new Error('maxRequests must be an integer 1..1000');
  const sender = new Sender({
    rate,
    maxRequests,
    timeoutMs: options.timeoutMs ?? 10_000,
    insecureTls: options.insecureTls ?? false,
    ...(options.ca ? { ca: options.ca } : {}),
  });
  const binding: Binding = options.certificate && !options.dpopKey ? 'mtls' : 'dpop';
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
  if (jwksUri) {
    const e = await sender.send({ method: 'GET', url: jwksUri, headers: { accept: 'application/json' } });
    const keys = e.status === 200 ? (JSON.parse(e.body) as { keys?: JWK[] }).keys : undefined;
    if (Array.isArray(keys)) issuerKeys = keys;
  }
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
  });
  const selected = CASES.filter(
    (c) => (!c.binding || c.binding === binding) && (!options.only || options.only.some((p) => c.id.startsWith(p))),
  );
  const results: CaseResult[] = [];
  // Cases that send come first; those that judge the whole run read every exchange after them.
  for (const c of [...selected.filter((s) => !s.collect), ...selected.filter((s) => s.collect)]) {
    const before = sender.count;
    let outcome: Outcome;
    try {
      outcome = await c.run(ctx);
    } catch (e) {
      // A spent budget stops the case; a connection error (a crash, a reset) is a failure.
      outcome =
        e instanceof RequestBudgetExceeded
          ? { status: 'not-run', reason: (e as Error).message }
          : { status: 'fail', observed: `no answer: ${(e as Error).message}` };
    }
    results.push({
      id: c.id,
      requirements: c.requirements,
      level: c.level,
      sends: c.sends,
      expects: c.expects,
      status: outcome.status,
      observed: outcome.status === 'not-run' ? outcome.reason : outcome.observed,
      requests: sender.count - before,
    });
  }
  return {
    resource: resource.href,
    method: ctx.init.method,
    binding,
    startedAt: started,
    results,
    requests: sender.count,
    failed: results.some((r) => r.status === 'fail' && r.level === 'MUST'),
  };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
