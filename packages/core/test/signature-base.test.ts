/**
 * RFC 9421 rule by rule, in process: each kind of component (§2.1 fields, §2.1.1 `sf`, §2.1.2
 * `key`, §2.1.3 `bs`, §2.2 derived, §2.4 `req`), the errors of §2.5 with their exact messages,
 * the `Signature` and `Signature-Input` fields (§4), the checks around a signature (§3.2), the
 * algorithms of §3.3, and RFC 9530 Content-Digest's limits. The published vectors are in
 * http-signatures.test.ts and content-digest.test.ts.
 */
import { createHmac, createSecretKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import {
  contentDigest,
  type MessageSignature,
  parseSignatures,
  SignatureBaseError,
  type SignedMessage,
  signatureBase,
  type VerifyOptions,
  verifyContentDigest,
  verifyMessageSignature,
  verifySignatureValue,
} from '@fapi-guard/core';

type Fields = Record<string, string | string[]>;
const lines = (fields: Fields) => Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, typeof v === 'string' ? [v] : v]));
const request = (fields: Fields = {}, url = 'https://example.org/a?q=1', method = 'POST'): SignedMessage => ({
  method,
  url,
  headers: lines(fields),
});

/** The `Signature-Input` member `s=(<components>);created=1`, parsed. */
function input(components: string) {
  const carrier: SignedMessage = { headers: lines({ 'signature-input': `s=(${components});created=1`, signature: 's=:AAAA:' }) };
  return (parseSignatures(carrier).get('s') as MessageSignature).input;
}

/** The lines of the base that `components` give for `message`, without `@signature-params`. */
const base = (message: SignedMessage, components: string) => signatureBase(message, input(components)).split('\n').slice(0, -1);

