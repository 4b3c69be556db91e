/**
 * The documents the guard serves itself: the RFC 9728 Protected Resource Metadata at its
 * well-known path, built from the configuration and the compiled routes so that it can never
 * disagree with what the guard enforces, and the JWK set that verifies signed responses.
 */
import { buildMetadata, type ResourceMetadataOptions } from './metadata.js';
import type { ResponseParts } from './outcomes.js';
import type { GuardParts } from './parts.js';

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The response for `GET`/`HEAD` of a published path, or `undefined` for any other request. */
export function publishedDocument(parts: GuardParts, method: string, path: string): ResponseParts | undefined {
  const { opts, published } = parts;
  if (method !== 'GET' && method !== 'HEAD') return undefined;
  const target = path.split('?', 1)[0];
  if (published.responseJwksPath && target === published.responseJwksPath) {
    const jwk = opts.messageSigning?.responseKey?.publicJwk;
    return {
      status: 200,
      headers: { 'content-type': 'application/jwk-set+json', 'cache-control': 'max-age=3600' },
      body: method === 'HEAD' ? '' : JSON.stringify({ keys: [jwk] }),
    };
  }
  if (!published.wellKnownPath || !published.metadataResource || target !== published.wellKnownPath) return undefined;
  const doc = buildMetadata(
    {
      resource: published.metadataResource,
      authorizationServers: opts.issuers.map((i) => i.issuer),
      scopes: [...published.knownScopes],
      dpopAlgorithms: opts.dpopAlgorithms,
      mtls: opts.mtls !== undefined,
      authorizationDetailsTypes: [...published.knownDetailTypes],
    },
    {
      // SIG-15: the response-verification keys, unless the document names other ones.
      jwksUri: opts.messageSigning?.jwksUri,
      signingAlgorithms: opts.messageSigning?.responseKey?.publicJwk.alg ? [opts.messageSigning.responseKey.publicJwk.alg] : undefined,
      ...definedOnly(opts.resourceMetadata as ResourceMetadataOptions),
    },
  );
  return {
    status: 200,
    headers: {
      'content-type': 'application/json; charset=utf-8',
      // RFC 9728 §7.10: cacheable.
      'cache-control': `max-age=${opts.resourceMetadata?.maxAgeSec ?? 3600}`,
    },
    body: method === 'HEAD' ? '' : JSON.stringify(doc),
  };
}
