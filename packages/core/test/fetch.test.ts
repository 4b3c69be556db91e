import { createGuard, guardRequestFromFetch, headersFromFetch, readFetchBody, requestTarget } from '@fapi-guard/core';

const guard = createGuard({
  issuer: 'https://as.example.com',
  audience: 'https://rs.example.com',
  publicUrl: ['https://rs.example.com', 'https://api.example.com'],
});

/** A body stream of `chunks` that counts how many chunks were pulled. */
function counted(chunks: number, size: number) {
  let pulled = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled === chunks) controller.close();
      else {
        pulled++;
        controller.enqueue(new Uint8Array(size));
      }
    },
  });
  return { stream, pulled: () => pulled };
}

describe('Fetch requests', () => {
  it('DPOP-03 the Fetch Headers fold repeated lines; rawHeaders, when the runtime has them, keep every line', () => {
    const request = new Request('https://rs.example.com/a', {
      headers: [
        ['dpop', 'one'],
        ['dpop', 'two'],
      ],
    });
    expect(headersFromFetch(request.headers).dpop).toEqual(['one, two']);
    const raw = ['Host', 'rs.example.com', 'DPoP', 'one', 'dpop', 'two'];
    const seen = guardRequestFromFetch(guard, request, { rawHeaders: raw });
    expect(seen).toMatchObject({ method: 'GET', url: 'https://rs.example.com/a', headers: { dpop: ['one', 'two'] } });
  });

  it('15.6 Host-chosen origin: the URL comes from the configured origins, never from request.url alone', () => {
    const evil = new Request('https://evil.example/accounts?x=1', { headers: { host: 'api.example.com' } });
    expect(guardRequestFromFetch(guard, evil)).toMatchObject({ url: 'https://api.example.com/accounts?x=1' });
    const unknown = guardRequestFromFetch(guard, new Request('https://evil.example/accounts', { headers: { host: 'evil.example' } }));
    expect(unknown).toMatchObject({ ok: false, status: 400, error: 'invalid_request', reason: 'request_host_unknown' });
  });

  it('15.5 hostile Host: the target is read from the URL string, which a runtime may not have validated', () => {
    expect(requestTarget('http://xn--a/accounts?x=1#f')).toBe('/accounts?x=1');
    expect(requestTarget('http://[1::2::3]:99999')).toBe('/');
    expect(requestTarget('https://rs.example.com/')).toBe('/');
  });

  it('DIG-04 stops reading a body without Content-Length at the first chunk past the limit', async () => {
    const body = counted(100, 10);
    const request = new Request('https://rs.example.com/', { method: 'POST', body: body.stream, duplex: 'half' } as RequestInit);
    expect(await readFetchBody(request, 25)).toEqual({ ok: false, reason: 'too_large' });
    expect(body.pulled()).toBeLessThan(10);
    const exact = new Request('https://rs.example.com/', { method: 'POST', body: counted(3, 10).stream, duplex: 'half' } as RequestInit);
    expect(await readFetchBody(exact, 30)).toEqual({ ok: true, body: new Uint8Array(30) });
  });

  it('DEC-07 a body already read, or a stream that fails, is reported as such, never as no body', async () => {
    const used = new Request('https://rs.example.com/', { method: 'POST', body: 'a=1' });
    await used.text();
    expect(await readFetchBody(used, 100)).toEqual({ ok: false, reason: 'used' });
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new Error('client went away'));
      },
    });
    const aborted = new Request('https://rs.example.com/', { method: 'POST', body: failing, duplex: 'half' } as RequestInit);
    expect(await readFetchBody(aborted, 100)).toEqual({ ok: false, reason: 'aborted' });
  });
});
