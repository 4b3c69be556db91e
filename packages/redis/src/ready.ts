/**
 * `redisReady(client)`: the start-up step every client needs before the stores can work, for
 * ioredis (`Redis`, `Cluster`) and node-redis (`createClient`, `createCluster`) alike. It listens
 * for errors first (an `error` event without a listener ends the process), connects a client
 * that is not connected yet (node-redis, ioredis with `lazyConnect`), and waits until the client
 * is ready: with `enableOfflineQueue: false` (ioredis) or `disableOfflineQueue: true`
 * (node-redis) a command sent before that fails, and `sharedSecret` would reject at start-up.
 */
import { type GuardLogger, Notices, stderrLogger } from '@fapi-guard/core';

/** What `redisReady` needs of a client: events, and whichever readiness flags it has. */
export interface RedisConnectionLike {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  off?(event: string, listener: (...args: unknown[]) => void): unknown;
  /** ioredis: `'wait'` (lazyConnect), `'connecting'`, `'ready'`, … */
  readonly status?: string;
  /** node-redis */
  readonly isReady?: boolean;
  readonly isOpen?: boolean;
  connect?(): Promise<unknown>;
}

export interface RedisReadyOptions {
  /** Longest wait for the first connection; past it the promise rejects with the last error. @default 10000 */
  timeoutMs?: number;
  /**
   * Where connection errors are reported, at most once a minute (with a `repeated` count): any
   * pino-compatible logger, or `false`. Commands fail (and the guard answers 503) while Redis
   * cannot be reached; the client reconnects by itself.
   * @default one JSON line on stderr, as the guard's default logger
   */
  logger?: GuardLogger | false;
}

const listened = new WeakSet<object>();

function isReady(client: RedisConnectionLike): boolean {
  return client.status === 'ready' || client.isReady === true;
}

function reason(e: unknown): string {
  if (e instanceof AggregateError && e.errors.length > 0) return e.errors.map(reason).join('; ');
  return (e as Error)?.message || String(e);
}

/** Attaches the error listener (once per client), connects if needed and waits until the client is ready. */
export async function redisReady(client: RedisConnectionLike, options: RedisReadyOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  if (!(timeoutMs > 0)) throw new TypeError('fapi-guard: redisReady timeoutMs must be positive');
  let lastError: string | undefined;
  const remember = (e: unknown) => {
    lastError = reason(e);
  };
  if (!listened.has(client)) {
    listened.add(client);
    const notices = options.logger === false ? undefined : new Notices(options.logger ?? stderrLogger);
    const report = (e: unknown) =>
      notices?.report(
        'warn',
        'redis',
        60_000,
        { reason: reason(e) },
        'fapi-guard: Redis connection error; commands fail (503) until it answers',
      );
    client.on('error', report);
    // node-redis clusters report a node's errors apart from the cluster's own.
    client.on('node-error', report);
  }
  if (isReady(client)) return;
  client.on('error', remember);
  let onReady: () => void = () => undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      onReady = () => resolve();
      client.on('ready', onReady);
      timer = setTimeout(() => reject(new Error(`Redis not ready after ${timeoutMs} ms${lastError ? `: ${lastError}` : ''}`)), timeoutMs);
      const connecting = client.status === 'wait' || (client.isOpen === false && client.status === undefined);
      // node-redis clusters emit no 'ready': their connect() resolves once the slots are known.
      if (connecting && client.connect)
        client.connect().then(
          () => isReady(client) && resolve(),
          (e) => reject(new Error(`Redis connection failed: ${reason(e)}`)),
        );
    });
  } finally {
    clearTimeout(timer);
    client.off?.('ready', onReady);
    client.off?.('error', remember);
  }
}
