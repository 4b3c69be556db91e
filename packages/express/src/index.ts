/**
 * @fapi-guard/express: the middleware, and the type of `req.auth` it sets. An app that also runs
 * a library declaring `req.auth` (express-oauth2-jwt-bearer, during a migration) imports
 * `@fapi-guard/express/side-by-side` instead: the same exports without this declaration.
 */
import type { Authorized } from '@fapi-guard/core';

export * from './middleware.js';

declare global {
  namespace Express {
    interface Request {
      /** Set by `protect()` when the request passed every check (with the default `property`). */
      auth?: Authorized;
    }
  }
}
