/**
 * Two bounds of the binding checks, each pinned at its edge: how far in the future a DPoP proof's
 * `iat` may be (RFC 9449 §11.1, FAPI 2.0 §5.3.2.1), with the refusal naming that `iat`; and the
 * shared secret a TLS-terminating proxy sends (RFC 9440 deployments), which must be text as
 * configured, never a value whose text would pass.
 */
import { CertificateSource, DpopVerifier, MemoryReplayStore } from '@fapi-guard/core';
import { vector } from '../../../test/support/vectors';

const rfc9449 = vector('rfc9449');
const resourceProof = rfc9449.proofs.find((p: { request: { method: string } }) => p.request.method === 'GET');

/** The RFC 9449 §4.1 resource request, checked at `nowSec` with `maxFutureSec` 10. */
function verifyAt(nowSec: number) {
  const verifier = new DpopVerifier({
    algorithms: ['ES256'],
    maxAgeSec: 60,
    maxFutureSec: 10,
    replayStore: new MemoryReplayStore({ clock: () => nowSec * 1000 }),
    nonces: undefined,
    now: () => nowSec * 1000,
  });
  return verifier.verify({
    proofs: [resourceProof.jwt],
    method: 'GET',
    url: 'https://resource.example.org/protectedresource',
    accessToken: rfc9449.ath.access_token as string,
    requireNonce: false,
    boundJkt: rfc9449.jkt.value,
  });
}

describe('a proof from the future', () => {
  it('DPOP-13 accepts an iat maxFutureSec ahead, refuses one a second further and says which iat', async () => {
    const { iat } = resourceProof.payload;
    expect(await verifyAt(iat - 10)).toEqual({ ok: true, jkt: rfc9449.jkt.value });
    expect(await verifyAt(iat - 11)).toEqual({ ok: false, reason: 'dpop_proof_invalid', detail: `iat ${iat} is in the future` });
  });
});

describe('mtls.proxy.sharedSecret is text', () => {
  // CertificateSource is public: its own check holds without createGuard's option check in front.
  const withSecret = (sharedSecret: unknown) => () =>
    new CertificateSource({ proxy: { format: 'rfc9440', sharedSecret: sharedSecret as never } });

  it('a number or a list whose text would pass (JavaScript configuration) is a start-up error', () => {
    expect(withSecret({ header: 'x-proxy-secret', value: 'a'.repeat(16) })).not.toThrow();
    for (const value of [1234567890123456, ['a'.repeat(16)]]) {
      expect(String(value)).toMatch(/^[\x21-\x7e]{16,}$/);
      expect(withSecret({ header: 'x-proxy-secret', value })).toThrow(/at least 16 visible ASCII characters/);
    }
    expect(withSecret({ header: 7, value: 'a'.repeat(16) })).toThrow(/needs a header name/);
  });
});
