/**
 * RFC 9421 verification: `Signature-Input` and `Signature` parsed as dictionaries (§4.1, §4.2),
 * the base rebuilt from the message (§2.5), the signature checked with an allow-listed algorithm
 * and a key chosen by the caller for the expected signer (§3.2), `created`/`expires` checked.
 * Signatures are looked up by label only after the caller has chosen them by policy (HMS-02).
 */
import { createHmac, type KeyObject, timingSafeEqual, verify } from 'node:crypto';
import type { InnerList, parseDictionary } from 'structured-headers';
import { headerLines } from '../request.js';
import { parsedField, SIGNATURE_BASE_BOUNDS, SignatureBaseError, type SignedMessage, signatureBase } from './base.js';

/** RFC 9421 §3.3 algorithms. `hmac-sha256` needs a secret key and is never run with a public one. */
export type HttpSignatureAlgorithm =
  | 'rsa-pss-sha512'
  | 'rsa-v1_5-sha256'
  | 'ecdsa-p256-sha256'
  | 'ecdsa-p384-sha384'
  | 'ed25519'
  | 'hmac-sha256';

export interface SignatureKey {
  algorithm: HttpSignatureAlgorithm;
  /** A public key, or a secret key for hmac-sha256. */
  key: KeyObject;
}

/** One labelled signature of a message. */
export interface MessageSignature {
  label: string;
  /** The `Signature-Input` member: covered components and parameters. */
  input: InnerList;
  signature: Uint8Array;
  /** The signature parameters, by name. */
  params: Map<string, unknown>;
  /** Covered component identifiers, serialised (e.g. `"@method"`, `"signature";req;key="sig1"`). */
  components: string[];
}

/**
 * Signatures per message: each one that names a key of the caller's signer costs a signature
 * base and a verification, so their number is bounded. Clients send one; intermediaries may add.
 */
export const MAX_SIGNATURES = 8;

/**
 * Every signature of a message, by label. A label present in only one of the two fields, a
 * malformed field, or more than {@link MAX_SIGNATURES} labels is an error (RFC 9421 §4, HMS-01).
 */
export function parseSignatures(message: SignedMessage): Map<string, MessageSignature> {
  const inputs = headerLines(message.headers, 'signature-input');
  const values = headerLines(message.headers, 'signature');
  let inputDict: ReturnType<typeof parseDictionary>;
  let valueDict: ReturnType<typeof parseDictionary>;
  try {
    // Parsed once per message: the signature bases reuse them for `sf` and `key` components.
    inputDict = inputs.length > 0 ? (parsedField(message.headers, 'signature-input') as typeof inputDict) : new Map();
    valueDict = values.length > 0 ? (parsedField(message.headers, 'signature') as typeof valueDict) : new Map();
  } catch {
    throw new SignatureBaseError('Signature or Signature-Input is not a structured dictionary');
  }
  const labels = new Set([...inputDict.keys(), ...valueDict.keys()]);
  if (labels.size > MAX_SIGNATURES) throw new SignatureBaseError(`${labels.size} signatures (at most ${MAX_SIGNATURES})`);
  const result = new Map<string, MessageSignature>();
  for (const label of labels) {
    const input = inputDict.get(label);
    const value = valueDict.get(label);
    if (!input || !value) throw new SignatureBaseError(`label ${label} is in only one of Signature and Signature-Input`);
    if (!Array.isArray(input[0])) throw new SignatureBaseError(`Signature-Input ${label} is not an inner list`);
    if (!(value[0] instanceof ArrayBuffer)) throw new SignatureBaseError(`Signature ${label} is not a byte sequence`);
    const inner = input as InnerList;
    result.set(label, {
      label,
      input: inner,
      signature: new Uint8Array(value[0]),
      params: inner[1] as Map<string, unknown>,
      components: inner[0].map(([name, params]) => {
        const extra = [...params].map(([k, v]) => (v === true ? `;${k}` : `;${k}=${JSON.stringify(v)}`)).join('');
        return `${JSON.stringify(name)}${extra}`;
      }),
    });
  }
  return result;
}

