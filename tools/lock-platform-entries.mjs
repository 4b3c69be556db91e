// Completes package-lock.json with the optional platform binaries (swc, biome, turbo, the unrs
// resolver) of other operating systems. npm records them only when the registry serves their
// exact version; the registry mirror of our build machines holds the Linux builds only, and
// without the entries `npm ci` refuses the lock file ("Missing: … from lock file").
// Each entry carries os / cpu / libc read from the package name, so npm skips it on every
// other platform without a download.
// Usage: node tools/lock-platform-entries.mjs   (after any `npm install` that changes the lock)
import { readFileSync, writeFileSync } from 'node:fs';

const OS = [
  [/darwin/, 'darwin'],
  [/win32|windows/, 'win32'],
  [/android/, 'android'],
  [/freebsd/, 'freebsd'],
  [/openharmony/, 'openharmony'],
  [/linux/, 'linux'],
];
const CPU = [
  [/arm64|aarch64/, 'arm64'],
  [/x64|-64$/, 'x64'],
  [/ia32/, 'ia32'],
  [/-arm-|arm-eabi|gnueabihf|musleabihf/, 'arm'],
  [/ppc64/, 'ppc64'],
  [/s390x/, 's390x'],
  [/riscv64/, 'riscv64'],
  [/loong64/, 'loong64'],
];
const pick = (table, name) => table.find(([re]) => re.test(name))?.[1];

const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
const packages = lock.packages;
let added = 0;
for (const entry of Object.values(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const path = `node_modules/${name}`;
    if (packages[path]) continue;
    const os = pick(OS, name);
    const cpu = pick(CPU, name);
    if (!os || !cpu) throw new Error(`cannot tell the platform of ${name}`);
    const libc = /musl/.test(name) ? 'musl' : os === 'linux' && /gnu/.test(name) ? 'glibc' : undefined;
    packages[path] = {
      version: version.replace(/^[\^~=]/, ''),
      cpu: [cpu],
      ...(entry.dev ? { dev: true } : {}),
      ...(libc ? { libc: [libc] } : {}),
      optional: true,
      os: [os],
    };
    added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))));
writeFileSync('package-lock.json', `${JSON.stringify(lock, null, 2)}\n`);
console.log(`added ${added} platform entries`);
