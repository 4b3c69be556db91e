/**
 * One way to send a Redis command, whichever client the application already has: ioredis
 * (`call`), node-redis (`sendCommand`), or a plain function. Every command is bounded in time:
 * a Redis that is down or slow makes the command fail (and the guard answer 503) instead of
 * holding requests while the client's offline queue waits for a reconnection.
 */

/** Sends one command, e.g. `['SET', key, '1', 'PX', '70000', 'NX']`. */
export type RedisCommand = (args: string[]) => Promise<unknown>;

/** The client shapes accepted. */
export type RedisClientLike =
  | { call(command: string, ...args: string[]): Promise<unknown> }
  | { sendCommand(args: string[]): Promise<unknown> }
  | RedisCommand;

export class RedisUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RedisUnavailableError';
  }
}

export function commandFor(client: RedisClientLike, timeoutMs: number): RedisCommand {
  let send: RedisCommand;
  if (typeof client === 'function') send = client;
  else if ('call' in client && typeof client.call === 'function') send = (args) => client.call(args[0] as string, ...args.slice(1));
  else if ('sendCommand' in client && typeof client.sendCommand === 'function') send = (args) => client.sendCommand(args);
  else throw new TypeError('fapi-guard: pass an ioredis client, a node-redis client, or a function (args) => Promise');
  return (args) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new RedisUnavailableError(`redis ${args[0]} took more than ${timeoutMs} ms`)), timeoutMs);
      send(args).then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (cause: unknown) => {
          clearTimeout(timer);
          reject(new RedisUnavailableError(`redis ${args[0]} failed: ${(cause as Error)?.message ?? cause}`, { cause }));
        },
      );
    });
}
