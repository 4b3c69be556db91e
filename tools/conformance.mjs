// Requirement traceability: every entry of the requirements catalogue (docs/requirements.json) →
// the tests whose names carry its ID (with their status in the last Jest run), or the reason it
// does not apply (docs/not-applicable.json). The output is docs/CONFORMANCE.md, sorted, so the
// same catalogue and results always give the same bytes.
//
//   node tools/conformance.mjs [jest-results.json]          write docs/CONFORMANCE.md (npm run conformance)
//   node tools/conformance.mjs [jest-results.json] --check  write nothing; fail when a MUST item has neither
//                                                           a passing test nor a reason, a test that proves an
//                                                           item fails, an ID cited in the docs, READMEs, TSDoc
//                                                           or test names is not in the catalogue, or the
//                                                           committed docs/CONFORMANCE.md is stale
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const check = args.includes('--check');
const resultsPath = args.find((a) => !a.startsWith('--')) ?? join(root, 'reports', 'jest-results.json');
const outputPath = join(root, 'docs', 'CONFORMANCE.md');

if (!existsSync(resultsPath)) {
  console.error(`conformance: ${relative(root, resultsPath)} not found; run npm test first`);
  process.exit(1);
}

const catalogue = JSON.parse(readFileSync(join(root, 'docs', 'requirements.json'), 'utf8'));
const notApplicable = JSON.parse(readFileSync(join(root, 'docs', 'not-applicable.json'), 'utf8'));
const results = JSON.parse(readFileSync(resultsPath, 'utf8'));
const problems = [];

/** An ID as cited anywhere: FAPI-RS-01, SIG-12, DEC-05. */
const ID = /\b[A-Z]+(?:-[A-Z]+)?-\d{2}\b/g;
const byCodePoint = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const idOrder = (a, b) => byCodePoint(a.replace(/\d+$/, ''), b.replace(/\d+$/, '')) || Number(a.slice(-2)) - Number(b.slice(-2));

// The catalogue itself: known groups and levels, one entry per ID, every field present.
const known = new Map();
const groups = new Map(catalogue.groups.map((g, i) => [g.prefix, { ...g, order: i }]));
for (const r of catalogue.requirements) {
  const prefix = r.id.replace(/-\d{2}$/, '');
  if (known.has(r.id)) problems.push(`${r.id}: listed twice in docs/requirements.json`);
  if (!groups.has(prefix)) problems.push(`${r.id}: no group '${prefix}' in docs/requirements.json`);
  if (!catalogue.levels.includes(r.level)) problems.push(`${r.id}: unknown level '${r.level}'`);
  for (const field of ['spec', 'section', 'statement']) if (!r[field]) problems.push(`${r.id}: no ${field}`);
  known.set(r.id, { ...r, prefix });
}
for (const id of Object.keys(notApplicable)) if (!known.has(id)) problems.push(`docs/not-applicable.json: ${id} is not in the catalogue`);

const tests = [];
for (const file of results.testResults) {
  for (const t of file.assertionResults) tests.push({ file: relative(root, file.name), name: t.fullName, status: t.status });
}

// Every ID the repository cites must resolve to a catalogue entry.
const cited = [];
const walk = (dir, keep) =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
    if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) return [];
    const path = join(dir, e.name);
    if (e.isDirectory()) return walk(path, keep);
    return keep(path) ? [path] : [];
  });
const sources = [
  'README.md',
  ...walk('docs', (p) => p.endsWith('.md') && p !== join('docs', 'CONFORMANCE.md')),
  ...walk('packages', (p) => p.endsWith('README.md') || /\/src\/.*\.ts$/.test(p)),
  ...walk('examples', (p) => p.endsWith('README.md') || /\/src\/.*\.ts$/.test(p)),
  ...walk('bench', (p) => p.endsWith('README.md')),
].sort(byCodePoint);
for (const file of sources) {
  for (const id of readFileSync(join(root, file), 'utf8').match(ID) ?? []) cited.push({ id, where: file });
}
for (const t of tests) for (const id of t.name.match(ID) ?? []) cited.push({ id, where: `test '${t.name}'` });
for (const { id, where } of cited) if (!known.has(id)) problems.push(`${where} cites ${id}, which is not in docs/requirements.json`);

// The report.
const lines = [];
const counts = { must: 0, mustCovered: 0, all: 0, covered: 0, na: 0 };
const cell = (text) => text.replace(/\|/g, '\\|');
const sorted = [...known.values()].sort((a, b) => groups.get(a.prefix).order - groups.get(b.prefix).order || idOrder(a.id, b.id));
let current = '';
for (const r of sorted) {
  if (r.prefix !== current) {
    current = r.prefix;
    const g = groups.get(current);
    lines.push('', `## ${g.title} (${g.spec})`, '', '| ID | Level | Source | Requirement | Evidence |', '|---|---|---|---|---|');
  }
  const proving = tests.filter((t) => (t.name.match(ID) ?? []).includes(r.id));
  const passed = proving.filter((t) => t.status === 'passed');
  const failed = proving.filter((t) => t.status === 'failed');
  const reason = notApplicable[r.id];
  const isMust = r.level === 'MUST';
  counts.all++;
  if (isMust) counts.must++;
  let evidence;
  if (passed.length > 0) {
    counts.covered++;
    if (isMust) counts.mustCovered++;
    const files = [...new Set(passed.map((t) => t.file))].sort(byCodePoint);
    evidence = `${passed.length} passing test${passed.length > 1 ? 's' : ''} in ${files.map((f) => `\`${f}\``).join(', ')}`;
  } else if (reason) {
    counts.na++;
    if (isMust) counts.mustCovered++;
    evidence = `not applicable: ${reason}`;
  } else evidence = '**no test**';
  if (failed.length > 0) {
    evidence += ` — **${failed.length} failing**`;
    problems.push(`${r.id}: ${failed.length} failing test(s)`);
  }
  if (isMust && passed.length === 0 && !reason) problems.push(`${r.id} (${r.level}) has neither a passing test nor a reason`);
  const level = r.basis ? `${r.level} (${r.basis})` : r.level;
  lines.push(`| ${r.id} | ${level} | ${cell(r.section)} | ${cell(r.statement)} | ${cell(evidence)} |`);
}
const text = `${[
  '# Conformance',
  '',
  'Generated by `npm run conformance` (`tools/conformance.mjs`) from the last `npm test` run; do not edit by hand.',
  'Each item of the requirements catalogue (`docs/requirements.json`) with the tests whose names carry its',
  'ID, or the reason it does not apply (`docs/not-applicable.json`). The cited specification section is',
  'authoritative; the one-line statements are this project’s summary.',
  '',
  `Items: ${counts.all}; with passing tests: ${counts.covered}; not applicable: ${counts.na}; MUST items covered: ${counts.mustCovered} of ${counts.must}.`,
  ...lines,
].join('\n')}\n`;

if (check) {
  const committed = existsSync(outputPath) ? readFileSync(outputPath, 'utf8') : '';
  if (committed !== text) problems.push('docs/CONFORMANCE.md is stale: run npm run conformance and commit it');
} else writeFileSync(outputPath, text);
console.log(
  `conformance: ${counts.covered} of ${counts.all} items tested, ${counts.na} not applicable, MUST ${counts.mustCovered}/${counts.must}`,
);
if (check && problems.length > 0) {
  console.error(`conformance check failed:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
