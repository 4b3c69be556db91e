/**
 * docs/reasons.md, the table of decision reasons on the documentation site, is the code's:
 * one row per `REASONS` entry, in its order, with its status and OAuth `error`, and an
 * explanation for every reason (docs/reasons.json). `node tools/reasons.mjs` regenerates it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REASONS } from '@fapi-guard/core';

const root = join(__dirname, '..');
const table = readFileSync(join(root, 'docs', 'reasons.md'), 'utf8');
const explained = JSON.parse(readFileSync(join(root, 'docs', 'reasons.json'), 'utf8')).reasons as Record<string, [string, string]>;

/** The rows of the reason table: code, status, error (`undefined` for —). */
const rows = [...table.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \| (?:`([a-z_]+)`|—) \|/gm)].map((m) => ({
  code: m[1],
  status: Number(m[2]),
  error: m[3],
}));

describe('decision reason table (docs/reasons.md)', () => {
  it('has one row per reason of the code, in its order, with its status and OAuth error', () => {
    expect(rows).toEqual(Object.entries(REASONS).map(([code, info]) => ({ code, status: info.status, error: info.error })));
  });

  it('explains every reason, and only reasons that exist', () => {
    expect(Object.keys(explained).sort()).toEqual(Object.keys(REASONS).sort());
    for (const [meaning, change] of Object.values(explained)) {
      expect(meaning.length).toBeGreaterThan(10);
      expect(change.length).toBeGreaterThan(10);
    }
  });

  it('is exactly what tools/reasons.mjs generates from the built code and the explanations', () => {
    expect(() => execFileSync(process.execPath, [join(root, 'tools', 'reasons.mjs'), '--check'], { stdio: 'pipe' })).not.toThrow();
  });
});
