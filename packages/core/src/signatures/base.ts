/**
 * RFC 9421 HTTP Message Signatures: component values (§2.1, §2.2, §2.4) and the signature base
 * (§2.5), rebuilt from the received message — a supplied base is never used (HMS-05).
 */
import {
  type BareItem,
  type InnerList,
  parseDictionary,
  parseItem,
  parseList,
  serializeDictionary,
  serializeInnerList,
  serializeItem,
  serializeList,
} from 'structured-headers';
import { type GuardHeaders, headerLines } from '../request.js';

/** A request or response as signed: responses carry their request for `req` components. */
export interface SignedMessage {
  /** Requests: the method. */
  method?: string;
  /** Requests: the absolute target URI (RFC 9421 §2.2.2). */
  url?: string;
  /** Responses: the status code. */
  status?: number;
  headers: GuardHeaders;
  /** Responses: the request they answer (for components with the `req` parameter). */
  request?: SignedMessage;
}

export class SignatureBaseError extends Error {}

const fail = (message: string): never => {
  throw new SignatureBaseError(message);
};

/** Known structured fields, for the `sf` and `key` parameters (RFC 9421 §2.1.1–2.1.2). */
const STRUCTURED: Readonly<Record<string, 'dictionary' | 'list' | 'item'>> = {
  signature: 'dictionary',
  'signature-input': 'dictionary',
  'content-digest': 'dictionary',
  'repr-digest': 'dictionary',
  'want-content-digest': 'dictionary',
  'accept-signature': 'dictionary',
  'client-cert': 'item',
  'client-cert-chain': 'list',
  'cache-status': 'list',
};

/** RFC 9421 §2.1: lines trimmed and joined with ", "; obs-fold already removed by Node. */
function fieldValue(headers: GuardHeaders, name: string): string {
  const lines = headerLines(headers, name);
  if (lines.length === 0) fail(`field ${name} is absent`);
  return lines.map((line) => line.replace(/\s*\r?\n\s+/g, ' ').trim()).join(', ');
}

function structured(
  name: string,
  value: string,
): ReturnType<typeof parseDictionary> | ReturnType<typeof parseList> | ReturnType<typeof parseItem> {
  const type = STRUCTURED[name] ?? fail(`field ${name} is not a known structured field`);
  try {
    return type === 'dictionary' ? parseDictionary(value) : type === 'list' ? parseList(value) : parseItem(value);
  } catch {
    return fail(`field ${name} is not a valid structured field`);
  }
}

/** RFC 9421 §2.2.8: query parameter names and values percent-encoded after form decoding. */
function encodeQueryPart(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function derived(message: SignedMessage, name: string, params: Map<string, BareItem>): string {
  if (name === '@status') {
    if (message.status === undefined) fail('@status in a request');
    return String(message.status);
  }
  if (message.url === undefined || message.method === undefined) fail(`${name} in a response without req`);
  const url = new URL(message.url as string);
  switch (name) {
    case '@method':
      return message.method as string;
    case '@target-uri':
      return message.url as string;
    case '@authority':
      return url.host.toLowerCase();
    case '@scheme':
      return url.protocol.slice(0, -1).toLowerCase();
    case '@request-target':
      return `${url.pathname}${url.search}`;
    case '@path':
      return url.pathname || '/';
    case '@query':
      return url.search === '' ? '?' : url.search;
    case '@query-param': {
      const wanted = params.get('name');
      if (typeof wanted !== 'string') fail('@query-param needs a name parameter');
      const values = [...new URLSearchParams(url.search)].filter(([k]) => k === wanted).map(([, v]) => v);
      if (values.length !== 1) fail(`@query-param ${wanted} occurs ${values.length} times`);
      return encodeQueryPart(values[0] as string);
    }
    default:
      return fail(`unknown derived component ${name}`);
  }
}

/** The value of one covered component (RFC 9421 §2.1, §2.2, §2.4). */
export function componentValue(message: SignedMessage, name: string, params: Map<string, BareItem>): string {
  for (const key of params.keys()) {
    if (!['sf', 'key', 'bs', 'req', 'name'].includes(key)) fail(`unknown component parameter ${key}`);
  }
  let source = message;
  if (params.get('req') === true) {
    // §2.4: `req` belongs to responses only.
    if (message.status === undefined || !message.request) fail('req in a request signature');
    source = message.request as SignedMessage;
  }
  if (name.startsWith('@')) return derived(source, name, params);
  if (name !== name.toLowerCase()) fail(`component name ${name} is not lower case`);
  const raw = fieldValue(source.headers, name);
  const key = params.get('key');
  if (params.get('sf') === true || key !== undefined) {
    const type = STRUCTURED[name];
    const value = structured(name, raw);
    if (key !== undefined) {
      if (type !== 'dictionary') fail(`key on ${name}, which is not a dictionary`);
      const member = (value as Map<string, unknown>).get(String(key)) ?? fail(`${name} has no member ${String(key)}`);
      // A dictionary member is an item or an inner list (whose first element is an array).
      return Array.isArray((member as unknown[])[0]) ? serializeInnerList(member as InnerList) : serializeItem(member as never);
    }
    if (type === 'dictionary') return serializeDictionary(value as Map<string, never>);
    return type === 'list' ? serializeList(value as never) : serializeItem(value as never);
  }
  if (params.get('bs') === true) {
    return serializeList(
      headerLines(source.headers, name).map((line) => [new TextEncoder().encode(line.trim()).buffer as ArrayBuffer, new Map()]),
    );
  }
  return raw;
}

/**
 * The signature base of RFC 9421 §2.5 for one `Signature-Input` member (an inner list of
 * component identifiers with the signature parameters). Throws {@link SignatureBaseError}.
 */
export function signatureBase(message: SignedMessage, input: InnerList): string {
  const [items] = input;
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const [name, params] of items) {
    if (typeof name !== 'string') fail('a component identifier is not a string');
    const identifier = serializeItem(name as string, params);
    // §2.5: each component at most once (HMS-05).
    if (seen.has(identifier)) fail(`component ${identifier} is listed twice`);
    seen.add(identifier);
    const value = componentValue(message, name as string, params);
    if (/[^\x20-\x7e]/.test(value)) fail(`component ${identifier} has non-ASCII characters`);
    lines.push(`${identifier}: ${value}`);
  }
  // §2.3: @signature-params is the serialised Signature-Input member, parameters in order.
  lines.push(`"@signature-params": ${serializeInnerList(input)}`);
  return lines.join('\n');
}
