/**
 * A private redis-server for tests: a free loopback port, a temporary directory, no
 * persistence unless asked (`stop({ save: true })` writes a snapshot that `start()` reloads,
 * as a Redis restart with persistence would). `TestRedisCluster`: three such servers in cluster
 * mode, one master each, no replicas. A missing redis-server is a failure, never a skip:
 * `.ci/run` installs the Debian package.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function redisServerPath(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('redis-server is not installed: apt-get install -y redis-server (CI does this in .ci/run)');
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export class TestRedis {
  private process: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'fapi-guard-redis-'));

  private constructor(
    readonly port: number,
    /** More redis-server arguments (e.g. cluster mode). */
    private readonly extraArgs: (dir: string) => string[] = () => [],
  ) {}

  static async start(extraArgs?: (dir: string) => string[]): Promise<TestRedis> {
    const redis = new TestRedis(await freePort(), extraArgs);
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.process !== undefined;
  }

  /** Starts (or restarts) the server on the same port and directory. */
  async start(): Promise<void> {
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      this.dir,
      '--dbfilename',
      'dump.rdb',
      ...this.extraArgs(this.dir),
    ];
    const child = spawn(redisServerPath(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.process = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10_000);
      const onData = (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}: ${out}`));
      });
    });
  }

  /** Stops the server; with `save`, writes a snapshot first (a restart keeps the keys). */
  async stop({ save = false } = {}): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    this.process = undefined;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    execFileSync('redis-cli', ['-p', String(this.port), 'shutdown', save ? 'save' : 'nosave'], { stdio: 'ignore' });
    await exited;
  }
}

/** `redis-cli -p port args…`, its answer as text. */
export function redisCli(port: number, ...args: string[]): string {
  return execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: 10_000 });
}

/**
 * A Redis Cluster of three masters on loopback ports, no replicas. A stopped master's slots stay
 * uncovered (`cluster-require-full-coverage no`): the other masters go on serving their keys, as
 * a cluster whose failover has not happened yet. A master started again rejoins with the same
 * node id and slots (its `nodes.conf` is kept).
 */
export class TestRedisCluster {
  /** Slot ranges and the port of the master that owns each, as created. */
  private slots: [from: number, to: number, port: number][] = [];

  private constructor(readonly masters: TestRedis[]) {}

  static async start(): Promise<TestRedisCluster> {
    const clusterArgs = (dir: string) => [
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      join(dir, 'nodes.conf'),
      '--cluster-node-timeout',
      '2000',
      '--cluster-require-full-coverage',
      'no',
    ];
    const masters = await Promise.all([0, 1, 2].map(() => TestRedis.start(clusterArgs)));
    const cluster = new TestRedisCluster(masters);
    try {
      execFileSync(
        'redis-cli',
        ['--cluster', 'create', ...masters.map((m) => `127.0.0.1:${m.port}`), '--cluster-replicas', '0', '--cluster-yes'],
        { stdio: 'ignore', timeout: 20_000 },
      );
      await cluster.waitUntil(
        () => masters.every((m) => redisCli(m.port, 'cluster', 'info').includes('cluster_state:ok')),
        'cluster_state:ok',
      );
      const ranges = JSON.parse(redisCli(masters[0]?.port as number, '--json', 'cluster', 'slots')) as [number, number, [string, number]][];
      cluster.slots = ranges.map(([from, to, [, port]]) => [from, to, port]);
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    return cluster;
  }

  /** Seed nodes, as clients take them. */
  get nodes(): { host: string; port: number }[] {
    return this.masters.map((m) => ({ host: '127.0.0.1', port: m.port }));
  }

  /** The master that owns `key`'s slot (`CLUSTER KEYSLOT` asked of a running master). */
  masterOf(key: string): TestRedis {
    const alive = this.masters.find((m) => m.running) as TestRedis;
    const slot = Number(redisCli(alive.port, 'cluster', 'keyslot', key).trim());
    const port = this.slots.find(([from, to]) => slot >= from && slot <= to)?.[2];
    const master = this.masters.find((m) => m.port === port);
    if (!master) throw new Error(`no master owns slot ${slot}`);
    return master;
  }

  /** Polls `condition` every 100 ms for at most `timeoutMs`. */
  async waitUntil(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > until) throw new Error(`Redis Cluster: no ${what} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.masters.map((m) => m.stop()));
  }
}
