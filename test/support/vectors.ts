/** The published test vectors in ../shared/spec/vectors (see RS-REQUIREMENTS.md §19). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { headersFromRaw, type SignedMessage } from '@fapi-guard/core';

/**
 * shared/ sits beside the repository (../shared); the nearest one up the tree is taken, so the
 * suites also find it from a git worktree or a mutation-testing sandbox inside the repository.
 */
function vectorDir(): string {
  for (let at = join(__dirname, '..', '..'); ; at = dirname(at)) {
    const candidate = join(at, '..', 'shared', 'spec', 'vectors');
    if (existsSync(candidate) || dirname(at) === at) return candidate;
  }
}

const dir = vectorDir();

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