/** `build` throws a SignatureBaseError with exactly `message`. */
function refused(build: () => unknown, message: string) {
  let error: unknown;
  try {
    build();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(SignatureBaseError);
  expect((error as Error).message).toBe(message);
}

describe('RFC 9421 §2.1 field values', () => {
  it('HMS-06 trims a field line, keeps the whitespace inside it, and keeps an empty value', () => {
    expect(base(request({ 'x-a': '  v  w \t', 'x-e': '' }), '"x-a" "x-e"')).toEqual(['"x-a": v  w', '"x-e": ']);
  });

  it('HMS-06 accepts obs-fold only where every continuation line starts with whitespace', () => {
    expect(base(request({ 'x-a': 'a\n\tb\n c' }), '"x-a"')).toEqual(['"x-a": a b c']);
    for (const value of ['a\nb c', 'a\n b\nc d']) {
      refused(() => base(request({ 'x-a': value }), '"x-a"'), 'a field line break that is not obs-fold');
    }
  });

  it('HMS-05 refuses an absent field', () => {
    refused(() => base(request({ 'x-a': 'v' }), '"x-missing"'), 'field x-missing is absent');
  });

  it('HMS-06 refuses a component name that is not lower case', () => {
    refused(() => base(request({ 'content-type': 'text/plain' }), '"Content-Type"'), 'component name Content-Type is not lower case');
  });
});

describe('RFC 9421 §2.1.1 sf and §2.1.2 key', () => {
  const fields = {
    'content-digest': 'sha-256=:AAAA:,   b=1;x,c=(a   b);p, undefined=2',
    'cache-status': 'ExampleCache;hit,   Other;fwd=uri-miss',
    'client-cert': ':AAAA:;  a=1',
  };

  it('HMS-06 sf re-serialises a known dictionary, list and item field', () => {
    expect(base(request(fields), '"content-digest";sf "cache-status";sf "client-cert";sf')).toEqual([
      '"content-digest";sf: sha-256=:AAAA:, b=1;x, c=(a b);p, undefined=2',
      '"cache-status";sf: ExampleCache;hit, Other;fwd=uri-miss',
      '"client-cert";sf: :AAAA:;a=1',
    ]);
  });

  it('HMS-06 key takes one member, an item or an inner list, each apart from sf and the other keys', () => {
    expect(
      base(
        request(fields),
        '"content-digest";sf "content-digest";key="sha-256" "content-digest";key="b" "content-digest";key="c" "content-digest";key="undefined" "content-digest"',
      ),
    ).toEqual([
      '"content-digest";sf: sha-256=:AAAA:, b=1;x, c=(a b);p, undefined=2',
      '"content-digest";key="sha-256": :AAAA:',
      '"content-digest";key="b": 1;x',
      '"content-digest";key="c": (a b);p',
      '"content-digest";key="undefined": 2',
      `"content-digest": ${fields['content-digest']}`,
    ]);
  });

  it('HMS-05 refuses sf or key where they cannot apply', () => {
    refused(() => base(request(fields), '"cache-status";key="a"'), 'key on cache-status, which is not a dictionary');
    refused(() => base(request(fields), '"content-digest";key="zz"'), 'content-digest has no member zz');
    refused(() => base(request({ 'x-a': 'a=1' }), '"x-a";sf'), 'field x-a is not a known structured field');
    refused(
      () => base(request({ 'content-digest': 'sha-256=:AAA' }), '"content-digest";sf'),
      'field content-digest is not a valid structured field',
    );
  });
});

describe('RFC 9421 §2.1.3 bs', () => {
  it('HMS-06 wraps the UTF-8 octets of each trimmed line, as the RFC example shows', () => {
    expect(base(request({ 'example-header': ['value, with, lots', ' of, commas '] }), '"example-header";bs')).toEqual([
      '"example-header";bs: :dmFsdWUsIHdpdGgsIGxvdHM=:, :b2YsIGNvbW1hcw==:',
    ]);
    expect(base(request({ 'x-a': 'é' }), '"x-a";bs')).toEqual(['"x-a";bs: :w6k=:']);
  });
});

describe('RFC 9421 §2.2 derived components', () => {
  const url = "https://Example.ORG:8443/p%20q/r?b=2&a=x%20y&c=*&e=!'()";

  it('HMS-07 gives each derived component of a request', () => {
    expect(base(request({}, url), '"@method" "@target-uri" "@authority" "@scheme" "@request-target" "@path" "@query"')).toEqual([
      '"@method": POST',
      `"@target-uri": ${url}`,
      '"@authority": example.org:8443',
      '"@scheme": https',
      '"@request-target": /p%20q/r?b=2&a=x%20y&c=*&e=!%27()',
      '"@path": /p%20q/r',
      '"@query": ?b=2&a=x%20y&c=*&e=!%27()',
    ]);
  });

  it('HMS-07 an empty path is /, an absent query is ?', () => {
    expect(base(request({}, 'foo://example.org'), '"@path" "@query"')).toEqual(['"@path": /', '"@query": ?']);
  });

  it("HMS-07 @query-param decodes each value and encodes it again, upper-case hex for !'()*", () => {
    expect(base(request({}, url), '"@query-param";name="a" "@query-param";name="c" "@query-param";name="e"')).toEqual([
      '"@query-param";name="a": x%20y',
      '"@query-param";name="c": %2A',
      '"@query-param";name="e": %21%27%28%29',
    ]);
  });

  it('HMS-07 @query-param names a parameter by its encoded name (RFC 9421 §2.2.8 example)', () => {
    const example =
      'https://www.example.com/parameters?var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something';
    expect(
      base(request({}, example), '"@query-param";name="var" "@query-param";name="bar" "@query-param";name="fa%C3%A7ade%22%3A%20"'),
    ).toEqual([
      '"@query-param";name="var": this%20is%20a%20big%0Amultiline%20value',
      '"@query-param";name="bar": with%20plus%20whitespace',
      '"@query-param";name="fa%C3%A7ade%22%3A%20": something',
    ]);
    // The decoded name is not the name.
    const spaced = request({}, 'https://example.org/?a%20b=1');
    expect(base(spaced, '"@query-param";name="a%20b"')).toEqual(['"@query-param";name="a%20b": 1']);
    refused(() => base(spaced, '"@query-param";name="a b"'), '@query-param a b occurs 0 times');
  });

  it('HMS-05 @query-param needs a name that occurs exactly once', () => {
    const twice = 'https://example.org/?q=1&q=2&r=';
    expect(base(request({}, twice), '"@query-param";name="r"')).toEqual(['"@query-param";name="r": ']);
    refused(() => base(request({}, twice), '"@query-param";name="q"'), '@query-param q occurs 2 times');
    refused(() => base(request({}, twice), '"@query-param";name="zz"'), '@query-param zz occurs 0 times');
    refused(() => base(request({}, twice), '"@query-param"'), '@query-param needs a name parameter');
    refused(() => base(request({}, twice), '"@query-param";name=1'), '@query-param needs a name parameter');
  });

  it('HMS-05 refuses an unknown derived component, @status in a request, and a target URI that is none', () => {
    refused(() => base(request(), '"@foo"'), 'unknown derived component @foo');
    refused(() => base(request(), '"@status"'), '@status in a request');
    refused(() => base(request({}, 'not a url'), '"@path"'), 'the target URI is not an absolute URI');
  });

  it('HMS-05 a request component needs both method and target URI', () => {
    const response: SignedMessage = { status: 201, headers: {} };
    expect(base(response, '"@status"')).toEqual(['"@status": 201']);
    for (const message of [response, { method: 'GET', headers: {} }, { url: 'https://example.org/', headers: {} }]) {
      refused(() => base(message, '"@method"'), '@method in a response without req');
    }
  });
});

describe('RFC 9421 §2.4 req', () => {
  const answered = request({ 'x-a': 'from the request' }, 'https://example.org/pay', 'PUT');

  it('HMS-14 req takes the component from the request a response answers', () => {
    const response: SignedMessage = { status: 200, headers: lines({ 'x-a': 'from the response' }), request: answered };
    expect(base(response, '"@method";req "x-a";req "x-a" "@status"')).toEqual([
      '"@method";req: PUT',
      '"x-a";req: from the request',
      '"x-a": from the response',
      '"@status": 200',
    ]);
  });

  it('HMS-05 HMS-14 refuses req in a request, or in a response that carries no request', () => {
    const cases: SignedMessage[] = [answered, { ...answered, request: answered }, { status: 200, headers: {} }];
    for (const message of cases) refused(() => base(message, '"@method";req'), 'req in a request signature');
  });
});

describe('RFC 9421 §2.5 the base', () => {
  it('HMS-05 refuses a component identifier that is not a string, one listed twice, and non-ASCII', () => {
    refused(() => base(request(), '1'), 'a component identifier is not a string');
    refused(() => base(request({ 'x-a': 'v' }), '"x-a" "x-a"'), 'component "x-a" is listed twice');
    refused(() => base(request({ 'x-a': 'é' }), '"x-a"'), 'component "x-a" has non-ASCII characters');
    // The same field with another parameter is another component.
    expect(base(request({ 'x-a': 'v' }), '"x-a" "x-a";bs')).toEqual(['"x-a": v', '"x-a";bs: :dg==:']);
  });
});

describe('RFC 9421 §4 Signature and Signature-Input', () => {
  const parse = (fields: Fields) => () => parseSignatures({ headers: lines(fields) });

  it('HMS-01 no fields, no signatures', () => {
    expect(parse({})().size).toBe(0);
  });

  it('HMS-01 refuses a signature named in only one of the two fields, even when the other is absent', () => {
    refused(parse({ signature: 's=:AAAA:' }), 'label s is in only one of Signature and Signature-Input');
    refused(parse({ 'signature-input': 's=("@method");created=1' }), 'label s is in only one of Signature and Signature-Input');
  });

  it('HMS-01 refuses malformed fields and members of the wrong kind', () => {
    for (const fields of [
      { 'signature-input': 's=(', signature: 's=:AAAA:' },
      { 'signature-input': 's=("@method")', signature: 's=:AAA' },
    ]) {
      refused(parse(fields), 'Signature or Signature-Input is not a structured dictionary');
    }
    refused(parse({ 'signature-input': 's=1', signature: 's=:AAAA:' }), 'Signature-Input s is not an inner list');
    refused(parse({ 'signature-input': 's=("@method")', signature: 's=1' }), 'Signature s is not a byte sequence');
  });

  it('HMS-02 lists each signature with its covered components serialised', () => {
    const parsed = parse({
      'signature-input': 's=("@query-param";name="q" "x-a";sf "@method" "signature";req;key="sig1");created=1',
      signature: 's=:AAAA:',
    })();
    expect(parsed.get('s')?.components).toEqual(['"@query-param";name="q"', '"x-a";sf', '"@method"', '"signature";req;key="sig1"']);
  });
});

describe('RFC 9421 §3.2 the checks around a signature', () => {
  const secret = createSecretKey(Buffer.from('a secret of thirty-two octets!!!'));
  const NOW = 1_700_000_000;
  const options: VerifyOptions = { now: NOW, maxAgeSec: 60, maxFutureSec: 5, key: () => ({ algorithm: 'hmac-sha256', key: secret }) };

  /** A request signed with HMAC over `("@method" "@path")` and these signature parameters. */
  function signed(params: string) {
    const member = `("@method" "@path");${params}`;
    const unsigned = request({ 'signature-input': `s=${member}`, signature: 's=:AAAA:' });
    const mac = createHmac('sha256', secret)
      .update(signatureBase(unsigned, (parseSignatures(unsigned).get('s') as MessageSignature).input))
      .digest('base64');
    const message = request({ 'signature-input': `s=${member}`, signature: `s=:${mac}:` });
    return { message, signature: parseSignatures(message).get('s') as MessageSignature };
  }
  const verify = (params: string, more: Partial<VerifyOptions> = {}) => {
    const { message, signature } = signed(params);
    return verifyMessageSignature(message, signature, { ...options, ...more });
  };

  it('HMS-03 asks for the key by keyid only when keyid is a string', () => {
    const asked: unknown[] = [];
    const key = (keyid: string | undefined) => {
      asked.push(keyid);
      return undefined;
    };
    expect(verify(`created=${NOW};keyid=1`, { key })).toEqual({ ok: false, detail: 'unknown or untrusted key 1', spent: 0 });
    expect(verify(`created=${NOW};keyid="k9"`, { key })).toEqual({ ok: false, detail: 'unknown or untrusted key "k9"', spent: 0 });
    expect(asked).toEqual([undefined, 'k9']);
  });

  it("HMS-04 an alg parameter must name the key's algorithm; none is fine", () => {
    expect(verify(`created=${NOW};alg="hmac-sha256"`)).toMatchObject({ ok: true });
    expect(verify(`created=${NOW}`)).toMatchObject({ ok: true });
    expect(verify(`created=${NOW};alg="ed25519"`)).toEqual({ ok: false, detail: 'alg ed25519 does not match the key', spent: 0 });
  });

  it('HMS-09 created is a required Integer within [now - maxAgeSec, now + maxFutureSec]', () => {
    for (const params of ['keyid="k"', `created="${NOW}"`, `created=${NOW}.5`]) {
      expect(verify(params)).toEqual({ ok: false, detail: 'no integer created parameter', spent: 0 });
    }
    expect(verify(`created=${NOW - 60}`)).toMatchObject({ ok: true });
    expect(verify(`created=${NOW + 5}`)).toMatchObject({ ok: true });
    for (const created of [NOW - 61, NOW + 6]) {
      expect(verify(`created=${created}`)).toEqual({ ok: false, detail: `created ${created} is outside the accepted window`, spent: 0 });
    }
  });

  it('HMS-09 expires, when present, is an Integer not before now', () => {
    expect(verify(`created=${NOW};expires=${NOW}`)).toMatchObject({ ok: true });
    for (const expires of [`${NOW - 1}`, '"soon"', `${NOW + 100}.5`]) {
      expect(verify(`created=${NOW};expires=${expires}`)).toEqual({ ok: false, detail: 'signature expired', spent: 0 });
    }
  });
});

describe('RFC 9421 §3.3 algorithms', () => {
  const data = 'a signature base';
  const ecdsa = (curve: string, hash: string) => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: curve });
    return {
      publicKey,
      p1363: sign(hash, Buffer.from(data), { key: privateKey, dsaEncoding: 'ieee-p1363' }),
      der: sign(hash, Buffer.from(data), privateKey),
    };
  };

  it('HMS-11 ecdsa-p384-sha384: r‖s of 96 octets verifies, DER does not', () => {
    const { publicKey, p1363, der } = ecdsa('P-384', 'sha384');
    expect(p1363).toHaveLength(96);
    expect(verifySignatureValue(data, p1363, { algorithm: 'ecdsa-p384-sha384', key: publicKey })).toBe(true);
    expect(verifySignatureValue(data, der, { algorithm: 'ecdsa-p384-sha384', key: publicKey })).toBe(false);
  });

  it('HMS-04 HMS-11 an ECDSA algorithm is bound to its curve: a key of the other curve is refused', () => {
    const p384 = ecdsa('P-384', 'sha256');
    expect(verifySignatureValue(data, p384.p1363, { algorithm: 'ecdsa-p256-sha256', key: p384.publicKey })).toBe(false);
    const p256 = ecdsa('P-256', 'sha384');
    expect(verifySignatureValue(data, p256.p1363, { algorithm: 'ecdsa-p384-sha384', key: p256.publicKey })).toBe(false);
  });

  it('HMS-04 refuses an unknown algorithm, a key of the wrong type, and HMAC with an asymmetric key or a short MAC', () => {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const signature = sign(null, Buffer.from(data), privateKey);
    expect(verifySignatureValue(data, signature, { algorithm: 'ed25519', key: publicKey })).toBe(true);
    expect(verifySignatureValue(data, signature, { algorithm: 'eddsa' as never, key: publicKey })).toBe(false);
    expect(verifySignatureValue(data, signature, { algorithm: 'rsa-pss-sha512', key: publicKey })).toBe(false);
    for (const key of [publicKey, privateKey] as KeyObject[]) {
      expect(verifySignatureValue(data, signature, { algorithm: 'hmac-sha256', key })).toBe(false);
    }
    const secret = createSecretKey(Buffer.alloc(32, 7));
    const mac = createHmac('sha256', secret).update(data).digest();
    expect(verifySignatureValue(data, mac, { algorithm: 'hmac-sha256', key: secret })).toBe(true);
    expect(verifySignatureValue(data, mac.subarray(0, 31), { algorithm: 'hmac-sha256', key: secret })).toBe(false);
  });
});

describe('RFC 9530 Content-Digest limits', () => {
  const content = Buffer.from('{"hello": "world"}');

  it('DIG-01 says what is wrong with a malformed field', () => {
    expect(verifyContentDigest('sha-256=:AAA', content)).toEqual({ ok: false, detail: 'Content-Digest is not a structured dictionary' });
    expect(verifyContentDigest('sha-256=1', content)).toEqual({ ok: false, detail: 'sha-256 is not a byte sequence' });
  });

  it('DIG-04 takes up to 10 members and refuses 11', () => {
    const others = (n: number) => Array.from({ length: n }, (_v, i) => `, x${i}=:AAAA:`).join('');
    expect(verifyContentDigest(`${contentDigest(content)}${others(9)}`, content)).toEqual({ ok: true, algorithm: 'sha-256' });
    expect(verifyContentDigest(`${contentDigest(content)}${others(10)}`, content)).toEqual({
      ok: false,
      detail: 'Content-Digest has 11 members',
    });
  });
});
