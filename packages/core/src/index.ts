export {
  accessTokenHash,
  type DpopProofRequest,
  type DpopResult,
  DpopVerifier,
  type DpopVerifierSettings,
  normalizeHtu,
} from './binding/dpop.js';
export {
  type CertificateProxyOptions,
  CertificateSource,
  type ClientCertificate,
  type ClientCertificateFormat,
  certificateThumbprint,
  type MtlsOptions,
  parseClientCertChain,
} from './binding/mtls.js';
export { type DpopNonceOptions, DpopNonces, NONCE_SYNTAX } from './binding/nonce.js';
export { jwkThumbprint } from './binding/thumbprint.js';
export { MemoryReplayStore, type MemoryReplayStoreOptions, type ReplayStore, ReplayStoreFullError } from './common/stores.js';
export { GUARD_ENV_VARIABLES, type GuardEnvOptions, type GuardEnvVariable, guardOptionsFromEnv } from './config/env.js';
export {
  COMPAT_PRESETS,
  type CompatOptions,
  type DecisionEvent,
  type DpopOptions,
  FAPI_ALGORITHMS,
  type GuardOptions,
  type MessageSigningOptions,
  type OpenFinanceBrasilOptions,
  SUPPORTED_ALGORITHMS,
  type UkOpenBankingOptions,
} from './config/options.js';
export type { ResolvedOptions } from './config/resolve.js';
export { type CredentialsResult, isFormEncoded, readCredentials } from './credentials.js';
export {
  type AuthScheme,
  brErrorEnvelope,
  challengeParamValue,
  GuardError,
  type GuardErrorReason,
  type GuardErrorStatus,
  isGuardError,
  type OAuthErrorCode,
  OB_ERROR_CODES,
  obErrorEnvelope,
  REASONS,
  renderChallenges,
} from './errors.js';
export { type Authenticated, type Authorized, type Binding, createGuard, type Guard, type SignedOutgoing } from './guard.js';
export {
  type BodyBytes,
  beginIdempotency,
  type IdempotencyStart,
  type IdempotencyTicket,
  idempotencyStoreKey,
  idempotencyStoreOf,
  type SentResponse,
} from './idempotency/exchange.js';
export { type FetchIdempotencyStart, startFetchIdempotency, storedFetchResponse } from './idempotency/fetch.js';
export { requestFingerprint } from './idempotency/fingerprint.js';
export {
  IDEMPOTENCY_HEADERS,
  IDEMPOTENCY_KEY_MAX,
  type IdempotencyKeyResult,
  type IdempotencyKeySyntax,
  readIdempotencyKey,
} from './idempotency/key.js';
export { idempotencyApplies } from './idempotency/layers.js';
export { MemoryIdempotencyStore, type MemoryIdempotencyStoreOptions } from './idempotency/memory.js';
export { type NodeClaim, type NodeIdempotencyStart, startNodeIdempotency, writeIdempotencyAnswer } from './idempotency/node.js';
export { type CompiledIdempotency, compileIdempotency, type IdempotencyOptions, type IdempotencyPolicy } from './idempotency/policy.js';
export {
  type IdempotencyClaim,
  type IdempotencyOutcome,
  type IdempotencyRecord,
  type IdempotencyStore,
  IdempotencyStoreFullError,
  type StoredResponse,
} from './idempotency/store.js';
export { type InteractionId, interactionId } from './interaction.js';
export { buildMetadata, type MetadataFacts, metadataPath, metadataUrl, type ResourceMetadataOptions } from './metadata.js';
export { type GuardLogger, Notices, stderrLogger } from './observe/logger.js';
export { DecisionMetrics, type MetricsSnapshot } from './observe/metrics.js';
export {
  type AuthorizationDetailRequirement,
  type ClaimCheck,
  type CompiledPolicy,
  checkPolicy,
  compilePolicy,
  grantedScopes,
  type RoutePolicy,
} from './policy.js';
export {
  BR_JWT_MAX_LENGTH,
  isJwtMediaType,
  type JwtBodyFailure,
  type JwtBodyResult,
  signJwtBody,
  type VerifiedJwtBody,
  verifyJwtBody,
} from './regimes/br-signed-jwt.js';
export { type FapiCustomerHeaders, type FapiHeadersResult, isCustomerIpAddress, readFapiCustomerHeaders } from './regimes/fapi-headers.js';
export { HTTP_DATE_MAX_LENGTH, parseHttpDate } from './regimes/http-date.js';
export {
  type ClientProfileName,
  type ClientProfileOptions,
  FAPI1_ALGORITHMS,
  FAPI2_ALGORITHMS,
  type Profile,
  type ProfileName,
  profileSettings,
} from './regimes/profiles.js';
export {
  OB_IAT,
  OB_ISS,
  OB_SIGNATURE_MAX_LENGTH,
  OB_TAN,
  type ObKey,
  type ObSignatureFailure,
  type ObSignatureResult,
  type ObSigningKey,
  type ObSigningVersion,
  obSigningKey,
  obVerificationKey,
  signObBody,
  type VerifiedObSignature,
  verifyObSignature,
} from './regimes/uk-ob-signature.js';
export {
  announcesBody,
  type ConnectionInfo,
  type GuardHeaders,
  type GuardRequest,
  headerLines,
  headersFromRaw,
  type OriginOptions,
  OriginResolver,
  type UrlResult,
} from './request.js';
export { guardRequestOn, type KnownConnection, nodeConnection, type RequestConnection } from './runtime/connection.js';
export {
  authorizeFetchRequest,
  type FetchAuthorization,
  type FetchBody,
  FORM_BODY_LIMIT,
  fetchErrorResponse,
  fetchResponse,
  guardRequestFromFetch,
  headersFromFetch,
  protectFetchRequest,
  readFetchBody,
  requestTarget,
  signFetchResponse,
} from './runtime/fetch.js';
export { authorizationOf, rememberAuthorization } from './runtime/layers.js';
export {
  authorizeNodeRequest,
  captureRawBody,
  completeNodeRequest,
  errorResponse,
  guardRequestFromNode,
  type NodeRequestParts,
  protectNodeRequest,
  type ResponseParts,
  receivedTarget,
  trackReceivedTargets,
} from './runtime/node.js';
export { bodyUnread, type RawBody, readRawBody, rememberedRawBody, rememberRawBody, tapRawBody } from './runtime/node-body.js';
export { signNodeResponse } from './runtime/node-response.js';
export {
  checkRefusalOptions,
  type ErrorBody,
  pinRefusal,
  problemDetails,
  type RefusalOptions,
  refusalBody,
  takeRefusalOptions,
} from './runtime/refusals.js';
export { FAPI_TLS12_CIPHERS, FAPI_TLS13_CIPHERS, type FapiTlsInput, fapiTlsOptions } from './runtime/tls.js';
export {
  componentValue,
  SIGNATURE_BASE_BOUNDS,
  type SignatureBaseBounds,
  SignatureBaseError,
  type SignedMessage,
  signatureBase,
} from './signatures/base.js';
export { type ClientKeyOptions, type ClientKeyResult, type ClientKeySource, ClientKeys } from './signatures/client-keys.js';
export { contentDigest, type DigestCheck, verifyContentDigest } from './signatures/digest.js';
export {
  acceptSignature,
  type OutgoingResponse,
  REQUEST_TAG,
  RESPONSE_TAG,
  type RequestSignatureInput,
  type RequestSignatureResult,
  type ResponseSigningContext,
  requiredRequestComponents,
  type SignedExchangeRecord,
  type SignedResponse,
  signResponse,
  type VerifiedRequestSignature,
  verifyRequestSignature,
} from './signatures/fapi.js';
export {
  FAPI_SIGNATURE_ALGORITHMS,
  type NamedSignatureKey,
  type ResponseSigningKey,
  type SignatureJwk,
  signatureAlgorithmOf,
  signBase,
  signingKey,
  verificationKey,
} from './signatures/keys.js';
export {
  type HttpSignatureAlgorithm,
  MAX_SIGNATURES,
  type MessageSignature,
  parseSignatures,
  type SignatureKey,
  type VerifyOptions,
  type VerifyResult,
  verifyMessageSignature,
  verifySignatureValue,
} from './signatures/verify.js';
export type { OutboundOptions } from './tokens/http.js';
export {
  type CachedIntrospection,
  type IntrospectionCache,
  type IntrospectionClientAuth,
  type IntrospectionOptions,
  Introspector,
  MemoryIntrospectionCache,
} from './tokens/introspection.js';
export {
  discoveryUrls,
  type IssuerConfig,
  IssuerKeys,
  type JSONWebKeySet,
  type KeySetOptions,
  keyMatches,
  rsaModulusBits,
} from './tokens/issuer.js';
export { type AccessTokenClaims, isAccessTokenTyp, type TokenResult, tokenHash, type VerifiedAccessToken } from './tokens/jwt.js';
