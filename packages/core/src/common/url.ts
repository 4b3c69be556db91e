/** URL checks shared by configuration parsing and discovery. */

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** True for `http(s)://localhost`, `127.0.0.1` or `[::1]`: the only places plain HTTP is allowed. */
export function isLoopbackUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return LOOPBACK_HOSTS.has(url.hostname) || /^127\.\d+\.\d+\.\d+$/.test(url.hostname);
  } catch {
    return false;
  }
}

/**
 * FAPI 2.0 §5.2.1: outbound calls use TLS. Plain `http:` is accepted on loopback only, for
 * development and tests; anything else is a start-up error that says what to change.
 */
export function assertSecureUrl(value: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`fapi-guard: ${what} "${value}" is not an absolute URL`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && isLoopbackUrl(value)) return url;
  throw new TypeError(`fapi-guard: ${what} "${value}" must use https (plain http is allowed only on localhost / 127.0.0.1 / [::1])`);
}
