/**
 * A passing `npm test` prints Jest's summary and nothing else: a suite reports counts (fuzz runs,
 * injected faults) only when `TEST_REPORT` is set (`npm run test:fuzz` sets it). Checked on the
 * suites' syntax: every write to stdout or the console sits under `if (process.env.TEST_REPORT)`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const root = join(__dirname, '..');
const WRITES = /^(process\.stdout\.write|process\.stderr\.write|console\.(log|info|warn|error|debug))$/;

/** Lines of the writes in `text` that are not under a `TEST_REPORT` condition. */
function unguardedWrites(text: string): number[] {
  const file = ts.createSourceFile('suite.ts', text, ts.ScriptTarget.Latest, true);
  const lines: number[] = [];
  const guarded = (node: ts.Node): boolean => {
    for (let n: ts.Node | undefined = node.parent; n; n = n.parent) {
      if (ts.isIfStatement(n) && /process\.env\.TEST_REPORT/.test(n.expression.getText())) return true;
    }
    return false;
  };
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && WRITES.test(node.expression.getText()) && !guarded(node)) {
      lines.push(file.getLineAndCharacterOfPosition(node.getStart()).line + 1);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return lines;
}

const suites = [
  ...readdirSync(join(root, 'test'), { recursive: true, withFileTypes: true }).filter((e) => !e.parentPath.includes('consumers')),
  ...['packages', 'examples'].flatMap((top) =>
    readdirSync(join(root, top)).flatMap((pkg) => {
      try {
        return readdirSync(join(root, top, pkg, 'test'), { withFileTypes: true });
      } catch {
        return [];
      }
    }),
  ),
]
  .filter((e) => e.isFile() && e.name.endsWith('.test.ts'))
  .map((e) => join(e.parentPath, e.name));

describe('quiet test suites', () => {
  it('finds an unguarded write and accepts a guarded one (the check itself)', () => {
    const sample = [
      "process.stdout.write('x');",
      "if (process.env.TEST_REPORT) process.stdout.write('y');",
      "if (process.env.TEST_REPORT) { console.log('z'); }",
      "console.log('w');",
    ].join('\n');
    expect(unguardedWrites(sample)).toEqual([1, 4]);
  });

  it.each(suites.map((f) => [f.slice(root.length + 1), f]))('%s prints nothing unless TEST_REPORT is set', (_name, file) => {
    expect(unguardedWrites(readFileSync(file, 'utf8'))).toEqual([]);
  });
});
