/**
 * FAPI 2.0 Message Signing for tests: a client that signs requests the FAPI way (RFC 9421 with
 * `tag="fapi-2-request"`, RFC 9530 `Content-Digest`), valid or deliberately faulty, and a
 * verifier for the signed responses of a protected API (§5.6.2.2).
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import {
  contentDigest,
  type GuardHeaders,
  type HttpSignatureAlgorithm,
  type MessageSignature,
  type NamedSignatureKey,
  parseSignatures,
  REQUEST_TAG,
  RESPONSE_TAG,
  requiredRequestComponents,
  type SignatureJwk,
  type SignedMessage,
  signatureBase,
  signBase,
  signingKey,
  verificationKey,
  verifyContentDigest,
  verifyMessageSignature,
} from '@fapi-guard/core';
import { type InnerList, type Item, serializeDictionary } from 'structured-headers';

export type SigningAlgorithm = 'ed25519' | 'ecdsa-p256-sha256' | 'rsa-pss-sha512';

export interface SignRequestInput {
  method: string;
  /** The absolute URL the request goes to (`@target-uri`). */
  url: string;
  /** The headers the request will carry (Authorization, DPoP, Content-Type…). */
  headers: Record<string, string>;
  body?: string | Uint8Array;
}

/** Variations, most of them for negative tests. Defaults make a valid FAPI request signature. */
export interface SignRequestOptions {
  /** Components to cover. @default `@method`, `@target-uri`, `authorization`, `dpop` when sent, `content-digest` with a body */
  components?: readonly string[];
  /** @default "fapi-2-request" */
  tag?: string | null;
  /** `created` in seconds; `null` leaves it out. @default now */
  created?: number | null;
  expires?: number;
  /** @default this client's kid */
  keyid?: string;
  /** An `alg` parameter (normally left out). */
  alg?: string;
  /** @default "sig1" */
  label?: string;
  /** The `Content-Digest` value to send; `false` sends none. @default sha-256 of the body */
  contentDigest?: string | false;
  /** Sign with another key (the keyid stays as given). */
  signingJwk?: SignatureJwk;
  /**
   * Sign this hand-written base and send this `Signature-Input` member value instead of building
   * them: for signatures no correct client makes (duplicated or unknown components).
   */
  rawBase?: { signatureInput: string; base: string };
}

const NODE_KEY: Record<SigningAlgorithm, Parameters<typeof generateKeyPairSync>> = {
  ed25519: ['ed25519'] as never,
  'ecdsa-p256-sha256': ['ec', { namedCurve: 'P-256' }] as never,
  'rsa-pss-sha512': ['rsa', { modulusLength: 2048 }] as never,
};

function bytes(body: string | Uint8Array | undefined): Uint8Array {
  return typeof body === 'string' ? Buffer.from(body) : (body ?? new Uint8Array());
}

function lowerCased(headers: Record<string, string | readonly string[]>): GuardHeaders {
  const result: Record<string, readonly string[]> = {};
  for (const [name, value] of Object.entries(headers)) result[name.toLowerCase()] = typeof value === 'string' ? [value] : value;
  return result;
}

/** A client with a message-signing key pair. */
export class MessageSigningClient {
  /** The imported signing key, made once. */
  private readonly key: NamedSignatureKey;

  private constructor(
    readonly privateJwk: SignatureJwk,
    readonly publicJwk: SignatureJwk,
  ) {
    this.key = signingKey(privateJwk, 'client key');
  }

  /** A new key pair (`kid` random unless given). */
  static generate(algorithm: SigningAlgorithm = 'ed25519', kid: string = randomUUID()): MessageSigningClient {
    const { privateKey } = generateKeyPairSync(...(NODE_KEY[algorithm] as [never, never]));
    const privateJwk = { ...(privateKey as unknown as import('node:crypto').KeyObject).export({ format: 'jwk' }), kid } as SignatureJwk;
    return MessageSigningClient.fromJwk(privateJwk);
  }

  /** A client for a private JWK you have (with `kid`). */
  static fromJwk(privateJwk: SignatureJwk): MessageSigningClient {
    return new MessageSigningClient(privateJwk, signingKey(privateJwk, 'client key').publicJwk);
  }

  get kid(): string {
    return this.privateJwk.kid as string;
  }

  /** The public JWK set to register for this client. */
  get jwks(): { keys: SignatureJwk[] } {
    return { keys: [this.publicJwk] };
  }

