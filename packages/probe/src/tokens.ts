/**
 * Where the probe's access tokens come from: a client-credentials grant at a real authorization
 * server (oauth4webapi, DPoP- or certificate-bound), or a token the user already holds.
 */
import type { CryptoKey, JWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { type ClientCertificate, joinedHeaders, type Sender } from './http.js';
import type { DpopKey } from './jws.js';

export interface AuthorizationServer {
  /** Issuer identifier; its metadata is discovered (RFC 8414, then OpenID). */
  issuer: string;
  clientId: string;
  /** `client_secret_post`. */
  clientSecret?: string;
  /** `private_key_jwt`: the client's private JWK. */
  clientPrivateKey?: JWK;
}

export interface IssuerSession {
  metadata: oauth.AuthorizationServer;
  /** Requests a token for `scope`, bound to the DPoP key or the certificate. */
  token(scope: string | undefined): Promise<string>;
}

/** Discovers the issuer and returns a client for its token endpoint. */
export async function connect(
  server: AuthorizationServer,
  binding: { dpopKey?: DpopKey; certificate?: ClientCertificate },
  sender: Sender,
): Promise<IssuerSession> {
  const issuer = new URL(server.issuer);
  const common = {
    [oauth.customFetch]: fetchThrough(sender, binding.certificate),
    // http: only for a loopback issuer (development and the probe's own tests).
    [oauth.allowInsecureRequests]: issuer.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(issuer.hostname),
  };
  const metadata = await discover(issuer, common);
  const client: oauth.Client = { client_id: server.clientId };
  const clientAuth = server.clientPrivateKey
    ? oauth.PrivateKeyJwt(await importPrivate(server.clientPrivateKey))
    : server.clientSecret !== undefined
      ? oauth.ClientSecretPost(server.clientSecret)
      : binding.certificate
        ? oauth.TlsClientAuth()
        : oauth.None();
  const DPoP = binding.dpopKey
    ? oauth.DPoP(client, { privateKey: binding.dpopKey.privateKey, publicKey: binding.dpopKey.publicKey })
    : undefined;
  const grant = async (scope: string | undefined) => {
    const parameters = new URLSearchParams(scope ? { scope } : {});
    const response = await oauth.clientCredentialsGrantRequest(metadata, client, clientAuth, parameters, {
      ...common,
      ...(DPoP ? { DPoP } : {}),
    });
    return oauth.processClientCredentialsResponse(metadata, client, response);
  };
  return {
    metadata,
    async token(scope) {
      let result: oauth.TokenEndpointResponse;
      try {
        try {
          result = await grant(scope);
        } catch (e) {
          // RFC 9449 §8: the AS may ask for a nonce once; oauth4webapi has stored it.
          if (!oauth.isDPoPNonceError(e)) throw e;
          result = await grant(scope);
        }
      } catch (e) {
        throw new AuthorizationServerError(
          `token request (client-credentials grant, client_id ${JSON.stringify(server.clientId)}${scope ? `, scope ${JSON.stringify(scope)}` : ''}) at ${metadata.token_endpoint} failed: ${answer(e)}: check the client id and its authentication (--client-id, --client-secret, --client-key or --cert; library: authorizationServer.clientId, clientSecret, clientPrivateKey, certificate), that it may use the client_credentials grant and this scope, and that the token endpoint is reachable`,
        );
      }
      return result.access_token;
    },
  };
}

/** Getting the probe's tokens failed: the message names the step, the URL, what came back and what to check. */
export class AuthorizationServerError extends Error {}

const CHECK_ISSUER =
  'check the issuer identifier (--issuer; library: authorizationServer.issuer) — the URL whose metadata is at /.well-known/oauth-authorization-server (RFC 8414) or /.well-known/openid-configuration — and that the authorization server runs';

/** RFC 8414 §3.1 metadata, else OpenID Connect Discovery 1.0 §4 (when the first is 404). */
async function discover(issuer: URL, common: oauth.DiscoveryRequestOptions): Promise<oauth.AuthorizationServer> {
  const path = issuer.pathname === '/' ? '' : issuer.pathname.replace(/\/$/, '');
  const at = {
    oauth2: `${issuer.origin}/.well-known/oauth-authorization-server${path}`,
    oidc: `${issuer.origin}${path}/.well-known/openid-configuration`,
  };
  const get = async (algorithm: keyof typeof at) => {
    try {
      return await oauth.discoveryRequest(issuer, { ...common, algorithm });
    } catch (e) {
      throw discoveryFailed(at[algorithm], answer(e));
    }
  };
  let algorithm: keyof typeof at = 'oauth2';
  let response = await get(algorithm);
  // RFC 8414 §3.1 first; OpenID Connect Discovery 1.0 §4 when that is not published.
  if (response.status === 404) {
    algorithm = 'oidc';
    response = await get(algorithm);
  }
  if (response.status !== 200) throw discoveryFailed(at[algorithm], `HTTP ${response.status}`);
  try {
    return await oauth.processDiscoveryResponse(issuer, response);
  } catch (e) {
    throw discoveryFailed(at[algorithm], answer(e));
  }
}

const discoveryFailed = (url: string, what: string) =>
  new AuthorizationServerError(`issuer discovery at ${url} failed: ${what}: ${CHECK_ISSUER}`);

/** What came back, one line: the HTTP status and OAuth error, or the network error. */
function answer(e: unknown): string {
  if (e instanceof oauth.ResponseBodyError)
    return `HTTP ${e.status} error=${e.error}${e.error_description ? ` ${JSON.stringify(e.error_description.slice(0, 200))}` : ''}`;
  if (e instanceof oauth.WWWAuthenticateChallengeError)
    return `HTTP ${e.status} ${e.cause.map((c) => `${c.scheme}${c.parameters.error ? ` error=${c.parameters.error}` : ''}`).join(', ')}`;
  const cause = (e as { cause?: unknown }).cause;
  const status = cause instanceof Response ? `HTTP ${cause.status}: ` : '';
  return `${status}${(e as Error).message}`;
}

async function importPrivate(jwk: JWK): Promise<oauth.PrivateKey> {
  const { importJWK } = await import('jose');
  const alg = jwk.alg ?? (jwk.kty === 'EC' ? 'ES256' : jwk.kty === 'OKP' ? 'EdDSA' : 'PS256');
  return { key: (await importJWK(jwk, alg)) as CryptoKey, ...(jwk.kid ? { kid: jwk.kid } : {}) };
}

/** oauth4webapi's fetch, routed through the probe's rate-limited sender (and its certificate). */
function fetchThrough(sender: Sender, certificate: ClientCertificate | undefined) {
  return async (url: string, init: oauth.CustomFetchOptions<string, unknown>): Promise<Response> => {
    const headers: Record<string, string> = {};
    new Headers(init.headers as ConstructorParameters<typeof Headers>[0]).forEach((value, name) => {
      headers[name] = value;
    });
    const exchange = await sender.send({
      method: init.method,
      url,
      headers,
      body: init.body === undefined ? undefined : String(init.body),
      certificate,
    });
    return new Response(exchange.body, { status: exchange.status, headers: joinedHeaders(exchange.headers) });
  };
}
