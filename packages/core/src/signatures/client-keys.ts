/**
 * The message-signing keys of each client (FAPI 2.0 Message Signing §5.6.1.2 #1): looked up by
 * the `client_id` of the access token, from a static registry, a resolver function (a client
 * database) or the client's JWKS URL. Only that client's keys can verify its requests (SIG-01).
 * JWKS documents are cached; an unknown `keyid` refetches at most once per cool-down; a client
 * whose keys cannot be fetched and are not cached gives 503, never an accepted request.
 */
import { LRUCache } from 'lru-cache';
import { assertSecureUrl } from '../common/url.js';
import type { Outbound } from '../tokens/http.js';
import { FetchError, fetchJson } from '../tokens/issuer.js';
import { type NamedSignatureKey, type SignatureJwk, verificationKey } from './keys.js';

/** Where one client's keys come from: a JWK set, or the URL of one (https). */
export type ClientKeySource = { jwks: { keys: readonly SignatureJwk[] } } | { jwksUri: string };

export interface ClientKeyOptions {
  /** Keys by `client_id`. */
  clients?: Readonly<Record<string, ClientKeySource>>;
  /** Called for a `client_id` that `clients` does not name (e.g. a lookup in a client registry); `undefined` = unknown client. */
  resolveClient?: (clientId: string) => ClientKeySource | undefined | Promise<ClientKeySource | undefined>;
  /** How long fetched or resolved keys are used before they are fetched again. @default 300000 (5 min) */
  cacheMs?: number;
  /** Minimum time between fetches for an unknown `keyid` (key rotation). @default 30000 */
  cooldownMs?: number;
  /** Time limit of one JWKS fetch. @default 5000 */
  timeoutMs?: number;
}

export type ClientKeyResult<K = NamedSignatureKey> = { ok: true; key: K } | { ok: false; unavailable: boolean; detail: string };

interface Entry<K> {
  keys: Map<string, K>;
  /** When the keys were fetched or resolved (ms). */
  at: number;
  lastAttempt: number;
  error?: string;
  pending?: Promise<void>;
}

/**
 * Usable keys of a set, by kid; keys that `importKey` cannot use (it throws) are left out.
 * The default takes the keys FAPI 2.0 message signatures can use.
 */
export function keysOf<K extends { keyid: string } = NamedSignatureKey>(
  jwks: unknown,
  importKey: (jwk: SignatureJwk) => K = verificationKey as unknown as (jwk: SignatureJwk) => K,
): Map<string, K> {
  const keys = new Map<string, K>();
  const list = (jwks as { keys?: unknown })?.keys;
  if (!Array.isArray(list)) throw new FetchError('not a JWK set');
  for (const jwk of list) {
    try {
      const key = importKey(jwk as SignatureJwk);
      // A kid that names two keys is ambiguous: neither is used.
      if (keys.has(key.keyid)) keys.set(key.keyid, undefined as never);
      else keys.set(key.keyid, key);
    } catch {
      // Not a usable signing key (encryption key, weak or unsupported type): ignored.
    }
  }
  for (const [kid, key] of keys) if (!key) keys.delete(kid);
  return keys;
}

function checkSource(source: ClientKeySource | null, what: string): void {
  const needs = `fapi-guard: ${what} needs jwks ({ keys: [...] }) or jwksUri`;
  if (typeof source !== 'object' || source === null) throw new TypeError(needs);
  if ('jwksUri' in source) assertSecureUrl(source.jwksUri, `${what}.jwksUri`);
  else if (!Array.isArray(source.jwks?.keys)) throw new TypeError(needs);
  else for (const jwk of source.jwks.keys) if (jwk.d !== undefined) throw new TypeError(`fapi-guard: ${what} holds private key material`);
}

/**
 * Key sets by owner (a client id, or for UK Open Banking a signer's `iss`), cached and fetched as
 * above; `importKey` says which keys of a set are usable and how.
 */
