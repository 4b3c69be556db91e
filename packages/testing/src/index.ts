export { type MintOptions, type MockAlgorithm, MockIssuer, type MockIssuerOptions, type TokenFault } from './mock-issuer.js';
