/**
 * RFC 9530 Content-Digest: computed over the content bytes as transferred (content coding
 * applied, transfer coding removed) and compared with the field, which is an SF dictionary of
 * algorithm → byte sequence (§2). Only the "Active" algorithms count (§5, §7.2): sha-256 and
 * sha-512; deprecated ones (md5, sha, unixsum, unixcksum, adler, crc32c) are never relied on.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { parseDictionary, serializeDictionary } from 'structured-headers';

/** RFC 9530 §7.2 Active algorithms, strongest first. */
const ACTIVE = ['sha-512', 'sha-256'] as const;
const NODE_NAME: Record<(typeof ACTIVE)[number], string> = { 'sha-512': 'sha512', 'sha-256': 'sha256' };
/** §6.6: a bound on members, so a hostile field costs little. */
const MAX_MEMBERS = 10;

export type DigestCheck = { ok: true; algorithm: string } | { ok: false; detail: string };

/** A `Content-Digest` value for `content` (sha-256 by default). */
export function contentDigest(content: Uint8Array, algorithm: (typeof ACTIVE)[number] = 'sha-256'): string {
  const digest = createHash(NODE_NAME[algorithm]).update(content).digest();
  return serializeDictionary(
    new Map([[algorithm, [digest.buffer.slice(digest.byteOffset, digest.byteOffset + digest.length) as ArrayBuffer, new Map()]]]),
  );
}

/**
 * Checks a `Content-Digest` field value against the received content: the strongest Active
 * algorithm present must match; unknown members are ignored; none Active → refused (§6.7).
 */
export function verifyContentDigest(field: string, content: Uint8Array): DigestCheck {
  let members: ReturnType<typeof parseDictionary>;
  try {
    members = parseDictionary(field);
  } catch {
    return { ok: false, detail: 'Content-Digest is not a structured dictionary' };
  }
  if (members.size > MAX_MEMBERS) return { ok: false, detail: `Content-Digest has ${members.size} members` };
  for (const algorithm of ACTIVE) {
    const member = members.get(algorithm);
    if (member === undefined) continue;
    const [value] = member;
    if (!(value instanceof ArrayBuffer)) return { ok: false, detail: `${algorithm} is not a byte sequence` };
    const expected = createHash(NODE_NAME[algorithm]).update(content).digest();
    const given = Buffer.from(value);
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      return { ok: false, detail: `${algorithm} does not match the content` };
    return { ok: true, algorithm };
  }
  return { ok: false, detail: 'no sha-256 or sha-512 member' };
}
