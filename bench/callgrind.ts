/**
 * Instruction counts with valgrind's callgrind (`BENCH_CALLGRIND=1`): the server runs under
 * callgrind with instrumentation off until the load starts; instructions executed in user space
 * by all its threads are counted during the load only. Unlike CPU time they do not depend on
 * what else runs on the machine (caches, preemption, softirqs charged to whoever runs); they
 * leave out the kernel's work (reading, writing, waking). About 50× slower than native.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const callgrindDir = mkdtempSync(join(tmpdir(), 'fapi-bench-callgrind-'));

/** The command line that starts `node <nodeArgs>` under callgrind, instrumentation off unless `counting`. */
export function underCallgrind(nodeArgs: string[], counting = false, out = join(callgrindDir, 'cg.%p.out')): [string, string[]] {
  return [
    'valgrind',
    [
      '--tool=callgrind',
      `--instr-atstart=${counting ? 'yes' : 'no'}`,
      // V8 writes and rewrites machine code: valgrind must notice (its default checks the stack only).
      '--smc-check=all-non-file',
      `--callgrind-out-file=${out}`,
      `--log-file=${join(callgrindDir, 'valgrind.%p.log')}`,
      process.execPath,
      ...nodeArgs,
    ],
  ];
}

/** Instrumentation on and counters at zero, in the running process `pid`. */
export async function startCounting(pid: number): Promise<void> {
  await run('callgrind_control', ['--instr=on', String(pid)]);
  await run('callgrind_control', ['--zero', String(pid)]);
}

/** Instructions counted in `pid` since {@link startCounting}: a dump, read back. */
export async function countedInstructions(pid: number): Promise<number> {
  const before = new Set(readdirSync(callgrindDir));
  await run('callgrind_control', ['--dump', String(pid)]);
  const dump = readdirSync(callgrindDir).find((f) => f.startsWith(`cg.${pid}.out`) && !before.has(f));
  if (!dump) throw new Error(`callgrind wrote no dump for ${pid}`);
  const totals = /^totals: (\d+)/m.exec(readFileSync(join(callgrindDir, dump), 'utf8'));
  if (!totals) throw new Error(`no totals in ${dump}`);
  return Number(totals[1]);
}

/**
 * Instructions of one ES256 `crypto.verify` (proof-sized input, key imported once): the
 * difference between a process that runs `count` of them and one that runs none, both under
 * callgrind with everything counted.
 */
export async function verifyInstructions(count = 300): Promise<number> {
  const script = `const c = require('node:crypto');
const { privateKey, publicKey } = c.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const data = Buffer.from('x'.repeat(400));
const signature = c.sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
for (let i = 0; i < Number(process.argv[1]); i++) c.verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);`;
  const total = async (n: number) => {
    const out = join(callgrindDir, `verify.${n}.out`);
    const [command, args] = underCallgrind(['-e', script, String(n)], true, out);
    await run(command, args);
    return Number(/^totals: (\d+)/m.exec(readFileSync(out, 'utf8'))?.[1]);
  };
  const [none, some] = await Promise.all([total(0), total(count)]);
  return (some - none) / count;
}
