/**
 * What the NestJS adapter reads of each platform, in process: the handlers a class-level policy
 * gives a controller (its own methods and its own handler for each route it inherits), Node's
 * request and response behind Express's and Fastify's objects, and `fapiRawBody` on each
 * platform. The same over HTTP: test/nestjs.test.ts, test/review3-findings.test.ts, the
 * adapters' shared suites on `nestjs` and `nestjs-fastify`.
 */
import 'reflect-metadata';
import { Get } from '@nestjs/common';
import { FapiPolicy } from '../src/decorators';
import { handlersOf } from '../src/handlers';
import { nodeRequest, nodeResponse, requestParts, setHeaders } from '../src/platform';
import { fapiRawBody } from '../src/raw-body';
import { FAPI_ROUTE, FASTIFY_ROUTE_CONFIG, type FunctionRef } from '../src/tokens';

const routeMark = (handler: unknown) =>
  (Reflect.getMetadata(FASTIFY_ROUTE_CONFIG, handler as object) as Record<string, unknown> | undefined)?.[FAPI_ROUTE];

describe('III.1 handlersOf: the handlers whose routes a controller serves', () => {
  it('III.1 an accessor or a value a base class has is no route (its value is never read for route metadata)', () => {
    class Base {
      @Get('route')
      route() {}
      get computed(): number {
        throw new Error('an accessor was read');
      }
    }
    Object.defineProperty(Base.prototype, 'constant', { value: 42 });
    class Derived extends Base {}
    expect((handlersOf(Derived) as FunctionRef[]).map((h) => h.name)).toEqual(['route']);
  });

  it('III.1 its own methods (no constructor, no accessor) and its own handler for each route it inherits, never for a non-route', () => {
    class Base {
      @Get('inherited')
      inherited() {
        return 'base';
      }
      @Get('overridden')
      overridden() {
        return 'base';
      }
      /** Not a route. */
      helper() {}
    }
    class Middle extends Base {
      @Get('middle')
      middle() {
        return 'middle';
      }
    }
    class Derived extends Middle {
      override overridden() {
        return 'derived';
      }
      get accessor() {
        return 1;
      }
    }
    const handlers = handlersOf(Derived) as FunctionRef[];
    expect(handlers.map((h) => h.name).sort()).toEqual(['inherited', 'middle', 'overridden']);
    // Own handlers for the inherited routes, calling what the base class has now; none for `helper`.
    expect(Object.hasOwn(Derived.prototype, 'inherited')).toBe(true);
    expect(Object.hasOwn(Derived.prototype, 'middle')).toBe(true);
    expect(Object.hasOwn(Derived.prototype, 'helper')).toBe(false);
    expect(Derived.prototype.inherited).not.toBe(Base.prototype.inherited);
    expect(new Derived().inherited()).toBe('base');
    expect(new Derived().middle()).toBe('middle');
    expect(new Derived().overridden()).toBe('derived');
    // The given handlers are not enumerable, as methods are not.
    expect(Object.keys(Derived.prototype)).toEqual([]);
    // Replaceable as a method is (jest.spyOn, a later wrapper): writable and configurable.
    const spy = jest.spyOn(Derived.prototype, 'inherited').mockReturnValue('spied');
    expect(new Derived().inherited()).toBe('spied');
    spy.mockRestore();
    Derived.prototype.middle = () => 'assigned';
    expect(new Derived().middle()).toBe('assigned');
    // ...and removable: the class's own handler gone, the inherited method answers again.
    delete (Derived.prototype as Partial<Derived>).middle;
    expect(new Derived().middle()).toBe('middle');
    // The nearest definition wins: Middle's own handler for Base's route is what Derived would call.
    expect(
      handlersOf(Middle)
        .map((h) => (h as FunctionRef).name)
        .sort(),
    ).toEqual(['inherited', 'middle', 'overridden']);
  });

  it('III.1 a class policy names every handler of the class in its Fastify route config', () => {
    class Base {
      @Get('read')
      read() {}
    }
    @FapiPolicy({ scopes: ['a'] })
    class Derived extends Base {
      @Get('own')
      own() {}
    }
    expect(routeMark(Derived.prototype.own)).toBe(Derived.prototype.own);
    expect(routeMark(Derived.prototype.read)).toBe(Derived.prototype.read);
    expect(routeMark(Base.prototype.read)).toBeUndefined();
  });
});

describe('III.2 Node’s request and response behind the platform’s objects', () => {
  const raw = { url: '/rewritten', rawHeaders: [] } as unknown;

  it('III.2 Fastify: the raw request and reply, the body parsed, the target as received', () => {
    const request = { raw, body: { a: 1 } };
    expect(nodeRequest(request)).toBe(raw);
    expect(requestParts(request)).toEqual({ path: '/rewritten', body: { a: 1 } });
    const headers = new Map<string, string>();
    const reply = { raw: {}, header: (name: string, value: string) => void headers.set(name, value) };
    expect(nodeResponse(reply)).toBe(reply.raw);
    setHeaders(reply, { 'dpop-nonce': 'n1' });
    expect([...headers]).toEqual([['dpop-nonce', 'n1']]);
  });

  it('III.2 Express: originalUrl (a router’s mount path kept), else url, else /; headers set on Node’s response', () => {
    expect(requestParts({ originalUrl: '/api/payments', url: '/payments', body: 'b' })).toEqual({ path: '/api/payments', body: 'b' });
    expect(requestParts({ url: '/payments' })).toEqual({ path: '/payments', body: undefined });
    expect(requestParts({})).toEqual({ path: '/', body: undefined });
    const set: [string, string][] = [];
    const res = { setHeader: (name: string, value: string) => void set.push([name, value]) };
    expect(nodeResponse(res)).toBe(res);
    setHeaders(res, { 'dpop-nonce': 'n2', 'x-fapi-interaction-id': 'i' });
    expect(set).toEqual([
      ['dpop-nonce', 'n2'],
      ['x-fapi-interaction-id', 'i'],
    ]);
  });

  it('III.2 fapiRawBody keeps the bytes on Express (one middleware) and does nothing on Fastify (the module keeps them)', () => {
    const used: unknown[] = [];
    const app = (instance: unknown) =>
      ({
        getHttpAdapter: () => ({ getInstance: () => instance }),
        get: () => ({}),
        use: (middleware: unknown) => void used.push(middleware),
      }) as never;
    fapiRawBody(app({ addHook: () => undefined }));
    expect(used).toHaveLength(0);
    fapiRawBody(app({ use: () => undefined }));
    expect(used).toHaveLength(1);
  });
});
