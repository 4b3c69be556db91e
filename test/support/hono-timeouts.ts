/**
 * A timeout answering at a moment a test chooses while the Hono chain behind it runs on (what
 * hono/timeout does), the payment scenarios built on it, and a slow idempotency store (attack reviews 22 and 23).
 */
import { MemoryIdempotencyStore } from '@fapi-guard/core';
import { type Handler, Hono, type MiddlewareHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { serveHono } from './apps';
import { BODY, IN_FLIGHT, key, pause, signal, UNKEPT } from './hang-up';
import { sendPayment, type TppUsers } from './idempotency-apps';

/**
 * The first request through it is answered by `exception` (a 504) once `when` resolves, while the
 * chain behind it runs on; later requests pass.
 */
export function timeoutOnce(
  when: Promise<void>,
  exception: () => Error = () => new HTTPException(504, { message: 'Gateway Timeout' }),
): MiddlewareHandler {
  let armed = true;
  return async (_c, next) => {
    if (!armed) return next();
    armed = false;
    await Promise.race([
      next(),
      when.then(() => {
        throw exception();
      }),
    ]);
  };
}

/** The scenarios for the TPP's payer of `tpp`, on `publicUrl`. */
export function honoTimeouts(tpp: TppUsers, publicUrl: string) {
  /** A retry sent again while the first attempt is still being recorded (409 in flight), a bounded number of times. */
  async function settledRetry(url: string, k: string, tries = 40) {
    let retry = await sendPayment(url, publicUrl, { who: tpp.payer, key: k, body: BODY });
    for (let i = 0; i < tries && retry.status === 409 && retry.text.includes(IN_FLIGHT); i++) {
      await pause(50);
      retry = await sendPayment(url, publicUrl, { who: tpp.payer, key: k, body: BODY });
    }
    return retry;
  }

  /**
   * The first payment is answered 504 by `timeoutOnce` (`exception`) once its handler has started;
   * the handler pays after the 504 went out. The retry's answer and the payments made.
   */
  async function paidAfterTimeout(layout: (app: Hono, timeout: MiddlewareHandler, handler: Handler) => void, exception?: () => Error) {
    const app = new Hono();
    let processed = 0;
    const [started, gate, paid] = [signal(), signal(), signal()];
    layout(app, timeoutOnce(started.promise, exception), async (c) => {
      started.fire();
      if (processed === 0) await gate.promise;
      processed++;
      paid.fire();
      return c.json({ payment: `pay-${processed}` }, 201);
    });
    const served = await serveHono(app);
    try {
      const k = key('paid-after-timeout');
      const answer = await sendPayment(served.url, publicUrl, { who: tpp.payer, key: k, body: BODY });
      expect(answer.status).toBe(504);
      gate.fire();
      await paid.promise;
      await pause(50);
      const retry = await settledRetry(served.url, k);
      return { status: retry.status, unkept: retry.text.includes(UNKEPT), processed };
    } finally {
      gate.fire();
      await served.close();
    }
  }

  return { settledRetry, paidAfterTimeout };
}

/**
 * The in-memory idempotency store whose claim number `slow` (0 = the first) signals `claiming`
 * and waits for `timedOut` before it is made: a Redis store at its `timeoutMs`.
 */
export function slowClaimStore(slow: number, claiming: { fire(): void }, timedOut: { promise: Promise<void> }) {
  const inner = new MemoryIdempotencyStore();
  let claims = 0;
  return {
    async claim(...args: Parameters<MemoryIdempotencyStore['claim']>) {
      if (claims++ === slow) {
        claiming.fire();
        await timedOut.promise;
      }
      return inner.claim(...args);
    },
    complete: (...args: Parameters<MemoryIdempotencyStore['complete']>) => inner.complete(...args),
    release: (...args: Parameters<MemoryIdempotencyStore['release']>) => inner.release(...args),
    extend: (...args: Parameters<MemoryIdempotencyStore['extend']>) => inner.extend(...args),
  };
}
