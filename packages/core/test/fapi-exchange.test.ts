/**
 * FAPI 2.0 Message Signing in process, rule by rule: what a request signature must cover
 * (SIG-05, SIG-07, SIG-08), how its candidates are chosen and checked (HMS-02, SIG-09), what the
 * verification records, and what a signed response covers and adds (SIG-10 … SIG-14, DEC-05).
 * The published vectors and the HTTP suites are in fapi-signatures.test.ts and test/message-signing*.
 */
import { generateKeyPairSync } from 'node:crypto';
import {
  acceptSignature,
  ClientKeys,
  contentDigest,
  headersFromRaw,
  type MessageSignature,
  parseSignatures,
  REQUEST_TAG,
  type RequestSignatureInput,
  requiredRequestComponents,
  type SignatureJwk,
  type SignedMessage,
  signatureBase,
  signBase,
  signingKey,
  signResponse,
  verificationKey,
  verifyRequestSignature,
  verifySignatureValue,
} from '@fapi-guard/core';

const NOW = 1_700_000_000;
const URL_PAYMENTS = 'https://rs.example.com/payments';
const privateJwk = { ...(generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }) as SignatureJwk), kid: 'client-key' };
const clientKey = signingKey(privateJwk, 'client key');
const { d: _d, ...publicJwk } = privateJwk;
const rsKey = signingKey({ ...(generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }) as SignatureJwk), kid: 'rs-key' });

/** Header lines of a request, with its signature fields when `sign` lists what to cover. */
function request(
  fields: Record<string, string>,
  signatures: { label?: string; covers: string; params?: string; key?: typeof clientKey; tag?: string }[] = [],
): SignedMessage & { method: string; url: string } {
  const unsigned = { method: 'POST', url: URL_PAYMENTS, headers: headersFromRaw(Object.entries(fields).flat()) };
  const inputs: string[] = [];
  const values: string[] = [];
  for (const { label = 'sig1', covers, params, key = clientKey, tag = REQUEST_TAG } of signatures) {
    const member = `${label}=(${covers});created=${NOW};${params ?? `keyid="${key.keyid}"`};tag="${tag}"`;
    const carrier: SignedMessage = { headers: headersFromRaw(['Signature-Input', member, 'Signature', `${label}=:AAAA:`]) };
    const input = (parseSignatures(carrier).get(label) as MessageSignature).input;
    inputs.push(member);
    values.push(`${label}=:${Buffer.from(signBase(signatureBase(unsigned, input), key)).toString('base64')}:`);
  }
  const raw = Object.entries(fields).flat();
  if (inputs.length > 0) raw.push('Signature-Input', inputs.join(', '), 'Signature', values.join(', '));
  return { ...unsigned, headers: headersFromRaw(raw) };
}

const keys = new ClientKeys({ clients: { 'client-a': { jwks: { keys: [publicJwk] } } } }, () => NOW * 1000);
const check = (message: RequestSignatureInput['message'], more: Partial<RequestSignatureInput> = {}) =>
  verifyRequestSignature({
    message,
    body: undefined,
    clientId: 'client-a',
    tokenHash: 'token-hash',
    mode: 'required',
    keys,
    now: NOW,
    maxAgeSec: 60,
    maxFutureSec: 5,
    ...more,
  });

const FIELDS = { authorization: 'DPoP token', dpop: 'proof' };
const COVERS = '"@method" "@target-uri" "authorization" "dpop"';

