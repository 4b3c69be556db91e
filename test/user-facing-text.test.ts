/**
 * Text a user reads — error and log messages (string literals) and the TSDoc that becomes the API
 * reference — never names the project's internal decision IDs (`DEC-08`): they mean nothing
 * outside this repository. `//` comments, read by maintainers only, may.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const root = join(__dirname, '..');
const INTERNAL_ID = /\bDEC-\d+\b/;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

/** The string literals, template pieces and `/** … *\/` comments of a file, with their line. */
function userFacingText(text: string): { line: number; text: string }[] {
  const file = ts.createSourceFile('file.ts', text, ts.ScriptTarget.Latest, true);
  const found: { line: number; text: string }[] = [];
  const line = (pos: number) => file.getLineAndCharacterOfPosition(pos).line + 1;
  const comments = new Set<number>();
  const visit = (node: ts.Node): void => {
    for (const range of ts.getLeadingCommentRanges(text, node.pos) ?? []) {
      const comment = text.slice(range.pos, range.end);
      if (comment.startsWith('/**') && !comments.has(range.pos)) {
        comments.add(range.pos);
        found.push({ line: line(range.pos), text: comment });
      }
    }
    if (ts.isStringLiteralLike(node) || ts.isTemplateLiteralToken(node)) found.push({ line: line(node.getStart()), text: node.text });
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

describe('user-facing text', () => {
  it('finds IDs in messages and TSDoc, not in // comments (the scanner itself)', () => {
    const sample = [
      "// DEC-01 a maintainer's note",
      "throw new TypeError('x must be ≤ 60 (DEC-08)');",
      '/** Oldest proof (DEC-09). */',
      ['const t = `a $', '{b} c (DEC-02) $', '{d}`;'].join(''),
    ].join('\n');
    expect(
      userFacingText(sample)
        .filter((s) => INTERNAL_ID.test(s.text))
        .map((s) => s.line),
    ).toEqual([2, 3, 4]);
  });

  const files = ['packages', 'examples']
    .flatMap((top) => readdirSync(join(root, top)).map((name) => join(root, top, name, 'src')))
    .flatMap((dir) => sourceFiles(dir));

  it.each(files.map((f) => [f.slice(root.length + 1), f]))('%s names no internal decision ID', (_name, file) => {
    const hits = userFacingText(readFileSync(file, 'utf8'))
      .filter((s) => INTERNAL_ID.test(s.text))
      .map((s) => `line ${s.line}: ${s.text.match(INTERNAL_ID)?.[0]}`);
    expect(hits).toEqual([]);
  });
});
