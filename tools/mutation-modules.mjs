// The modules of the mutation run (tools/mutation.mjs): what each mutates, and its two stages of
// suites — `quick` (in-process where possible) for every mutant, `wide` (over real HTTP) for the
// survivors of the first. tools/mutation-scores.mjs lists the modules not measured yet from them.

const core = (glob) => `packages/core/src/${glob}`;
const suites = (...names) => `(${names.join('|')})\\.test\\.ts$`;
/** In-process suites of the core (no HTTP server; a few use one on 127.0.0.1 as a peer). */
const CORE_UNIT = ['packages/core/test/[a-z-]+', 'test/vectors'];
/** The adapters' shared suites: every adapter answers the same bytes (parity, hooks, body order), options, idempotency keys, layers. */
const ADAPTER = [
  'test/(parity|boundaries|body-before-auth|configuration|hostile|adapter-options|adapter-startup|idempotency|layers|idempotency-layers|message-signing-layers)',
];

/** The suites over real HTTP that reach the token code (issuers, JWK sets, introspection servers on 127.0.0.1). */
const TOKENS_WIDE = ['test/(bearer-jwt|jwks|introspection|outbound|outbound-proxy|faults|tls|readiness)'];

/** The suites over real HTTP that sign requests and check signed responses. */
const SIGNATURES_WIDE = ['test/(message-signing|message-signing-layers|attack-signing|attack-review|attack-review-2|http2)'];

/**
 * The in-process suites of idempotency keys and their stores. Every guard makes a store and
 * every adapter request passes the exchange, so with all of CORE_UNIT as the fast stage each
 * mutant ran hundreds of tests (idempotency-store was estimated at almost 5 hours).
 */
const IDEMPOTENCY_UNIT =
  'packages/core/test/(idempotency|idempotency-exchange|idempotency-layers|idempotency-node|idempotency-fetch|stores)';

/** The suites over real HTTP that retry payments: every adapter's layers, the attack reviews of the idempotency path. */
const IDEMPOTENCY_WIDE = [
  'test/(idempotency|idempotency-attacks|idempotency-layers|idempotency-layers-concurrency|attack-review-5|attack-review-6|attack-review-7|attack-review-8|attack-review-9|attack-review-10|attack-review-11|attack-review-21)',
];

/** The suites over real HTTP of the regimes (FAPI 1.0 Advanced, UK Open Banking, Open Finance Brasil). */
const REGIMES_WIDE = ['test/(regimes-attack|regimes-br-of|regimes-fapi1|regimes-uk-ob|regimes-migration|attack-review-5)'];

/** The NestJS files that compose policies (decorators, inheritance, public routes). */
const NEST_POLICY_FILES = ['policy-chain.ts', 'policies.ts', 'decorators.ts', 'public.ts'];
/** The NestJS guards, and how refusals and idempotent replays leave them. */
const NEST_GUARD_FILES = ['guard.ts', 'refusal.ts', 'replay.ts', 'state.ts', 'settings.ts', 'idempotency.ts'];

