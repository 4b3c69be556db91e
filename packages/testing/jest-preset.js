// Jest preset: `preset: '@fapi-guard/testing'` in a Jest config.
//
// The fapi-guard packages are CommonJS and require('jose'). jose 6 is ESM-only: Node ≥ 20.19
// loads it (require(esm)), Jest's module runtime does not before Node 24.9 ("Must use import
// to load ES Module"). This preset compiles to CommonJS, for Jest only, the ESM-only packages
// that a test of a fapi-guard API requires: jose, and cookie (light-my-request requires it for
// Fastify's inject()).
//
// Merging (Jest's rules): your `transform` entries come first, then these; a
// `transformIgnorePatterns` of your own replaces this one, so leave these packages out of it.
const esmOnly = ['jose', 'cookie'];

// Plain `exports.x =` assignments, so Node sees the names from an ES module too.
exports.transform = {
  [`[\\\\/]node_modules[\\\\/](${esmOnly.join('|')})[\\\\/].+\\.js$`]: require.resolve('./jest-transform.js'),
  // Jest's default for everything else, which a preset's `transform` would otherwise replace.
  '\\.[jt]sx?$': 'babel-jest',
};
// Jest's default ignores all of node_modules. Look at the package after the LAST
// /node_modules/ so nested copies (pnpm, npm's nested installs) are compiled too.
exports.transformIgnorePatterns = [`/node_modules/(?!(${esmOnly.join('|')})/)(?!.*/node_modules/)`, '\\.pnp\\.[^\\/]+$'];
