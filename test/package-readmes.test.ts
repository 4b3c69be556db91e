/**
 * The READMEs npm ships (packages/*) as users read them from an installed package: short and
 * task-first (what it is, install, a small example, links), every link absolute (the repository
 * URL of package.json, on a file or folder that exists), and every example marked with a snippet
 * path equal to that file, which the test suite runs.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..');
const repo = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).repository.url as string)
  .replace(/^git\+/, '')
  .replace(/\.git$/, '');
const packages = readdirSync(join(root, 'packages')).filter((p) => existsSync(join(root, 'packages', p, 'README.md')));

/** Markdown links (inline) of a text: their targets. */
const links = (text: string) => [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] as string);

describe.each(packages)('packages/%s/README.md', (pkg) => {
  const readme = readFileSync(join(root, 'packages', pkg, 'README.md'), 'utf8');

  it('links only to absolute URLs, into the repository at files and folders that exist', () => {
    const problems: string[] = [];
    for (const link of links(readme)) {
      if (link.startsWith('#')) continue;
      if (!/^https:\/\//.test(link)) {
        problems.push(`${link}: relative (does not resolve from an installed package)`);
        continue;
      }
      const inRepo = /^(?<base>https:\/\/github\.com\/[^/]+\/[^/]+)\/(?:blob|tree)\/main\/(?<path>[^#]*)/.exec(link);
      if (link.startsWith(repo) && !inRepo) problems.push(`${link}: not a file or folder of the repository`);
      if (inRepo?.groups?.base === repo) {
        const path = join(root, decodeURIComponent(inRepo.groups.path as string));
        if (!existsSync(path)) problems.push(`${link}: no such file in the repository`);
        else if (link.includes('/blob/') && statSync(path).isDirectory()) problems.push(`${link}: a folder linked as a file`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('is short and task-first: a title, what it is, an install command, an example, links', () => {
    expect(readme.split('\n').length).toBeLessThanOrEqual(70);
    expect(readme).toMatch(new RegExp(`^# @fapi-guard/${pkg}\\n`));
    expect(readme).toMatch(/```sh\nnpm install [^\n]*@fapi-guard\//);
    expect(readme).toMatch(/```ts\n/);
    expect(links(readme).filter((l) => l.startsWith(repo)).length).toBeGreaterThan(0);
  });

  it('shows marked examples exactly as the files the tests run', () => {
    for (const m of readme.matchAll(/^<!-- (\S+) -->\n```[a-z]*\n([\s\S]*?)^```$/gm)) {
      expect(m[2]).toBe(readFileSync(join(root, m[1] as string), 'utf8'));
    }
  });
});
