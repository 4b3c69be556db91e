/**
 * The test vectors in test/vectors: examples copied from the RFCs (each vector cites its RFC
 * section), plus the project-derived FAPI vector written by test/vectors/derive-fapi2.js.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { headersFromRaw, type SignedMessage } from '@fapi-guard/core';

const dir = join(__dirname, '..', 'vectors');

// biome-ignore lint/suspicious/noExplicitAny: vector files are free-form JSON read by tests.
export function vector(name: string): any {
  return JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8'));
}

/** A message of the vector file (LF line endings, unfolded) as the verifier sees it. */
export function parseHttpMessage(text: string, extra: [string, string][] = []): SignedMessage {
  const [head] = text.split('\n\n');
  const [start, ...lines] = (head as string).split('\n');
  const raw: string[] = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    raw.push(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  for (const [name, value] of extra) raw.push(name, value);
  const headers = headersFromRaw(raw);
  const status = /^HTTP\/1\.1 (\d{3})/.exec(start as string);
  if (status) return { status: Number(status[1]), headers };
  const [method, target] = (start as string).split(' ');
  return { method, url: `https://${headers.host?.[0]}${target}`, headers };
}
