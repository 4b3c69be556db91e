/**
 * A mock authorization server for tests and local development: discovery metadata (RFC 8414
 * and OpenID), a JWKS with key rotation, and access tokens (RFC 9068) with any claims,
 * lifetimes, algorithms, bindings and deliberate faults.
 */
import { createHmac, generateKeyPairSync, type KeyObject, randomUUID, sign } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type CryptoKey,
  calculateJwkThumbprint,
  EmbeddedJWK,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  jwtVerify,
  SignJWT,
} from 'jose';

/** Signing algorithms the mock issuer holds keys for. `RS256` exists to prove it is refused. */
export type MockAlgorithm = 'ES256' | 'PS256' | 'EdDSA' | 'RS256';

/** Deliberate defects, each one a way real tokens go wrong or attacks look. */
export type TokenFault =
  /** `exp` two minutes ago. */
  | 'expired'
  /** `nbf` two minutes ahead. */
  | 'not-yet-valid'
  /** `iat` two minutes ahead. */
  | 'issued-in-future'
  /** `typ: JWT` (an ID token or a generic JWT). */
  | 'wrong-typ'
  /** No `typ` header. */
  | 'no-typ'
  /** `typ: dpop+jwt` (a DPoP proof presented as an access token). */
  | 'dpop-typ'
  /** `iss` is another issuer (signed with this issuer's key). */
  | 'wrong-issuer'
  /** `aud` is another resource. */
  | 'wrong-audience'
  /** Signed by a key that is not in the JWKS, with a `kid` that is not either. */
  | 'unknown-key'
  /** `alg: none`, no signature. */
  | 'alg-none'
  /** One byte of the signature altered. */
  | 'bad-signature'
  /** HS256 keyed with the issuer's public key (the classic algorithm-confusion attack). */
  | 'hs256-public-key'
  /** PS256 with a 1024-bit RSA key that is published in the JWKS (FAPI 2.0 §5.4.1 #2 forbids it). */
  | 'weak-rsa-key';

export interface MintOptions {
  /** Signing algorithm. @default 'ES256' */
  alg?: MockAlgorithm;
  /** Space-separated `scope`. @default none */
  scope?: string;
  /** Audience. @default the issuer's `audience` option */
  audience?: string | string[];
  /** Lifetime in seconds. @default 300 */
  lifetimeSec?: number;
  /** Bind to a DPoP key: its RFC 7638 thumbprint as `cnf.jkt`. */
  jkt?: string;
  /** Bind to a client certificate: `cnf["x5t#S256"]`. */
  x5t?: string;
  /** Extra or overriding claims; a claim set to `undefined` is removed. */
  claims?: Record<string, unknown>;
  /** Extra protected-header members. */
  header?: Record<string, unknown>;
  /** A deliberate defect. */
  fault?: TokenFault;
}

/** How the introspection endpoint behaves; change it at any time. */
export interface IntrospectionBehaviour {
  /** Answer after this many milliseconds. @default 0 */
  delayMs?: number;
  /** Fail: answer with this status, or drop the connection. */
  fail?: number | 'close';
  /** Signed answers (RFC 9701): when asked (default), never, or always. */
  signed?: 'when-asked' | 'never' | 'always';
  /** Changes each answer (e.g. drop `aud`, add `token_type`). */
  transform?: (answer: Record<string, unknown>) => Record<string, unknown>;
  /** `aud` of signed answers. @default the authenticated client id */
  signedAudience?: string;
  /** `typ` of signed answers. @default 'token-introspection+jwt' */
  signedTyp?: string;
  /** Algorithm of signed answers. @default 'ES256' */
  signedAlg?: MockAlgorithm;
}

/** What the introspection endpoint last received. */
export interface IntrospectionRequest {
  headers: Record<string, string | string[] | undefined>;
  form: Record<string, string>;
  /** The client that authenticated, and how. */
  clientId: string;
  method: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
}

