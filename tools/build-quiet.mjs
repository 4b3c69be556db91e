#!/usr/bin/env node
// Builds every package (turbo, cached) without printing turbo's progress and summary, so the
// command that follows (`npm start`, `npm run call`, `npm run demo`) shows only its own answer.
// A failed build prints everything turbo said, on stderr, and exits with turbo's code.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const turbo = require.resolve('turbo/bin/turbo');
const result = spawnSync(process.execPath, [turbo, 'run', 'build', '--output-logs=errors-only'], {
  encoding: 'utf8',
  env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1', TURBO_NO_UPDATE_NOTIFIER: '1' },
  maxBuffer: 64 * 1024 * 1024,
});
if (result.error) {
  process.stderr.write(`build: could not run turbo: ${result.error.message}\n`);
  process.exit(1);
}
if (result.status !== 0) {
  process.stderr.write(result.stdout);
  process.stderr.write(result.stderr);
  process.exit(result.status ?? 1);
}
