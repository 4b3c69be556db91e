/**
 * Reading the idempotency key of a request, per the syntax of the regime the route follows:
 *
 * - `ietf`: draft-ietf-httpapi-idempotency-key-header (§2.1 "Syntax"): `Idempotency-Key` is an
 *   RFC 9651 Item whose value is a String (`sf-string`), sent at most once per request.
 * - `uk-ob`: UK Open Banking Read/Write API profile ("Request Headers", "Idempotency"):
 *   `x-idempotency-key`, at most 40 characters, no leading or trailing white space.
 * - `br-of`: Brazil Open Finance payments API: `x-idempotency-key`, at most 100 characters, the
 *   same pattern.
 *
 * Every value is bounded before it is parsed (linear time on bounded input), and a header sent
 * twice is refused: two lines would otherwise be joined into one value by some runtimes
 * (RFC 9110 §5.3) and read as a different key by different parts of the stack.
 */
import { parseItem } from 'structured-headers';
import type { GuardHeaders } from '../request.js';

export type IdempotencyKeySyntax = 'ietf' | 'uk-ob' | 'br-of';

/** The header each syntax reads unless the route names another. */
export const IDEMPOTENCY_HEADERS: Readonly<Record<IdempotencyKeySyntax, string>> = {
  ietf: 'idempotency-key',
  'uk-ob': 'x-idempotency-key',
  'br-of': 'x-idempotency-key',
};

/** Longest key of each syntax, in characters (the draft sets none: 255 is ours, documented). */
export const IDEMPOTENCY_KEY_MAX: Readonly<Record<IdempotencyKeySyntax, number>> = {
  ietf: 255,
  'uk-ob': 40,
  'br-of': 100,
};

export type IdempotencyKeyResult =
  | { ok: true; key: string | undefined }
  | { ok: false; reason: 'idempotency_key_malformed'; detail: string };

/**
 * The regimes' pattern `^(?!\s)(.*)(\S)$`, narrowed to printable ASCII: a key is compared as a
 * string, so bytes outside ASCII (read differently by different decoders) are refused, and so
 * is `,` — a runtime that folds two header lines into one (RFC 9110 §5.3) would make two keys
 * look like one key containing a comma.
 */
const REGIME_KEY = /^[\x21-\x2B\x2D-\x7E](?:[\x20-\x2B\x2D-\x7E]*[\x21-\x2B\x2D-\x7E])?$/;

function malformed(detail: string): IdempotencyKeyResult {
  return { ok: false, reason: 'idempotency_key_malformed', detail };
}

/** The key sent in `header` (lower-case name), or `undefined` when the request has none. */
export function readIdempotencyKey(headers: GuardHeaders, header: string, syntax: IdempotencyKeySyntax): IdempotencyKeyResult {
  const lines = headers[header];
  if (lines === undefined || lines.length === 0) return { ok: true, key: undefined };
  // draft §2.1: "Clients MUST NOT include more than one Idempotency-Key header field".
  if (lines.length > 1) return malformed(`${lines.length} ${header} header lines`);
  const value = (lines[0] as string).trim();
  const max = IDEMPOTENCY_KEY_MAX[syntax];
  // Quotes and escapes of an sf-string at most double the length: anything longer is refused unparsed.
  if (value.length > 2 * max + 2) return malformed(`${header} is ${value.length} characters long`);
  if (syntax !== 'ietf') {
    if (value.length > max) return malformed(`${header} is longer than ${max} characters`);
    return REGIME_KEY.test(value) ? { ok: true, key: value } : malformed(`${header} has characters outside the key syntax`);
  }
  let item: ReturnType<typeof parseItem>;
  try {
    item = parseItem(value);
  } catch {
    return malformed(`${header} is not an RFC 9651 Item`);
  }
  const [key, parameters] = item;
  if (typeof key !== 'string') return malformed(`${header} is not an sf-string`);
  // Parameters are not defined for this field; a key with them would have two spellings.
  if (parameters.size > 0) return malformed(`${header} carries parameters`);
  if (key.length === 0 || key.length > max) return malformed(`${header} must hold 1 to ${max} characters`);
  return { ok: true, key };
}
