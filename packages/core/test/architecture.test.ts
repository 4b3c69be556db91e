/**
 * The core's folders are its architecture (see the package README): each folder's README.md says
 * in its last line what the folder may import, and these tests hold the code to it. A value
 * import outside the list, any import of `runtime/` from the pipeline, or an import circle fails.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

const SRC = join(__dirname, '..', 'src');

interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
}

function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [relative(SRC, path)] : [];
  });
}

const IMPORT = /^(import|export)(\s+type)?\s+([^;]*?)\s+from\s+'(\.{1,2}\/[^']+)';/gms;

/** Every relative import and re-export in the core, with whether it carries types alone. */
function edges(): Edge[] {
  return sources().flatMap((file) => {
    const text = readFileSync(join(SRC, file), 'utf8');
    return [...text.matchAll(IMPORT)].map((m) => {
      const names = /\{([^}]*)\}/.exec(m[3] as string)?.[1];
      const specifiers =
        names
          ?.split(',')
          .map((s) => s.trim())
          .filter(Boolean) ?? [];
      const typeOnly = m[2] !== undefined || (specifiers.length > 0 && specifiers.every((s) => s.startsWith('type ')));
      const to = normalize(join(dirname(file), (m[4] as string).replace(/\.js$/, '.ts')));
      return { from: file, to, typeOnly };
    });
  });
}

/** `binding/dpop.ts` → `binding/`; a file at the top is its own place (`request.ts`). */
const placeOf = (file: string) => (file.includes('/') ? `${file.split('/')[0]}/` : file);

/** What a folder's README allows: the places in backticks on its `May import:` line, and whether types may come from anywhere. */
function allowed(folder: string): { places: Set<string>; typesAnywhere: boolean } {
  const readme = readFileSync(join(SRC, folder, 'README.md'), 'utf8');
  const line = readme.split('\n').find((l) => l.startsWith('May import:'));
  if (!line) throw new Error(`${folder}README.md has no "May import:" line`);
  const rule = line.split('. ')[0] as string;
  return { places: new Set([...rule.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string)), typesAnywhere: rule.includes('types only') };
}

const FOLDERS = readdirSync(SRC, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => `${e.name}/`);

describe('core architecture', () => {
  const all = edges();

  it('finds the imports it checks', () => {
    expect(all.length).toBeGreaterThan(100);
    expect(all).toContainEqual({ from: 'guard.ts', to: 'authenticate.ts', typeOnly: false });
    expect(all).toContainEqual({ from: 'observe/metrics.ts', to: 'config/options.ts', typeOnly: true });
  });

  it.each(FOLDERS)('%s imports only what its README allows', (folder) => {
    const { places, typesAnywhere } = allowed(folder);
    const outside = all.filter((e) => placeOf(e.from) === folder && placeOf(e.to) !== folder);
    const refused = outside.filter((e) => {
      const place = placeOf(e.to);
      if (places.has(place)) return false;
      return !(e.typeOnly && typesAnywhere && place !== 'runtime/');
    });
    expect(refused.map((e) => `${e.from} -> ${e.to}${e.typeOnly ? ' (types)' : ''}`)).toEqual([]);
  });

  it('no file of the pipeline but index.ts imports runtime/ (the seams depend on the guard, never the reverse)', () => {
    const upward = all.filter((e) => !e.from.includes('/') && e.from !== 'index.ts' && e.to.startsWith('runtime/'));
    expect(upward.map((e) => `${e.from} -> ${e.to}`)).toEqual([]);
  });

  it('has no import circle, type imports included', () => {
    const next = new Map<string, string[]>();
    for (const e of all) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
    const state = new Map<string, 'open' | 'done'>();
    const circles: string[] = [];
    const visit = (file: string, path: string[]) => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        circles.push([...path.slice(path.indexOf(file)), file].join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const to of next.get(file) ?? []) visit(to, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of sources()) visit(file, []);
    expect(circles).toEqual([]);
  });
});
