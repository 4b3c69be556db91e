/**
 * FAPI 2.0 Message Signing (§5.6) on top of RFC 9421: which request signatures count, what they
 * must cover, and the signature the resource server puts on its responses.
 *
 * Requests (§5.6.1.2): a signature counts only when it is tagged `fapi-2-request` and made with a
 * key of the client the access token was issued to — never chosen by its label (RFC 9421 §3.2,
 * §7.2.5). It must cover `@method`, `@target-uri`, `authorization`, `dpop` when a DPoP header is
 * present, `content-digest` when there is a body (at least one content octet), carry `created`
 * within the window, and the digest is recomputed over the received bytes (RFC 9530 §2).
 *
 * Responses (§5.6.2.1): `tag="fapi-2-response"`, `created`, `@status`, the response's own
 * `content-digest`, and the request bound in: every component the request signature covered
 * with `req`, plus its `signature` and `signature-input` members (and every request component, RFC 9421 §7.3.7); for an unsigned
 * request `@method`, `@target-uri` and `content-digest` with `req`.
 */
import { type InnerList, type Item, serializeDictionary, serializeInnerList } from 'structured-headers';
import { type GuardHeaders, headerLines } from '../request.js';
import { SIGNATURE_BASE_BOUNDS, type SignedMessage, signatureBase } from './base.js';
import type { ClientKeys } from './client-keys.js';
import { contentDigest, type DigestCheck, verifyContentDigest } from './digest.js';
import { type NamedSignatureKey, signBase } from './keys.js';
import { type HttpSignatureAlgorithm, type MessageSignature, parseSignatures, verifyMessageSignature } from './verify.js';

export const REQUEST_TAG = 'fapi-2-request';
export const RESPONSE_TAG = 'fapi-2-response';

/** A request signature that passed every check. */
export interface VerifiedRequestSignature {
  label: string;
  keyid: string;
  algorithm: HttpSignatureAlgorithm;
  created: number;
  /** Covered component identifiers, serialised. */
  components: readonly string[];
}

/** What must be kept to prove a signed exchange later (non-repudiation). */
export interface SignedExchangeRecord {
  /** A client's signed request, or the resource server's signed response. */
  direction: 'request' | 'response';
  clientId: string;
  /** SHA-256 handle of the access token (never the token string, except inside `base`, see below). */
  tokenHash: string;
  interactionId?: string;
  method: string;
  /** The `@target-uri` of the request. */
  url: string;
  /** Responses: the status sent. */
  status?: number;
  label: string;
  keyid: string;
  algorithm: HttpSignatureAlgorithm;
  created: number;
  /** The `Signature-Input` member, e.g. `sig1=("@method" …);created=…`. */
  signatureInput: string;
  /** The `Signature` member, e.g. `sig1=:…:`. */
  signature: string;
  components: readonly string[];
  /**
   * The signature base (RFC 9421 §2.5): every covered value, exactly as signed, so the signature
   * can be checked again later with the signer's public key. It includes the `authorization`
   * value (the access token) when that was covered: store it as a secret.
   */
  base: string;
  /** `Content-Digest` of the message's content, when there was content. */
  contentDigest?: string;
  /** Responses: the request signature they answer, when the request was signed. */
  request?: { label: string; keyid: string; signatureInput: string; signature: string };
}

export type RequestSignatureResult =
  | { ok: true; verified: VerifiedRequestSignature; record: SignedExchangeRecord; signature: MessageSignature }
  | { ok: true; verified: undefined }
  | { ok: false; reason: 'signature_missing' | 'signature_invalid' | 'signature_keys_unavailable'; detail: string };

export interface RequestSignatureInput {
  message: SignedMessage & { method: string; url: string };
  /** The raw content bytes, as transferred (content coding applied); empty or undefined = no body. */
  body: Uint8Array | undefined;
  clientId: string;
  tokenHash: string;
  interactionId?: string;
  /** `optional`: a request without a `fapi-2-request` signature passes unsigned. */
  mode: 'required' | 'optional';
  keys: ClientKeys;
  now: number;
  maxAgeSec: number;
  maxFutureSec: number;
}

