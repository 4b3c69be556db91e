/** A retry of an idempotent request, answered with the first request's response (see idempotency.ts). */
import type { StoredResponse } from '@fapi-guard/core';
import { HttpException } from '@nestjs/common';

/**
 * The stored response of the first request with the same idempotency key. An `HttpException`
 * with its status, so that an application's catch-all filter that handles it first still answers
 * with that status.
 */
export class FapiReplay extends HttpException {
  constructor(readonly stored: StoredResponse) {
    // Stryker disable next-line StringLiteral: equivalent, the message is never sent (FapiRefusalFilter writes the stored response)
    super('idempotent replay', stored.status);
  }
}
