/** What the probe's tests share: small HTTP servers on 127.0.0.1, a DPoP key, the built command line. */
import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';

export async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A loopback port free a moment ago (for a server whose audience must name its port before it starts). */
export async function freePort(): Promise<number> {
  const server = createServer();
  const url = await listen(server);
  await close(server);
  return Number(new URL(url).port);
}

export async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

export async function dpopJwk(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  return { ...(await exportJWK(privateKey)), alg: 'ES256' };
}

/** A server: `handler` answers, and every request it saw is counted by path. */
export async function serve(handler: (req: IncomingMessage, res: ServerResponse, url: string) => void) {
  const hits: string[] = [];
  const server = createServer();
  const url = await listen(server);
  server.on('request', (req, res) => {
    hits.push(req.url ?? '');
    handler(req, res, url);
  });
  return { server, url, hits };
}

/** Accepts any request with an Authorization field; challenges the others with `challenge`. */
export const acceptAnyToken = (challenge: string) => (req: IncomingMessage, res: ServerResponse) => {
  if (req.headers.authorization) return void res.end('{}');
  res.writeHead(401, { 'www-authenticate': challenge }).end();
};

/** Runs the built command line; resolves with its exit code and output. */
export function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const bin = join(__dirname, '..', 'dist', 'cli.js');
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [bin, ...args], (_e, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }));
  });
}