/** @type {Record<string, { mutate: string[]; quick: string; wide?: string }>} */
export const MODULES = {
  binding: {
    mutate: [core('binding/**/*.ts')],
    quick: suites(...CORE_UNIT),
    wide: suites(
      'test/(dpop|dpop-nonce|mtls|proxy-headers|shared-state|attack-review|attack-review-2|attack-review-18|attack-review-19|attack-review-20|hostile|parity)',
    ),
  },
  // Tokens in three parts (1 425 mutants in all; a Stryker run keeps its state only when it ends):
  // the access token's validation (RFC 9068, the token's kind)...
  'tokens-jwt': {
    mutate: [core('tokens/jwt.ts'), core('tokens/token-kind.ts')],
    quick: suites(...CORE_UNIT),
    wide: suites(...TOKENS_WIDE),
  },
  // ...introspection (RFC 7662, RFC 9701)...
  'tokens-introspection': {
    mutate: [core('tokens/introspection.ts')],
    quick: suites(...CORE_UNIT),
    wide: suites(...TOKENS_WIDE),
  },
  // ...and issuer discovery, JWK sets and the HTTP client that fetches them.
  'tokens-issuer': {
    mutate: [core('tokens/issuer.ts'), core('tokens/http.ts')],
    quick: suites(...CORE_UNIT),
    wide: suites(...TOKENS_WIDE),
  },
  policy: {
    mutate: [core('policy.ts')],
    quick: suites(...CORE_UNIT),
    wide: suites('test/(profile|bearer-jwt|parity|configuration)'),
  },
  credentials: {
    mutate: [core('credentials.ts')],
    quick: suites(...CORE_UNIT),
    wide: suites('test/(bearer-jwt|dpop|hostile|parity|body-before-auth|attack-review|attack-review-2)'),
  },
  request: {
    mutate: [core('request.ts')],
    quick: suites(...CORE_UNIT),
    wide: suites('test/(dpop|hostile|parity|proxy-headers|http2|attack-review|attack-review-2|attack-review-19|attack-review-20|profile)'),
  },
  // Message signatures in two parts (1 017 mutants in all; a Stryker run keeps its state only when
  // it ends): the signature base and its verification (RFC 9421 §2, §3.2, RFC 9530 digests)...
  'signatures-base': {
    mutate: ['base.ts', 'digest.ts', 'verify.ts'].map((f) => core(`signatures/${f}`)),
    quick: suites(...CORE_UNIT),
    wide: suites(...SIGNATURES_WIDE),
  },
  // ...and the FAPI 2.0 Message Signing profile over them: the clients' keys, the server's key, signed responses.
  'signatures-fapi': {
    mutate: ['fapi.ts', 'keys.ts', 'client-keys.ts'].map((f) => core(`signatures/${f}`)),
    quick: suites(...CORE_UNIT),
    wide: suites(...SIGNATURES_WIDE),
  },
  // The idempotency exchange (a payment retried after a time-out is processed once, its answer
  // replayed only to its own client at its own depth), in three parts (about 1 500 mutants in all;
  // a Stryker run keeps its state only when it ends): the key, the fingerprint and the claim...
  'idempotency-exchange': {
    mutate: ['exchange.ts', 'key.ts', 'fingerprint.ts', 'policy.ts'].map((f) => core(`idempotency/${f}`)),
    quick: suites(IDEMPOTENCY_UNIT),
    wide: suites(...IDEMPOTENCY_WIDE),
  },
  // ...the layers and the recorders on Node's and the Fetch API's responses...
  'idempotency-layers': {
    mutate: ['layers.ts', 'node.ts', 'fetch.ts'].map((f) => core(`idempotency/${f}`)),
    quick: suites(IDEMPOTENCY_UNIT),
    wide: suites(...IDEMPOTENCY_WIDE),
  },
  // ...and the in-memory store.
  'idempotency-store': {
    mutate: ['memory.ts', 'store.ts'].map((f) => core(`idempotency/${f}`)),
    quick: suites(IDEMPOTENCY_UNIT),
    wide: suites(...IDEMPOTENCY_WIDE),
  },
  // The regimes on the same guard, in two parts (721 mutants in all; a first run with all of
  // CORE_UNIT as the fast stage was estimated at 3 hours), each with its own in-process suites
  // first: the UK Open Banking and Open Finance Brasil signatures...
  'regimes-signatures': {
    mutate: ['uk-ob-signature.ts', 'br-signed-jwt.ts'].map((f) => core(`regimes/${f}`)),
    quick: suites('packages/core/test/(uk-ob-signature|br-signed-jwt|fapi-signatures|fapi-exchange)'),
    wide: suites(...REGIMES_WIDE),
  },
  // ...and the FAPI 1.0 Advanced headers, HTTP dates and the profiles.
  'regimes-headers': {
    mutate: ['fapi-headers.ts', 'http-date.ts', 'profiles.ts'].map((f) => core(`regimes/${f}`)),
    quick: suites('packages/core/test/(fapi-headers|profiles|policy|options|config-keys)'),
    wide: suites(...REGIMES_WIDE),
  },
  // Express writes nothing on a response sent while it checked, and hands a head sent in front of it to the error handlers (attack reviews 22 and 23 prove it over HTTP).
  express: {
    mutate: ['packages/express/src/**/*.ts'],
    quick: suites(...ADAPTER),
    wide: suites('test/(profile|http2|dpop|attack-review-22|attack-review-23)'),
  },
  // Koa and Fastify settle a claim themselves when the client has gone (attack reviews 11 and 12 prove it over HTTP).
  koa: { mutate: ['packages/koa/src/**/*.ts'], quick: suites(...ADAPTER), wide: suites('test/(profile|http2|dpop|attack-review-11)') },
  fastify: {
    mutate: ['packages/fastify/src/**/*.ts'],
    quick: suites(...ADAPTER),
    wide: suites('test/(profile|http2|dpop|attack-review-11|attack-review-12|attack-review-20)'),
  },
  // NestJS in three parts (668 mutants in all): a Stryker run keeps its state only when it ends,
  // so each part's state is committed on its own. How policies compose (in-process tests first):
  'nestjs-policies': {
    mutate: NEST_POLICY_FILES.map((f) => `packages/nestjs/src/${f}`),
    quick: suites('packages/nestjs/test/[a-z-]+', 'test/nestjs(-global|-startup)?'),
    wide: suites(...ADAPTER),
  },
  // ...the guards and how their refusals and replays leave...
  'nestjs-guard': {
    mutate: NEST_GUARD_FILES.map((f) => `packages/nestjs/src/${f}`),
    quick: suites(...ADAPTER, 'test/nestjs(-global|-startup)?', 'packages/nestjs/test/[a-z-]+'),
    wide: suites('test/(profile|http2|idempotency-layers|message-signing-layers|attack-review-11|attack-review-12)'),
  },
  // ...and the module and the two platforms (Express, Fastify) underneath.
  'nestjs-platforms': {
    mutate: ['packages/nestjs/src/**/*.ts', ...[...NEST_POLICY_FILES, ...NEST_GUARD_FILES].map((f) => `!packages/nestjs/src/${f}`)],
    quick: suites(...ADAPTER, 'test/nestjs(-global|-startup)?', 'packages/nestjs/test/[a-z-]+'),
    wide: suites('test/(profile|http2|idempotency-layers|message-signing-layers|attack-review-20)'),
  },
  hono: {
    mutate: ['packages/hono/src/**/*.ts'],
    quick: suites(...ADAPTER, 'test/hono'),
    wide: suites(
      'test/(profile|http2|attack-review-4|attack-review-5|attack-review-6|attack-review-7|attack-review-10|attack-review-11|attack-review-22|attack-review-23|regimes-br-of)',
    ),
  },
};
