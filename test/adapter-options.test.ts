/**
 * The adapters' own options (issue 25 §3, §4) fail closed: an unknown key or a wrong value is a
 * start-up error naming it, never an ignored setting.
 */
import type { GuardOptions } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import Fastify from 'fastify';

const options: GuardOptions = { issuer: { issuer: 'https://as.example.com', jwks: { keys: [] } }, audience: 'https://rs.example.com' };

describe('adapter options', () => {
  it('15.1 typo fails open: Express, Koa and Hono name an unknown option', () => {
    expect(() => expressGuard(options, { error: 'framework' } as never)).toThrow('fapi-guard: unknown @fapi-guard/express option "error"');
    expect(() => koaGuard(options, { property: 'fapi' } as never)).toThrow('fapi-guard: unknown @fapi-guard/koa option "property"');
    expect(() => honoGuard(options, { errorbody: 'problem' } as never)).toThrow('fapi-guard: unknown @fapi-guard/hono option "errorbody"');
  });

  it('15.1 typo fails open: a wrong errors or errorBody value stops start-up on every adapter', async () => {
    expect(() => expressGuard(options, { errors: 'next' as never })).toThrow("option errors must be 'respond' or 'framework'");
    expect(() => koaGuard(options, { errorBody: 'json' as never })).toThrow("option errorBody must be 'oauth', 'problem' or a function");
    expect(() => honoGuard(options, { errors: 'throw' as never })).toThrow("option errors must be 'respond' or 'framework'");
    const app = Fastify();
    await expect(app.register(fastifyPlugin, { ...options, errors: 'throw' as never })).rejects.toThrow(
      "fapi-guard: @fapi-guard/fastify option errors must be 'respond' or 'framework'",
    );
    await app.close();
  });

  it('the refusal options reach the adapter, not the guard (which would refuse them as unknown keys)', async () => {
    const app = Fastify();
    // createGuard refuses unknown keys: registering proves they were taken off first.
    await app.register(fastifyPlugin, { ...options, errors: 'framework', errorBody: 'problem' });
    await expect(app.ready()).resolves.toBe(app);
    await app.close();
  });
});
