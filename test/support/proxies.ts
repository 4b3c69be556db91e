/**
 * The protected API on Express, Koa and Fastify behind a trusted TLS-terminating proxy
 * (127.0.0.1), once per certificate header format, for suites about proxy certificate headers.
 */
import type { ClientCertificateFormat, GuardOptions } from '@fapi-guard/core';
import { FRAMEWORKS, type StartedApp, startApp } from './apps';

/** The header each format reads by default. */
export const PROXY_HEADER: Record<ClientCertificateFormat, string> = {
  envoy: 'x-forwarded-client-cert',
  rfc9440: 'client-cert',
  nginx: 'x-ssl-client-cert',
};
export const PROXY_FORMATS = Object.keys(PROXY_HEADER) as ClientCertificateFormat[];

/** Three adapters per format, each trusting 127.0.0.1 as the proxy; `close()` stops them all. */
export async function startBehindProxies(options: GuardOptions) {
  const apps = new Map<ClientCertificateFormat, StartedApp[]>();
  for (const format of PROXY_FORMATS) {
    const started: StartedApp[] = [];
    for (const framework of FRAMEWORKS) {
      started.push(await startApp(framework, { ...options, mtls: { proxy: { format, trustedPeers: ['127.0.0.1', '::1'] } } }));
    }
    apps.set(format, started);
  }
  return {
    apps: (format: ClientCertificateFormat) => apps.get(format) ?? [],
    close: async () => {
      for (const started of apps.values()) for (const app of started) await app.close();
    },
  };
}
