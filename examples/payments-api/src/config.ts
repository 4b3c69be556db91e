/** The example's configuration, read from the environment. */
export type Framework = 'express' | 'koa' | 'fastify';

export interface ExampleConfig {
  /** `FAPI_FRAMEWORK`: which version of the API to run. @default 'express' */
  framework: Framework;
  port: number;
  host: string;
  /** Trusted issuer (`FAPI_ISSUER`); unset → the embedded MockIssuer is started. */
  issuer: string | undefined;
  /** `FAPI_JWKS_URI`: skip discovery. */
  jwksUri: string | undefined;
  /** `FAPI_AUDIENCE`: resource identifier (token `aud`). @default FAPI_PUBLIC_URL, else http://HOST:PORT */
  audience: string;
  /** `FAPI_PUBLIC_URL`: public origin clients address (DPoP `htu`), behind a proxy or load balancer. */
  publicUrl: string | undefined;
  /** `FAPI_ALLOW_BEARER=true`: accept unbound tokens (outside FAPI). */
  allowBearer: boolean;
  /** `FAPI_DPOP_NONCE_SECRET`: shared nonce secret (≥ 32 bytes) for several instances. */
  nonceSecret: string | undefined;
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): ExampleConfig {
  const port = Number(env.PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT "${env.PORT}" is not a port number`);
  const host = env.HOST ?? '127.0.0.1';
  const publicUrl = env.FAPI_PUBLIC_URL || undefined;
  const framework = (env.FAPI_FRAMEWORK || 'express') as Framework;
  if (!['express', 'koa', 'fastify'].includes(framework)) throw new Error(`FAPI_FRAMEWORK "${framework}" is not express, koa or fastify`);
  return {
    framework,
    port,
    host,
    issuer: env.FAPI_ISSUER || undefined,
    jwksUri: env.FAPI_JWKS_URI || undefined,
    audience: env.FAPI_AUDIENCE || publicUrl || `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    publicUrl,
    allowBearer: env.FAPI_ALLOW_BEARER === 'true',
    nonceSecret: env.FAPI_DPOP_NONCE_SECRET || undefined,
  };
}
