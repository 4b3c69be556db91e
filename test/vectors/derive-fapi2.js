#!/usr/bin/env node
// Derives fapi2-http-signature-derived.json: a FAPI 2.0-shaped signed request and signed response
// (FAPI 2.0 Message Signing §5.6 / FAPI 2.0 HTTP Signatures §5.3.1-5.3.2). No specification
// publishes such a vector, so this project builds one: the RFC 9421 B.2 test-request body and
// target, the RFC 9449 §7.1 access token, the RFC 9421 Appendix B.1.4 Ed25519 key, RFC 9530
// sha-256 digests. The signature bases are written out by hand here and signed with node:crypto
// only, so the vector is independent of the library it tests. Ed25519 is deterministic: running
// this again gives the same bytes (test/vectors.test.ts checks that the committed file matches).
//
//   node test/vectors/derive-fapi2.js          rewrite test/vectors/fapi2-http-signature-derived.json
const { createHash, createPrivateKey, sign } = require('node:crypto');
const { readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

const CREATED = 1618884473; // RFC 9421 B.2 examples' created; tests inject this clock.
const TOKEN = 'Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU'; // RFC 9449 §7.1
const REQUEST_BODY = '{"hello": "world"}'; // RFC 9421 B.2 test-request
const RESPONSE_BODY = '{"message": "good dog"}'; // RFC 9421 B.2 test-response

/** RFC 9530 §2: sha-256 member over the content bytes, as an sf-binary. */
const digest = (body) => `sha-256=:${createHash('sha256').update(body).digest('base64')}:`;

function derive(rfc9421) {
  const key = createPrivateKey({ key: rfc9421.keys['test-key-ed25519'].jwk, format: 'jwk' });
  // RFC 9421 §3.3.6: Ed25519 over the base, no pre-hash.
  const signBase = (base) => sign(null, Buffer.from(base), key).toString('base64');

  const requestDigest = digest(REQUEST_BODY);
  const requestParams = `("@method" "@target-uri" "authorization" "content-digest");created=${CREATED};keyid="test-key-ed25519";tag="fapi-2-request"`;
  // RFC 9421 §2.5: one line per covered component, then @signature-params, no trailing LF.
  const requestBase = [
    '"@method": POST',
    '"@target-uri": https://example.com/foo?param=Value&Pet=dog',
    `"authorization": Bearer ${TOKEN}`,
    `"content-digest": ${requestDigest}`,
    `"@signature-params": ${requestParams}`,
  ].join('\n');
  const requestSignature = `:${signBase(requestBase)}:`;

  const responseDigest = digest(RESPONSE_BODY);
  const responseParams =
    '("@status" "content-type" "content-digest" "@method";req "@target-uri";req "content-digest";req ' +
    `"signature";req;key="sig1" "signature-input";req;key="sig1");created=${CREATED + 1};keyid="test-key-ed25519";tag="fapi-2-response"`;
  // RFC 9421 §2.4 (req) and §2.1.2 (key= takes the serialised dictionary member value).
  const responseBase = [
    '"@status": 200',
    '"content-type": application/json',
    `"content-digest": ${responseDigest}`,
    '"@method";req: POST',
    '"@target-uri";req: https://example.com/foo?param=Value&Pet=dog',
    `"content-digest";req: ${requestDigest}`,
    `"signature";req;key="sig1": ${requestSignature}`,
    `"signature-input";req;key="sig1": ${requestParams}`,
    `"@signature-params": ${responseParams}`,
  ].join('\n');
  const responseSignature = `:${signBase(responseBase)}:`;

  return {
    source:
      'DERIVED by this project (test/vectors/derive-fapi2.js), not published in any specification. Shape follows FAPI 2.0 ' +
      'Message Signing §5.6 / FAPI 2.0 HTTP Signatures §5.3.1 and §5.3.2; key: RFC 9421 Appendix B.1.4 test-key-ed25519; ' +
      'request target and bodies: RFC 9421 Appendix B.2; access token: RFC 9449 §7.1; digests: RFC 9530 §2.',
    derived: true,
    request: {
      message: [
        'POST /foo?param=Value&Pet=dog HTTP/1.1',
        'Host: example.com',
        `Authorization: Bearer ${TOKEN}`,
        'Content-Type: application/json',
        `Content-Digest: ${requestDigest}`,
        `Content-Length: ${Buffer.byteLength(REQUEST_BODY)}`,
        `Signature-Input: sig1=${requestParams}`,
        `Signature: sig1=${requestSignature}`,
        '',
        REQUEST_BODY,
      ].join('\n'),
      signature_base: requestBase,
      signature_input_field: `sig1=${requestParams}`,
      signature_field: `sig1=${requestSignature}`,
    },
    response: {
      message: [
        'HTTP/1.1 200 OK',
        'Content-Type: application/json',
        `Content-Digest: ${responseDigest}`,
        `Content-Length: ${Buffer.byteLength(RESPONSE_BODY)}`,
        `Signature-Input: sig1=${responseParams}`,
        `Signature: sig1=${responseSignature}`,
        '',
        RESPONSE_BODY,
      ].join('\n'),
      signature_base: responseBase,
      signature_input_field: `sig1=${responseParams}`,
      signature_field: `sig1=${responseSignature}`,
      note:
        'Covering the request Signature/Signature-Input is required by FAPI but NOT RECOMMENDED by RFC 9421 §2.4 ' +
        '(§7.3.7); the request components are covered individually as well.',
    },
    clock: { request_created: CREATED, response_created: CREATED + 1 },
  };
}

const file = join(__dirname, 'fapi2-http-signature-derived.json');
const render = () => `${JSON.stringify(derive(JSON.parse(readFileSync(join(__dirname, 'rfc9421.json'), 'utf8'))), null, 2)}\n`;

if (require.main === module) writeFileSync(file, render());

module.exports = { derive, render, file };