  /**
   * The headers to add to `request`: `Content-Digest` (with a body), `Signature-Input`,
   * `Signature`.
   */
  sign(request: SignRequestInput, options: SignRequestOptions = {}): Record<string, string> {
    const body = bytes(request.body);
    const added: Record<string, string> = {};
    const digest = options.contentDigest ?? (body.length > 0 ? contentDigest(body) : false);
    if (digest !== false) added['content-digest'] = digest;
    const headers = lowerCased({ ...request.headers, ...added });
    const components = options.components ?? requiredRequestComponents(headers, body.length > 0);
    const params = new Map<string, string | number>();
    const created = options.created === undefined ? Math.floor(Date.now() / 1000) : options.created;
    if (created !== null) params.set('created', created);
    if (options.expires !== undefined) params.set('expires', options.expires);
    params.set('keyid', options.keyid ?? this.kid);
    if (options.alg) params.set('alg', options.alg);
    const tag = options.tag === undefined ? REQUEST_TAG : options.tag;
    if (tag !== null) params.set('tag', tag);
    const input: InnerList = [components.map((name): Item => [name, new Map()]), params];
    const label = options.label ?? 'sig1';
    const base = options.rawBase?.base ?? signatureBase({ method: request.method, url: request.url, headers }, input);
    const signature = signBase(base, options.signingJwk ? signingKey(options.signingJwk, 'client key') : this.key);
    added['signature-input'] = options.rawBase
      ? `${label}=${options.rawBase.signatureInput}`
      : serializeDictionary(new Map([[label, input]]));
    added.signature = serializeDictionary(new Map([[label, [signature.slice().buffer as ArrayBuffer, new Map()]]]));
    return added;
  }
}

export interface SignedResponseInput {
  /** The request as sent (its headers include the signature headers, if it was signed). */
  request: SignRequestInput;
  response: { status: number; headers: Record<string, string | readonly string[]>; body: string | Uint8Array };
  /** The API's response-verification keys (its published JWK set). */
  jwks: { keys: readonly SignatureJwk[] };
  /** @default now */
  now?: number;
  /** Accepted age of `created`, in seconds. @default 60 */
  maxAgeSec?: number;
}

export type SignedResponseCheck =
  | { ok: true; keyid: string; algorithm: HttpSignatureAlgorithm; components: readonly string[]; base: string }
  | { ok: false; detail: string };

/**
 * Checks a signed response as a FAPI client must (Message Signing §5.6.2.2): a signature tagged
 * `fapi-2-response` by one of the API's keys, covering `@status`, the response `content-digest`
 * (which must match the body), the request's `@method` and `@target-uri` and, for a signed
 * request, its `signature` and `signature-input`.
 */
export function verifySignedResponse(input: SignedResponseInput): SignedResponseCheck {
  const requestMessage: SignedMessage = {
    method: input.request.method,
    url: input.request.url,
    headers: lowerCased(input.request.headers),
  };
  const message: SignedMessage = { status: input.response.status, headers: lowerCased(input.response.headers), request: requestMessage };
  let signatures: Map<string, MessageSignature>;
  try {
    signatures = parseSignatures(message);
  } catch (e) {
    return { ok: false, detail: (e as Error).message };
  }
  const keys = new Map(input.jwks.keys.map((jwk) => [jwk.kid, verificationKey(jwk)]));
  const body = bytes(input.response.body);
  const requestSignatures = parseSignatures(requestMessage);
  const failures: string[] = [];
  for (const signature of signatures.values()) {
    if (signature.params.get('tag') !== RESPONSE_TAG) continue;
    const covered = new Set(signature.components);
    const required = ['"@status"', '"@method";req', '"@target-uri";req'];
    if (body.length > 0) required.push('"content-digest"');
    for (const label of requestSignatures.keys()) required.push(`"signature";req;key="${label}"`, `"signature-input";req;key="${label}"`);
    const missing = required.filter((c) => !covered.has(c));
    if (missing.length > 0) {
      failures.push(`${signature.label} does not cover ${missing.join(', ')}`);
      continue;
    }
    if (body.length > 0) {
      const digest = verifyContentDigest(([] as string[]).concat(input.response.headers['content-digest'] ?? []).join(', '), body);
      if (!digest.ok) {
        failures.push(`Content-Digest: ${digest.detail}`);
        continue;
      }
    }
    const keyid = signature.params.get('keyid');
    const result = verifyMessageSignature(message, signature, {
      key: (id) => (id === undefined ? undefined : keys.get(id)),
      now: input.now ?? Date.now() / 1000,
      maxAgeSec: input.maxAgeSec ?? 60,
      maxFutureSec: 5,
    });
    if (!result.ok) {
      failures.push(`${signature.label}: ${result.detail}`);
      continue;
    }
    const key = keys.get(keyid as string);
    return {
      ok: true,
      keyid: keyid as string,
      algorithm: key?.algorithm as HttpSignatureAlgorithm,
      components: signature.components,
      base: result.base,
    };
  }
  return { ok: false, detail: failures.length > 0 ? failures.join('; ') : `no signature tagged ${RESPONSE_TAG}` };
}
