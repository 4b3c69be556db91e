#!/usr/bin/env node
// Mutation testing of the security-relevant code, module by module (issue 20).
//
//   npm run test:mutation                 every module
//   npm run test:mutation -- binding policy   some of them
//   npm run test:mutation -- --concurrency 1 tokens-jwt
//
// A whole-repository Stryker run costs every mutant the full suite (over a day on two cores:
// most mutants sit in code every HTTP test passes through). So each module runs in two stages:
//   1. every mutant of the module against its fast suites (`quick`, in-process where possible);
//   2. only the survivors of stage 1, each by its exact source range, against the module's
//      wider suites over real HTTP (`wide`).
// A mutant counts as killed if either stage kills it. The scores are a lower bound: a suite
// left out of both sets might kill a survivor too.
//
// The state is committed (issue 31), so a run continues on any machine where the last one stopped:
//   stryker/state/<module>.incremental.json        Stryker's incremental file, stage 1
//   stryker/state/<module>-wide.incremental.json   the same for stage 2
//   stryker/state/<module>.json                    the module's merged result (mutants and status
//                                                  only, no sources) with the commit it measured
//   stryker/SCORES.md                              the table over every module, regenerated after each
// Mutants that time out count as detected, so a loaded machine inflates a score: before each module
// the run samples /proc/stat for 5 s and refuses to start while other work keeps more than a
// quarter of the cores busy, unless `--loaded` is given (a module measured that way is marked in
// SCORES.md). Work started with `nice -n 19` does not count: the scheduler gives it the cores only
// when the run leaves them idle. (The 1-minute load average cannot tell: it still counts the
// previous module's own test processes, and nice'd ones.)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { MODULES } from './mutation-modules.mjs';

