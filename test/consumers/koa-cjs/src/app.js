const { Router } = require('@koa/router');
const { fapiGuard } = require('@fapi-guard/koa');
const Koa = require('koa');

/** @param {Parameters<typeof fapiGuard>[0]} options the options of createGuard (@fapi-guard/core) */
function createApp(options) {
  const fapi = fapiGuard(options);
  const router = new Router();
  router.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (ctx) => {
    ctx.body = { subject: ctx.state.auth?.subject };
  });
  return new Koa().use(router.routes());
}

module.exports = { createApp };
