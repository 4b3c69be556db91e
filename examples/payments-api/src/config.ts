/** The example's configuration, read from the environment. */
export interface ExampleConfig {
  port: number;
  host: string;
  /** Trusted issuer; unset → the embedded MockIssuer is started. */
  issuer: string | undefined;
  jwksUri: string | undefined;
  /** Resource identifier (token `aud`). */
  audience: string;
  /** Public origin clients address (DPoP `htu`), when behind a proxy. */
  publicUrl: string | undefined;
  allowBearer: boolean;
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): ExampleConfig {
  const port = Number(env.PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT "${env.PORT}" is not a port number`);
  const host = env.HOST ?? '127.0.0.1';
  const publicUrl = env.FAPI_PUBLIC_URL || undefined;
  return {
    port,
    host,
    issuer: env.FAPI_ISSUER || undefined,
    jwksUri: env.FAPI_JWKS_URI || undefined,
    audience: env.FAPI_AUDIENCE || publicUrl || `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    publicUrl,
    allowBearer: env.FAPI_ALLOW_BEARER === 'true',
  };
}
