/**
 * The fixture of suites that send FAPI-signed requests to every adapter: an issuer, a DPoP
 * client, the message-signing client `client-a`, and the signed routes on Express, Koa and
 * Fastify (started before the suite's tests, closed after them).
 */
import { DpopClient, MessageSigningClient, MockIssuer } from '@fapi-guard/testing';
import { closeApps, type Framework, type StartedApp, startApps } from './apps';

export const AUDIENCE = 'https://rs.example.com';

export function useSigningApps(kid: string, body: string) {
  const signer = MessageSigningClient.generate('ed25519', kid);
  let as: MockIssuer;
  let dpop: DpopClient;
  let apps: Map<Framework, StartedApp>;
  beforeAll(async () => {
    as = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-a' });
    dpop = await DpopClient.create('ES256');
    apps = await startApps({
      issuer: as.issuer,
      audience: AUDIENCE,
      publicUrl: AUDIENCE,
      interactionId: false,
      messageSigning: { clients: { 'client-a': { jwks: signer.jwks } }, responseKey: MessageSigningClient.generate().privateJwk },
    });
  });
  afterAll(async () => {
    await closeApps(apps);
    await as.stop();
  });
  return {
    signer,
    apps: () => apps,
    /**
     * The headers of a valid signed payment request to `/signed` + `query`, with `body`: a new
     * token and proof each time (every app has its own replay store).
     */
    async signedRequest(query = ''): Promise<Record<string, string>> {
      const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt });
      const htu = `${AUDIENCE}/signed`;
      const headers: Record<string, string> = {
        authorization: `DPoP ${token}`,
        dpop: await dpop.proof({ htm: 'POST', htu, accessToken: token }),
        'content-type': 'application/json',
      };
      return { ...headers, ...signer.sign({ method: 'POST', url: `${htu}${query}`, headers, body }) };
    },
  };
}
