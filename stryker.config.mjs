// Mutation testing with StrykerJS (`npm run test:mutation`; not part of `npm test` or CI).
// Each mutant is a small change to a security check; a test must fail for it ("killed").
// Survivors that cannot change behaviour are listed with the reason in
// stryker/equivalent-mutants.md. Narrow a run with `-m`, e.g.
//   npm run test:mutation -- -m packages/core/src/policy.ts
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'jest',
  jest: { projectType: 'custom', configFile: 'stryker/jest.config.js', enableFindRelatedTests: false },
  // Per-test coverage: each mutant runs only the tests that reach it.
  coverageAnalysis: 'perTest',
  // Mutants in module-level code (constants built at load time) would each need the whole suite;
  // they are skipped. Run with --ignoreStatic false to include them.
  ignoreStatic: true,
  // The security-relevant code: binding, tokens, policy, credentials, request, signatures, adapters.
  mutate: [
    'packages/core/src/binding/**/*.ts',
    'packages/core/src/tokens/**/*.ts',
    'packages/core/src/policy.ts',
    'packages/core/src/credentials.ts',
    'packages/core/src/request.ts',
    'packages/core/src/signatures/**/*.ts',
    'packages/express/src/**/*.ts',
    'packages/koa/src/**/*.ts',
    'packages/fastify/src/**/*.ts',
    'packages/nestjs/src/**/*.ts',
    'packages/hono/src/**/*.ts',
  ],
  // Reruns test only mutants whose code or covering tests changed since the last run. tools/mutation.mjs
  // names one file per module under stryker/state/ (committed, issue 31), so a run on another machine
  // continues from the last one; a plain `stryker run` uses this ignored file.
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  // docs/ stays: test/deploy-proxies.test.ts runs the proxy configurations in docs/deploy, and
  // test/migration.test.ts the table in the migration guide.
  ignorePatterns: ['reports', 'bench', '**/dist', '.turbo', 'coverage', 'stryker/state'],
  // Two cores shared with other work: one test process at a time by default (raise with -c).
  concurrency: 1,
  timeoutMS: 20000,
  reporters: ['clear-text', 'progress-append-only', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 90, low: 80, break: null },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