describe('what a request signature must cover', () => {
  it('SIG-05 SIG-07 SIG-08 method, target URI and authorization; dpop when sent; content-digest when there is content', () => {
    expect(requiredRequestComponents({}, false)).toEqual(['@method', '@target-uri', 'authorization']);
    expect(requiredRequestComponents({ dpop: ['p'] }, true)).toEqual(['@method', '@target-uri', 'authorization', 'dpop', 'content-digest']);
  });

  it('HMS-13 Accept-Signature lists them with the request tag', () => {
    expect(acceptSignature({ dpop: ['p'] }, true)).toBe(
      'sig1=("@method" "@target-uri" "authorization" "dpop" "content-digest");tag="fapi-2-request"',
    );
    expect(acceptSignature({}, false)).toBe('sig1=("@method" "@target-uri" "authorization");tag="fapi-2-request"');
  });

  it('SIG-05 a component with parameters is not the plain one, and an empty body needs no digest', async () => {
    const covers = '"@method" "@target-uri" "authorization";bs "dpop"';
    expect(await check(request(FIELDS, [{ covers }]))).toEqual({
      ok: false,
      reason: 'signature_invalid',
      detail: 'sig1 does not cover authorization',
    });
    expect(await check(request(FIELDS, [{ covers: COVERS }]), { body: new Uint8Array() })).toMatchObject({ ok: true });
    expect(await check(request(FIELDS, [{ covers: COVERS }]), { body: Buffer.from('{}') })).toEqual({
      ok: false,
      reason: 'signature_invalid',
      detail: 'sig1 does not cover content-digest',
    });
  });
});

describe('the candidates of a request', () => {
  it('HMS-01 a malformed field is signature_invalid; no signature at all, or none tagged, is signature_missing unless optional', async () => {
    const malformed = { ...request(FIELDS), headers: headersFromRaw(['Signature-Input', 'sig1=(', 'Signature', 'sig1=:AAAA:']) };
    expect(await check(malformed)).toEqual({
      ok: false,
      reason: 'signature_invalid',
      detail: 'Signature or Signature-Input is not a structured dictionary',
    });
    expect(await check(request(FIELDS))).toEqual({ ok: false, reason: 'signature_missing', detail: 'no Signature / Signature-Input' });
    const untagged = request(FIELDS, [{ covers: COVERS, tag: 'other' }]);
    expect(await check(untagged)).toEqual({ ok: false, reason: 'signature_missing', detail: 'no signature tagged fapi-2-request' });
    expect(await check(untagged, { mode: 'optional' })).toEqual({ ok: true, verified: undefined });
    expect(await check(request(FIELDS, [{ covers: COVERS }]), { mode: 'optional' })).toMatchObject({
      ok: true,
      verified: { label: 'sig1' },
    });
  });

  it('HMS-02 HMS-03 every failing candidate says why; a good one after them counts', async () => {
    const stranger = signingKey({ ...(generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }) as SignatureJwk), kid: 'other' });
    const failing = [
      { label: 'a', covers: COVERS, params: 'keyid=7' },
      { label: 'b', covers: COVERS, key: stranger },
      { label: 'c', covers: COVERS, params: 'keyid="client-key";alg="rsa-pss-sha512"' },
    ];
    expect(await check(request(FIELDS, failing))).toEqual({
      ok: false,
      reason: 'signature_invalid',
      detail: 'a has no keyid; keyid "other" is not a key of client client-a; c: alg rsa-pss-sha512 does not match the key',
    });
    expect(await check(request(FIELDS, [...failing, { label: 'd', covers: COVERS }]))).toMatchObject({
      ok: true,
      verified: { label: 'd' },
    });
  });

  it('SIG-01 keys that cannot be had now: 503 (signature_keys_unavailable), even when another candidate failed for another reason', async () => {
    const down = new ClientKeys({ resolveClient: () => ({ jwksUri: 'https://127.0.0.1:1/jwks' }), timeoutMs: 200 }, () => NOW * 1000);
    const result = await check(
      request(FIELDS, [
        { label: 'a', covers: '"@method"' },
        { label: 'b', covers: COVERS },
      ]),
      { keys: down },
    );
    expect(result).toMatchObject({ ok: false, reason: 'signature_keys_unavailable' });
    expect(result.ok === false && result.detail.startsWith('a does not cover @target-uri; keys of client client-a unavailable: ')).toBe(
      true,
    );
  });

  it('SIG-09 a covered Content-Digest must match the content', async () => {
    const body = Buffer.from('{"amount":"1.00"}');
    const covers = `${COVERS} "content-digest"`;
    const wrong = request({ ...FIELDS, 'content-digest': contentDigest(Buffer.from('{}')) }, [{ covers }]);
    expect(await check(wrong, { body })).toEqual({
      ok: false,
      reason: 'signature_invalid',
      detail: 'Content-Digest: sha-256 does not match the content',
    });
    expect(await check(request({ ...FIELDS, 'content-digest': contentDigest(body) }, [{ covers }]), { body })).toMatchObject({ ok: true });
  });
});

