/**
 * `@fapi-guard/express/side-by-side`: the middleware without the `req.auth` type declaration, for
 * an app that runs another library declaring `req.auth` (express-oauth2-jwt-bearer) while it
 * migrates route by route. Set `property` to keep the two apart at run time and read the
 * authorization with `fapi.authorization(req)`:
 *
 * ```ts
 * import { fapiGuard } from '@fapi-guard/express/side-by-side';
 * const fapi = fapiGuard(options, { property: 'fapi' });
 * app.get('/v2/accounts', fapi.protect({ scopes: ['accounts'] }), (req, res) => res.json(fapi.authorization(req).clientId));
 * ```
 */
export * from './middleware.js';
