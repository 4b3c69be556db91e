/**
 * `npm ci` on the oldest Node the packages support prints no EBADENGINE warning: every package in
 * the lockfile accepts that Node. (cookie@2, which light-my-request@6 asks for, needs Node 22;
 * the root `overrides` pins cookie@1, whose API light-my-request uses, checked below.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify from 'fastify';
import semver from 'semver';

const root = join(__dirname, '..');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { version?: string; engines?: { node?: string } | string[] }>;
};

describe('engines', () => {
  const oldest = semver.minVersion(manifest.engines.node)?.version as string;

  it('the root states the oldest Node it supports', () => {
    expect(oldest).toBe('20.19.0');
  });

  it('every locked package accepts that Node (no EBADENGINE warning from npm ci)', () => {
    const refusing = Object.entries(lock.packages)
      .filter(([, p]) => !Array.isArray(p.engines) && p.engines?.node !== undefined)
      .filter(([, p]) => !semver.satisfies(oldest, (p.engines as { node: string }).node))
      .map(([path, p]) => `${path}@${p.version} needs node ${(p.engines as { node: string }).node}`);
    expect(refusing).toEqual([]);
  });

  it("Fastify's inject() works with the pinned cookie (cookies sent and Set-Cookie parsed)", async () => {
    const app = Fastify();
    app.get('/', async (req, reply) => {
      reply.header('set-cookie', 'session=abc; Path=/; HttpOnly');
      return { cookie: req.headers.cookie };
    });
    const res = await app.inject({ method: 'GET', url: '/', cookies: { a: '1', b: '2' } });
    expect(res.json()).toEqual({ cookie: 'a=1; b=2' });
    expect(res.cookies).toEqual([{ name: 'session', value: 'abc', path: '/', httpOnly: true }]);
    await app.close();
  });
});
