/**
 * The vector files themselves: every RFC vector names its source, the values the RFCs print
 * wrongly are the corrected ones (DEC-13), and the derived FAPI vector is exactly what its script
 * writes. Hashes are recomputed with node:crypto, independently of the library under test.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { vector } from './support/vectors';

const dir = join(__dirname, 'vectors');
const rfcFiles = readdirSync(dir).filter((f) => /^rfc\d+\.json$/.test(f));
const hash = (alg: string, data: string | Buffer) => createHash(alg).update(data).digest();

describe('test vectors', () => {
  it('keeps the RFC vectors used by the suites in the repository', () => {
    expect(rfcFiles.sort()).toEqual(
      ['6750', '7638', '7662', '8705', '9421', '9440', '9449', '9470', '9530', '9728'].map((n) => `rfc${n}.json`),
    );
  });

  it.each(rfcFiles)('%s names its RFC, and every vector with a section cites RFC and section', (file) => {
    const data = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    const number = file.slice(3, -5);
    expect(data.rfc).toBe(`RFC ${number}`);
    expect(data.url).toMatch(new RegExp(`^https://www\\.rfc-editor\\.org/rfc/rfc${number}(#|$)`));
    const visit = (value: unknown): void => {
      if (!value || typeof value !== 'object') return;
      const entry = value as Record<string, unknown>;
      if ('section' in entry) {
        expect(entry.cite).toMatch(new RegExp(`^RFC ${number}, (Section|Appendix) `));
        expect(entry.url).toMatch(new RegExp(`^https://www\\.rfc-editor\\.org/rfc/rfc${number}#(section|appendix)-`));
      }
      Object.values(entry).forEach(visit);
    };
    visit(data);
  });

  it('DEC-13 RFC 9421: the printed test-response Content-Digest does not match its body; the corrected one does', () => {
    const response = vector('rfc9421').test_messages['test-response'];
    const sha512 = `sha-512=:${hash('sha512', response.body).toString('base64')}:`;
    expect(response.corrected_content_digest).toBe(sha512);
    expect(response.message).toContain('Content-Digest: sha-512=:');
    expect(response.message).not.toContain(sha512);
    // B.2.4 signs the corrected value.
    const b24 = vector('rfc9421').cases.find((c: { id: string }) => c.id === 'B.2.4');
    expect(b24.signature_base).toContain(`"content-digest": ${sha512}`);
  });

  it('DEC-13 RFC 9530 B.4: the digest covers the corrected Brotli bytes, not the misprinted hex dump', () => {
    const b4 = vector('rfc9530').content_digest_field_examples.find((e: { section: string }) => e.section === 'B.4');
    const value = `sha-256=:${hash('sha256', Buffer.from(b4.content_hex_correct, 'hex')).toString('base64')}:`;
    expect(b4.field).toBe(`Repr-Digest: ${value}`);
    expect(hash('sha256', Buffer.from(b4.content_hex_as_printed, 'hex')).toString('base64')).not.toBe(value.slice(9, -1));
  });

  it('DEC-13 RFC 8705: the printed thumbprint is non-canonical base64url; the derived one is the SHA-256 of the RFC 9440 leaf', () => {
    const rfc8705 = vector('rfc8705');
    const printed = rfc8705.jwt_claims_example.claims.cnf['x5t#S256'];
    expect(Buffer.from(printed, 'base64url').toString('base64url')).not.toBe(printed);
    const leaf = new X509Certificate(vector('rfc9440').certificate_chain_pem.leaf);
    expect(hash('sha256', leaf.raw).toString('base64url')).toBe(rfc8705.derived_positive_vector.x5t_S256);
    expect(rfc8705.derived_positive_vector.certificate_pem).toBe(vector('rfc9440').certificate_chain_pem.leaf);
  });

  it('RFC 9530 Appendix D: the sha-256 and sha-512 sample values hash the sample input', () => {
    const rfc9530 = vector('rfc9530');
    for (const alg of ['sha-256', 'sha-512']) {
      expect(rfc9530.appendix_d[alg].value).toBe(`:${hash(alg.replace('-', ''), rfc9530.input).toString('base64')}:`);
    }
  });

  it('the derived FAPI vector is exactly what test/vectors/derive-fapi2.js writes from the RFC 9421 key', () => {
    const { render, file } = require('./vectors/derive-fapi2.js');
    expect(readFileSync(file, 'utf8')).toBe(render());
  });
});
