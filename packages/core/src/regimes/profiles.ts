/**
 * Regimes as profiles of one pipeline (DESIGN "Composition"): a profile selects settings —
 * algorithms, the sender constraints a token may use, which FAPI headers are validated — and
 * never adds steps of its own. A client is always served under its own profile: the one it is
 * registered for (`clientProfiles`), else the one its token names, else the guard's.
 */
import type { AccessTokenClaims } from '../tokens/jwt.js';

/** The profiles a guard can serve. */
export type ProfileName = 'fapi2' | 'fapi1-advanced' | 'oauth2';

/** Profiles a client can be registered for (`oauth2` is a relaxation for whole APIs, never a client's). */
export type ClientProfileName = Exclude<ProfileName, 'oauth2'>;

/** FAPI 2.0 Security Profile §5.4.1 #1.2: the algorithms allowed for JWTs, in challenge order. */
export const FAPI2_ALGORITHMS = ['ES256', 'PS256', 'EdDSA'] as const;
/** FAPI 1.0 Part 2 §8.6: PS256 or ES256, nothing else. */
export const FAPI1_ALGORITHMS = ['PS256', 'ES256'] as const;

/** What a profile selects in the pipeline. */
export interface Profile {
  readonly name: ProfileName;
  /** JWS algorithms of access tokens (and of DPoP proofs, where DPoP is accepted). */
  readonly algorithms: readonly string[];
  /** DPoP-bound tokens (RFC 9449) are accepted; certificate-bound ones (RFC 8705) always are. */
  readonly dpop: boolean;
  /** Tokens without `cnf` pass on routes that do not say `allowBearer` (only `oauth2`). */
  readonly bearerByDefault: boolean;
  /**
   * Only certificate-bound tokens (RFC 8705): an unbound token is refused even on a route that
   * says `allowBearer` — a route cannot serve a client under less than its profile (FAPI 1.0
   * Part 2 §6.2.1).
   */
  readonly certificateBoundOnly: boolean;
  /** A malformed `x-fapi-auth-date` or `x-fapi-customer-ip-address` is refused. */
  readonly validatesCustomerHeaders: boolean;
}

/** Which profile serves which client (migration from FAPI 1.0 Advanced to FAPI 2.0). */
export interface ClientProfileOptions {
  /**
   * The profile each listed client is registered for, by client id. A token whose `claim` names
   * another profile than the list is refused: the registration decides, a token cannot move a
   * client.
   * @default {} (no client listed)
   */
  clients?: Readonly<Record<string, ClientProfileName>>;
  /**
   * An access-token claim that names the client's profile (`fapi2` or `fapi1-advanced`), for
   * authorization servers that record it. Another value is refused (401 invalid_token).
   * @default undefined (the claim is not read)
   */
  claim?: string;
}

export function profileSettings(name: ProfileName, algorithms?: readonly string[]): Profile {
  switch (name) {
    case 'fapi1-advanced':
      return {
        name,
        algorithms: algorithms ?? FAPI1_ALGORITHMS,
        dpop: false,
        bearerByDefault: false,
        certificateBoundOnly: true,
        validatesCustomerHeaders: true,
      };
    case 'oauth2':
      return {
        name,
        algorithms: algorithms ?? [...FAPI2_ALGORITHMS, 'RS256'],
        dpop: true,
        bearerByDefault: true,
        certificateBoundOnly: false,
        validatesCustomerHeaders: false,
      };
    default:
      return {
        name,
        algorithms: algorithms ?? FAPI2_ALGORITHMS,
        dpop: true,
        bearerByDefault: false,
        certificateBoundOnly: false,
        validatesCustomerHeaders: false,
      };
  }
}

export type ProfileChoice = { ok: true; profile: Profile } | { ok: false; detail: string };

/** The profiles of one guard and how a request's client is matched to one. */
export class Profiles {
  private readonly byName: ReadonlyMap<ProfileName, Profile>;
  /** By client id; a token without one (`undefined`) is never listed. */
  private readonly clients: ReadonlyMap<string | undefined, ClientProfileName>;

  constructor(
    readonly fallback: Profile,
    others: readonly Profile[],
    clients: Readonly<Record<string, ClientProfileName>>,
    private readonly claim: string | undefined,
  ) {
    this.byName = new Map([fallback, ...others].map((p) => [p.name, p]));
    this.clients = new Map(Object.entries(clients));
  }

  /** Every profile this guard can serve. */
  get all(): readonly Profile[] {
    return [...this.byName.values()];
  }

  /** The first profile that accepts DPoP, whose algorithms DPoP proofs and challenges use. */
  get dpop(): Profile | undefined {
    return this.all.find((p) => p.dpop);
  }

  /** Registered client, else the token's claim, else the guard's profile; a disagreement is refused. */
  choose(clientId: string | undefined, claims: Readonly<AccessTokenClaims>): ProfileChoice {
    const registered = this.clients.get(clientId);
    let named: string | undefined;
    if (this.claim !== undefined && Object.hasOwn(claims, this.claim)) {
      const value = claims[this.claim];
      if (value !== 'fapi2' && value !== 'fapi1-advanced') return { ok: false, detail: `${this.claim} claim names no known profile` };
      named = value;
    }
    if (registered !== undefined && named !== undefined && registered !== named) {
      return { ok: false, detail: `${this.claim} claim names ${named}, the client is registered for ${registered}` };
    }
    const name = registered ?? (named as ProfileName | undefined);
    return { ok: true, profile: name === undefined ? this.fallback : (this.byName.get(name) as Profile) };
  }
}