export class ClientKeys<K extends { keyid: string } = NamedSignatureKey> {
  private readonly entries: LRUCache<string, Entry<K>>;
  private readonly cacheMs: number;
  private readonly cooldownMs: number;
  private readonly timeoutMs: number;

  constructor(
    private readonly options: ClientKeyOptions,
    private readonly now: () => number,
    private readonly outbound?: Outbound,
    private readonly importKey?: (jwk: SignatureJwk) => K,
  ) {
    if (!options.clients && !options.resolveClient) {
      throw new TypeError('fapi-guard: messageSigning needs clients or resolveClient (where the keys of each client are)');
    }
    for (const [clientId, source] of Object.entries(options.clients ?? {})) checkSource(source, `messageSigning.clients["${clientId}"]`);
    this.cacheMs = options.cacheMs ?? 300_000;
    this.cooldownMs = options.cooldownMs ?? 30_000;
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.entries = new LRUCache({ max: 10_000 });
  }

  /** The key `keyid` of client `clientId`, if that client has it. */
  async key(clientId: string, keyid: string): Promise<ClientKeyResult<K>> {
    let entry = this.entries.get(clientId);
    const now = this.now();
    // Fetches are spaced by the cool-down whatever prompts them (expiry, a new kid, a failure), so
    // a client's JWKS host that is down is not hit by every request.
    // A fetch in flight is waited for, whatever the cool-down: requests that arrive while a
    // client's keys are first fetched (or fetched for a new kid) are checked against what it brings.
    const due = !entry || entry.pending !== undefined || now - entry.lastAttempt >= this.cooldownMs;
    const stale = !entry || now - entry.at > this.cacheMs;
    // (No entry is always stale and due: past this, there is one.)
    if (due && (stale || !(entry as Entry<K>).keys.has(keyid))) {
      entry = await this.load(clientId, entry);
      if (!entry) return { ok: false, unavailable: false, detail: `client ${clientId} has no registered message signing keys` };
    }
    const known = entry as Entry<K>;
    const key = known.keys.get(keyid);
    if (key) return { ok: true, key };
    if (known.keys.size === 0 && known.error) return { ok: false, unavailable: true, detail: known.error };
    return { ok: false, unavailable: false, detail: `keyid ${JSON.stringify(keyid)} is not a key of client ${clientId}` };
  }

  /** One load per client at a time; failures keep the previous keys (stale but signed by the client). */
  private async load(clientId: string, previous: Entry<K> | undefined): Promise<Entry<K> | undefined> {
    if (previous?.pending) {
      await previous.pending;
      return this.entries.get(clientId);
    }
    const entry: Entry<K> = previous ?? { keys: new Map(), at: Number.NEGATIVE_INFINITY, lastAttempt: Number.NEGATIVE_INFINITY };
    let known = true;
    entry.pending = (async () => {
      entry.lastAttempt = this.now();
      try {
        // Own entries only: a client_id of `constructor` or `__proto__` is not a registered client.
        const clients = this.options.clients;
        const source = clients && Object.hasOwn(clients, clientId) ? clients[clientId] : await this.options.resolveClient?.(clientId);
        if (!source) {
          known = false;
          return;
        }
        const jwks =
          'jwksUri' in source
            ? await fetchJson(
                source.jwksUri,
                this.timeoutMs,
                'application/jwk-set+json, application/json',
                `jwksUri of client ${clientId}`,
                this.outbound,
              )
            : source.jwks;
        entry.keys = keysOf(jwks, this.importKey);
        entry.at = this.now();
        entry.error = undefined;
      } catch (e) {
        entry.error = `keys of client ${clientId} unavailable: ${(e as Error).message}`;
      }
    })();
    this.entries.set(clientId, entry);
    await entry.pending;
    entry.pending = undefined;
    if (!known) {
      this.entries.delete(clientId);
      return undefined;
    }
    return entry;
  }
}
