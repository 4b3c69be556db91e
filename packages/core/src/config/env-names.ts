/**
 * The environment variables and the options they set, and start-up messages in the words of the
 * configuration's source. A guard configured through
 * `guardOptionsFromEnv` reports `FAPI_CLOCK_TOLERANCE_SEC must be between 0 and 60 seconds`, not
 * the option name its author never wrote (`clockToleranceSec`).
 */

/** Every variable read, with what it sets. Lists are comma-separated; booleans are `true` / `false`. */
export const GUARD_ENV_VARIABLES = {
  FAPI_ISSUER: 'issuer identifier(s) of the trusted authorization server(s) (`issuer` / `issuers`); required',
  FAPI_JWKS_URI: "the issuer's JWK set URL, skipping discovery (one issuer only)",
  FAPI_AUDIENCE: "this API's resource identifier(s) (`audience`); required",
  FAPI_PUBLIC_URL: 'origin(s) clients address (`publicUrl`)',
  FAPI_TRUSTED_PROXIES: 'IPs / CIDRs whose X-Forwarded-Proto / -Host are believed (`trustedProxies`)',
  FAPI_PROFILE: '`fapi2` (default), `fapi1-advanced` or `oauth2` (`profile`)',
  FAPI_ALGORITHMS: 'JWS algorithms (`algorithms`)',
  FAPI_CLOCK_TOLERANCE_SEC: 'leeway for exp / nbf / iat in seconds (`clockToleranceSec`)',
  FAPI_REALM: 'realm of Bearer challenges (`realm`)',
  FAPI_TOKEN_FORMAT: '`jwt`, `opaque` or `auto` (`tokenFormat`)',
  FAPI_INTROSPECT_JWTS: 'also introspect JWTs, for revocation (`introspectJwts`)',
  FAPI_RESOURCE_METADATA: 'publish RFC 9728 metadata (`resourceMetadata`)',
  FAPI_MTLS: "offer certificate-bound tokens over this process's own TLS (`mtls: true`)",
  FAPI_CLIENT_CERT_HEADER: "a trusted TLS-terminating proxy's certificate header (`mtls.proxy.header`)",
  FAPI_CLIENT_CERT_FORMAT: '`rfc9440`, `nginx` or `envoy` (`mtls.proxy.format`)',
  FAPI_CLIENT_CERT_TRUSTED_PEERS: 'IPs / CIDRs the proxy connects from (`mtls.proxy.trustedPeers`)',
  FAPI_CLIENT_CERT_SECRET_HEADER: 'header the proxy sets to a shared secret (`mtls.proxy.sharedSecret.header`)',
  FAPI_CLIENT_CERT_SECRET: 'the shared secret value (`mtls.proxy.sharedSecret.value`)',
  FAPI_DPOP_MAX_AGE_SEC: 'oldest accepted DPoP proof, in seconds (`dpop.maxAgeSec`)',
  FAPI_DPOP_NONCE_REQUIRED: 'require server nonces on every route (`dpop.nonce.required`)',
  FAPI_DPOP_NONCE_SECRET: 'nonce secret (≥ 32 bytes) shared by every instance (`dpop.nonce.secret`)',
  FAPI_INTROSPECTION_CLIENT_ID: 'turns introspection on (`introspection.clientId`)',
  FAPI_INTROSPECTION_AUTH_METHOD: '`client_secret_basic` (default), `client_secret_post` or `private_key_jwt`',
  FAPI_INTROSPECTION_CLIENT_SECRET: 'client secret for the client_secret_* methods',
  FAPI_INTROSPECTION_PRIVATE_KEY: 'private JWK (JSON) for private_key_jwt',
  FAPI_INTROSPECTION_ENDPOINT: 'introspection endpoint (default: discovered)',
  FAPI_INTROSPECTION_ISSUER: 'which issuer answers introspection (needed with several issuers)',
  FAPI_INTROSPECTION_SIGNED_RESPONSE: 'require RFC 9701 signed answers (`introspection.signedResponse`)',
  FAPI_INTROSPECTION_CACHE_TTL_SEC: 'longest time an answer is cached (`introspection.cache.maxTtlSec`)',
  FAPI_OUTBOUND_PROXY:
    '`env` (use `HTTPS_PROXY` / `NO_PROXY`) or an `http://` proxy URL for discovery, JWKS and introspection (`outbound.proxy`)',
} as const;

export type GuardEnvVariable = keyof typeof GUARD_ENV_VARIABLES;

/** Set on the options `guardOptionsFromEnv` returns; kept by object spread (an own enumerable symbol). */
export const FROM_ENV: unique symbol = Symbol.for('fapi-guard.options-from-env');

