/**
 * What the guard adds to a response of a route that signs them: FAPI 2.0 Message Signing
 * (§5.6.2.1, RFC 9421) bound to its request, UK Open Banking `x-jws-signature`, or, for Open
 * Finance Brasil, the handler's JSON returned as a JWT signed by the bank.
 */
import type { Authorized, SignedOutgoing } from './outcomes.js';
import type { GuardParts } from './parts.js';
import { signJwtBody, storedJwtData } from './regimes/br-signed-jwt.js';
import { signObBody } from './regimes/uk-ob-signature.js';
import { type OutgoingResponse, signResponse } from './signatures/fapi.js';

/**
 * The `data` claim of an Open Finance Brasil answer: the handler's JSON; or, for a stored answer
 * replayed to a retry (idempotency), the data of the JWT the bank first sent when that is what
 * was stored, signed anew with a fresh `iat` and `jti` ("Idempotência": the same result), with the
 * key the bank signs with now. A body that is neither throws, and nothing unsigned is sent.
 */
function dataToSign(text: string, replayed: boolean): unknown {
  if (text === '') return {};
  const stored = replayed ? storedJwtData(text) : undefined;
  return stored ? stored.data : JSON.parse(text);
}

/** True when `auth` came from a route whose responses must be signed. */
export function signsResponse(parts: GuardParts, auth: Authorized | null | undefined): boolean {
  return auth != null && (parts.marks.signing.has(auth) || parts.marks.obSigning.has(auth) || parts.marks.brSigning.has(auth));
}

/** The headers (and for a signed JWT body, the bytes) of a signed response; `undefined` when the route does not sign. */
export function signOutgoing(parts: GuardParts, auth: Authorized, response: OutgoingResponse): SignedOutgoing | undefined {
  const { opts, marks } = parts;
  const brazil = opts.messageSigning?.openFinanceBrasil;
  if (marks.brSigning.has(auth) && brazil?.signer) {
    const bank = { key: brazil.signer, iss: brazil.organisationId };
    const data = dataToSign(Buffer.from(response.body ?? new Uint8Array()).toString('utf8'), response.replayed === true);
    // Known: a route that signs these answers refuses a client without an organisation (complete.ts).
    const audience = brazil.organisations.get(auth.clientId) as string;
    const jwt = Buffer.from(signJwtBody(data, bank, audience, opts.now() / 1000));
    return { headers: { 'content-type': 'application/jwt', 'content-length': String(jwt.length) }, body: jwt };
  }
  const signer = opts.messageSigning?.ukOpenBanking?.signer;
  if (marks.obSigning.has(auth) && signer) {
    // OB Read/Write API "Message Signing": the response body bytes, signed by the bank.
    return { headers: { 'x-jws-signature': signObBody(response.body ?? new Uint8Array(), signer, opts.now() / 1000) } };
  }
  const context = marks.signing.get(auth);
  const key = opts.messageSigning?.responseKey;
  if (!context || !key) return undefined;
  const signed = signResponse(context, response, key, opts.now() / 1000);
  const hook = opts.messageSigning?.onSignedExchange;
  if (hook) {
    try {
      Promise.resolve(hook(signed.record)).catch(() => undefined);
    } catch {
      // Documented: failures of the response hook are ignored.
    }
  }
  return signed;
}
