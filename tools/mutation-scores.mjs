#!/usr/bin/env node
// Mutation score per module from StrykerJS's JSON report (`npm run test:mutation` writes
// reports/mutation/mutation.json). Score = detected / (detected + survived + no coverage), where
// detected = killed + timeout. Ignored mutants count on neither side, as in Stryker's own score:
// those disabled by a `// Stryker disable` comment (equivalent, see stryker/equivalent-mutants.md)
// and static ones (only reached while modules load or in beforeAll, so no single test can be
// named for them; `ignoreStatic` in stryker.config.mjs), each shown in its own column.
//
//   node tools/mutation-scores.mjs [report.json ...] [--survivors]
//
// --survivors also lists every surviving and uncovered mutant (file:line, mutator, replacement).
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const showSurvivors = args.includes('--survivors');
const given = args.filter((a) => !a.startsWith('--'));
const files = given.length > 0 ? given : ['reports/mutation/mutation.json'];
const report = { files: Object.assign({}, ...files.map((f) => JSON.parse(readFileSync(f, 'utf8')).files)) };

/** The module a source file belongs to, as issue 20 names them. */
function moduleOf(path) {
  const core = path.match(/packages\/core\/src\/(?:(binding|tokens|signatures)\/|([a-z-]+)\.ts$)/);
  if (core) return core[1] ? `core/${core[1]}/` : `core/${core[2]}.ts`;
  const adapter = path.match(/packages\/([a-z]+)\/src\//);
  return adapter ? adapter[1] : path;
}

const rows = new Map();
const survivors = [];
for (const [path, { mutants }] of Object.entries(report.files)) {
  const name = moduleOf(path);
  const row = rows.get(name) ?? { killed: 0, timeout: 0, survived: 0, noCoverage: 0, equivalent: 0, static: 0, errors: 0 };
  for (const m of mutants) {
    if (m.status === 'Killed') row.killed++;
    else if (m.status === 'Timeout') row.timeout++;
    else if (m.status === 'Survived') row.survived++;
    else if (m.status === 'NoCoverage') row.noCoverage++;
    else if (m.status === 'Ignored' && /static/i.test(m.statusReason ?? '')) row.static++;
    else if (m.status === 'Ignored') row.equivalent++;
    else row.errors++;
    if (m.status === 'Survived' || m.status === 'NoCoverage') {
      const replacement = (m.replacement ?? '').replace(/\s+/g, ' ').slice(0, 70);
      survivors.push(`${path}:${m.location.start.line}  ${m.status}  ${m.mutatorName}  ${replacement}`);
    }
  }
  rows.set(name, row);
}

const score = (r) => {
  const detected = r.killed + r.timeout;
  const valid = detected + r.survived + r.noCoverage;
  return valid === 0 ? 'n/a' : `${((100 * detected) / valid).toFixed(1)} %`;
};
const total = { killed: 0, timeout: 0, survived: 0, noCoverage: 0, equivalent: 0, static: 0, errors: 0 };
console.log('| module | killed | timeout | survived | no coverage | equivalent | static (not run) | errors | score |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const [name, r] of [...rows].sort(([a], [b]) => a.localeCompare(b))) {
  for (const k of Object.keys(total)) total[k] += r[k];
  console.log(
    `| ${name} | ${r.killed} | ${r.timeout} | ${r.survived} | ${r.noCoverage} | ${r.equivalent} | ${r.static} | ${r.errors} | ${score(r)} |`,
  );
}
console.log(
  `| **all** | ${total.killed} | ${total.timeout} | ${total.survived} | ${total.noCoverage} | ${total.equivalent} | ${total.static} | ${total.errors} | **${score(total)}** |`,
);
if (showSurvivors) {
  console.log('');
  for (const line of survivors.sort()) console.log(line);
}
