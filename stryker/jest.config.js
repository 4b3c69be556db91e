// The Jest configuration StrykerJS runs: the repository's own, less the suites that need
// outside processes (a real redis-server, a real authorization server) or built dist/ files
// (the example's `npm start` / `npm run demo` tests and fapi-probe's command-line test run
// compiled code, never the mutants; the probe's other tests check the probe, not the guard).
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const base = require('../jest.config.js');

// Stryker's sandbox (.stryker-tmp/sandbox-*/ inside the repository) has no nested node_modules:
// packages/core's own lru-cache (the root one is v5, pulled in by tooling) is taken from the
// repository itself.
const repository = [join(__dirname, '..'), join(__dirname, '..', '..', '..')].find((dir) =>
  existsSync(join(dir, 'packages', 'core', 'node_modules', 'lru-cache')),
);
const lruCache = require.resolve('lru-cache', { paths: [join(repository, 'packages', 'core')] });

// STRYKER_TESTS narrows the suites to those whose path matches this regular expression (a quick
// run over one module; its score is then a lower bound: a test left out may kill a survivor).
const only = process.env.STRYKER_TESTS;

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  rootDir: '..',
  moduleNameMapper: { ...base.moduleNameMapper, '^lru-cache$': lruCache },
  ...(only ? { testRegex: only, testMatch: undefined } : {}),
  testPathIgnorePatterns: [
    '/node_modules/',
    '/examples/',
    '/packages/probe/',
    '/test/interop/',
    'redis',
    '/test/multi-instance\\.test\\.ts$',
    '/test/framework-versions\\.test\\.ts$',
  ],
};
