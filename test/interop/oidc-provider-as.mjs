// A real authorization server for the interop suite: oidc-provider (npm) on a free loopback
// port, issuing sender-constrained RFC 9068 JWT access tokens for the client_credentials grant
// with a resource indicator (RFC 8707): DPoP-bound (RFC 9449) when the client sends a proof,
// certificate-bound (RFC 8705) when it serves HTTPS and the client presents a certificate.
// Run as its own process (oidc-provider is ESM-only):
//   node oidc-provider-as.mjs <resource> [<tls.json with { cert, key }>]
// It prints one JSON line { issuer } when ready.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

const resource = process.argv[2] ?? 'https://rs.example.com';
// A second resource server whose tokens are opaque: it must introspect them (RFC 7662).
const opaqueResource = `${resource.replace(/\/$/, '')}/opaque`;
const { privateKey } = await generateKeyPair('ES256', { extractable: true });
const signingKey = { ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig', kid: 'interop-es256' };

const tls = process.argv[3] ? JSON.parse(readFileSync(process.argv[3], 'utf8')) : undefined;
// With TLS the server asks for client certificates and accepts any (RFC 8705 §6.2: self-signed is fine).
const server = tls ? createHttpsServer({ cert: tls.cert, key: tls.key, requestCert: true, rejectUnauthorized: false }) : createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'interop-client',
      client_secret: 'interop-client-secret-that-is-long-enough',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
      introspection_signed_response_alg: 'ES256',
      tls_client_certificate_bound_access_tokens: Boolean(tls),
    },
    {
      // The resource server itself, as an introspection client with signed answers (RFC 9701).
      client_id: 'rs-client',
      client_secret: 'rs-client-secret-that-is-long-enough',
      grant_types: [],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
      introspection_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [signingKey] },
  scopes: ['accounts', 'payments:read', 'payments:write'],
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    jwtIntrospection: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    dPoP: { enabled: true },
    mTLS: {
      enabled: Boolean(tls),
      certificateBoundAccessTokens: true,
      getCertificate(ctx) {
        const peer = ctx.socket.getPeerCertificate?.();
        return peer?.raw ? new X509Certificate(peer.raw).toString() : undefined;
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== resource && indicator !== opaqueResource) throw new Error(`unknown resource ${indicator}`);
        return {
          scope: 'accounts payments:read payments:write',
          audience: indicator,
          accessTokenFormat: indicator === opaqueResource ? 'opaque' : 'jwt',
          accessTokenTTL: 300,
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});
server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ issuer })}\n`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
