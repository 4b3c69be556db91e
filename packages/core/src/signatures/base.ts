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

export class SignatureBaseError extends Error {
  /** Characters of the base built before the error: what the attempt cost. */
  spent = 0;
}

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

/**
 * RFC 9421 §2.1: each line trimmed, obs-fold (RFC 9112 §5.2: whitespace around a line break)
 * replaced by one space, lines joined with ", ". Linear in the length: a regex here backtracked
 * quadratically on runs of whitespace. Node refuses obs-fold, other sources may not.
 */
function unfold(line: string): string {
  // Stryker disable next-line ConditionalExpression,StringLiteral: equivalent, a shortcut; one line through the loop below is trimmed as well
  if (!line.includes('\n')) return line.trim();
  const parts = line.split('\n');
  for (let i = 1; i < parts.length; i++) if (!/^[ \t]/.test(parts[i] as string)) fail('a field line break that is not obs-fold');
  return parts
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .join(' ');
}

function fieldValue(headers: GuardHeaders, name: string): string {
  const lines = headerLines(headers, name);
  if (lines.length === 0) fail(`field ${name} is absent`);
  return lines.map(unfold).join(', ');
}

type Structured = ReturnType<typeof parseDictionary> | ReturnType<typeof parseList> | ReturnType<typeof parseItem>;

/** A structured field as parsed, with the value it was parsed from and its serialisations so far. */
interface ParsedField {
  value: string;
  parsed: Structured;
  /** The member named by `key` (`undefined`: the whole field, `sf`) → the component value. */
  serialised: Map<string | undefined, string>;
}

/**
 * Structured fields of a message, by name: a field covered with many `key`s, or by many
 * signatures, is parsed once and each of its component values serialised once.
 */
const parsedFields = new WeakMap<GuardHeaders, Map<string, ParsedField>>();

function structured(headers: GuardHeaders, name: string, value: string): ParsedField {
  const type = STRUCTURED[name] ?? fail(`field ${name} is not a known structured field`);
  let fields = parsedFields.get(headers);
  const cached = fields?.get(name);
  // Stryker disable next-line ConditionalExpression: equivalent, a memo; without it the same value is parsed again
  if (cached?.value === value) return cached;
  let parsed: Structured;
  try {
    parsed = type === 'dictionary' ? parseDictionary(value) : type === 'list' ? parseList(value) : parseItem(value);
  } catch {
    return fail(`field ${name} is not a valid structured field`);
  }
  // Stryker disable next-line ConditionalExpression: equivalent, a memo; a new map only drops fields parsed before, which are parsed again
  if (!fields) {
    fields = new Map();
    parsedFields.set(headers, fields);
  }
  const field = { value, parsed, serialised: new Map() };
  fields.set(name, field);
  return field;
}

/**
 * A known structured field of a message, parsed (RFC 8941) — once per message, whatever covers it.
 * Throws {@link SignatureBaseError} when it is absent or malformed.
 */
export function parsedField(headers: GuardHeaders, name: string): Structured {
  return structured(headers, name, fieldValue(headers, name)).parsed;
}

/** §2.1.1 (`sf`) and §2.1.2 (`key`): the field re-serialised, or one member of a dictionary field. */
function structuredComponent(headers: GuardHeaders, name: string, raw: string, key: BareItem | undefined): string {
  const field = structured(headers, name, raw);
  const id = key === undefined ? undefined : String(key);
  let value = field.serialised.get(id);
  // Stryker disable next-line ConditionalExpression: equivalent, a memo; without it the same value is serialised again
  if (value !== undefined) return value;
  const type = STRUCTURED[name];
  if (key !== undefined) {
    if (type !== 'dictionary') fail(`key on ${name}, which is not a dictionary`);
    const member = (field.parsed as Map<string, unknown>).get(String(key)) ?? fail(`${name} has no member ${String(key)}`);
    // A dictionary member is an item or an inner list (whose first element is an array).
    value = Array.isArray((member as unknown[])[0]) ? serializeInnerList(member as InnerList) : serializeItem(member as never);
  } else if (type === 'dictionary') value = serializeDictionary(field.parsed as Map<string, never>);
  else value = type === 'list' ? serializeList(field.parsed as never) : serializeItem(field.parsed as never);
  field.serialised.set(id, value);
  return value;
}

