/** The signed-response route `/answer` of the parity apps (apps.ts, nest-app.ts). */

/**
 * `GET /answer?status=N`, mounted with `messageSigning`: a signed-response route answering the
 * status asked for, through the framework's own paths — 200/404 with a JSON body, 204 and 304
 * without one, and for 500 a handler that throws (the framework's error handler answers).
 */
export const SIGNED_ANSWER = { scopes: ['payments:write'], signResponse: true } as const;

/** What `/answer` does for a `status` query value. */
export function answerFor(status: unknown): { status: number; body?: { status: number } } | 'throw' {
  const code = Number(status);
  if (code === 500) return 'throw';
  return code === 204 || code === 304 ? { status: code } : { status: code, body: { status: code } };
}

/** The error `/answer?status=500` throws: flagged so the test apps do not print it. */
export class AnswerFailure extends Error {
  constructor() {
    super('the handler failed on purpose');
  }
}
