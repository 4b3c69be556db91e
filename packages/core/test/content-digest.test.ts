/** RFC 9530 Content-Digest against the published vectors. */
import { brotliCompressSync } from 'node:zlib';
import { contentDigest, verifyContentDigest } from '@fapi-guard/core';
import { vector } from '../../../test/support/vectors';

const rfc9530 = vector('rfc9530');
const input = Buffer.from(rfc9530.input as string);

describe('RFC 9530 Content-Digest', () => {
  it('computes the Appendix D sha-256 and sha-512 values', () => {
    expect(contentDigest(input)).toBe(`sha-256=${rfc9530.appendix_d['sha-256'].value}`);
    expect(contentDigest(input, 'sha-512')).toBe(`sha-512=${rfc9530.appendix_d['sha-512'].value}`);
  });

  it('DIG-01 refuses a field that is not a dictionary of byte sequences', () => {
    expect(verifyContentDigest('sha-256=abc', input)).toMatchObject({ ok: false });
    expect(verifyContentDigest('not a dictionary!', input)).toMatchObject({ ok: false });
  });

  it('DIG-02 never relies on deprecated algorithms', () => {
    for (const name of ['md5', 'sha', 'unixsum', 'unixcksum', 'adler', 'crc32c']) {
      expect(verifyContentDigest(`${name}=${rfc9530.appendix_d[name].value}`, input)).toEqual({
        ok: false,
        detail: 'no sha-256 or sha-512 member',
      });
    }
  });

  it('DIG-03 hashes the content as transferred (content coding applied)', () => {
    const b4 = rfc9530.content_digest_field_examples.find((e: { section: string }) => e.section === 'B.4');
    const brotli = Buffer.from(b4.content_hex_correct, 'hex');
    const field = (b4.field as string).replace(/^Repr-Digest:\s*/, '');
    expect(verifyContentDigest(field, brotli)).toEqual({ ok: true, algorithm: 'sha-256' });
    expect(verifyContentDigest(field, Buffer.from('{"hello": "world"}\n'))).toMatchObject({ ok: false });
    expect(brotliCompressSync(Buffer.from('{"hello": "world"}\n')).toString('hex')).toBe(b4.content_hex_correct);
  });

  it('DIG-04 ignores unknown members, checks the strongest active one, bounds the member count', () => {
    const sha256 = contentDigest(input);
    expect(verifyContentDigest(`${sha256}, foo=:AAAA:`, input)).toEqual({ ok: true, algorithm: 'sha-256' });
    expect(verifyContentDigest('foo=:AAAA:', input)).toMatchObject({ ok: false });
    // sha-512 is checked first: a wrong sha-512 fails even beside a right sha-256.
    expect(verifyContentDigest(`${sha256}, sha-512=:AAAA:`, input)).toMatchObject({
      ok: false,
      detail: 'sha-512 does not match the content',
    });
    const many = Array.from({ length: 11 }, (_v, i) => `x${i}=:AAAA:`).join(', ');
    expect(verifyContentDigest(`${sha256}, ${many}`, input)).toMatchObject({ ok: false });
    expect(
      verifyContentDigest(
        rfc9530.content_digest_field_examples[0].field.replace(/^Content-Digest:\s*/, ''),
        Buffer.from('{"hello": "world"}\n'),
      ),
    ).toEqual({
      ok: true,
      algorithm: 'sha-512',
    });
  });
});