/** Option path, as start-up messages write it → the variable that sets it. */
export const OPTION_VARIABLES: Readonly<Record<string, GuardEnvVariable>> = {
  issuer: 'FAPI_ISSUER',
  issuers: 'FAPI_ISSUER',
  jwksUri: 'FAPI_JWKS_URI',
  audience: 'FAPI_AUDIENCE',
  publicUrl: 'FAPI_PUBLIC_URL',
  trustedProxies: 'FAPI_TRUSTED_PROXIES',
  profile: 'FAPI_PROFILE',
  algorithms: 'FAPI_ALGORITHMS',
  algorithm: 'FAPI_ALGORITHMS',
  clockToleranceSec: 'FAPI_CLOCK_TOLERANCE_SEC',
  realm: 'FAPI_REALM',
  tokenFormat: 'FAPI_TOKEN_FORMAT',
  introspectJwts: 'FAPI_INTROSPECT_JWTS',
  resourceMetadata: 'FAPI_RESOURCE_METADATA',
  mtls: 'FAPI_MTLS',
  'mtls.proxy': 'FAPI_CLIENT_CERT_HEADER',
  'mtls.proxy.header': 'FAPI_CLIENT_CERT_HEADER',
  'mtls.proxy.format': 'FAPI_CLIENT_CERT_FORMAT',
  'mtls.proxy.trustedPeers': 'FAPI_CLIENT_CERT_TRUSTED_PEERS',
  'mtls.proxy.sharedSecret.header': 'FAPI_CLIENT_CERT_SECRET_HEADER',
  'mtls.proxy.sharedSecret': 'FAPI_CLIENT_CERT_SECRET',
  'mtls.proxy.sharedSecret.value': 'FAPI_CLIENT_CERT_SECRET',
  'dpop.maxAgeSec': 'FAPI_DPOP_MAX_AGE_SEC',
  'dpop.nonce.required': 'FAPI_DPOP_NONCE_REQUIRED',
  'dpop.nonce.secret': 'FAPI_DPOP_NONCE_SECRET',
  'introspection.clientId': 'FAPI_INTROSPECTION_CLIENT_ID',
  'introspection.clientAuth.method': 'FAPI_INTROSPECTION_AUTH_METHOD',
  'introspection.clientAuth.clientSecret': 'FAPI_INTROSPECTION_CLIENT_SECRET',
  'introspection.clientAuth.privateKey': 'FAPI_INTROSPECTION_PRIVATE_KEY',
  'introspection.endpoint': 'FAPI_INTROSPECTION_ENDPOINT',
  'introspection.issuer': 'FAPI_INTROSPECTION_ISSUER',
  'introspection.signedResponse': 'FAPI_INTROSPECTION_SIGNED_RESPONSE',
  'introspection.cache.maxTtlSec': 'FAPI_INTROSPECTION_CACHE_TTL_SEC',
  'outbound.proxy': 'FAPI_OUTBOUND_PROXY',
};

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
// Longest first, so `introspection.issuer` is renamed whole before `issuer` is looked at.
const PATHS = Object.keys(OPTION_VARIABLES).sort((a, b) => b.length - a.length);
// Paths that are also English words (`issuer`, `algorithms`) are option names only where a message
// starts with them; `clockToleranceSec` or `dpop.maxAgeSec` are option names anywhere.
const isWord = (path: string) => /^[a-z]+$/.test(path);
const whole = (paths: string[]) => `(${paths.map(escapeRegExp).join('|')})(?![\\w]|\\.\\w)`;
const LEADING = new RegExp(`^${whole(PATHS.filter(isWord))}`);
const ANYWHERE = new RegExp(`(?<![\\w.])${whole(PATHS.filter((p) => !isWord(p)))}(: )?`, 'g');

/** True for options that came from `guardOptionsFromEnv` (directly or spread into others). */
export function fromEnvironment(options: unknown): boolean {
  return typeof options === 'object' && options !== null && (options as { [FROM_ENV]?: unknown })[FROM_ENV] === true;
}

/**
 * The message with each option path that has a variable written as that variable
 * (`set publicUrl` → `set FAPI_PUBLIC_URL`; `publicUrl: 'https://…'` → `FAPI_PUBLIC_URL=https://…`).
 */
export function withVariableNames(message: string): string {
  return message
    .replace(ANYWHERE, (_match, path: string, colon: string | undefined) => {
      const variable = OPTION_VARIABLES[path] as string;
      return colon === undefined ? variable : `${variable}=`;
    })
    .replace(LEADING, (path) => OPTION_VARIABLES[path] as string);
}

/** A start-up error of options read from the environment, rethrown in the variables' names. */
export function renameForEnvironment(error: unknown, options: unknown): unknown {
  if (!fromEnvironment(options) || !(error instanceof TypeError) || !error.message.startsWith('fapi-guard: ')) return error;
  const renamed = new TypeError(`fapi-guard: ${withVariableNames(error.message.slice('fapi-guard: '.length))}`);
  renamed.stack = error.stack?.replace(error.message, renamed.message);
  return renamed;
}

/** Marks options as read from the environment (see {@link FROM_ENV}). */
export function markFromEnvironment<T extends object>(options: T): T {
  Object.defineProperty(options, FROM_ENV, { value: true, enumerable: true, writable: false, configurable: true });
  return options;
}
