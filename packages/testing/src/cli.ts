#!/usr/bin/env node
/**
 * fapi-mock-issuer: the mock authorization server on its own, for local development and for
 * running fapi-probe in CI. Serves discovery, JWKS and a client-credentials token endpoint
 * (DPoP-bound with a proof, RFC 8707 `resource` honoured) on 127.0.0.1 until stopped.
 * Exit 0 on SIGINT / SIGTERM; 2 on a usage error.
 */
import { parseArgs } from 'node:util';
import { MockIssuer } from './mock-issuer.js';

const USAGE = `usage: fapi-mock-issuer --port N --audience URL [options]

  --port N          port on 127.0.0.1 (default 0: a free one, printed at start-up)
  --audience URL    aud of tokens requested without a resource parameter (repeatable:
                    every --audience is also accepted as an RFC 8707 resource)
  --resource URL    another API the token endpoint issues tokens for (repeatable)
  --client-id ID    client_id of tokens requested without one (default client-1)
  --help

Prints one JSON line {"issuer": ...} when it listens; stops on SIGINT or SIGTERM.
`;

/** Runs the issuer until a signal; returns the exit code. */
export async function main(argv: readonly string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  let values: { port?: string; audience?: string[]; resource?: string[]; 'client-id'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        port: { type: 'string' },
        audience: { type: 'string', multiple: true },
        resource: { type: 'string', multiple: true },
        'client-id': { type: 'string' },
        help: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    process.stderr.write(`fapi-mock-issuer: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    out.write(USAGE);
    return 0;
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`fapi-mock-issuer: --port must be a port number (0-65535), not ${JSON.stringify(values.port)}\n`);
    return 2;
  }
  const audiences = values.audience ?? [];
  if (audiences.length === 0) {
    process.stderr.write(
      `fapi-mock-issuer: --audience is required: the resource identifier of your API, e.g. http://127.0.0.1:3000\n${USAGE}`,
    );
    return 2;
  }
  const issuer = await MockIssuer.start({
    port,
    audience: audiences[0] as string,
    resources: [...audiences, ...(values.resource ?? [])],
    ...(values['client-id'] ? { clientId: values['client-id'] } : {}),
  });
  out.write(`${JSON.stringify({ issuer: issuer.issuer, token_endpoint: issuer.metadata.token_endpoint, jwks_uri: issuer.jwksUri })}\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await issuer.stop();
  process.stderr.write(`fapi-mock-issuer: stopped (${signal})\n`);
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`fapi-mock-issuer: ${(e as Error).message}\n`);
      process.exit(2);
    },
  );
}
