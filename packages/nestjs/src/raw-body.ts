/**
 * Request signatures (FAPI 2.0 Message Signing) are checked over the body bytes as received
 * (RFC 9530 digests). On Nest's Express platform the JSON and form parsers read the body before
 * any guard runs, and they are mounted in `app.init()`; middleware added with `app.use()` before
 * that goes ahead of them.
 */
import { captureRawBody, type Guard } from '@fapi-guard/core';
import type { INestApplication } from '@nestjs/common';
import { isFastifyInstance } from './fastify.js';
import { FAPI_GUARD } from './tokens.js';

/**
 * Keeps the raw body bytes for request-signature checks and idempotency fingerprints, leaving them
 * on the stream for Nest's body parsers. Call it before `app.listen()` / `app.init()` on APIs with
 * `signedRequest` or `idempotency` routes:
 *
 * ```ts
 * const app = await NestFactory.create(AppModule);
 * fapiRawBody(app);
 * await app.listen(3000);
 * ```
 *
 * On the Fastify platform the module keeps the bytes itself; this does nothing there.
 */
export function fapiRawBody(app: INestApplication): void {
  if (isFastifyInstance(app.getHttpAdapter().getInstance())) return;
  const guard = app.get<symbol, Guard>(FAPI_GUARD);
  app.use((req: Parameters<typeof captureRawBody>[1], _res: unknown, next: () => void) => {
    captureRawBody(guard, req);
    next();
  });
}