/** The components a FAPI request signature must cover for this request (SIG-05, SIG-07, SIG-08). */
export function requiredRequestComponents(headers: GuardHeaders, hasBody: boolean): string[] {
  const required = ['@method', '@target-uri', 'authorization'];
  if (headerLines(headers, 'dpop').length > 0) required.push('dpop');
  if (hasBody) required.push('content-digest');
  return required;
}

/** RFC 9421 §5.1 `Accept-Signature`: what a client should sign for this request (HMS-13). */
export function acceptSignature(headers: GuardHeaders, hasBody: boolean): string {
  const items: Item[] = requiredRequestComponents(headers, hasBody).map((name) => [name, new Map()]);
  return serializeDictionary(new Map([['sig1', [items, new Map([['tag', REQUEST_TAG]])]]]));
}

/** True when the request has content to sign (at least one content octet). */
function hasContent(body: Uint8Array | undefined): body is Uint8Array {
  return body !== undefined && body.length > 0;
}

/** Components covered without parameters (the FAPI rules name plain fields and derived components). */
function plainComponents(signature: MessageSignature): Set<string> {
  return new Set(signature.input[0].filter(([, params]) => params.size === 0).map(([name]) => String(name)));
}

/**
 * What the candidates of one request share: the body's digest check (the body is hashed once)
 * and one budget of signature base (RFC 9421 §2.5) for all of them, so that the cost of a
 * request does not grow with the number of signatures it carries.
 */
interface CandidateCosts {
  digest: () => DigestCheck;
  /** Characters of signature base the remaining candidates may build together. */
  baseBudget: number;
}

/** Verifies one candidate against the FAPI rules and RFC 9421: its key and signature base, or why it failed. */
async function checkCandidate(
  input: RequestSignatureInput,
  signature: MessageSignature,
  costs: CandidateCosts,
): Promise<{ unavailable?: boolean; detail: string } | { key: NamedSignatureKey; base: string }> {
  const { message, body } = input;
  const covered = plainComponents(signature);
  for (const name of requiredRequestComponents(message.headers, hasContent(body))) {
    if (!covered.has(name)) return { detail: `${signature.label} does not cover ${name}` };
  }
  const keyid = signature.params.get('keyid');
  if (typeof keyid !== 'string') return { detail: `${signature.label} has no keyid` };
  const found = await input.keys.key(input.clientId, keyid);
  if (!found.ok) return { unavailable: found.unavailable, detail: found.detail };
  // SIG-09: coverage protects nothing unless the digest matches the bytes received.
  if (covered.has('content-digest')) {
    const checked = costs.digest();
    if (!checked.ok) return { detail: `Content-Digest: ${checked.detail}` };
  }
  if (costs.baseBudget <= 0) return { detail: `${signature.label}: the signature bases of this request are over their bound` };
  const result = verifyMessageSignature(message, signature, {
    key: () => found.key,
    now: input.now,
    maxAgeSec: input.maxAgeSec,
    maxFutureSec: input.maxFutureSec,
    maxBaseLength: costs.baseBudget,
  });
  costs.baseBudget -= result.ok ? result.base.length : result.spent;
  return result.ok ? { key: found.key, base: result.base } : { detail: `${signature.label}: ${result.detail}` };
}

/** Serialises one member of `Signature-Input` / `Signature` as sent (label=value). */
function member(label: string, value: InnerList | Item): string {
  return serializeDictionary(new Map([[label, value]]));
}

/**
 * Verifies the FAPI request signature(s) of a request whose token names `clientId`. Every
 * `fapi-2-request` signature is a candidate; the first that passes everything counts (a valid
 * signature next to an attacker's one still passes, HMS-02). The candidates share one budget of
 * signature base (`SIGNATURE_BASE_BOUNDS.maxBaseLength`): one that used it up leaves none for
 * those after it.
 */
