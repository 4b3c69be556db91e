/**
 * The `idempotency` key of a route policy, and the guard-wide `idempotency` options, checked
 * once at start-up.
 */
import { IDEMPOTENCY_HEADERS, type IdempotencyKeySyntax } from './key.js';
import type { IdempotencyStore } from './store.js';

/** How a route handles idempotency keys. */
export interface IdempotencyPolicy {
  /**
   * `required`: a request without a key is refused (400, draft §2.7 "Error Scenarios");
   * `optional`: a request without a key is processed as if the route had no idempotency.
   */
  mode: 'required' | 'optional';
  /**
   * Key syntax and default header: `ietf` (`Idempotency-Key`, an RFC 9651 sf-string of 1–255
   * characters), `uk-ob` (`x-idempotency-key`, 1–40 characters, UK Open Banking) or `br-of`
   * (`x-idempotency-key`, 1–100 characters, Brazil Open Finance).
   * @default 'ietf'
   */
  syntax?: IdempotencyKeySyntax;
  /** The request header that carries the key. @default per `syntax`: 'Idempotency-Key' or 'x-idempotency-key' */
  header?: string;
  /**
   * How long a key and its response are kept, from the first request (UK Open Banking and
   * Brazil Open Finance: 24 hours). A retry after it is a new request. Between 1 s and 7 days.
   * @default 86400
   */
  ttlSec?: number;
  /**
   * How long the claim of a request that never finishes (its process died mid-request) blocks
   * the key; until then retries get 409. After it a retry is processed. Whether the first
   * attempt moved money is unknown, so the default keeps the key blocked for its whole life:
   * shorten it only when the handler's effects are rolled back with the process. While the
   * process still runs the request the claim is renewed (every half lease), so a slow handler is
   * never overtaken by a retry.
   * @default ttlSec
   */
  leaseSec?: number;
  /**
   * Largest response (body bytes) stored for retries. A larger response is sent but not kept:
   * retries of the request get 409 "processed, response not kept" — never a second processing.
   * At most 16 MiB.
   * @default 1048576 (1 MiB)
   */
  maxResponseBytes?: number;
}

/** Guard-wide idempotency settings (the routes' own are in their policies). */
export interface IdempotencyOptions {
  /**
   * Where keys and stored responses are kept. With several API instances, pass a shared store
   * (`RedisIdempotencyStore` of `@fapi-guard/redis`): a per-process store cannot stop a retry
   * that reaches another instance.
   * @default a per-process `MemoryIdempotencyStore` (created on first use)
   */
  store?: IdempotencyStore;
  /**
   * Most request body bytes read to fingerprint a request (draft §2.4); a larger body is refused
   * with 413 before any processing. Also the limit of the adapters' `rawBody()` tap.
   * @default 1048576 (1 MiB)
   */
  maxRequestBytes?: number;
}

export interface CompiledIdempotency {
  readonly mode: 'required' | 'optional';
  readonly syntax: IdempotencyKeySyntax;
  /** Lower-case header name. */
  readonly header: string;
  readonly ttlMs: number;
  readonly leaseMs: number;
  readonly maxResponseBytes: number;
}

/** RFC 9110 §5.1 field-name = token. */
const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Headers the guard reads for other purposes: a key there would be two things at once. */
const RESERVED = new Set([
  'authorization',
  'dpop',
  'content-type',
  'content-length',
  'content-digest',
  'signature',
  'signature-input',
  'host',
]);

function seconds(value: number | undefined, fallback: number, name: string, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1 || v > max)
    throw new TypeError(`fapi-guard: idempotency.${name} must be a whole number of seconds between 1 and ${max}`);
  return v;
}

export function compileIdempotency(value: 'required' | 'optional' | IdempotencyPolicy): CompiledIdempotency {
  const policy: IdempotencyPolicy = typeof value === 'string' ? { mode: value } : value;
  if (policy.mode !== 'required' && policy.mode !== 'optional')
    throw new TypeError("fapi-guard: idempotency.mode must be 'required' or 'optional'");
  const syntax = policy.syntax ?? 'ietf';
  const header = (policy.header ?? IDEMPOTENCY_HEADERS[syntax]).toLowerCase();
  if (!FIELD_NAME.test(header) || RESERVED.has(header))
    throw new TypeError(`fapi-guard: idempotency.header ${JSON.stringify(policy.header)} must be a header name of its own (RFC 9110 §5.1)`);
  const ttlSec = seconds(policy.ttlSec, 86_400, 'ttlSec', 7 * 86_400);
  const leaseSec = seconds(policy.leaseSec, ttlSec, 'leaseSec', ttlSec);
  const maxResponseBytes = policy.maxResponseBytes ?? 1024 * 1024;
  if (!Number.isInteger(maxResponseBytes) || maxResponseBytes < 0 || maxResponseBytes > 16 * 1024 * 1024)
    throw new TypeError('fapi-guard: idempotency.maxResponseBytes must be a whole number of bytes between 0 and 16777216');
  return Object.freeze({ mode: policy.mode, syntax, header, ttlMs: ttlSec * 1000, leaseMs: leaseSec * 1000, maxResponseBytes });
}

/** The guard-wide request body limit (checked with the other options). */
export function idempotencyRequestLimit(options: IdempotencyOptions | undefined): number {
  const limit = options?.maxRequestBytes ?? 1024 * 1024;
  if (!Number.isInteger(limit) || limit < 0 || limit > 64 * 1024 * 1024)
    throw new TypeError('fapi-guard: idempotency.maxRequestBytes must be a whole number of bytes between 0 and 67108864');
  if (options?.store !== undefined && typeof options.store.claim !== 'function')
    throw new TypeError('fapi-guard: idempotency.store must implement claim, complete and release');
  return limit;
}
