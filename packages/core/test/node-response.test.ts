/**
 * writeHead's arguments applied as setHeader calls (runtime/node-response.ts `applyWriteHead`),
 * which the response signer and the idempotency recorder use to hold a head back: every form of
 * header list Node takes, as Node reads it (attack review 15: a list of pairs read as a flat list
 * broke the answer after the payment was made).
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { applyWriteHead } from '../src/runtime/node-response';

/** A response that sends nothing: no socket is attached. */
const response = () => new ServerResponse(new IncomingMessage(new Socket()));

/** The head Node itself would send for `writeHead(...args)` on a response with `before` set. */
function applied(args: unknown[], before: Record<string, string> = {}) {
  const res = response();
  for (const [name, value] of Object.entries(before)) res.setHeader(name, value);
  applyWriteHead(res, args);
  return { status: res.statusCode, message: res.statusMessage, headers: res.getHeaders() };
}

describe('applyWriteHead', () => {
  it('takes the status, an optional reason phrase, and headers as an object', () => {
    expect(applied([201])).toEqual({ status: 201, message: undefined, headers: {} });
    expect(applied([201, 'Made', { 'Content-Type': 'application/json', 'x-n': 5, 'x-u': undefined }])).toEqual({
      status: 201,
      message: 'Made',
      headers: { 'content-type': 'application/json', 'x-n': 5 },
    });
    expect(applied([202, { 'set-cookie': ['a=1', 'b=2'] }]).headers).toEqual({ 'set-cookie': ['a=1', 'b=2'] });
  });

  it('takes a flat list [name, value, name, value], a name listed twice keeping both values', () => {
    expect(applied([201, ['Content-Type', 'application/json', 'Link', '</a>', 'link', '</b>']]).headers).toEqual({
      'content-type': 'application/json',
      link: ['</a>', '</b>'],
    });
    expect(applied([201, 'Made', ['x-a', ['1', '2'], 'x-b', 3]]).headers).toEqual({ 'x-a': ['1', '2'], 'x-b': '3' });
  });

  it('takes a list of [name, value] pairs, as node:http and node:http2 do (attack review 15)', () => {
    const pairs = [
      ['content-type', 'application/json'],
      ['location', '/payments/pay-1'],
      ['Link', '</a>'],
      ['link', '</b>'],
    ];
    expect(applied([201, pairs]).headers).toEqual({
      'content-type': 'application/json',
      location: '/payments/pay-1',
      link: ['</a>', '</b>'],
    });
    expect(applied([201, 'Made', [['x-a', ['1', '2']]]]).headers).toEqual({ 'x-a': ['1', '2'] });
  });

  it('a name in the list replaces what was set before; others set before stay', () => {
    expect(
      applied([201, [['content-type', 'text/plain']]], { 'content-type': 'application/json', 'x-fapi-interaction-id': 'i' }).headers,
    ).toEqual({ 'content-type': 'text/plain', 'x-fapi-interaction-id': 'i' });
    expect(applied([201, ['content-type', 'text/plain']], { 'content-type': 'application/json' }).headers).toEqual({
      'content-type': 'text/plain',
    });
  });

  it('refuses a flat list of odd length before changing anything, as Node does', () => {
    const res = response();
    res.setHeader('x-before', '1');
    expect(() => applyWriteHead(res, [201, ['content-type', 'text/plain', 'x-orphan']])).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }),
    );
    expect([res.statusCode, res.getHeaders()]).toEqual([200, { 'x-before': '1' }]);
  });

  it('an empty list changes no header', () => {
    expect(applied([204, []], { 'x-before': '1' })).toEqual({ status: 204, message: undefined, headers: { 'x-before': '1' } });
  });
});
