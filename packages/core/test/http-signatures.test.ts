/**
 * RFC 9421 signature bases and verification against the published vectors (RFC 9421 Appendix B
 * and §2.4, §3.2, §4.3), with the keys of Appendix B.1.
 */
import { createPublicKey, createSecretKey } from 'node:crypto';
import {
  type HttpSignatureAlgorithm,
  headersFromRaw,
  parseSignatures,
  type SignedMessage,
  signatureBase,
  verifyMessageSignature,
  verifySignatureValue,
} from '@fapi-guard/core';
import { parseHttpMessage as parseMessage, vector } from '../../../test/support/vectors';

const rfc9421 = vector('rfc9421');
type Case = {
  id: string;
  algorithm: HttpSignatureAlgorithm;
  keyid: string;
  label: string;
  signature_base: string;
  signature_input_field: string;
  signature_field: string;
  signature_value_base64: string;
};
const cases = rfc9421.cases as Case[];

function keyFor(keyid: string, algorithm: HttpSignatureAlgorithm) {
  const k = rfc9421.keys[keyid];
  const key = algorithm === 'hmac-sha256' ? createSecretKey(Buffer.from(k.base64, 'base64')) : createPublicKey(k.public_pem);
  return { algorithm, key };
}

describe('RFC 9421 vectors', () => {
  it.each(cases.map((c) => [c.id, c] as const))('HMS-11 %s verifies with its key over its signature base', (_id, c) => {
    const signature = Buffer.from(c.signature_value_base64, 'base64');
    expect(verifySignatureValue(c.signature_base, signature, keyFor(c.keyid, c.algorithm))).toBe(true);
  });

  it.each(cases.map((c) => [c.id, c] as const))('HMS-12 %s fails with one bit flipped in the base or the signature', (_id, c) => {
    const signature = Buffer.from(c.signature_value_base64, 'base64');
    const key = keyFor(c.keyid, c.algorithm);
    expect(verifySignatureValue(`${c.signature_base.slice(0, -1)}X`, signature, key)).toBe(false);
    signature[signature.length - 1] = (signature[signature.length - 1] as number) ^ 1;
    expect(verifySignatureValue(c.signature_base, signature, key)).toBe(false);
  });

  const request = () => parseMessage(rfc9421.test_messages['test-request'].message);
  const rebuilt: [string, () => SignedMessage][] = [
    ['B.2.1', request],
    ['B.2.2', request],
    ['B.2.3', request],
    ['B.2.5', request],
    ['B.2.6', request],
    // DEC-13: the printed test-response Content-Digest is wrong; B.2.4 signs the corrected one.
    [
      'B.2.4',
      () => {
        const message = parseMessage(rfc9421.test_messages['test-response'].message);
        const headers = { ...message.headers, 'content-digest': [rfc9421.test_messages['test-response'].corrected_content_digest] };
        return { ...message, headers };
      },
    ],
    ['B.3', () => parseMessage(rfc9421.test_messages['B.3-proxy-request'].message)],
  ];

  it.each(rebuilt)('HMS-05 HMS-06 HMS-08 DEC-13 rebuilds the signature base of %s from the message and verifies it', (id, message) => {
    const c = cases.find((x) => x.id === id) as Case;
    const m = message();
    const withFields: SignedMessage = {
      ...m,
      headers: { ...m.headers, 'signature-input': [c.signature_input_field], signature: [c.signature_field] },
    };
    const signature = parseSignatures(withFields).get(c.label);
    expect(signature).toBeDefined();
    expect(signatureBase(withFields, signature?.input as never)).toBe(c.signature_base);
    const result = verifyMessageSignature(withFields, signature as never, {
      key: (keyid) =>
        keyid === c.keyid || (c.algorithm === 'hmac-sha256' && keyid === 'test-shared-secret') ? keyFor(c.keyid, c.algorithm) : undefined,
      now: 1618884473,
      maxAgeSec: 60,
      maxFutureSec: 10,
    });
    expect(result).toEqual({ ok: true, base: c.signature_base });
  });
});

describe('verification rules', () => {
  const c = cases.find((x) => x.id === 'B.2.6') as Case;
  const base = parseMessage(rfc9421.test_messages['test-request'].message);
  const withFields = (input: string, value = c.signature_field): SignedMessage => ({
    ...base,
    headers: { ...base.headers, 'signature-input': [input], signature: [value] },
  });
  const options = { key: () => keyFor(c.keyid, c.algorithm), now: 1618884473, maxAgeSec: 60, maxFutureSec: 10 };

  it('HMS-01 refuses a label present in only one field, and malformed fields', () => {
    expect(() => parseSignatures(withFields(c.signature_input_field.replace(/^sig-b26/, 'other')))).toThrow(/only one/);
    expect(() => parseSignatures(withFields('sig-b26=not a list'))).toThrow();
  });

  it('HMS-03 HMS-09 refuses an unknown key, a stale created and an expired signature', () => {
    const sig = parseSignatures(withFields(c.signature_input_field)).get('sig-b26') as never;
    expect(verifyMessageSignature(withFields(c.signature_input_field), sig, { ...options, key: () => undefined })).toMatchObject({
      ok: false,
    });
    expect(verifyMessageSignature(withFields(c.signature_input_field), sig, { ...options, now: 1618884473 + 61 })).toMatchObject({
      ok: false,
    });
    const expired = withFields(`${c.signature_input_field};expires=1618884400`);
    const expiredSig = parseSignatures(expired).get('sig-b26') as never;
    expect(verifyMessageSignature(expired, expiredSig, options)).toMatchObject({ ok: false, detail: 'signature expired' });
  });

  it('HMS-04 never runs HMAC with a public key as the secret', () => {
    const publicKey = createPublicKey(rfc9421.keys['test-key-ed25519'].public_pem);
    expect(verifySignatureValue('x', Buffer.alloc(32), { algorithm: 'hmac-sha256', key: publicKey })).toBe(false);
  });

  it('HMS-05 refuses a duplicated component, an unknown derived component, an absent field, and req in a request', () => {
    for (const components of ['("content-type" "content-type")', '("@foo")', '("x-missing")', '("@method";req)']) {
      const message = withFields(`sig-b26=${components};created=1618884473;keyid="test-key-ed25519"`);
      const sig = parseSignatures(message).get('sig-b26') as never;
      expect(verifyMessageSignature(message, sig, options)).toMatchObject({ ok: false });
    }
  });

  it('HMS-06 joins several field lines with ", " in order; another order does not verify', () => {
    const b4 = cases.find((x) => x.id === 'B.4') as Case;
    const message = (accept: string[]): SignedMessage => ({
      method: 'GET',
      url: 'https://example.org/demo?name1=Value1&Name2=value2',
      headers: headersFromRaw([
        'Host',
        'example.org',
        ...accept.flatMap((a) => ['Accept', a]),
        'Signature-Input',
        b4.signature_input_field,
        'Signature',
        b4.signature_field,
      ]),
    });
    const check = (m: SignedMessage) =>
      verifyMessageSignature(m, parseSignatures(m).get(b4.label) as never, { ...options, key: () => keyFor(b4.keyid, b4.algorithm) }).ok;
    expect(check(message(['application/json', '*/*']))).toBe(true);
    expect(check(message(['application/json, */*']))).toBe(true);
    expect(check(message(['*/*', 'application/json']))).toBe(false);
  });
});
