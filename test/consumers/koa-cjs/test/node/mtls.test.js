const assert = require('node:assert/strict');
const { after, before, it } = require('node:test');
const { clientCertHeader, createCertificate, MockIssuer } = require('@fapi-guard/testing');
const request = require('supertest');
const { createApp } = require('../../src/app.js');

const api = 'https://api.bank.example'; // audience, and the origin clients address
/** @type {MockIssuer} */ let issuer;
/** @type {import('node:http').Server} */ let server;
before(async () => {
  issuer = await MockIssuer.start({ audience: api });
  const mtls = { proxy: { trustedPeers: ['127.0.0.1'] } }; // the TLS-terminating proxy (RFC 9440)
  server = createApp({ issuer: issuer.issuer, audience: api, publicUrl: api, mtls }).listen(0, '127.0.0.1');
});
after(() => Promise.all([issuer.stop(), new Promise((done) => server.close(done))]));

it('serves accounts to a certificate-bound token with its certificate only', async () => {
  const [mine, other] = await Promise.all([createCertificate(), createCertificate()]);
  const token = await issuer.mint({ scope: 'accounts', x5t: mine.x5t });
  /** @param {import('@fapi-guard/testing').TestCertificate} cert */
  const get = (cert) =>
    request(server).get('/accounts').set('authorization', `Bearer ${token}`).set('client-cert', clientCertHeader(cert.der));

  assert.equal((await get(mine)).status, 200);
  const res = await get(other);
  assert.equal(res.status, 401);
  assert.match(res.headers['www-authenticate'], /error="invalid_token"/);
});