describe('what a verified request signature records', () => {
  it('SIG-02 the verified exchange is recorded: who, what, with which key, over which base', async () => {
    const body = Buffer.from('{"amount":"1.00"}');
    const digest = contentDigest(body);
    const message = request({ ...FIELDS, 'content-digest': digest }, [{ covers: `${COVERS} "content-digest"` }]);
    const result = await check(message, { body, interactionId: 'i-1' });
    // A Content-Digest sent on two lines is one field (RFC 9110 §5.3): checked and recorded joined.
    const twoLines = request({ ...FIELDS, 'content-digest': `${digest}, md5=:AAAA:` }, [{ covers: `${COVERS} "content-digest"` }]);
    const split = { ...twoLines, headers: { ...twoLines.headers, 'content-digest': [digest, 'md5=:AAAA:'] } };
    const joined = await check(split, { body });
    expect(joined.ok && joined.verified && joined.record.contentDigest).toBe(`${digest}, md5=:AAAA:`);
    if (!result.ok || !result.verified) throw new Error('not verified');
    const signature = parseSignatures(message).get('sig1') as MessageSignature;
    expect(result.verified).toEqual({
      label: 'sig1',
      keyid: 'client-key',
      algorithm: 'ed25519',
      created: NOW,
      components: ['"@method"', '"@target-uri"', '"authorization"', '"dpop"', '"content-digest"'],
    });
    expect(result.record).toEqual({
      direction: 'request',
      clientId: 'client-a',
      tokenHash: 'token-hash',
      interactionId: 'i-1',
      method: 'POST',
      url: URL_PAYMENTS,
      label: 'sig1',
      keyid: 'client-key',
      algorithm: 'ed25519',
      created: NOW,
      signatureInput: `sig1=("@method" "@target-uri" "authorization" "dpop" "content-digest");created=${NOW};keyid="client-key";tag="fapi-2-request"`,
      signature: `sig1=:${Buffer.from(signature.signature).toString('base64')}:`,
      components: result.verified.components,
      base: signatureBase(message, signature.input),
      contentDigest: digest,
    });
    // No interaction id, no content: neither is recorded.
    const bare = await check(request(FIELDS, [{ covers: COVERS }]));
    if (!bare.ok || !bare.verified) throw new Error('not verified');
    expect(Object.keys(bare.record)).not.toContain('interactionId');
    expect(Object.keys(bare.record)).not.toContain('contentDigest');
  });
});

