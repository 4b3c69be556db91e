/**
 * What npm shows for an installed package: where its source, documentation and issue tracker are.
 * Every workspace names the same repository, with its own folder, so links resolve from a tarball.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..');
const rootManifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { workspaces: string[] };

interface Manifest {
  name: string;
  repository?: { type?: string; url?: string; directory?: string };
  homepage?: string;
  bugs?: { url?: string };
}

/** The repository URL every manifest repeats (npm's `git+https://….git` form stripped). */
function repositoryUrl(): string {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Manifest;
  const url = manifest.repository?.url ?? '';
  return url.replace(/^git\+/, '').replace(/\.git$/, '');
}

describe('package manifests', () => {
  const repo = repositoryUrl();

  it('the root names an https GitHub repository', () => {
    expect(repo).toMatch(/^https:\/\/github\.com\/[\w.-]+\/[\w.-]+$/);
  });

  it.each(rootManifest.workspaces)('%s has repository (with its folder), homepage and bugs', (dir) => {
    const manifest = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')) as Manifest;
    expect(manifest.repository).toEqual({ type: 'git', url: `git+${repo}.git`, directory: dir });
    expect(manifest.homepage).toBe(`${repo}/tree/main/${dir}#readme`);
    expect(manifest.bugs).toEqual({ url: `${repo}/issues` });
  });
});
