/**
 * Values that reach decision events come from the request or an unverified token (a JWS `kid`,
 * a DPoP `htm`/`htu`, a URL path, an interaction id, ...). Printed as they are, a CR/LF forges a
 * log line and an ANSI escape rewrites a terminal. `logValue` is applied where such a value
 * enters an event: JSON string escaping (quotes, backslashes, control characters) plus the C1
 * controls, the Unicode line/paragraph separators and the bidirectional overrides, and a bounded
 * length, so a value can neither forge a line nor flood the log.
 */

/** Longest value (escaped) kept in an event; the rest is replaced by a count. */
export const MAX_LOG_VALUE_LENGTH = 512;

const SHORT: Readonly<Record<string, string>> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** Characters JSON.stringify escapes, plus the ones terminals and viewers act on. */
function isUnsafe(code: number): boolean {
  return (
    code < 0x20 ||
    code === 0x22 ||
    code === 0x5c ||
    (code >= 0x7f && code <= 0x9f) ||
    code === 0x2028 ||
    code === 0x2029 ||
    (code >= 0x202a && code <= 0x202e) ||
    (code >= 0x2066 && code <= 0x2069)
  );
}

function escapeChar(c: string): string {
  return SHORT[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

function isSafe(value: string): boolean {
  for (let i = 0; i < value.length; i++) if (isUnsafe(value.charCodeAt(i))) return false;
  return true;
}

/** `value` escaped as inside a JSON string and cut to `max` characters (never inside an escape). */
export function logValue(value: string, max = MAX_LOG_VALUE_LENGTH): string {
  if (value.length <= max && isSafe(value)) return value;
  let out = '';
  let i = 0;
  // Each step adds at least one character to `out`: at most `max + 1` steps.
  for (; i < value.length; i++) {
    const c = value[i] as string;
    const piece = isUnsafe(c.charCodeAt(0)) ? escapeChar(c) : c;
    if (out.length + piece.length > max) break;
    out += piece;
  }
  if (i === value.length) return out;
  // Do not leave half of a surrogate pair at the cut.
  const last = out.charCodeAt(out.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) {
    out = out.slice(0, -1);
    i--;
  }
  return `${out}…[${value.length - i} more characters]`;
}
