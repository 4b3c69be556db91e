// The Jest configuration StrykerJS runs: the repository's own, less the suites that need
// outside processes (a real redis-server, a real authorization server) and have no mutants of
// their own to kill — they would slow every run without changing the score.
const base = require('../jest.config.js');

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  rootDir: '..',
  testPathIgnorePatterns: ['/node_modules/', '/test/interop/', 'redis', '/test/multi-instance\\.test\\.ts$', '/test/framework-versions\\.test\\.ts$'],
};
