/**
 * `x-fapi-interaction-id` (FAPI 1.0 Part 1 §6.2.1 #11–13; FAPI 2.0 Implementation Advice): echo a
 * well-formed request value, otherwise issue a new UUID, on every response.
 */
import { randomUUID } from 'node:crypto';
import { type GuardHeaders, headerLines } from './request.js';

/** RFC 9562 (formerly RFC 4122) UUID: versions 1–8, variant 10xx. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

export interface InteractionId {
  /** The value to send back. */
  id: string;
  /** What the client sent when it was not usable (to be logged beside the new one). */
  refused?: string;
}

export function interactionId(headers: GuardHeaders): InteractionId {
  const lines = headerLines(headers, 'x-fapi-interaction-id');
  const value = lines.length === 1 ? (lines[0] as string).trim() : undefined;
  if (value !== undefined && UUID.test(value)) return { id: value };
  const id = randomUUID();
  // Only a bounded, printable excerpt of a refused value goes to the log.
  return lines.length === 0
    ? { id }
    : {
        id,
        refused: lines
          .join(', ')
          .slice(0, 100)
          .replace(/[^\x20-\x7e]/g, '?'),
      };
}