/** What {@link MockIssuer.probeArguments} needs to set up a fapi-probe run against an API that trusts this issuer. */
export interface ProbeArgumentsOptions {
  /** The protected resource URL the probe checks. */
  resource: string;
  /** The scope that resource requires. */
  scope: string;
  /** The probe's DPoP key (e.g. a `DpopClient`): the fault tokens are bound to its thumbprint. */
  client: { jkt: string; exportPrivateJwk(): JWK };
  /** File the client's private JWK is written to (mode 0600), passed as `--dpop-key`. */
  dpopKeyFile: string;
  /** `aud` of the fault tokens (except `wrong-audience`). @default the issuer's `audience` option */
  audience?: string;
  /** A scope that does not cover the resource, for `token.insufficient-scope`. @default 'fapi-probe-other' */
  insufficientScope?: string;
  /**
   * Lifetime in seconds of the `wrong-typ`, `wrong-audience` and `unbound` fault tokens (the
   * `expired` one expired 120 s before it was minted). Run the printed command within it: a
   * fault token that has since expired tests nothing, and fapi-probe reports its case "not run:
   * fault token expired". Raise it for a command you keep and rerun for a while. @default 300
   */
  lifetimeSec?: number;
}

export interface MockIssuerOptions {
  /** Default `aud` of minted tokens. @default 'https://rs.example.com' */
  audience?: string;
  /** Default `client_id`. @default 'client-1' */
  clientId?: string;
  /** Current time in ms, for tokens minted with a fixed clock. @default Date.now */
  clock?: () => number;
  /** Port of the HTTP server. @default 0 (a free port) */
  port?: number;
  /**
   * The APIs whose tokens the token endpoint issues: a `resource` parameter (RFC 8707) outside
   * this list gets `invalid_target`.
   * @default any absolute URI without a fragment
   */
  resources?: readonly string[];
}

/** RFC 8707 §2: a resource indicator is an absolute URI without a fragment component. */
function isResourceIndicator(value: string): boolean {
  if (value.includes('#')) return false;
  try {
    new URL(value);
    return true;
  } catch {
    return false;
  }
}

interface SigningKey {
  alg: MockAlgorithm;
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function makeKey(alg: MockAlgorithm): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid: `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`, use: 'sig', alg };
  return { alg, kid: publicJwk.kid, privateKey, publicJwk };
}

