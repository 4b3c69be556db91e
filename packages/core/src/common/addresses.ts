/**
 * Allow-lists of peer addresses (IPs and CIDR ranges), for trusted proxies. Node's `BlockList`
 * builds objects on every check, so answers are remembered per address (bounded).
 */
import { BlockList, isIP } from 'node:net';

export class AddressList {
  private readonly list = new BlockList();
  private readonly answers = new Map<string, boolean>();

  /** Throws a `TypeError` naming `what` for an entry that is not an IP or CIDR. */
  constructor(entries: readonly string[], what: string) {
    for (const entry of entries) {
      const [address, prefix] = entry.split('/');
      const family = isIP(address ?? '');
      const bits = prefix === undefined ? undefined : Number(prefix);
      if (family === 0 || (bits !== undefined && !(Number.isInteger(bits) && bits >= 0 && bits <= (family === 6 ? 128 : 32)))) {
        throw new TypeError(`fapi-guard: ${what} entry "${entry}" is not an IP or CIDR`);
      }
      const type = family === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.list.addAddress(address as string, type);
      else this.list.addSubnet(address as string, bits, type);
    }
  }

  /** True when the peer address is on the list (IPv4-mapped IPv6 addresses count as IPv4). */
  has(remoteAddress: string | undefined): boolean {
    if (!remoteAddress) return false;
    let answer = this.answers.get(remoteAddress);
    if (answer === undefined) {
      const address = remoteAddress.startsWith('::ffff:') ? remoteAddress.slice(7) : remoteAddress;
      const family = isIP(address);
      answer = family !== 0 && this.list.check(address, family === 6 ? 'ipv6' : 'ipv4');
      if (this.answers.size >= 1024) this.answers.clear();
      this.answers.set(remoteAddress, answer);
    }
    return answer;
  }
}