/** RFC 9421 §3.3: verifies `signature` over `base` with the key's algorithm; false on any failure. */
export function verifySignatureValue(base: string, signature: Uint8Array, { algorithm, key }: SignatureKey): boolean {
  // Stryker disable next-line StringLiteral: equivalent, signatureBase refuses non-ASCII characters, and ASCII is the same bytes in every encoding
  const data = Buffer.from(base, 'ascii');
  try {
    switch (algorithm) {
      case 'rsa-pss-sha512':
        return verify('sha512', data, { key, padding: 6, saltLength: 64 }, signature);
      case 'rsa-v1_5-sha256':
        return verify('sha256', data, key, signature);
      // §3.3.4, §3.3.5: r‖s of the algorithm's curve (64 or 96 octets), which also refuses a key of the other curve.
      case 'ecdsa-p256-sha256':
        return signature.length === 64 && verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
      case 'ecdsa-p384-sha384':
        return signature.length === 96 && verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
      case 'ed25519':
        return verify(null, data, key, signature);
      case 'hmac-sha256':
        // HMS-04: createHmac refuses a public or private key (it throws, answered false below);
        // timingSafeEqual throws on a signature of another length.
        return timingSafeEqual(createHmac('sha256', key).update(data).digest(), signature);
      default:
        return false;
    }
  } catch {
    return false;
  }
}

export interface VerifyOptions {
  /** The key of the expected signer for this signature, or `undefined` when the key id is unknown (HMS-03). */
  key: (keyid: string | undefined, signature: MessageSignature) => SignatureKey | undefined;
  /** Current time in seconds. */
  now: number;
  /** Oldest accepted `created`, in seconds; and the future skew allowed. */
  maxAgeSec: number;
  maxFutureSec: number;
  /**
   * Characters of signature base this verification may build: what is left of the message's
   * budget when it has several signatures. @default SIGNATURE_BASE_BOUNDS.maxBaseLength
   */
  maxBaseLength?: number;
}

/** `spent`: characters of signature base built (the cost of the attempt). */
export type VerifyResult = { ok: true; base: string } | { ok: false; detail: string; spent: number };

/** Verifies one signature of `message` (RFC 9421 §3.2). */
export function verifyMessageSignature(message: SignedMessage, signature: MessageSignature, options: VerifyOptions): VerifyResult {
  const refused = (detail: string, spent = 0): VerifyResult => ({ ok: false, detail, spent });
  const keyid = signature.params.get('keyid');
  const key = options.key(typeof keyid === 'string' ? keyid : undefined, signature);
  if (!key) return refused(`unknown or untrusted key ${JSON.stringify(keyid)}`);
  // §3.2 step 6: an `alg` parameter must agree with the key's algorithm.
  const alg = signature.params.get('alg');
  if (alg !== undefined && alg !== key.algorithm) return refused(`alg ${String(alg)} does not match the key`);
  // §2.3: created and expires are Integers (a Decimal is refused too).
  const created = signature.params.get('created');
  if (!Number.isInteger(created)) return refused('no integer created parameter');
  if ((created as number) < options.now - options.maxAgeSec || (created as number) > options.now + options.maxFutureSec) {
    return refused(`created ${created} is outside the accepted window`);
  }
  const expires = signature.params.get('expires');
  if (expires !== undefined && (!Number.isInteger(expires) || (expires as number) < options.now)) return refused('signature expired');
  let base: string;
  try {
    const maxBaseLength = Math.min(SIGNATURE_BASE_BOUNDS.maxBaseLength, options.maxBaseLength ?? Number.POSITIVE_INFINITY);
    base = signatureBase(message, signature.input, { ...SIGNATURE_BASE_BOUNDS, maxBaseLength });
  } catch (e) {
    return refused((e as Error).message, e instanceof SignatureBaseError ? e.spent : 0);
  }
  return verifySignatureValue(base, signature.signature, key) ? { ok: true, base } : refused('signature does not verify', base.length);
}
