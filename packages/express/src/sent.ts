/**
 * Whether the response head went out while the guard awaited its stores, for the Express layers.
 */
import type { NextFunction, Response } from 'express';

/**
 * True when the response head is on the wire already: nothing more is written and the handler
 * does not run. An answer sent in full (a timeout's 504 in front of the guard) ends the request
 * there. A head sent with the response still open (`flushHeaders()` or a first `write()` in
 * front of the guard) leaves no room for the guard's headers, refusal or signature: that goes to
 * Express's error handlers (its final handler closes the connection), so the request neither
 * hangs nor reaches the handler.
 */
export function headSent(res: Response, next: NextFunction): boolean {
  if (!res.headersSent) return false;
  if (!res.writableEnded) {
    next(
      new Error(
        'fapi-guard: the response head was sent before the guard answered (a middleware in front of protect() flushed it); mount protect() before anything that writes the response',
      ),
    );
  }
  return true;
}
