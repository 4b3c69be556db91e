/** The published test vectors in ../shared/spec/vectors (see RS-REQUIREMENTS.md §19). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = join(__dirname, '..', '..', '..', 'shared', 'spec', 'vectors');

// biome-ignore lint/suspicious/noExplicitAny: vector files are free-form JSON read by tests.
export function vector(name: string): any {
  return JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8'));
}
