import { guardOptionsFromEnv } from '@fapi-guard/core';
import { fapiGuard } from '@fapi-guard/koa';
import Router from '@koa/router';
import Koa from 'koa';

// FAPI_ISSUER: your authorization server; FAPI_AUDIENCE: this API's identifier (token `aud`).
const fapi = fapiGuard(guardOptionsFromEnv());

const router = new Router();
router.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (ctx) => {
  ctx.body = { client: ctx.state.auth?.clientId, subject: ctx.state.auth?.subject };
});
export const app = new Koa().use(fapi.metadata()).use(router.routes());
// app.listen(3000);
