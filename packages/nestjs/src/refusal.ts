/**
 * A refusal travels from the guard to the response as an exception (Nest stops the route only
 * when a guard throws or returns false). By default {@link FapiRefusalFilter} writes it as the
 * RFC 6750 / RFC 9449 answer — the bytes of the other adapters — instead of Nest's exception JSON;
 * with the module setting `errors: 'framework'` it goes to the application's own exception filters.
 */
import { type ErrorBody, type GuardError, writeIdempotencyAnswer } from '@fapi-guard/core';
import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import { type FastifyReplyLike, nodeResponse, writeRefusal } from './platform.js';
import { FapiReplay } from './replay.js';

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
 * Writes a refusal the module answers itself (the status, the challenge headers and the body,
 * `errorBody`), or a {@link FapiReplay} (the stored response of an idempotent request, on Node's
 * response as stored). The policy decorators put it on every route they protect; the module
 * provides it as a global filter too, for the app-wide guard.
 */
@Catch(FapiRespondedRefusal, FapiReplay)
export class FapiRefusalFilter implements ExceptionFilter<FapiRespondedRefusal | FapiReplay> {
  catch(exception: FapiRespondedRefusal | FapiReplay, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<object>();
    if (exception instanceof FapiRespondedRefusal) {
      writeRefusal(response, exception.error, exception.errorBody);
      return;
    }
    // Fastify is told the reply is written here (it would otherwise answer again).
    (response as Partial<FastifyReplyLike>).hijack?.();
    // Stryker disable next-line StringLiteral: equivalent, writeIdempotencyAnswer writes anything but a refusal as the stored response
    writeIdempotencyAnswer(nodeResponse(response), { kind: 'replay', response: exception.stored });
  }
}
