export { CASES, type Level, type Missed, type Outcome, type ProbeCase, type Requirement } from './cases.js';
export type { Binding, FaultToken } from './context.js';
export { type ClientCertificate, NetworkError, type NetworkFailure } from './http.js';
export { PROFILES, type ProbeProfile, type SignerInput } from './regimes.js';
export { toJson, toJUnit, toTable } from './report.js';
export { type CaseResult, type CaseStatus, type ExitCode, type ProbeOptions, type ProbeReport, runProbe } from './run.js';
export { type AuthorizationServer, AuthorizationServerError } from './tokens.js';
