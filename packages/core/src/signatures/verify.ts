/**
 * RFC 9421 verification: `Signature-Input` and `Signature` parsed as dictionaries (§4.1, §4.2),
 * the base rebuilt from the message (§2.5), the signature checked with an allow-listed algorithm
 * and a key chosen by the caller for the expected signer (§3.2), `created`/`expires` checked.
 * Signatures are looked up by label only after the caller has chosen them by policy (HMS-02).
 */
import { createHmac, type KeyObject, timingSafeEqual, verify } from 'node:crypto';
import { type InnerList, parseDictionary } from 'structured-headers';
import { headerLines } from '../request.js';
import { SignatureBaseError, type SignedMessage, signatureBase } from './base.js';

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
 * Every signature of a message, by label. A label present in only one of the two fields, or a
 * malformed field, is an error (RFC 9421 §4, HMS-01).
 */
export function parseSignatures(message: SignedMessage): Map<string, MessageSignature> {
  const inputs = headerLines(message.headers, 'signature-input');
  const values = headerLines(message.headers, 'signature');
  if (inputs.length === 0 && values.length === 0) return new Map();
  let inputDict: ReturnType<typeof parseDictionary>;
  let valueDict: ReturnType<typeof parseDictionary>;
  try {
    inputDict = parseDictionary(inputs.join(', '));
    valueDict = parseDictionary(values.join(', '));
  } catch {
    throw new SignatureBaseError('Signature or Signature-Input is not a structured dictionary');
  }
  const labels = new Set([...inputDict.keys(), ...valueDict.keys()]);
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
  const data = Buffer.from(base, 'ascii');
  try {
    switch (algorithm) {
      case 'rsa-pss-sha512':
        return verify('sha512', data, { key, padding: 6, saltLength: 64 }, signature);
      case 'rsa-v1_5-sha256':
        return verify('sha256', data, key, signature);
      case 'ecdsa-p256-sha256':
        return signature.length === 64 && verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
      case 'ecdsa-p384-sha384':
        return signature.length === 96 && verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
      case 'ed25519':
        return verify(null, data, key, signature);
      case 'hmac-sha256': {
        // HMS-04: only a secret key; a public key used as an HMAC secret is refused.
        if (key.type !== 'secret') return false;
        const mac = createHmac('sha256', key).update(data).digest();
        return mac.length === signature.length && timingSafeEqual(mac, signature);
      }
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
}

export type VerifyResult = { ok: true; base: string } | { ok: false; detail: string };

/** Verifies one signature of `message` (RFC 9421 §3.2). */
export function verifyMessageSignature(message: SignedMessage, signature: MessageSignature, options: VerifyOptions): VerifyResult {
  const keyid = signature.params.get('keyid');
  const key = options.key(typeof keyid === 'string' ? keyid : undefined, signature);
  if (!key) return { ok: false, detail: `unknown or untrusted key ${JSON.stringify(keyid)}` };
  // §3.2 step 6: an `alg` parameter must agree with the key's algorithm.
  const alg = signature.params.get('alg');
  if (alg !== undefined && alg !== key.algorithm) return { ok: false, detail: `alg ${String(alg)} does not match the key` };
  const created = signature.params.get('created');
  if (typeof created !== 'number') return { ok: false, detail: 'no created parameter' };
  if (created < options.now - options.maxAgeSec || created > options.now + options.maxFutureSec) {
    return { ok: false, detail: `created ${created} is outside the accepted window` };
  }
  const expires = signature.params.get('expires');
  if (expires !== undefined && (typeof expires !== 'number' || expires < options.now)) return { ok: false, detail: 'signature expired' };
  let base: string;
  try {
    base = signatureBase(message, signature.input);
  } catch (e) {
    return { ok: false, detail: (e as Error).message };
  }
  return verifySignatureValue(base, signature.signature, key) ? { ok: true, base } : { ok: false, detail: 'signature does not verify' };
}