/** RFC 9421 §2.2.8: query parameter names and values percent-encoded after form decoding. */
function encodeQueryPart(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** A target URI as parsed, with its query parameters by name (§2.2.8) once something asks for them. */
interface ParsedUrl {
  href: string;
  url: URL;
  query?: Map<string, string[]>;
}

/**
 * Target URIs of messages, parsed once: a signature may list many derived components and
 * `@query-param`s, and a message carry several signatures.
 */
const parsedUrls = new WeakMap<SignedMessage, ParsedUrl>();

function targetUri(message: SignedMessage, href: string): ParsedUrl {
  const cached = parsedUrls.get(message);
  // Stryker disable next-line ConditionalExpression: equivalent, a memo; without it the same URI is parsed again
  if (cached?.href === href) return cached;
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    return fail('the target URI is not an absolute URI');
  }
  const parsed = { href, url };
  parsedUrls.set(message, parsed);
  return parsed;
}

/**
 * §2.2.8: the query's parameters, form-decoded, by name encoded again: the `name` parameter
 * carries the encoded name (the RFC's example: `name="fa%C3%A7ade%22%3A%20"`).
 */
function queryParams(target: ParsedUrl): Map<string, string[]> {
  // Stryker disable next-line ConditionalExpression: equivalent, a memo; without it the same query is decoded again
  if (!target.query) {
    target.query = new Map();
    for (const [k, v] of new URLSearchParams(target.url.search)) {
      const name = encodeQueryPart(k);
      const values = target.query.get(name);
      if (values) values.push(v);
      else target.query.set(name, [v]);
    }
  }
  return target.query;
}

function derived(message: SignedMessage, name: string, params: Map<string, BareItem>): string {
  if (name === '@status') {
    if (message.status === undefined) fail('@status in a request');
    return String(message.status);
  }
  if (message.url === undefined || message.method === undefined) fail(`${name} in a response without req`);
  const target = targetUri(message, message.url as string);
  const { url } = target;
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
      const values = queryParams(target).get(wanted as string) ?? [];
      if (values.length !== 1) fail(`@query-param ${wanted} occurs ${values.length} times`);
      return encodeQueryPart(values[0] as string);
    }
    default:
      return fail(`unknown derived component ${name}`);
  }
}

/** Component parameters (RFC 9421 §2.1, §2.2.8, §2.4) and the components they apply to. */
const FIELD_PARAMETERS = ['sf', 'key', 'bs', 'req'];
const DERIVED_PARAMETERS = ['req'];
const QUERY_PARAM_PARAMETERS = ['name', 'req'];

/**
 * Bounds on a signature base. The base of a received message is built before its signature is
 * checked, from whatever the sender listed, so its cost must not grow with what the sender lists.
 * A FAPI request signature covers 3 to 5 components of a few kB.
 */
export interface SignatureBaseBounds {
  /** Covered components. */
  maxComponents: number;
  /** Characters of one component's field value (before and after serialisation). */
  maxValueLength: number;
  /** Characters of the whole base. */
  maxBaseLength: number;
}

/**
 * The bounds for a received message: 32 components, 16 KiB per value (Node's default limit for
 * all header fields together), 64 KiB per base. Over them the base is refused, as any malformed one.
 */
export const SIGNATURE_BASE_BOUNDS: Readonly<SignatureBaseBounds> = {
  maxComponents: 32,
  maxValueLength: 16 * 1024,
  maxBaseLength: 64 * 1024,
};

const UNBOUNDED: Readonly<SignatureBaseBounds> = {
  maxComponents: Number.POSITIVE_INFINITY,
  maxValueLength: Number.POSITIVE_INFINITY,
  maxBaseLength: Number.POSITIVE_INFINITY,
};

