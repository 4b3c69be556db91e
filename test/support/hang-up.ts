/**
 * Clients that hang up or cancel before the answer of a payment, and retries that wait out a key
 * in flight: the set-ups of the idempotency attack reviews (test/attack-review-11…14.test.ts).
 */
import { request as httpRequest } from 'node:http';
import { connect as h2connect, constants as h2constants } from 'node:http2';
import { type Party, sendH2Payment, sendPayment, useTppUsers } from './idempotency-apps';

/** A fresh idempotency key (quoted, as the draft's Structured Field string) named for its test. */
export const key = (name: string) => `"${name}-${process.pid}-${Math.random().toString(36).slice(2)}"`;
export const BODY = '{"amount":"10.00"}';
export const IN_FLIGHT = 'still being processed';
export const UNKEPT = 'its response was not kept';

export const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A promise and the function that resolves it. */
export function signal(): { promise: Promise<void>; fire: () => void } {
  let fire!: () => void;
  const promise = new Promise<void>((resolve) => {
    fire = resolve;
  });
  return { promise, fire };
}

/** Resolves once `res` closes (its client went away), or after `ms` at the latest. */
export function closed(res: { destroyed?: boolean; once(event: 'close', listener: () => void): unknown }, ms = 10_000): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve();
    const fallback = setTimeout(resolve, ms);
    res.once('close', () => {
      clearTimeout(fallback);
      resolve();
    });
  });
}

/** The payer and reader of useTppUsers(publicUrl), and the hang-up and retry helpers over them. */
export function useHangUps(publicUrl: string) {
  const PUBLIC = publicUrl;
  const tpp = useTppUsers(publicUrl);
  /** A retry sent again while the first attempt is still being recorded (409 in flight), a bounded number of times. */
  async function settledRetry(url: string, k: string | undefined, headers: Record<string, string> = {}, tries = 40) {
    let retry = await sendPayment(url, PUBLIC, { who: tpp.payer, key: k, body: BODY, headers });
    for (let i = 0; i < tries && retry.status === 409 && retry.text.includes(IN_FLIGHT); i++) {
      await pause(50);
      retry = await sendPayment(url, PUBLIC, { who: tpp.payer, key: k, body: BODY, headers });
    }
    return retry;
  }

  /** A payment whose client hangs up once `started` resolves (the handler runs), without reading any answer. */
  async function payAndHangUpWhen(url: string, k: string, started: Promise<void>, extra: Record<string, string> = {}): Promise<void> {
    const { client, token } = tpp.payer;
    const dpop = await client.proof({ htm: 'POST', htu: `${PUBLIC}/payments`, accessToken: token });
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${url}/payments`, { method: 'POST' }, (res) => {
        // An answer before the hang-up: nothing to hang up on.
        res.resume();
        resolve();
      });
      req.on('error', () => resolve());
      for (const [name, value] of Object.entries({
        authorization: `DPoP ${token}`,
        dpop,
        'content-type': 'application/json',
        'idempotency-key': k,
        ...extra,
      }))
        req.setHeader(name, value);
      req.end(BODY);
      const fallback = setTimeout(() => req.destroy(), 15_000);
      started.then(() => {
        clearTimeout(fallback);
        req.destroy();
      });
    });
  }

  /**
   * The retry of a payment made once: the payment, or 409 "not kept" — never 409 in flight, never a
   * second processing (the values are in the failure message).
   */
  function expectAnsweredOnce(retry: { status: number; text: string }, processed: number) {
    const answered = retry.status === 409 ? retry.text.includes(UNKEPT) : retry.text === '{"payment":"pay-1"}';
    expect([answered, processed, retry.status, retry.text]).toEqual([true, 1, retry.status, retry.text]);
  }

  /**
   * A payment whose client hangs up once the handler started; once the handler is done, the retry
   * is answered (the payment, or 409 not kept), never left in flight, and the payment made once.
   */
  async function hangUpThenRetry(
    url: string,
    name: string,
    handler: { started: Promise<void>; done: Promise<void> },
    processed: () => number,
  ) {
    const k = key(name);
    await payAndHangUpWhen(url, k, handler.started);
    await handler.done;
    await pause(100);
    const retry = await settledRetry(url, k);
    expectAnsweredOnce(retry, processed());
  }

  /** One payment over h2c whose client cancels its stream (RST_STREAM) once `started` resolves. */
  async function h2PayAndCancelWhen(port: number, who: Party, k: string, started: Promise<void>): Promise<void> {
    const dpop = await who.client.proof({ htm: 'POST', htu: `${PUBLIC}/payments`, accessToken: who.token });
    await new Promise<void>((resolve) => {
      const session = h2connect(`http://127.0.0.1:${port}`);
      session.on('error', () => undefined);
      const req = session.request({
        ':method': 'POST',
        ':path': '/payments',
        authorization: `DPoP ${who.token}`,
        dpop,
        'content-type': 'application/json',
        'idempotency-key': k,
      });
      const done = () => {
        clearTimeout(fallback);
        session.close();
        resolve();
      };
      req.on('error', () => undefined);
      req.on('response', () => {
        req.close(h2constants.NGHTTP2_CANCEL);
        done();
      });
      const fallback = setTimeout(() => {
        req.close(h2constants.NGHTTP2_CANCEL);
        done();
      }, 15_000);
      req.end(BODY);
      started.then(() => {
        req.close(h2constants.NGHTTP2_CANCEL);
        done();
      });
    });
  }

  /** An h2c retry sent again while the first attempt is in flight, a bounded number of times. */
  async function h2SettledRetry(port: number, k: string, tries = 40) {
    let retry = await sendH2Payment(port, PUBLIC, tpp.payer, k, BODY);
    for (let i = 0; i < tries && retry.status === 409 && retry.text.includes(IN_FLIGHT); i++) {
      await pause(50);
      retry = await sendH2Payment(port, PUBLIC, tpp.payer, k, BODY);
    }
    return retry;
  }

  return { tpp, settledRetry, payAndHangUpWhen, expectAnsweredOnce, hangUpThenRetry, h2PayAndCancelWhen, h2SettledRetry };
}
