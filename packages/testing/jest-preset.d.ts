/** Jest preset (`preset: '@fapi-guard/testing'`): compiles the ESM-only jose and cookie to CommonJS for Jest. */
declare const preset: {
  transform: Record<string, string>;
  transformIgnorePatterns: string[];
};
export = preset;