/** The cores' busy share outside nice'd work over `ms` (user, system, irq, softirq, steal; /proc/stat), or undefined off Linux. */
function busyShare(ms = 5000) {
  const read = () => {
    if (!existsSync('/proc/stat')) return undefined;
    const [user, , system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const busy = user + system + irq + softirq + (steal ?? 0);
    return { busy, all: busy + idle + iowait };
  };
  const a = read();
  if (!a) return undefined;
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  const b = read();
  return (b.busy - a.busy) / Math.max(1, b.all - a.all);
}

const OUT = 'reports/mutation';
const STATE = 'stryker/state';
const STAGE_REPORT = `${OUT}/mutation.json`;

/** One Stryker run (`-m` takes one comma-separated list); incremental, so a rerun tests only mutants whose code or covering tests changed. */
function stryker(name, mutate, tests) {
  const args = ['stryker', 'run', '-c', concurrency, '-m', mutate.join(',')];
  args.push('--incrementalFile', `${STATE}/${name}.incremental.json`);
  console.log(`\n== ${name}: ${mutate.length} range(s), suites ${tests}`);
  const run = spawnSync('npx', args, { stdio: 'inherit', env: { ...process.env, STRYKER_TESTS: tests } });
  if (run.status !== 0) throw new Error(`stryker exited ${run.status} for ${name}`);
  return JSON.parse(readFileSync(STAGE_REPORT, 'utf8'));
}

const key = (m) =>
  `${m.mutatorName}|${m.replacement}|${m.location.start.line}:${m.location.start.column}-${m.location.end.line}:${m.location.end.column}`;

/** The commit measured; `+changes` when the work tree differs from it in the sources or tests. */
function measuredCommit() {
  const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--', 'packages', 'test'], { encoding: 'utf8' }).trim();
  return dirty ? `${head}+changes` : head;
}

/** What the committed state keeps of a report: each mutant's identity and status, no sources. */
function slim(report) {
  const files = {};
  for (const [file, { mutants }] of Object.entries(report.files)) {
    files[file] = {
      mutants: mutants.map(({ id, mutatorName, replacement, location, status, statusReason }) => ({
        id,
        mutatorName,
        replacement,
        location,
        status,
        ...(status === 'Ignored' ? { statusReason } : {}),
      })),
    };
  }
  return files;
}

mkdirSync(OUT, { recursive: true });
mkdirSync(STATE, { recursive: true });
const argv = process.argv.slice(2);
const at = argv.indexOf('--concurrency');
// Test processes at once (each takes one core and up to 3 GB). @default 2
const concurrency = at >= 0 ? argv.splice(at, 2)[1] : '2';
const loadedAt = argv.indexOf('--loaded');
const loaded = loadedAt >= 0;
if (loaded) argv.splice(loadedAt, 1);
const wanted = argv;
for (const name of wanted) {
  if (!MODULES[name]) throw new Error(`unknown module ${name}; one of ${Object.keys(MODULES).join(', ')}`);
}
for (const name of wanted.length ? wanted : Object.keys(MODULES)) {
  const module = MODULES[name];
  const busy = busyShare();
  const load = busy === undefined ? loadavg()[0] : Math.round(busy * 100) / 100;
  const tooBusy = busy === undefined ? load > 1 : busy > 0.25;
  if (tooBusy && !loaded) {
    console.error(
      busy === undefined
        ? `mutation: load average ${load.toFixed(2)} > 1; timeouts would count as kills. Wait for a quiet machine or pass --loaded.`
        : `mutation: other work keeps ${Math.round(busy * 100)} % of the cores busy (> 25 %); timeouts would count as kills. Wait, run it with nice -n 19, or pass --loaded.`,
    );
    process.exit(2);
  }
  const started = Date.now();
  // The commit as Stryker copies it into its sandbox, at the start: a commit made while the module runs is not what was measured.
  const commit = measuredCommit();
  const report = stryker(name, module.mutate, module.quick);
  const left = Object.entries(report.files).flatMap(([file, { mutants }]) =>
    mutants.filter((m) => m.status === 'Survived' || m.status === 'NoCoverage').map((m) => ({ file, m })),
  );
  if (module.wide && left.length > 0) {
    const ranges = left.map(({ file, m }) => {
      // One column wider on each side: the report's columns and the range's do not count alike,
      // and a range must enclose its mutant. Mutants inside a survivor's range run too (harmless).
      const { start, end } = m.location;
      return `${file}:${start.line}:${Math.max(0, start.column - 1)}-${end.line}:${end.column + 1}`;
    });
    const second = stryker(`${name}-wide`, [...new Set(ranges)], module.wide);
    for (const [file, { mutants }] of Object.entries(second.files)) {
      const ran = new Map(mutants.map((m) => [key(m), m]));
      for (const m of report.files[file]?.mutants ?? []) {
        const k = ran.get(key(m));
        if ((m.status === 'Survived' || m.status === 'NoCoverage') && k && k.status !== 'NoCoverage' && k.status !== 'Ignored') {
          // What stage 2 found stands: killed, timed out, survived (covered after all), or an error
          // (a mutant that crashed the test process is counted as Stryker counts it, outside the score).
          Object.assign(m, { status: k.status, killedBy: k.killedBy, statusReason: `stage 2: ${k.statusReason ?? ''}` });
        }
      }
    }
  }
  const seconds = Math.round((Date.now() - started) / 1000);
  const measured = {
    module: name,
    commit,
    date: new Date().toISOString().slice(0, 10),
    seconds,
    loaded,
    load,
    concurrency: Number(concurrency),
  };
  writeFileSync(`${STATE}/${name}.json`, `${JSON.stringify({ measured, files: slim(report) })}\n`);
  if (existsSync(STAGE_REPORT)) renameSync(STAGE_REPORT, `${OUT}/last-stage.json`);
  console.log(`== ${name}: ${seconds} s`);
  spawnSync('node', ['tools/mutation-scores.mjs', '--write'], { stdio: 'inherit' });
}
const reports = Object.keys(MODULES)
  .map((n) => `${STATE}/${n}.json`)
  .filter(existsSync);
spawnSync('node', ['tools/mutation-scores.mjs', ...reports, '--survivors'], { stdio: 'inherit' });
