/**
 * RFC 9728 OAuth 2.0 Protected Resource Metadata, built from the guard's own configuration so
 * that it can never disagree with what the guard enforces.
 */

/** What the document says beyond what the guard's configuration already tells. */
export interface ResourceMetadataOptions {
  /** The resource identifier (RFC 9728 §2 `resource`). @default the first audience */
  resource?: string;
  /** `scopes_supported`. @default every scope the routes' policies name */
  scopesSupported?: readonly string[];
  /** Human-readable name (RECOMMENDED). */
  resourceName?: string;
  resourceDocumentation?: string;
  resourcePolicyUri?: string;
  resourceTosUri?: string;
  /** Where the keys that sign this API's responses are published (https). */
  jwksUri?: string;
  /** `resource_signing_alg_values_supported`: algorithms of signed responses. */
  signingAlgorithms?: readonly string[];
  /** `Cache-Control: max-age` of the document (RFC 9728 §7.10). @default 3600 */
  maxAgeSec?: number;
}

/** RFC 9728 §3.1: the well-known path goes between host and path of the resource identifier. */
export function metadataPath(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return `/.well-known/oauth-protected-resource${path}`;
}

export function metadataUrl(resource: string): string {
  return `${new URL(resource).origin}${metadataPath(resource)}`;
}

export interface MetadataFacts {
  resource: string;
  authorizationServers: readonly string[];
  scopes: readonly string[];
  dpopAlgorithms: readonly string[];
  mtls: boolean;
  authorizationDetailsTypes: readonly string[];
}

/** The document; parameters with zero values are left out (RFC 9728 §3.2, PRM-04). */
export function buildMetadata(facts: MetadataFacts, options: ResourceMetadataOptions): Record<string, unknown> {
  const doc: Record<string, unknown> = {
    resource: facts.resource,
    authorization_servers: [...facts.authorizationServers],
    scopes_supported: [...(options.scopesSupported ?? facts.scopes)],
    // FAPI 2.0 §5.3.4 #1–2: tokens in the Authorization header only.
    bearer_methods_supported: ['header'],
    dpop_signing_alg_values_supported: [...facts.dpopAlgorithms],
    // DPoP is required unless certificate-bound tokens are accepted as well.
    dpop_bound_access_tokens_required: !facts.mtls,
    tls_client_certificate_bound_access_tokens: facts.mtls,
    authorization_details_types_supported: [...facts.authorizationDetailsTypes],
    jwks_uri: options.jwksUri,
    resource_signing_alg_values_supported: options.signingAlgorithms ? [...options.signingAlgorithms] : undefined,
    resource_name: options.resourceName,
    resource_documentation: options.resourceDocumentation,
    resource_policy_uri: options.resourcePolicyUri,
    resource_tos_uri: options.resourceTosUri,
  };
  for (const [name, value] of Object.entries(doc)) {
    if (value === undefined || value === false || (Array.isArray(value) && value.length === 0)) delete doc[name];
  }
  return doc;
}
