/**
 * Guard options from environment variables, for deployments configured the twelve-factor way.
 * The variables map one to one onto {@link GuardOptions}; the result goes through `createGuard`'s
 * validation like options written in code, and a variable this module does not know (a typo such
 * as `FAPI_AUDIENCES`) is a start-up error, never a silently skipped setting.
 */
import type { CertificateProxyOptions, ClientCertificateFormat } from '../binding/mtls.js';
import type { IntrospectionOptions } from '../tokens/introspection.js';
import { nearestKey } from './check.js';
import { GUARD_ENV_VARIABLES, type GuardEnvVariable, markFromEnvironment } from './env-names.js';
import type { GuardOptions } from './options.js';

export { GUARD_ENV_VARIABLES, type GuardEnvVariable };

export interface GuardEnvOptions {
  /**
   * Other `FAPI_*` variables that the application reads itself (e.g. `FAPI_FRAMEWORK`); any
   * `FAPI_*` variable (the prefix in any case) neither listed here nor in
   * {@link GUARD_ENV_VARIABLES} is a start-up error.
   * @default []
   */
  allow?: readonly string[];
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads {@link GUARD_ENV_VARIABLES} into guard options. Empty variables count as unset. Throws a
 * `TypeError` naming the variable for a value of the wrong form, and for an unknown `FAPI_*`
 * variable, the prefix in any case (with the right spelling or the nearest known name). Spread
 * the result into your own options to add what has no variable (`onDecision`, stores):
 *
 * ```ts
 * const guard = createGuard({ ...guardOptionsFromEnv(), onDecision: log });
 * ```
 */
export function guardOptionsFromEnv(env: Env = process.env, options: GuardEnvOptions = {}): GuardOptions {
  const known = new Set<string>([...Object.keys(GUARD_ENV_VARIABLES), ...(options.allow ?? [])]);
  for (const name of Object.keys(env)) {
    // The prefix in any case: a lower- or mixed-case name is a misspelling, never silently skipped
    // (POSIX names are case-sensitive, so FAPI_X would stay unset).
    if (name.slice(0, 5).toUpperCase() === 'FAPI_' && !known.has(name)) {
      // Compared without the common prefix, which every candidate shares; the same name in
      // another case is the nearest of all.
      const rest = [...known].map((k) => k.slice(5));
      const tail = name.slice(5);
      const near = rest.find((k) => k.toUpperCase() === tail.toUpperCase()) ?? nearestKey(tail, rest);
      // Say what to change in both cases: the name (a typo) or the call (a variable of the application's own).
      const own = `if your application reads it itself, pass guardOptionsFromEnv(env, { allow: ['${name}'] })`;
      throw envError(name, `is not a fapi-guard variable${near ? `; did you mean FAPI_${near}? Or, ${own}` : `; ${own}`}`);
    }
  }
  const read = (name: GuardEnvVariable): string | undefined => {
    const value = env[name]?.trim();
    return value === '' ? undefined : value;
  };
  const list = (name: GuardEnvVariable) =>
    read(name)
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  const flag = (name: GuardEnvVariable): boolean | undefined => {
    const value = read(name);
    if (value === undefined) return undefined;
    if (value !== 'true' && value !== 'false') throw envError(name, `must be true or false, not ${JSON.stringify(value)}`);
    return value === 'true';
  };
  const number = (name: GuardEnvVariable): number | undefined => {
    const value = read(name);
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value)) throw envError(name, `must be a whole number, not ${JSON.stringify(value)}`);
    return Number(value);
  };
  const oneOf = <T extends string>(name: GuardEnvVariable, allowed: readonly T[]): T | undefined => {
    const value = read(name);
    if (value !== undefined && !(allowed as readonly string[]).includes(value)) {
      throw envError(name, `must be one of ${allowed.join(', ')}, not ${JSON.stringify(value)}`);
    }
    return value as T | undefined;
  };

  const issuers = list('FAPI_ISSUER');
  if (!issuers?.length) throw envError('FAPI_ISSUER', 'is required: the issuer identifier of your authorization server');
  const audience = list('FAPI_AUDIENCE');
  if (!audience?.length) throw envError('FAPI_AUDIENCE', "is required: this API's resource identifier, e.g. https://api.bank.example");
  const jwksUri = read('FAPI_JWKS_URI');
  if (jwksUri !== undefined && issuers.length > 1) throw envError('FAPI_JWKS_URI', 'can be used with one FAPI_ISSUER only');

  const result: GuardOptions = {
    issuers: jwksUri === undefined ? issuers : [{ issuer: issuers[0] as string, jwksUri }],
    audience,
  };
  const publicUrl = list('FAPI_PUBLIC_URL');
  if (publicUrl) result.publicUrl = publicUrl;
  const trustedProxies = list('FAPI_TRUSTED_PROXIES');
  if (trustedProxies) result.trustedProxies = trustedProxies;
  const profile = oneOf('FAPI_PROFILE', ['fapi2', 'fapi1-advanced', 'oauth2'] as const);
  if (profile) result.profile = profile;
  const algorithms = list('FAPI_ALGORITHMS');
  if (algorithms) result.algorithms = algorithms;
  const tolerance = number('FAPI_CLOCK_TOLERANCE_SEC');
  if (tolerance !== undefined) result.clockToleranceSec = tolerance;
  const realm = read('FAPI_REALM');
  if (realm) result.realm = realm;
  const tokenFormat = oneOf('FAPI_TOKEN_FORMAT', ['jwt', 'opaque', 'auto'] as const);
  if (tokenFormat) result.tokenFormat = tokenFormat;
  const introspectJwts = flag('FAPI_INTROSPECT_JWTS');
  if (introspectJwts !== undefined) result.introspectJwts = introspectJwts;
  const metadata = flag('FAPI_RESOURCE_METADATA');
  if (metadata !== undefined) result.resourceMetadata = metadata;
  const outboundProxy = read('FAPI_OUTBOUND_PROXY');
  if (outboundProxy) result.outbound = { proxy: outboundProxy };

  const proxy = readCertificateProxy(read, list, oneOf);
  const mtls = flag('FAPI_MTLS');
  if (proxy) result.mtls = { proxy };
  else if (mtls !== undefined) result.mtls = mtls;

  const dpop: NonNullable<GuardOptions['dpop']> = {};
  const maxAgeSec = number('FAPI_DPOP_MAX_AGE_SEC');
  if (maxAgeSec !== undefined) dpop.maxAgeSec = maxAgeSec;
  const nonceRequired = flag('FAPI_DPOP_NONCE_REQUIRED');
  const nonceSecret = read('FAPI_DPOP_NONCE_SECRET');
  if (nonceRequired !== undefined || nonceSecret !== undefined) {
    dpop.nonce = {
      ...(nonceRequired === undefined ? {} : { required: nonceRequired }),
      ...(nonceSecret === undefined ? {} : { secret: nonceSecret }),
    };
  }
  if (Object.keys(dpop).length > 0) result.dpop = dpop;

  const introspection = readIntrospection(read, flag, number, oneOf);
  if (introspection) result.introspection = introspection;
  // createGuard's start-up errors then name the variables instead of the options they set.
  return markFromEnvironment(result);
}

