/**
 * Server-issued DPoP nonces (RFC 9449 §8, §9): stateless, unpredictable values derived from a
 * secret and a time step. Instances sharing the secret agree on them without any storage.
 *
 * The nonce of step t is base64url(HMAC-SHA-256(secret, "fapi-guard dpop-nonce " + t))[0..32].
 * A nonce is accepted during its own step and the next one, so it lives between one and two
 * steps; a fresh one is handed out on successful responses as soon as a step begins.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export interface DpopNonceOptions {
  /**
   * Secret(s) the nonces are derived from; the first issues, all verify (for rotation).
   * Give the same secret to every instance of one API. At least 32 bytes.
   * @default 32 random bytes per process (fine for a single instance)
   */
  secret?: string | Uint8Array | readonly (string | Uint8Array)[];
  /** Length of one time step in seconds; a nonce lives between one and two steps. @default 60 */
  stepSec?: number;
  /** Require a nonce on every DPoP-protected route (routes may override). @default false */
  required?: boolean;
}

/** RFC 9449 §8.1: nonce = 1*NQCHAR; base64url is a subset. */
export const NONCE_SYNTAX = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export class DpopNonces {
  private readonly secrets: Buffer[];
  private readonly stepMs: number;

  constructor(
    options: DpopNonceOptions,
    private readonly now: () => number,
  ) {
    const list = options.secret === undefined ? [randomBytes(32)] : [options.secret].flat();
    // A string secret counts in UTF-8 bytes (Buffer.from's default); bytes are copied.
    this.secrets = list.map((s) => Buffer.from(s as string));
    if (this.secrets.length === 0 || this.secrets.some((s) => s.length < 32)) {
      throw new TypeError('fapi-guard: dpop.nonce.secret must be at least 32 bytes (e.g. 32 random bytes, base64-encoded)');
    }
    const stepSec = options.stepSec ?? 60;
    if (!Number.isFinite(stepSec) || stepSec < 1 || stepSec > 3600) {
      throw new TypeError('fapi-guard: dpop.nonce.stepSec must be between 1 and 3600 seconds');
    }
    this.stepMs = stepSec * 1000;
  }

  private step(): number {
    return Math.floor(this.now() / this.stepMs);
  }

  private derive(secret: Buffer, step: number): string {
    return createHmac('sha256', secret).update(`fapi-guard dpop-nonce ${step}`).digest('base64url').slice(0, 32);
  }

  /** The nonce to hand out now. */
  current(): string {
    return this.derive(this.secrets[0] as Buffer, this.step());
  }

  /** `fresh`: valid and of the current step; `stale`: valid, a newer one exists; `invalid` otherwise. */
  check(nonce: string): 'fresh' | 'stale' | 'invalid' {
    // Bytes compared, their count first: 32 multi-byte characters are more than 32 bytes, and
    // timingSafeEqual throws on buffers of different lengths.
    const given = Buffer.from(nonce);
    if (given.length !== 32) return 'invalid';
    const step = this.step();
    for (const secret of this.secrets) {
      if (timingSafeEqual(given, Buffer.from(this.derive(secret, step)))) return secret === this.secrets[0] ? 'fresh' : 'stale';
      if (timingSafeEqual(given, Buffer.from(this.derive(secret, step - 1)))) return 'stale';
    }
    return 'invalid';
  }
}
