/**
 * Start-up messages in the words of the configuration's source. A guard configured through
 * `guardOptionsFromEnv` reports `FAPI_CLOCK_TOLERANCE_SEC must be between 0 and 60 seconds`, not
 * the option name its author never wrote (`clockToleranceSec`).
 */
import type { GuardEnvVariable } from './env.js';

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
