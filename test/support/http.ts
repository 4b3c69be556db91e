/**
 * A small HTTP client on node:http that can send what fetch cannot: repeated header lines
 * (two `Authorization` or `DPoP` headers), raw methods, and bodies with any content type.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface SendOptions {
  method?: string;
  /** A string[] value is sent as that many header lines. */
  headers?: Record<string, string | string[]>;
  body?: string;
  /** For https URLs: the client certificate and key to present, and the CA to trust. */
  tls?: { cert?: string; key?: string; ca?: string };
}

export interface Received {
  status: number;
  headers: IncomingHttpHeaders;
  /** Header lines as received (name, value, name, value…). */
  rawHeaders: string[];
  text: string;
  json: Record<string, unknown>;
}

export function send(url: string, options: SendOptions = {}): Promise<Received> {
  return new Promise((resolve, reject) => {
    const common = { method: options.method ?? 'GET', timeout: 10_000 };
    const onResponse = (res: import('node:http').IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, text, json });
      });
    };
    const req = url.startsWith('https:')
      ? httpsRequest(url, { ...common, ...options.tls, agent: false }, onResponse)
      : httpRequest(url, common, onResponse);
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    for (const [name, value] of Object.entries(options.headers ?? {})) req.setHeader(name, value);
    req.end(options.body);
  });
}
