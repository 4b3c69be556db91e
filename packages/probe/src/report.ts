/** The report as a table for people, JSON, and JUnit XML for CI pipelines. */
import { NOT_RUN_BASELINE, NOT_RUN_UNREACHABLE, type ProbeReport } from './run.js';

const MARK = { pass: 'pass', fail: 'FAIL', advice: 'advice', 'not-run': 'not run', 'not-applicable': 'n/a' } as const;

/** The summary table, then for each failure and each piece of advice what was sent, expected, received and what to change. */
export function toTable(report: ProbeReport): string {
  // After a failed baseline the cases that did not run because of it are one line, not forty.
  const skipped = report.results.filter((r) => r.observed === NOT_RUN_BASELINE || r.observed === NOT_RUN_UNREACHABLE);
  const listed = report.results.filter((r) => !skipped.includes(r));
  // The spec section, which anyone can look up (the JSON report also has fapi-guard's requirement IDs).
  const rows = listed.map((r) => [r.id, r.level, r.requirement.source, MARK[r.status], String(r.requests), r.observed]);
  const head = ['case', 'level', 'spec', 'result', 'req', 'observed'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => Math.min((r[i] as string).length, i === 5 ? 80 : 60))));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ');
  const count = (s: string) => report.results.filter((r) => r.status === s).length;
  const unreachable = report.notJudgedCause === 'unreachable';
  const banner = report.notJudged
    ? [
        '',
        '!!! THE PROBE COULD NOT JUDGE THIS SERVER (exit code 2)',
        `!!! ${report.notJudged}.`,
        unreachable
          ? '!!! No other case was run: the probe needs an answer from the resource first.'
          : '!!! Fix the correct request first (token, audience, binding, URL); the cases that compare with it did not run.',
      ]
    : [];
  const failures = report.results.filter((r) => r.status === 'fail' && r.id !== 'baseline.valid');
  const advice = report.results.filter((r) => r.status === 'advice');
  return [
    `fapi-probe ${report.method} ${report.resource} (${report.binding === 'dpop' ? 'DPoP' : 'mTLS'}-bound token, profile ${report.profile})`,
    ...banner,
    '',
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    ...(skipped.length > 0 ? [`… ${skipped.length} other cases ${skipped[0]?.observed}`] : []),
    ...(report.notJudged && !unreachable
      ? guidance(
          'Baseline',
          report.results.filter((r) => r.id === 'baseline.valid'),
        )
      : []),
    ...guidance('Failures (MUST): these fail the run', failures),
    ...guidance('Advice (SHOULD, MAY, or a stricter choice than the specifications): these never fail the run', advice),
    '',
    `${count('pass')} passed, ${count('fail')} failed, ${count('advice')} advice, ${count('not-run')} not run, ${count('not-applicable')} not applicable; ${report.requests} requests sent`,
    // After a failed baseline every dependent case is not run: the banner says so once.
    ...(report.mustNotRun.length > 0 && !report.notJudged
      ? [
          `MUST cases not run (${report.strict ? 'they fail the run: --strict' : 'not judged; --strict makes them fail the run'}): ${report.mustNotRun.join(', ')}`,
        ]
      : []),
    report.notJudged
      ? `RESULT: not judged (exit 2): ${unreachable ? 'no answer from the resource' : 'the baseline request failed'}`
      : report.failed
        ? `RESULT: a MUST requirement ${failures.length > 0 ? 'failed' : 'was not run (--strict)'} (exit 1)`
        : 'RESULT: no MUST requirement failed (exit 0)',
  ].join('\n');
}

/** One block per case: the reader learns from it alone what to change. */
function guidance(title: string, results: ProbeReport['results']): string[] {
  if (results.length === 0) return [];
  const out = ['', `${title}:`];
  for (const r of results) {
    out.push('', `${MARK[r.status]} ${r.id} ${label(r)}`);
    // A MUST case met its MUST and missed a weaker part: say so, or the reader takes it for a failure.
    if (r.status === 'advice' && r.level === 'MUST')
      out.push(`  case:     a MUST case (${r.requirement.source}); its MUST was met, the ${r.missed?.what ?? 'rest'} was not`);
    out.push(`  test:     ${r.sends}`);
    r.exchanges.forEach((x, i) => {
      out.push(`  sent:     ${i === 0 ? '' : `(${i + 1}) `}${x.sent}`);
      out.push(`  got:      ${i === 0 ? '' : `(${i + 1}) `}${x.received}`);
    });
    if (r.exchanges.length === 0) out.push(`  got:      ${r.observed}`);
    out.push(`  expected: ${r.expects}`);
    if (r.fix) out.push(`  change:   ${r.fix}`);
    out.push(`  why:      ${r.requirement.text}`);
  }
  return out;
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

/** `[SHOULD: error code, RFC 6750 §3.1]`: the level of what was missed, not always the case's level. */
function label(r: ProbeReport['results'][number]): string {
  if (!r.missed) return `[${r.level}, ${r.requirement.source}]`;
  return `[${r.missed.level}${r.missed.what ? `: ${r.missed.what}` : ''}, ${r.missed.source}]`;
}

/**
 * JUnit XML: one testcase per case; advice is a failure too, typed by the level of what was
 * missed (a MUST case that missed only a SHOULD part is `type="SHOULD"`): a CI filters on
 * `type="MUST"`, the same set that decides the exit code.
 */
export function toJUnit(report: ProbeReport): string {
  const failures = report.results.filter((r) => r.status === 'fail' || r.status === 'advice').length;
  const mustFailures = report.results.filter((r) => r.status === 'fail' && r.missed?.level === 'MUST').length;
  const skipped = report.results.filter((r) => r.status === 'not-run' || r.status === 'not-applicable').length;
  const cases = report.results.map((r) => {
    const name = `${r.id} [${r.level}, ${r.requirement.source}]`;
    const body =
      r.status === 'fail' || r.status === 'advice'
        ? `<failure type="${r.missed?.level ?? r.level}" message="${xml(`expected ${r.expects}; observed ${r.observed}${r.fix ? `; change: ${r.fix}` : ''}`)}">${xml(`${r.requirement.source}: ${r.requirement.text}`)}</failure>`
        : r.status === 'not-run' || r.status === 'not-applicable'
          ? `<skipped message="${xml(r.observed)}"/>`
          : '';
    return `    <testcase classname="fapi-probe" name="${xml(name)}">${body}</testcase>`;
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites tests="${report.results.length}" failures="${failures}" skipped="${skipped}">`,
    `  <testsuite name="${xml(`fapi-probe ${report.method} ${report.resource}`)}" tests="${report.results.length}" failures="${failures}" skipped="${skipped}" timestamp="${report.startedAt}">`,
    // The verdict itself, for a CI that reads the file rather than the exit code.
    `    <properties><property name="exit-code" value="${report.exitCode}"/><property name="must-failures" value="${mustFailures}"/></properties>`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}