describe('a signed response', () => {
  const body = Buffer.from('{"id":"pay-1"}');
  const context = (signed: boolean, fields: Record<string, string> = FIELDS) => {
    const message = signed ? request(fields, [{ covers: COVERS }]) : request(fields);
    const signature = signed ? (parseSignatures(message).get('sig1') as MessageSignature) : undefined;
    return {
      request: message,
      requestSignature: signature,
      requestRecord: signature ? { label: 'sig1', keyid: 'client-key', signatureInput: 'sig1=(…)', signature: 'sig1=:AAAA:' } : undefined,
      clientId: 'client-a',
      tokenHash: 'token-hash',
      ...(signed ? { interactionId: 'i-2' } : {}),
    };
  };
  const respond = (
    signed: boolean,
    headers: Record<string, string[]>,
    content: Uint8Array | undefined = body,
    fields: Record<string, string> = FIELDS,
  ) => {
    const ctx = context(signed, fields);
    const out = signResponse(ctx as never, { status: 201, headers, body: content }, rsKey, NOW + 0.7);
    return { ctx, out };
  };

  it('SIG-10 SIG-12 SIG-13 SIG-14 DEC-05 covers status, content, the request and its signature, and verifies with the published key', () => {
    const { ctx, out } = respond(true, { 'content-type': ['application/json'], 'content-digest': ['sha-256=:stale:'], signature: ['x'] });
    expect(out.headers['content-digest']).toBe(contentDigest(body));
    expect(out.headers['signature-input']).toBe(
      `sig1=("@status" "content-type" "content-digest" "@method";req "@target-uri";req "authorization";req "dpop";req "signature";req;key="sig1" "signature-input";req;key="sig1");created=${NOW};keyid="rs-key";tag="fapi-2-response"`,
    );
    expect(out.record).toMatchObject({
      direction: 'response',
      clientId: 'client-a',
      tokenHash: 'token-hash',
      interactionId: 'i-2',
      method: 'POST',
      url: URL_PAYMENTS,
      status: 201,
      label: 'sig1',
      keyid: 'rs-key',
      algorithm: 'ed25519',
      created: NOW,
      contentDigest: contentDigest(body),
      request: { label: 'sig1', keyid: 'client-key', signatureInput: 'sig1=(…)', signature: 'sig1=:AAAA:' },
      components: [
        '"@status"',
        '"content-type"',
        '"content-digest"',
        '"@method";req',
        '"@target-uri";req',
        '"authorization";req',
        '"dpop";req',
        '"signature";req;key="sig1"',
        '"signature-input";req;key="sig1"',
      ],
    });
    // The base of the response as sent (its new digest, none of the stale fields) verifies.
    const sent: SignedMessage = {
      status: 201,
      headers: headersFromRaw(['Content-Type', 'application/json', 'Content-Digest', out.headers['content-digest'] as string]),
      request: ctx.request,
    };
    const value = Buffer.from(/:([^:]+):/.exec(out.headers.signature as string)?.[1] as string, 'base64');
    const input = (
      parseSignatures({
        headers: headersFromRaw(['Signature-Input', out.headers['signature-input'] as string, 'Signature', 'sig1=:AAAA:']),
      }).get('sig1') as MessageSignature
    ).input;
    expect(out.record.base).toBe(signatureBase(sent, input));
    expect(verifySignatureValue(out.record.base, value, verificationKey(rsKey.publicJwk))).toBe(true);
  });

  it('SIG-11 an unsigned request: method and target URI, and its Content-Digest when it sent one; no content, no digest', () => {
    // (An empty body is no content, as undefined is.)
    const plain = respond(false, {}, new Uint8Array()).out;
    expect(plain.headers['content-digest']).toBeUndefined();
    expect(plain.record.components).toEqual(['"@status"', '"@method";req', '"@target-uri";req']);
    expect(Object.keys(plain.record)).not.toContain('contentDigest');
    expect(Object.keys(plain.record)).not.toContain('request');
    expect(Object.keys(plain.record)).not.toContain('interactionId');
    const digested = respond(false, {}, new Uint8Array(), { ...FIELDS, 'content-digest': 'sha-256=:AAAA:' }).out;
    expect(digested.record.components).toEqual(['"@status"', '"@method";req', '"@target-uri";req', '"content-digest";req']);
  });

  it('SIG-13 Cache-Control gets no-transform once, after the response’s own directives', () => {
    const cache = (headers: Record<string, string[]>) => respond(false, headers).out.headers['cache-control'];
    expect(cache({})).toBe('no-transform');
    expect(cache({ 'cache-control': ['no-store', 'private'] })).toBe('no-store, private, no-transform');
    for (const already of ['no-transform', 'no-store, No-Transform', 'no-store,no-transform ,private']) {
      expect(cache({ 'cache-control': [already] })).toBeUndefined();
    }
    expect(cache({ 'cache-control': ['no-transformation'] })).toBe('no-transformation, no-transform');
  });
});
