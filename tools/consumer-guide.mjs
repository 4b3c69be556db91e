// docs/testing.md shows the consumer apps' files whole: each file under test/consumers/*/src and
// */test, and each jest.config.js, appears in the guide as the fenced block right after a
// `<!-- test/consumers/… -->` line naming it, byte for byte. So the guide's code is what
// tools/consumer-check.sh installs and runs. Blocks so marked in docs/packages/testing.md must
// match their files too.
// Usage: node tools/consumer-guide.mjs
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
/** Fenced blocks marked `<!-- test/consumers/… -->` in a Markdown file, by the path they name. */
function marked(doc) {
  const text = readFileSync(join(root, doc), 'utf8');
  return new Map([...text.matchAll(/^<!-- (test\/consumers\/\S+) -->\n```[a-z]*\n([\s\S]*?)^```$/gm)].map((m) => [m[1], m[2]]));
}
const shown = marked('docs/testing.md');
const readme = marked('docs/packages/testing.md');

const files = [];
for (const app of readdirSync(join(root, 'test/consumers'))) {
  const dir = join(root, 'test/consumers', app);
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const path = relative(root, join(entry.parentPath, entry.name));
    if (entry.isFile() && (/^test\/consumers\/[^/]+\/(src|test)\//.test(path) || entry.name === 'jest.config.js')) files.push(path);
  }
}
const problems = [];
for (const path of files) {
  if (!shown.has(path)) problems.push(`${path}: not shown in docs/testing.md`);
  else if (shown.get(path) !== readFileSync(join(root, path), 'utf8')) problems.push(`${path}: docs/testing.md shows another version`);
}
for (const path of shown.keys()) if (!files.includes(path)) problems.push(`${path}: shown in docs/testing.md, no such file`);
for (const [path, text] of readme) {
  if (!files.includes(path)) problems.push(`${path}: shown in docs/packages/testing.md, no such file`);
  else if (text !== readFileSync(join(root, path), 'utf8')) problems.push(`${path}: docs/packages/testing.md shows another version`);
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`docs/testing.md shows ${files.length} consumer files as they are; docs/packages/testing.md ${readme.size}`);
