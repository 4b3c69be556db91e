export {
  type CertificateOptions,
  clientCertChainHeader,
  clientCertHeader,
  createCertificate,
  envoyCertHeader,
  nginxCertHeader,
  type TestCertificate,
} from './certificates.js';
export { type DpopAlgorithm, DpopClient, type DpopRequestOptions, type ProofFault, type ProofOptions } from './dpop-client.js';
export {
  MessageSigningClient,
  type SignedResponseCheck,
  type SignedResponseInput,
  type SigningAlgorithm,
  type SignRequestInput,
  type SignRequestOptions,
  verifySignedResponse,
} from './message-signatures.js';
export {
  type IntrospectionBehaviour,
  type IntrospectionRequest,
  type MintOptions,
  type MockAlgorithm,
  MockIssuer,
  type MockIssuerOptions,
  type ProbeArgumentsOptions,
  type TokenFault,
} from './mock-issuer.js';