export async function verifyRequestSignature(input: RequestSignatureInput): Promise<RequestSignatureResult> {
  let signatures: Map<string, MessageSignature>;
  try {
    signatures = parseSignatures(input.message);
  } catch (e) {
    return { ok: false, reason: 'signature_invalid', detail: (e as Error).message };
  }
  const candidates = [...signatures.values()].filter((s) => s.params.get('tag') === REQUEST_TAG);
  if (candidates.length === 0) {
    if (input.mode === 'optional') return { ok: true, verified: undefined };
    const detail = signatures.size === 0 ? 'no Signature / Signature-Input' : `no signature tagged ${REQUEST_TAG}`;
    return { ok: false, reason: 'signature_missing', detail };
  }
  const failures: string[] = [];
  let unavailable = false;
  let digest: DigestCheck | undefined;
  const costs: CandidateCosts = {
    digest: () =>
      (digest ??= verifyContentDigest(headerLines(input.message.headers, 'content-digest').join(', '), input.body ?? new Uint8Array())),
    baseBudget: SIGNATURE_BASE_BOUNDS.maxBaseLength,
  };
  for (const signature of candidates) {
    const outcome = await checkCandidate(input, signature, costs);
    if ('detail' in outcome) {
      failures.push(outcome.detail);
      unavailable ||= outcome.unavailable === true;
      continue;
    }
    const { key, base } = outcome;
    const created = signature.params.get('created') as number;
    const verified: VerifiedRequestSignature = {
      label: signature.label,
      keyid: key.keyid,
      algorithm: key.algorithm,
      created,
      components: signature.components,
    };
    const record: SignedExchangeRecord = {
      direction: 'request',
      clientId: input.clientId,
      tokenHash: input.tokenHash,
      ...(input.interactionId ? { interactionId: input.interactionId } : {}),
      method: input.message.method,
      url: input.message.url,
      label: signature.label,
      keyid: key.keyid,
      algorithm: key.algorithm,
      created,
      signatureInput: member(signature.label, signature.input),
      signature: member(signature.label, [signature.signature.slice().buffer as ArrayBuffer, new Map()]),
      components: signature.components,
      base,
      ...(hasContent(input.body) ? { contentDigest: headerLines(input.message.headers, 'content-digest').join(', ') } : {}),
    };
    return { ok: true, verified, record, signature };
  }
  // A client whose keys cannot be fetched right now: 503, not a verdict on the signature.
  if (unavailable) return { ok: false, reason: 'signature_keys_unavailable', detail: failures.join('; ') };
  return { ok: false, reason: 'signature_invalid', detail: failures.join('; ') };
}

/** What the response signer keeps of the request until the response is sent (HMS-14). */
export interface ResponseSigningContext {
  request: SignedMessage & { method: string; url: string };
  /** The request signature that was verified, if any. */
  requestSignature: MessageSignature | undefined;
  requestRecord: SignedExchangeRecord | undefined;
  clientId: string;
  tokenHash: string;
  interactionId?: string;
}

export interface OutgoingResponse {
  status: number;
  /** The response header lines so far, names lower-cased. */
  headers: GuardHeaders;
  /** The content; empty or undefined for none (HEAD, 204, 304). */
  body: Uint8Array | undefined;
  /**
   * True for a stored response replayed to a retry (idempotency keys): an Open Finance Brasil
   * answer stored as the bank's signed JWT is then signed anew from its `data`. @default false
   */
  replayed?: boolean;
}

export interface SignedResponse {
  /**
   * Headers to set: `content-digest` (when there is content), `signature-input`, `signature`,
   * and `cache-control` with `no-transform` added to the response's own directives.
   */
  headers: Record<string, string>;
  record: SignedExchangeRecord;
}

const component = (name: string, params: [string, string | boolean][] = []): Item => [name, new Map(params)];

