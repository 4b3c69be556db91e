// Jest transformer used by jest-preset.js: ESM → CommonJS with Babel's own module plugin,
// for files Jest loads through require(). Files Jest loads as ES modules (its
// --experimental-vm-modules mode, e.g. ts-jest with useESM) are left as they are.
const { createHash } = require('node:crypto');
const babel = require('@babel/core');

const plugin = require.resolve('@babel/plugin-transform-modules-commonjs');
const version = `${require('./package.json').version}/${babel.version}/${require('@babel/plugin-transform-modules-commonjs/package.json').version}`;

/** @type {import('@jest/transform').SyncTransformer} */
module.exports = {
  getCacheKey(source, filename, options) {
    return createHash('sha256')
      .update(`${version}\0${filename}\0${options.supportsStaticESM ? 'esm' : 'cjs'}\0${source}`)
      .digest('hex');
  },
  process(source, filename, options) {
    if (options.supportsStaticESM) return { code: source };
    const out = babel.transformSync(source, {
      filename,
      babelrc: false,
      configFile: false,
      sourceMaps: true,
      plugins: [plugin],
    });
    if (!out?.code) throw new Error(`@fapi-guard/testing: could not compile ${filename} to CommonJS`);
    return { code: out.code, map: out.map };
  },
};
