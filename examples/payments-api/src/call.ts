/**
 * One accepted call to a running example API, the way a real client makes it (oauth4webapi):
 * discover the API's authorization server from its RFC 9728 metadata, get a DPoP-bound token by
 * the client-credentials grant, and call the route with a fresh proof.
 *
 *   npm run call -- [METHOD] [PATH] [SCOPE]        e.g.  npm run call -- GET /accounts accounts
 *
 * FAPI_API_URL says where the API is (default http://127.0.0.1:3000, where `npm start` listens).
 * Works against the embedded MockIssuer, which issues tokens without client authentication.
 */
import * as oauth from 'oauth4webapi';

async function main(): Promise<void> {
  const [method = 'GET', path = '/accounts', scopeArg] = process.argv.slice(2);
  const api = new URL(process.env.FAPI_API_URL || 'http://127.0.0.1:3000');
  // The scope each route of the example needs, unless one is given.
  const scope = scopeArg ?? (path.startsWith('/payments') ? (method === 'POST' ? 'payments:write' : 'payments:read') : 'accounts');
  // Plain http only for an API and issuer on this machine, as the example runs by default.
  const insecure = { [oauth.allowInsecureRequests]: ['127.0.0.1', 'localhost', '[::1]'].includes(api.hostname) };

  const resource = await oauth.processResourceDiscoveryResponse(api, await oauth.resourceDiscoveryRequest(api, insecure));
  const issuer = new URL(resource.authorization_servers?.[0] ?? '');
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...insecure, algorithm: 'oauth2' }));
  const client: oauth.Client = { client_id: 'example-cli' };
  const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));

  const grant = await oauth.clientCredentialsGrantRequest(as, client, oauth.None(), { scope }, { ...insecure, DPoP });
  const token = await oauth.processClientCredentialsResponse(as, client, grant);
  console.log(`token    ${token.token_type} token for scope "${scope}" from ${issuer.href.replace(/\/$/, '')}`);

  const target = new URL(path, api);
  const headers = new Headers(method === 'POST' ? { 'content-type': 'application/json' } : {});
  const body =
    method === 'POST'
      ? JSON.stringify({ amount: { amount: '10.00', currency: 'EUR' }, creditorAccount: 'DE89370400440532013000' })
      : undefined;
  const send = () => oauth.protectedResourceRequest(token.access_token, method, target, headers, body, { ...insecure, DPoP });
  let answer: Response;
  try {
    answer = await send();
  } catch (e) {
    // RFC 9449 §9: a route that wants a server nonce answers use_dpop_nonce once; retry with it.
    if (!oauth.isDPoPNonceError(e)) throw e;
    answer = await send();
  }
  console.log(`${method.padEnd(8)} ${target.href} → ${answer.status} ${answer.statusText}`);
  console.log(await answer.text());
  if (answer.status >= 400) process.exitCode = 1;
}

main().catch((e: unknown) => {
  const error = e as Error & { cause?: unknown };
  console.error(`call failed: ${error.message}${error.cause instanceof Response ? ` (${error.cause.status})` : ''}`);
  // Name the URL tried: an API started on another PORT is found through FAPI_API_URL.
  const where = process.env.FAPI_API_URL || 'http://127.0.0.1:3000';
  console.error(`is the example running at ${where}? start it with: npm start (or set FAPI_API_URL to where it listens)`);
  process.exit(1);
});
