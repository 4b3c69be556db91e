/** The report as a table for people, JSON, and JUnit XML for CI pipelines. */
import type { ProbeReport } from './run.js';

const MARK = { pass: 'pass', fail: 'FAIL', 'not-run': 'not run' } as const;

export function toTable(report: ProbeReport): string {
  const rows = report.results.map((r) => [r.id, r.level, r.requirements.join(' '), MARK[r.status], String(r.requests), r.observed]);
  const head = ['case', 'level', 'requirements', 'result', 'req', 'observed'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => Math.min((r[i] as string).length, i === 5 ? 80 : 40))));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ');
  const count = (s: string) => report.results.filter((r) => r.status === s).length;
  return [
    `fapi-probe ${report.method} ${report.resource} (${report.binding === 'dpop' ? 'DPoP' : 'mTLS'}-bound token)`,
    '',
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    '',
    `${count('pass')} passed, ${count('fail')} failed, ${count('not-run')} not run; ${report.requests} requests sent`,
    report.failed ? 'RESULT: a MUST requirement failed' : 'RESULT: no MUST requirement failed',
  ].join('\n');
}

export function toJson(report: ProbeReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

const xml = (s: string) =>
  s
    .replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] as string)
    .replace(
      // XML 1.0 has no place for most control characters.
      // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
      /[\x00-\x08\x0b\x0c\x0e-\x1f]/g,
      '',
    );

/** JUnit XML: one testcase per case; a failed SHOULD/MAY is a failure too, typed by its level. */
export function toJUnit(report: ProbeReport): string {
  const failures = report.results.filter((r) => r.status === 'fail').length;
  const skipped = report.results.filter((r) => r.status === 'not-run').length;
  const cases = report.results.map((r) => {
    const name = `${r.id} [${r.level} ${r.requirements.join(' ')}]`;
    const body =
      r.status === 'fail'
        ? `<failure type="${r.level}" message="${xml(`expected ${r.expects}; observed ${r.observed}`)}"/>`
        : r.status === 'not-run'
          ? `<skipped message="${xml(r.observed)}"/>`
          : '';
    return `    <testcase classname="fapi-probe" name="${xml(name)}">${body}</testcase>`;
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites tests="${report.results.length}" failures="${failures}" skipped="${skipped}">`,
    `  <testsuite name="${xml(`fapi-probe ${report.method} ${report.resource}`)}" tests="${report.results.length}" failures="${failures}" skipped="${skipped}" timestamp="${report.startedAt}">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}