type Read = (name: GuardEnvVariable) => string | undefined;

function readCertificateProxy(
  read: Read,
  list: (name: GuardEnvVariable) => string[] | undefined,
  oneOf: <T extends string>(name: GuardEnvVariable, allowed: readonly T[]) => T | undefined,
): CertificateProxyOptions | undefined {
  const header = read('FAPI_CLIENT_CERT_HEADER');
  const related = [
    'FAPI_CLIENT_CERT_FORMAT',
    'FAPI_CLIENT_CERT_TRUSTED_PEERS',
    'FAPI_CLIENT_CERT_SECRET_HEADER',
    'FAPI_CLIENT_CERT_SECRET',
  ] as const;
  if (header === undefined) {
    const stray = related.find((name) => read(name) !== undefined);
    if (stray) throw envError(stray, 'needs FAPI_CLIENT_CERT_HEADER (the header the proxy writes)');
    return undefined;
  }
  const proxy: CertificateProxyOptions = { header };
  const format = oneOf<ClientCertificateFormat>('FAPI_CLIENT_CERT_FORMAT', ['rfc9440', 'nginx', 'envoy']);
  if (format) proxy.format = format;
  const peers = list('FAPI_CLIENT_CERT_TRUSTED_PEERS');
  if (peers) proxy.trustedPeers = peers;
  const secretHeader = read('FAPI_CLIENT_CERT_SECRET_HEADER');
  const secret = read('FAPI_CLIENT_CERT_SECRET');
  if ((secretHeader === undefined) !== (secret === undefined)) {
    const [missing, given] =
      secret === undefined
        ? ['FAPI_CLIENT_CERT_SECRET', 'FAPI_CLIENT_CERT_SECRET_HEADER']
        : ['FAPI_CLIENT_CERT_SECRET_HEADER', 'FAPI_CLIENT_CERT_SECRET'];
    throw envError(missing, `is required with ${given}`);
  }
  if (secretHeader !== undefined && secret !== undefined) proxy.sharedSecret = { header: secretHeader, value: secret };
  else if (!peers) {
    // RFC 9440 §4: a certificate header from anyone else proves nothing.
    throw envError(
      'FAPI_CLIENT_CERT_HEADER',
      'needs FAPI_CLIENT_CERT_TRUSTED_PEERS (the proxy addresses), or FAPI_CLIENT_CERT_SECRET_HEADER and FAPI_CLIENT_CERT_SECRET',
    );
  }
  return proxy;
}

