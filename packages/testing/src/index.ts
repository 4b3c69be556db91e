export { type DpopAlgorithm, DpopClient, type DpopRequestOptions, type ProofFault, type ProofOptions } from './dpop-client.js';
export { type MintOptions, type MockAlgorithm, MockIssuer, type MockIssuerOptions, type TokenFault } from './mock-issuer.js';
