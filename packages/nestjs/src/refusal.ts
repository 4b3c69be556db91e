/**
 * A refusal travels from the guard to the response as an exception (Nest stops the route only
 * when a guard throws or returns false). By default {@link FapiRefusalFilter} writes it as the
 * RFC 6750 / RFC 9449 answer — the bytes of the other adapters — instead of Nest's exception JSON;
 * with the module setting `errors: 'throw'` it goes to the application's own exception filters.
 */
import type { ErrorBody, GuardError } from '@fapi-guard/core';
import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import { writeRefusal } from './platform.js';

/**
 * The guard's refusal of a request: an `HttpException` with the refusal's status and the short
 * JSON body, and the refusal itself in `error` (`status`, `headers`, `reason`, the OAuth `error`
 * code). Before it is thrown the status and the challenge headers (`WWW-Authenticate`,
 * `DPoP-Nonce`, `Retry-After`) are set on the response and pinned: whatever an exception filter
 * writes, they go out as RFC 6750 §3 and RFC 9449 §7.1 require.
 */
export class FapiRefusal extends HttpException {
  constructor(readonly error: GuardError) {
    super(error.body, error.status);
  }
}

/** The refusal the module answers itself (the default, `errors: 'respond'`), in the `errorBody` format. */
export class FapiRespondedRefusal extends FapiRefusal {
  constructor(
    error: GuardError,
    readonly errorBody?: ErrorBody,
  ) {
    super(error);
  }
}

/**
 * Writes a refusal the module answers itself: the status, the challenge headers and the body
 * (`errorBody`). The policy decorators put it on every route they protect; the module provides
 * it as a global filter too, for the app-wide guard.
 */
@Catch(FapiRespondedRefusal)
export class FapiRefusalFilter implements ExceptionFilter<FapiRespondedRefusal> {
  catch(refusal: FapiRespondedRefusal, host: ArgumentsHost): void {
    writeRefusal(host.switchToHttp().getResponse<object>(), refusal.error, refusal.errorBody);
  }
}