/** The `no-transform` directive among comma-separated Cache-Control directives (RFC 9111 §5.2). */
const NO_TRANSFORM = /(?:^|,)\s*no-transform\s*(?:,|$)/i;

/** Signs a response the FAPI way (SIG-10 … SIG-14). */
export function signResponse(
  context: ResponseSigningContext,
  response: OutgoingResponse,
  key: NamedSignatureKey,
  now: number,
): SignedResponse {
  const added: Record<string, string> = {};
  // The lines the base reads: the response's own, with the Content-Digest sent (below).
  const headers: Record<string, readonly string[]> = { ...response.headers };
  const items: Item[] = [component('@status')];
  if (headerLines(headers, 'content-type').length > 0) items.push(component('content-type'));
  if (hasContent(response.body)) {
    // SIG-13: the digest of exactly the bytes sent; sha-256 is an RFC 9530 Active algorithm.
    added['content-digest'] = contentDigest(response.body, 'sha-256');
    headers['content-digest'] = [added['content-digest']];
    items.push(component('content-digest'));
  }
  const seen = new Set<string>();
  const push = (item: Item) => {
    const id = serializeInnerList([[item], new Map()]);
    if (!seen.has(id)) {
      seen.add(id);
      items.push(item);
    }
  };
  const signed = context.requestSignature;
  push(component('@method', [['req', true]]));
  push(component('@target-uri', [['req', true]]));
  if (signed) {
    // DEC-05 / SIG-14: every component the request signature covered, then the signature itself.
    for (const [name, params] of signed.input[0]) push([name, new Map([...params, ['req', true]])]);
    push(
      component('signature', [
        ['req', true],
        ['key', signed.label],
      ]),
    );
    push(
      component('signature-input', [
        ['req', true],
        ['key', signed.label],
      ]),
    );
  } else if (headerLines(context.request.headers, 'content-digest').length > 0) {
    push(component('content-digest', [['req', true]]));
  }
  // RFC 9111 §5.2.2.6: the content must reach the client as digested and signed. Compression
  // middleware mounted around the route (hono/compress, expressjs/compression) and proxies honour
  // no-transform; without it they re-code the body under a Content-Digest of other bytes.
  const cacheControl = headerLines(response.headers, 'cache-control').join(', ');
  if (!NO_TRANSFORM.test(cacheControl)) added['cache-control'] = cacheControl ? `${cacheControl}, no-transform` : 'no-transform';
  const label = 'sig1';
  const input: InnerList = [
    items,
    new Map<string, string | number>([
      ['created', Math.floor(now)],
      ['keyid', key.keyid],
      ['tag', RESPONSE_TAG],
    ]),
  ];
  const message: SignedMessage = { status: response.status, headers, request: context.request };
  // This side's own message: it covers what the verified request signature covered, already bounded.
  const base = signatureBase(message, input, null);
  const value = signBase(base, key);
  added['signature-input'] = member(label, input);
  added.signature = member(label, [value.slice().buffer as ArrayBuffer, new Map()]);
  const req = context.requestRecord;
  const record: SignedExchangeRecord = {
    direction: 'response',
    clientId: context.clientId,
    tokenHash: context.tokenHash,
    ...(context.interactionId ? { interactionId: context.interactionId } : {}),
    method: context.request.method,
    url: context.request.url,
    status: response.status,
    label,
    keyid: key.keyid,
    algorithm: key.algorithm,
    created: Math.floor(now),
    signatureInput: added['signature-input'],
    signature: added.signature,
    components: items.map((item) => serializeInnerList([[item], new Map()]).slice(1, -1)),
    base,
    ...(added['content-digest'] ? { contentDigest: added['content-digest'] } : {}),
    ...(req ? { request: { label: req.label, keyid: req.keyid, signatureInput: req.signatureInput, signature: req.signature } } : {}),
  };
  return { headers: added, record };
}