async function makeKeys(): Promise<Map<MockAlgorithm, SigningKey>> {
  const algs: MockAlgorithm[] = ['ES256', 'PS256', 'EdDSA', 'RS256'];
  return new Map(await Promise.all(algs.map(async (alg) => [alg, await makeKey(alg)] as const)));
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

export class MockIssuer {
  /** The issuer identifier, e.g. `http://127.0.0.1:39123`. */
  issuer = '';
  /** Counts of requests served, by kind. */
  readonly requests = { metadata: 0, jwks: 0, token: 0, introspect: 0, other: 0 };
  /** Extra keys published in the JWKS as they are (e.g. to test `kid` collisions). */
  extraKeys: JWK[] = [];
  /** Introspection behaviour (RFC 7662 / RFC 9701). */
  introspection: IntrospectionBehaviour = {};
  /**
   * Clients allowed to introspect: a secret (`client_secret_basic` / `client_secret_post`) or
   * a public JWK (`private_key_jwt`).
   */
  readonly introspectionClients = new Map<string, string | JWK>();
  /** The last introspection request. */
  lastIntrospection: IntrospectionRequest | undefined;
  /** Claims of the tokens minted here, by token (opaque) or `jti` (JWT). */
  private readonly issued = new Map<string, Record<string, unknown>>();
  private readonly revoked = new Set<string>();
  private current!: Map<MockAlgorithm, SigningKey>;
  private previous: SigningKey[] = [];
  private server: Server | undefined;
  private available = true;
  private readonly audience: string;
  private readonly clientId: string;
  private readonly clock: () => number;
  private readonly resources: readonly string[] | undefined;

  private constructor(options: MockIssuerOptions) {
    this.resources = options.resources;
    this.audience = options.audience ?? 'https://rs.example.com';
    this.clientId = options.clientId ?? 'client-1';
    this.clock = options.clock ?? Date.now;
  }

  /** Starts an issuer with its HTTP server on 127.0.0.1. */
  static async start(options: MockIssuerOptions = {}): Promise<MockIssuer> {
    const issuer = await MockIssuer.create(options);
    await issuer.listen(options.port ?? 0);
    return issuer;
  }

  /**
   * An in-process issuer without a server: use `issuer.jwks` as a static key set.
   * Its identifier is `https://as.example.com` unless `issuer` is given.
   */
  static async create(options: MockIssuerOptions & { issuer?: string } = {}): Promise<MockIssuer> {
    const issuer = new MockIssuer(options);
    issuer.current = await makeKeys();
    issuer.issuer = options.issuer ?? 'https://as.example.com';
    return issuer;
  }

  private listen(port: number): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        this.issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        resolve();
      });
    });
  }

  /** The RFC 8414 metadata document. */
  get metadata(): Record<string, unknown> {
    return {
      issuer: this.issuer,
      jwks_uri: this.jwksUri,
      token_endpoint: `${this.issuer}/token`,
      introspection_endpoint: `${this.issuer}/introspect`,
      introspection_signing_alg_values_supported: ['ES256', 'PS256', 'EdDSA'],
      grant_types_supported: ['client_credentials'],
      dpop_signing_alg_values_supported: ['ES256', 'PS256', 'EdDSA'],
    };
  }

  get jwksUri(): string {
    return `${this.issuer}/jwks`;
  }

  /** The published key set: `extraKeys` first, then current keys, then keys from before the last rotation. */
  get jwks(): { keys: JWK[] } {
    const current = [...this.current.values()].map((k) => k.publicJwk);
    return { keys: [...this.extraKeys, ...current, ...this.previous.map((k) => k.publicJwk)] };
  }

  /** While `false`, every request is answered 503 (the issuer is "down"). */
  setAvailable(available: boolean): void {
    this.available = available;
  }

  /** New signing keys; the old ones stay published unless `keepPrevious` is false. */
  async rotate({ keepPrevious = true }: { keepPrevious?: boolean } = {}): Promise<void> {
    const old = [...this.current.values()];
    this.current = await makeKeys();
    this.previous = keepPrevious ? old : [];
  }

  /** The public JWK that signs `alg` tokens now. */
  publicJwk(alg: MockAlgorithm = 'ES256'): JWK {
    return (this.current.get(alg) as SigningKey).publicJwk;
  }

  /**
   * Mints an opaque access token: a random string the introspection endpoint knows, with the
   * claims a JWT from `mint` would carry (`jkt`/`x5t` as top-level `cnf`).
   */
  async mintOpaque(
    options: Omit<MintOptions, 'alg' | 'header' | 'fault'> & { fault?: 'expired' | 'wrong-audience' } = {},
  ): Promise<string> {
    const jwt = await this.mint(options);
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1] as string, 'base64url').toString('utf8'));
    const token = randomUUID().replace(/-/g, '') + randomUUID().replace(/-/g, '');
    this.issued.set(token, claims);
    return token;
  }

  /** Revokes a token (opaque or JWT): introspection answers `active: false` from now on. */
  revoke(token: string): void {
    const parts = token.split('.');
    this.revoked.add(parts.length === 3 ? JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8')).jti : token);
  }

  /**
   * Signs a payload given as raw bytes (e.g. JSON with duplicate members, or invalid UTF-8)
   * with the current key: for tests of what a verifier does with such payloads.
   */
  async signRaw(payload: Uint8Array | string, alg: MockAlgorithm = 'ES256'): Promise<string> {
    const key = this.current.get(alg) as SigningKey;
    const { CompactSign } = await import('jose');
    const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
    return new CompactSign(bytes).setProtectedHeader({ alg, kid: key.kid, typ: 'at+jwt' }).sign(key.privateKey);
  }

  /**
   * The fapi-probe command-line arguments for a full DPoP run against an API that trusts this
   * issuer: `--issuer`, `--client-id`, `--scope`, `--dpop-key` (written to `dpopKeyFile`),
   * `--insufficient-scope` and the four `--fault-token` tokens, each bound to the client's key.
   * The fault tokens live `lifetimeSec` (default 300 s): the issuer must keep running, and the
   * command must run, within that time (the probe reports stale fault tokens "not run").
   * Print them with `args.join(' ')`, or pass them to `execFile('fapi-probe', args)`.
   */
  async probeArguments(options: ProbeArgumentsOptions): Promise<string[]> {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(options.dpopKeyFile, JSON.stringify(options.client.exportPrivateJwk()), { mode: 0o600 });
    const { jkt } = options.client;
    const audience = options.audience ?? this.audience;
    const lifetimeSec = options.lifetimeSec ?? 300;
    if (!Number.isInteger(lifetimeSec) || lifetimeSec < 1)
      throw new Error('probeArguments: lifetimeSec must be a positive integer (seconds)');
    const bound = (fault: TokenFault) => this.mint({ scope: options.scope, jkt, audience, fault, lifetimeSec });
    const faults: Array<[string, Promise<string>]> = [
      ['wrong-typ', bound('wrong-typ')],
      ['expired', bound('expired')],
      ['wrong-audience', bound('wrong-audience')],
      // No cnf at all: the token FAPI 2.0 §5.3.4 forbids a resource server to accept.
      ['unbound', this.mint({ scope: options.scope, audience, lifetimeSec })],
    ];
    const args = ['--resource', options.resource, '--issuer', this.issuer, '--client-id', this.clientId];
    args.push('--scope', options.scope, '--insufficient-scope', options.insufficientScope ?? 'fapi-probe-other');
    args.push('--dpop-key', options.dpopKeyFile);
    for (const [kind, token] of faults) args.push('--fault-token', `${kind}=${await token}`);
    return args;
  }

  /** Mints an access token. */
  async mint(options: MintOptions = {}): Promise<string> {
    const alg = options.alg ?? 'ES256';
    const key = this.current.get(alg) as SigningKey;
    const now = Math.floor(this.clock() / 1000);
    const fault = options.fault;
    const claims: Record<string, unknown> = {
      iss: fault === 'wrong-issuer' ? 'https://evil.example.com' : this.issuer,
      sub: 'user-1',
      aud: fault === 'wrong-audience' ? 'https://other.example.com' : (options.audience ?? this.audience),
      client_id: this.clientId,
      iat: fault === 'issued-in-future' ? now + 120 : now,
      exp: fault === 'expired' ? now - 120 : now + (options.lifetimeSec ?? 300),
      jti: randomUUID(),
    };
    if (fault === 'not-yet-valid') claims.nbf = now + 120;
    if (options.scope !== undefined) claims.scope = options.scope;
    const cnf: Record<string, string> = {};
    if (options.jkt) cnf.jkt = options.jkt;
    if (options.x5t) cnf['x5t#S256'] = options.x5t;
    if (Object.keys(cnf).length > 0) claims.cnf = cnf;
    for (const [name, value] of Object.entries(options.claims ?? {})) {
      if (value === undefined) delete claims[name];
      // defineProperty: a claim named __proto__ is a claim, not a prototype.
      else Object.defineProperty(claims, name, { value, enumerable: true, writable: true, configurable: true });
    }
    const typ = fault === 'wrong-typ' ? 'JWT' : fault === 'dpop-typ' ? 'dpop+jwt' : 'at+jwt';
    const header: Record<string, unknown> = { alg, kid: key.kid, ...(fault === 'no-typ' ? {} : { typ }), ...options.header };
    if (fault === 'weak-rsa-key') return this.signWithWeakRsa(header, claims);
    this.issued.set(claims.jti as string, claims);

    if (fault === 'alg-none') return `${b64({ ...header, alg: 'none' })}.${b64(claims)}.`;
    if (fault === 'hs256-public-key') {
      const h = { ...header, alg: 'HS256' };
      const input = `${b64(h)}.${b64(claims)}`;
      const secret = JSON.stringify(key.publicJwk);
      return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
    }
    const signer = fault === 'unknown-key' ? await makeKey(alg) : key;
    if (fault === 'unknown-key') header.kid = signer.kid;
    const token = await new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(signer.privateKey);
    if (fault === 'bad-signature') {
      const [h, p, s] = token.split('.') as [string, string, string];
      const sig = Buffer.from(s, 'base64url');
      sig[0] = (sig[0] as number) ^ 0x01;
      return `${h}.${p}.${sig.toString('base64url')}`;
    }
    return token;
  }

  private weakRsa: { privateKey: KeyObject; jwk: JWK } | undefined;

  private signWithWeakRsa(header: Record<string, unknown>, claims: Record<string, unknown>): string {
    if (!this.weakRsa) {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
      const jwk = { ...(publicKey.export({ format: 'jwk' }) as JWK), kid: 'weak-rsa-1024', use: 'sig', alg: 'PS256' };
      this.weakRsa = { privateKey, jwk };
      this.extraKeys.push(jwk);
    }
    const input = `${b64({ ...header, alg: 'PS256', kid: 'weak-rsa-1024' })}.${b64(claims)}`;
    const signature = sign('sha256', Buffer.from(input), {
      key: this.weakRsa.privateKey,
      padding: 6, // RSA_PKCS1_PSS_PADDING
      saltLength: 32,
    });
    return `${input}.${signature.toString('base64url')}`;
  }

  /** Stops the HTTP server. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * Token endpoint (client_credentials, no client authentication: this is a mock). With a
   * valid DPoP proof (RFC 9449 §5) the token is bound to the proof key (`cnf.jkt`) and typed
   * `DPoP`; without one it is an unbound `Bearer` token. Each `resource` parameter (RFC 8707 §2)
   * becomes an `aud` value, so one issuer serves several APIs; without one, `aud` is the
   * `audience` option.
   */
  private async token(req: IncomingMessage, body: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const form = new URLSearchParams(body);
    if (form.get('grant_type') !== 'client_credentials') return { status: 400, body: { error: 'unsupported_grant_type' } };
    const resources = form.getAll('resource');
    const badResource = resources.find((r) => !isResourceIndicator(r));
    if (badResource !== undefined) {
      // RFC 8707 §2: an absolute URI without a fragment, else invalid_target.
      return { status: 400, body: { error: 'invalid_target', error_description: 'resource must be an absolute URI without a fragment' } };
    }
    if (this.resources !== undefined) {
      const unknown = resources.find((r) => !this.resources?.includes(r));
      if (unknown !== undefined)
        return { status: 400, body: { error: 'invalid_target', error_description: `unknown resource ${unknown}` } };
    }
    const scope = form.get('scope') ?? undefined;
    const proof = req.headers.dpop;
    let jkt: string | undefined;
    if (proof !== undefined) {
      try {
        const { payload, protectedHeader } = await jwtVerify(String(proof), EmbeddedJWK, {
          typ: 'dpop+jwt',
          algorithms: ['ES256', 'PS256', 'EdDSA'],
          maxTokenAge: 60,
          requiredClaims: ['jti', 'iat'],
        });
        if (payload.htm !== 'POST' || payload.htu !== `${this.issuer}/token`) throw new Error('htm/htu');
        // RFC 9449 §11.1: a proof is used once; an AS keeps its jti for the proof's lifetime.
        if (!this.firstUse(`dpop:${payload.jti}`, (payload.iat as number) + 60)) throw new Error('DPoP proof replayed');
        jkt = await calculateJwkThumbprint(protectedHeader.jwk as JWK);
      } catch (e) {
        return { status: 400, body: { error: 'invalid_dpop_proof', error_description: (e as Error).message } };
      }
    }
    const lifetimeSec = 300;
    // RFC 9068 §2.2: without a resource owner (client credentials) `sub` names the client.
    const client = form.get('client_id') ?? this.clientId;
    const claims = { client_id: client, sub: client };
    // RFC 8707: each `resource` becomes an `aud` value.
    const audience = resources.length === 0 ? undefined : resources.length === 1 ? (resources[0] as string) : resources;
    const accessToken = await this.mint({ scope, jkt, lifetimeSec, claims, ...(audience === undefined ? {} : { audience }) });
    return {
      status: 200,
      body: { access_token: accessToken, token_type: jkt ? 'DPoP' : 'Bearer', expires_in: lifetimeSec, ...(scope ? { scope } : {}) },
    };
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?', 1)[0];
    const send = (status: number, body: unknown, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (!this.available) {
      send(503, { error: 'temporarily_unavailable' });
      return;
    }
    if (req.method === 'GET' && (path === '/.well-known/oauth-authorization-server' || path === '/.well-known/openid-configuration')) {
      this.requests.metadata++;
      send(200, this.metadata);
    } else if (req.method === 'GET' && path === '/jwks') {
      this.requests.jwks++;
      send(200, this.jwks, 'application/jwk-set+json');
    } else if (req.method === 'POST' && path === '/introspect') {
      this.requests.introspect++;
      this.readBody(req).then((body) => this.introspect(req, res, body));
    } else if (req.method === 'POST' && path === '/token') {
      this.requests.token++;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.token(req, Buffer.concat(chunks).toString('utf8')).then(
          (answer) => send(answer.status, answer.body),
          () => send(500, { error: 'server_error' }),
        );
      });
    } else {
      this.requests.other++;
      send(404, { error: 'not_found' });
    }
  }

  /** `jti`s seen, with the time (seconds) until which each is kept. */
  private readonly seen = new Map<string, number>();

  /** True the first time `id` is presented before `until`; forgets what has expired. */
  private firstUse(id: string, until: number): boolean {
    const now = this.clock() / 1000;
    for (const [known, end] of this.seen) if (end < now) this.seen.delete(known);
    if (this.seen.has(id)) return false;
    this.seen.set(id, until);
    return true;
  }

  private readBody(req: IncomingMessage): Promise<string> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
  }

  /** Who is introspecting: RFC 7662 §2.1 requires the caller to authenticate. */
  private async authenticateIntrospectionClient(
    req: IncomingMessage,
    form: URLSearchParams,
  ): Promise<Pick<IntrospectionRequest, 'clientId' | 'method'> | undefined> {
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
    if (basic) {
      const [id, secret] = Buffer.from(basic[1] as string, 'base64')
        .toString()
        .split(':')
        .map(decodeURIComponent);
      return this.introspectionClients.get(id as string) === secret ? { clientId: id as string, method: 'client_secret_basic' } : undefined;
    }
    const id = form.get('client_id') ?? '';
    const known = this.introspectionClients.get(id);
    if (form.has('client_secret')) {
      return known === form.get('client_secret') ? { clientId: id, method: 'client_secret_post' } : undefined;
    }
    const assertion = form.get('client_assertion');
    if (assertion && typeof known === 'object') {
      try {
        const key = await importJWK(known, (known.alg as string) ?? 'ES256');
        const { payload } = await jwtVerify(assertion, key, { issuer: id, subject: id, requiredClaims: ['exp', 'jti'] });
        // draft-ietf-oauth-rfc7523bis, FAPI 2.0 §5.3.2.1: the issuer identifier as the sole audience,
        // a string (an array, even one naming it, is refused as ASes applying rfc7523bis do).
        if (payload.aud !== this.issuer) return undefined;
        return this.firstUse(`assertion:${payload.jti}`, payload.exp as number) ? { clientId: id, method: 'private_key_jwt' } : undefined;
      } catch {
        return undefined;
      }
    }
    return undefined;
  }

  private async introspect(req: IncomingMessage, res: ServerResponse, body: string): Promise<void> {
    const b = this.introspection;
    const form = new URLSearchParams(body);
    if (b.delayMs) await new Promise((r) => setTimeout(r, b.delayMs));
    if (b.fail === 'close') {
      req.socket.destroy();
      return;
    }
    const reply = (status: number, value: unknown, type = 'application/json') => {
      if (res.destroyed) return;
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(typeof value === 'string' ? value : JSON.stringify(value));
    };
    if (typeof b.fail === 'number') return reply(b.fail, { error: 'server_error' });
    const client = await this.authenticateIntrospectionClient(req, form);
    this.lastIntrospection = client && { headers: { ...req.headers }, form: Object.fromEntries(form), ...client };
    if (!client) return reply(401, { error: 'invalid_client' });
    const token = form.get('token') ?? '';
    const parts = token.split('.');
    let claims = this.issued.get(token);
    if (!claims && parts.length === 3) {
      try {
        claims = this.issued.get(JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8')).jti);
      } catch {
        claims = undefined;
      }
    }
    const key = claims && (this.issued.has(token) ? token : (claims.jti as string));
    const now = Math.floor(this.clock() / 1000);
    const active = claims !== undefined && !this.revoked.has(key as string) && (claims.exp as number) > now;
    let answer: Record<string, unknown> = active
      ? { active: true, ...claims, token_type: (claims?.cnf as { jkt?: string } | undefined)?.jkt ? 'DPoP' : 'Bearer' }
      : { active: false };
    if (b.transform) answer = b.transform(answer);
    const wantsJwt = (req.headers.accept ?? '').includes('application/token-introspection+jwt');
    if (b.signed === 'always' || (b.signed !== 'never' && wantsJwt)) {
      const signer = this.current.get(b.signedAlg ?? 'ES256') as SigningKey;
      const jwt = await new SignJWT({ token_introspection: answer })
        .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: b.signedTyp ?? 'token-introspection+jwt' })
        .setIssuer(this.issuer)
        .setAudience(b.signedAudience ?? client.clientId)
        .setIssuedAt(now)
        .sign(signer.privateKey);
      return reply(200, jwt, 'application/token-introspection+jwt');
    }
    return reply(200, answer);
  }
}
