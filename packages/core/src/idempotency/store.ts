/**
 * Where idempotency keys and the responses they were answered with are kept. The one operation
 * that decides who processes a request — {@link IdempotencyStore.claim} — is atomic: of any number
 * of concurrent requests with the same key, on any number of API instances sharing the store,
 * exactly one is told `claimed`. `@fapi-guard/redis` implements the same interface.
 */

/** A response as it was sent: status, header lines (lower-case names, in order) and body bytes. */
export interface StoredResponse {
  readonly status: number;
  readonly headers: readonly (readonly [name: string, value: string])[];
  readonly body: Uint8Array;
  /**
   * How many layers of the guard (an app-wide `protect()`, a router's, the route's) authorized the
   * first request before its handler ran. A retry is answered only once as many layers have
   * checked it (idempotency/layers.ts). A store keeps it with the response; absent means 1.
   */
  readonly layers?: number;
}

/** What a finished request leaves behind under its key. */
export type IdempotencyOutcome =
  /** The response, to be sent again to every retry of the same request. */
  | { readonly state: 'done'; readonly fingerprint: string; readonly response: StoredResponse }
  /** Processed, but the response was larger than the route's `maxResponseBytes`: not kept. */
  | {
      readonly state: 'unkept';
      readonly fingerprint: string;
      /** As {@link StoredResponse.layers}: a retry learns the response was not kept only that late. */
      readonly layers?: number;
    };

/** What a key holds: a claim of a request still being processed, or an outcome. */
export type IdempotencyRecord = { readonly state: 'in_flight'; readonly fingerprint: string } | IdempotencyOutcome;

export type IdempotencyClaim =
  /** The key was free: this request is processed; `token` proves the claim to `complete`/`release`. */
  | { readonly claimed: true; readonly token: string }
  /** The key is taken: what it holds. */
  | { readonly claimed: false; readonly record: IdempotencyRecord };

export interface IdempotencyStore {
  /**
   * Atomically: when `key` holds nothing, claims it for the request with `fingerprint` for
   * `leaseMs` and resolves `claimed`; otherwise resolves what the key holds. Rejects when the
   * store cannot answer (the request is then refused with 503 and not processed). `client`
   * names the authenticated client (a hash of its issuer and `client_id`), so that a store can
   * bound what one client holds; it is already part of `key`.
   */
  claim(key: string, fingerprint: string, leaseMs: number, client: string): Promise<IdempotencyClaim>;
  /** Replaces the claim `token` by `outcome`, kept `ttlMs`; does nothing when the claim is no longer `token`'s. */
  complete(key: string, token: string, outcome: IdempotencyOutcome, ttlMs: number): Promise<void>;
  /**
   * Renews the claim `token` for another `leaseMs` while its request is still being processed;
   * does nothing when the key no longer holds it. Without it, a handler slower than `leaseSec`
   * would see its claim expire and a retry processed a second time.
   */
  extend?(key: string, token: string, leaseMs: number): Promise<void>;
  /** Frees the key when it still holds the claim `token` (the request failed with a 5xx). */
  release(key: string, token: string): Promise<void>;
}

/** Thrown when the in-memory store is full of unexpired entries: refuse rather than forget one. */
export class IdempotencyStoreFullError extends Error {
  constructor(what: string) {
    super(`idempotency store is full (${what})`);
    this.name = 'IdempotencyStoreFullError';
  }
}
