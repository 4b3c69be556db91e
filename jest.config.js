// One Jest run over every package's unit tests and the cross-package suites in test/.
// ESM-only dependencies are transformed to CommonJS by SWC: plain Node >= 20.19 can require()
// them, but Jest's module runtime cannot before Node 24.9.
const esmOnly = ['jose', 'oauth4webapi', 'dpop', 'oidc-provider', 'cookie', 'structured-headers'];

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  // docs/snippets/test: the guides' test files, run as they are shown.
  roots: ['<rootDir>/packages', '<rootDir>/test', '<rootDir>/examples', '<rootDir>/docs'],
  testMatch: ['**/test/**/*.test.ts'],
  // Apps that install the packed packages (tools/consumer-check.sh), not suites of this repo.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/consumers/'],
  modulePathIgnorePatterns: ['<rootDir>/test/consumers/'],
  transform: {
    '^.+\\.(t|j)s$': [
      '@swc/jest',
      {
        // Legacy decorators with metadata, as TypeScript compiles them for NestJS (packages/nestjs).
        jsc: {
          parser: { syntax: 'typescript', decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true },
          target: 'es2022',
        },
        module: { type: 'commonjs' },
      },
    ],
  },
  // Look at the package after the LAST /node_modules/ so nested copies are transformed too.
  transformIgnorePatterns: [`/node_modules/(?!(${esmOnly.join('|')})/)(?!.*/node_modules/)`],
  // Tests run against the sources, so a failing test points at the line that changed.
  moduleNameMapper: {
    '^@fapi-guard/([a-z-]+)$': '<rootDir>/packages/$1/src/index.ts',
    // Sub-path entry points: the core's optional exporters live in observe/; others are the source file of the same name.
    '^@fapi-guard/core/(prometheus|otel)$': '<rootDir>/packages/core/src/observe/$1.ts',
    '^@fapi-guard/([a-z-]+)/([a-z-]+)$': '<rootDir>/packages/$1/src/$2.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  // The guard's default stderr log lines, provoked on purpose by many suites, stay out of a passing run.
  setupFiles: ['<rootDir>/test/support/quiet-logs.ts'],
  testTimeout: 20000,
};