/** The value of one covered component (RFC 9421 §2.1, §2.2, §2.4). */
export function componentValue(
  message: SignedMessage,
  name: string,
  params: Map<string, BareItem>,
  bounds: Readonly<SignatureBaseBounds> = SIGNATURE_BASE_BOUNDS,
): string {
  // §2.1, §2.2: a parameter that does not apply to the component is an error.
  const allowed = name === '@query-param' ? QUERY_PARAM_PARAMETERS : name.startsWith('@') ? DERIVED_PARAMETERS : FIELD_PARAMETERS;
  for (const key of params.keys()) {
    if (!allowed.includes(key)) fail(`parameter ${key} does not apply to ${name}`);
  }
  let source = message;
  if (params.get('req') === true) {
    // §2.4: `req` belongs to responses only.
    if (message.status === undefined || !message.request) fail('req in a request signature');
    source = message.request as SignedMessage;
  }
  const value = name.startsWith('@') ? derived(source, name, params) : fieldComponent(source, name, params, bounds);
  if (value.length > bounds.maxValueLength) fail(`component ${name} has ${value.length} characters`);
  return value;
}

/** A header field component: raw (§2.1), structured (§2.1.1), a dictionary member (§2.1.2) or byte sequences (§2.1.3). */
function fieldComponent(source: SignedMessage, name: string, params: Map<string, BareItem>, bounds: Readonly<SignatureBaseBounds>): string {
  if (name !== name.toLowerCase()) fail(`component name ${name} is not lower case`);
  const raw = fieldValue(source.headers, name);
  // Before any parsing: the bound holds for the field as received.
  if (raw.length > bounds.maxValueLength) fail(`field ${name} has ${raw.length} characters`);
  const key = params.get('key');
  if (params.get('sf') === true || key !== undefined) return structuredComponent(source.headers, name, raw, key);
  if (params.get('bs') === true) {
    // §2.1.3: a list of byte sequences, the UTF-8 octets of each line (Buffer.from's default).
    // Serialised here: the library builds base64 a character at a time (2 ms for 5 kB).
    return headerLines(source.headers, name)
      .map((line) => `:${Buffer.from(line.trim()).toString('base64')}:`)
      .join(', ');
  }
  return raw;
}

/**
 * The signature base of RFC 9421 §2.5 for one `Signature-Input` member (an inner list of
 * component identifiers with the signature parameters). Throws {@link SignatureBaseError}, also
 * when the base exceeds `bounds` (default {@link SIGNATURE_BASE_BOUNDS}; `null` for a message
 * this side builds itself, e.g. a response that covers the components of a verified request).
 */
export function signatureBase(
  message: SignedMessage,
  input: InnerList,
  bounds: Readonly<SignatureBaseBounds> | null = SIGNATURE_BASE_BOUNDS,
): string {
  const limits = bounds ?? UNBOUNDED;
  const [items] = input;
  if (items.length > limits.maxComponents) fail(`${items.length} covered components (at most ${limits.maxComponents})`);
  const lines: string[] = [];
  const seen = new Set<string>();
  let length = 0;
  try {
    for (const [name, params] of items) {
      if (typeof name !== 'string') fail('a component identifier is not a string');
      const identifier = serializeItem(name as string, params);
      // §2.5: each component at most once (HMS-05).
      if (seen.has(identifier)) fail(`component ${identifier} is listed twice`);
      seen.add(identifier);
      const value = componentValue(message, name as string, params, limits);
      if (/[^\x20-\x7e]/.test(value)) fail(`component ${identifier} has non-ASCII characters`);
      const line = `${identifier}: ${value}`;
      length += line.length + 1;
      if (length > limits.maxBaseLength) fail(`signature base over ${limits.maxBaseLength} characters`);
      lines.push(line);
    }
  } catch (e) {
    // Stryker disable next-line ConditionalExpression: equivalent, every error thrown above is a SignatureBaseError; another would be passed on unchanged
    if (e instanceof SignatureBaseError) e.spent = length;
    throw e;
  }
  // §2.3: @signature-params is the serialised Signature-Input member, parameters in order.
  lines.push(`"@signature-params": ${serializeInnerList(input)}`);
  return lines.join('\n');
}
