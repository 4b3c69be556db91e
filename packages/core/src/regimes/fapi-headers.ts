/**
 * The customer headers of FAPI 1.0 (Part 1 §6.2.2 #3–4): `x-fapi-auth-date`, when the customer
 * last logged in to the client, as an HTTP-date; `x-fapi-customer-ip-address`, the customer's
 * IPv4 or IPv6 address. Part 1 §6.2.1 #13: a request with a valid address is never refused.
 * What is well formed is handed to the handler; what is not is reported, and profiles that
 * validate these headers refuse it.
 */
import { isIP } from 'node:net';
import { type GuardHeaders, headerLines } from '../request.js';
import { parseHttpDate } from './http-date.js';

/** What the client said about its customer, as the handler receives it. */
export interface FapiCustomerHeaders {
  /** `x-fapi-auth-date`: when the customer last logged in to the client. */
  readonly authDate?: Date;
  /** `x-fapi-customer-ip-address`, as sent (surrounding whitespace removed). */
  readonly customerIpAddress?: string;
}

export type FapiHeadersResult = { ok: true; headers: FapiCustomerHeaders } | { ok: false; detail: string };

/**
 * The longest textual IPv6 address with an embedded IPv4 part is 45 characters; a zone
 * (RFC 4007 §11) adds `%` and an interface name.
 */
const MAX_ADDRESS_LENGTH = 64;

const isOws = (code: number) => code === 0x20 || code === 0x09;

/**
 * RFC 9110 §5.5: leading and trailing optional whitespace (SP, HTAB — not the other blanks
 * `String.prototype.trim` takes) is not part of a field value. A scan from each end, in linear
 * time: a regex for trailing blanks is tried at every blank of a run (attack review 16).
 */
export function trimOws(value: string): string {
  // charCodeAt past either end is NaN, no blank: each loop stops there. On a value of blanks only,
  // end comes back to 0, before start, and slice answers ''.
  let start = 0;
  while (isOws(value.charCodeAt(start))) start++;
  let end = value.length;
  while (isOws(value.charCodeAt(end - 1))) end--;
  return value.slice(start, end);
}

/**
 * True for a textual IPv4 address (dotted decimal, no leading zeros) or IPv6 address (RFC 4291
 * §2.2, with an optional zone, RFC 4007 §11), as Node's `isIP` reads them.
 */
export function isCustomerIpAddress(value: string): boolean {
  return value.length <= MAX_ADDRESS_LENGTH && isIP(value) !== 0;
}

/**
 * Reads both headers. `clockToleranceSec` bounds how far in the future an auth date may be: a
 * customer cannot have logged in later than now.
 */
export function readFapiCustomerHeaders(headers: GuardHeaders, nowMs: number, clockToleranceSec: number): FapiHeadersResult {
  const result: { authDate?: Date; customerIpAddress?: string } = {};
  const dates = headerLines(headers, 'x-fapi-auth-date');
  if (dates.length > 1) return { ok: false, detail: `${dates.length} x-fapi-auth-date header lines` };
  if (dates.length === 1) {
    const date = parseHttpDate(trimOws(dates[0] as string), nowMs);
    if (!date) return { ok: false, detail: 'x-fapi-auth-date is not an HTTP-date (RFC 7231 §7.1.1.1)' };
    if (date.getTime() > nowMs + clockToleranceSec * 1000) return { ok: false, detail: 'x-fapi-auth-date is in the future' };
    result.authDate = date;
  }
  const addresses = headerLines(headers, 'x-fapi-customer-ip-address');
  if (addresses.length > 1) return { ok: false, detail: `${addresses.length} x-fapi-customer-ip-address header lines` };
  if (addresses.length === 1) {
    const address = trimOws(addresses[0] as string);
    if (!isCustomerIpAddress(address)) return { ok: false, detail: 'x-fapi-customer-ip-address is not an IPv4 or IPv6 address' };
    result.customerIpAddress = address;
  }
  return { ok: true, headers: result };
}
