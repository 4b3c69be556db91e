/**
 * One way to send a Redis command, whichever client the application already has: ioredis
 * `Redis` or `Cluster` (`call`), node-redis `createClient` (`sendCommand(args)`) or
 * `createCluster` (`sendCommand(firstKey, isReadonly, args)`), or a plain function. Every command is bounded in time:
 * a Redis that is down or slow makes the command fail (and the guard answer 503) instead of
 * holding requests while the client's offline queue waits for a reconnection.
 */

/** Sends one command, e.g. `['SET', key, '1', 'PX', '70000', 'NX']`. */
export type RedisCommand = (args: string[]) => Promise<unknown>;

/** A node-redis cluster (`createCluster`): commands are routed by their first key. */
export interface NodeRedisClusterLike {
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: string[]): Promise<unknown>;
  readonly masters: readonly unknown[];
}

/** The client shapes accepted. */
export type RedisClientLike =
  | { call(command: string, ...args: string[]): Promise<unknown> }
  | NodeRedisClusterLike
  | { sendCommand(args: string[]): Promise<unknown> }
  | RedisCommand;

/** node-redis' cluster and single-node clients both have `sendCommand`, with different arguments. */
export function isNodeRedisCluster(client: unknown): client is NodeRedisClusterLike {
  return typeof client === 'object' && client !== null && 'masters' in client && 'sendCommand' in client;
}

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
  // Every command here touches one key: named first (`SET key …`, `GET key`), or after the script
  // and the key count (`EVAL script 1 key …`). On a cluster it is sent to that key's master
  // (never a replica: a replay or idempotency check must see the latest write).
  else if (isNodeRedisCluster(client)) send = (args) => client.sendCommand(args[0] === 'EVAL' ? args[3] : args[1], false, args);
  else if ('sendCommand' in client && typeof client.sendCommand === 'function')
    send = (args) => (client as { sendCommand(args: string[]): Promise<unknown> }).sendCommand(args);
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
