/**
 * A refusal travels from the guard to the response as an exception (Nest stops the route only
 * when a guard throws or returns false), and this filter writes it as the RFC 6750 / RFC 9449
 * answer — the bytes of the other adapters — instead of Nest's default exception JSON.
 */
import { type GuardError, writeIdempotencyAnswer } from '@fapi-guard/core';
import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import { type FastifyReplyLike, nodeResponse, writeRefusal } from './platform.js';
import { FapiReplay } from './replay.js';

/**
 * The guard's refusal of a request. An `HttpException` with the refusal's status and body, so a
 * catch-all exception filter of the application that handles it before {@link FapiRefusalFilter}
 * still answers with the right status (without the challenge headers).
 */
export class FapiRefusal extends HttpException {
  constructor(readonly error: GuardError) {
    super(error.body, error.status);
  }
}

/**
 * Writes a {@link FapiRefusal}, or a {@link FapiReplay} (the stored response of an idempotent
 * request, on Node's response as stored). The policy decorators put it on every route they protect.
 */
@Catch(FapiRefusal, FapiReplay)
export class FapiRefusalFilter implements ExceptionFilter<FapiRefusal | FapiReplay> {
  catch(exception: FapiRefusal | FapiReplay, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<object>();
    if (exception instanceof FapiRefusal) {
      writeRefusal(response, exception.error);
      return;
    }
    // Fastify is told the reply is written here (it would otherwise answer again).
    (response as Partial<FastifyReplyLike>).hijack?.();
    writeIdempotencyAnswer(nodeResponse(response), { kind: 'replay', response: exception.stored });
  }
}