function readIntrospection(
  read: Read,
  flag: (name: GuardEnvVariable) => boolean | undefined,
  number: (name: GuardEnvVariable) => number | undefined,
  oneOf: <T extends string>(name: GuardEnvVariable, allowed: readonly T[]) => T | undefined,
): IntrospectionOptions | undefined {
  const clientId = read('FAPI_INTROSPECTION_CLIENT_ID');
  const names = Object.keys(GUARD_ENV_VARIABLES).filter((n) => n.startsWith('FAPI_INTROSPECTION_')) as GuardEnvVariable[];
  if (clientId === undefined) {
    const stray = names.find((name) => read(name) !== undefined);
    if (stray) throw envError(stray, 'needs FAPI_INTROSPECTION_CLIENT_ID');
    return undefined;
  }
  const method = oneOf('FAPI_INTROSPECTION_AUTH_METHOD', ['client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const);
  let clientAuth: IntrospectionOptions['clientAuth'];
  // The credential of the other method is a mistake, not something to ignore.
  const unused = method === 'private_key_jwt' ? 'FAPI_INTROSPECTION_CLIENT_SECRET' : 'FAPI_INTROSPECTION_PRIVATE_KEY';
  if (read(unused) !== undefined) throw envError(unused, `is not used with ${method ?? 'client_secret_basic'}`);
  if (method === 'private_key_jwt') {
    const text = read('FAPI_INTROSPECTION_PRIVATE_KEY');
    if (text === undefined) throw envError('FAPI_INTROSPECTION_PRIVATE_KEY', 'is required for private_key_jwt');
    let privateKey: unknown;
    try {
      privateKey = JSON.parse(text);
    } catch {
      throw envError('FAPI_INTROSPECTION_PRIVATE_KEY', 'must be a private JWK in JSON');
    }
    clientAuth = { method, privateKey } as IntrospectionOptions['clientAuth'];
  } else {
    const clientSecret = read('FAPI_INTROSPECTION_CLIENT_SECRET');
    if (clientSecret === undefined)
      throw envError('FAPI_INTROSPECTION_CLIENT_SECRET', `is required for ${method ?? 'client_secret_basic'}`);
    clientAuth = { method: method ?? 'client_secret_basic', clientSecret };
  }
  const introspection: IntrospectionOptions = { clientId, clientAuth };
  const endpoint = read('FAPI_INTROSPECTION_ENDPOINT');
  if (endpoint) introspection.endpoint = endpoint;
  const issuer = read('FAPI_INTROSPECTION_ISSUER');
  if (issuer) introspection.issuer = issuer;
  const signed = flag('FAPI_INTROSPECTION_SIGNED_RESPONSE');
  if (signed !== undefined) introspection.signedResponse = signed;
  const ttl = number('FAPI_INTROSPECTION_CACHE_TTL_SEC');
  if (ttl !== undefined) introspection.cache = { maxTtlSec: ttl };
  return introspection;
}

function envError(name: string, message: string): TypeError {
  return new TypeError(`fapi-guard: environment variable ${name} ${message}`);
}
