/**
 * HTTP-date (RFC 7231 §7.1.1.1) and the FAPI 1.0 customer headers (Part 1 §6.2.1 #13, §6.2.2
 * #3–4) in process: each format, each boundary.
 */
import { HTTP_DATE_MAX_LENGTH, isCustomerIpAddress, parseHttpDate, readFapiCustomerHeaders } from '../src/index';
import { trimOws } from '../src/regimes/fapi-headers';

const NOW = Date.UTC(2026, 11, 6, 9, 30, 0);
const iso = (value: string, now = NOW) => parseHttpDate(value, now)?.toISOString();

describe('HTTP-date', () => {
  it('FAPIA-RS-07 reads the three formats of RFC 7231 §7.1.1.1 as the same instant', () => {
    expect(iso('Sun, 06 Nov 1994 08:49:37 GMT')).toBe('1994-11-06T08:49:37.000Z');
    expect(iso('Sunday, 06-Nov-94 08:49:37 GMT')).toBe('1994-11-06T08:49:37.000Z');
    expect(iso('Sun Nov  6 08:49:37 1994')).toBe('1994-11-06T08:49:37.000Z');
    expect(iso('Thu Nov 26 08:49:37 1998')).toBe('1998-11-26T08:49:37.000Z');
  });

  it('FAPIA-RS-07 reads a two-digit year more than 50 years ahead as the last century', () => {
    // 2026 + 50 = 2076: '76' is still ahead, '77' is 1977.
    expect(iso('Wednesday, 01-Jan-76 00:00:00 GMT')).toBe('2076-01-01T00:00:00.000Z');
    expect(iso('Saturday, 01-Jan-77 00:00:00 GMT')).toBe('1977-01-01T00:00:00.000Z');
    expect(iso('Thursday, 01-Jan-26 00:00:00 GMT')).toBe('2026-01-01T00:00:00.000Z');
  });

  it('DEC-14 takes 23:59:60 (a leap second) and refuses times and days that do not exist', () => {
    expect(iso('Sat, 31 Dec 2016 23:59:60 GMT')).toBe('2017-01-01T00:00:00.000Z');
    expect(iso('Sat, 31 Dec 2016 23:59:61 GMT')).toBeUndefined();
    expect(iso('Sat, 31 Dec 2016 24:00:00 GMT')).toBeUndefined();
    expect(iso('Sat, 31 Dec 2016 23:60:00 GMT')).toBeUndefined();
    expect(iso('Thu, 29 Feb 2024 12:00:00 GMT')).toBe('2024-02-29T12:00:00.000Z');
    expect(iso('Wed, 29 Feb 2023 12:00:00 GMT')).toBeUndefined();
    expect(iso('Thu, 31 Apr 2014 10:00:00 GMT')).toBeUndefined();
    expect(iso('Wed, 30 Apr 2014 10:00:00 GMT')).toBe('2014-04-30T10:00:00.000Z');
    expect(iso('Tue, 00 Apr 2014 10:00:00 GMT')).toBeUndefined();
    expect(iso('Fri, 40 Jan 2024 10:00:00 GMT')).toBeUndefined(); // 9 Feb was a Friday: only the day refuses it
    expect(iso('Mon Apr  0 10:00:00 2014')).toBeUndefined(); // 31 Mar was a Monday
  });

  it('DEC-14 refuses a year below 1000, which Date.UTC would misread (0099 as 1999)', () => {
    // Each with the weekday its date fell on, so only the year can refuse it.
    expect(iso('Wed, 01 Jan 1000 00:00:00 GMT')).toBe('1000-01-01T00:00:00.000Z');
    expect(iso('Tue, 01 Jan 0999 00:00:00 GMT')).toBeUndefined();
    expect(iso('Fri, 01 Jan 1999 00:00:00 GMT')).toBe('1999-01-01T00:00:00.000Z');
    expect(iso('Fri, 01 Jan 0099 00:00:00 GMT')).toBeUndefined();
    expect(iso('Fri Jan  1 00:00:00 0099')).toBeUndefined();
  });

  it('DEC-14 refuses a weekday the date did not fall on', () => {
    expect(iso('Tue, 11 Sep 2012 19:43:31 GMT')).toBeDefined();
    expect(iso('Wed, 11 Sep 2012 19:43:31 GMT')).toBeUndefined();
    expect(iso('Wednesday, 11-Sep-12 19:43:31 GMT')).toBeUndefined();
    expect(iso('Wed Sep 11 19:43:31 2012')).toBeUndefined();
  });

  it('DEC-14 holds to the case-sensitive, fixed-width grammar', () => {
    for (const value of [
      'tue, 11 Sep 2012 19:43:31 GMT',
      'Tue, 11 sep 2012 19:43:31 GMT',
      'Tue, 11 Sep 2012 19:43:31 gmt',
      'Tue, 11 Sep 2012 19:43:31 UTC',
      'Tue, 11 Sep 2012 19:43:31 +0000',
      'Tue, 1 Sep 2012 19:43:31 GMT',
      'Tue,  11 Sep 2012 19:43:31 GMT',
      'Tue 11 Sep 2012 19:43:31 GMT',
      'Tue, 11 Sep 12 19:43:31 GMT',
      'Tue, 11-Sep-2012 19:43:31 GMT',
      'Tuesday, 11 Sep 2012 19:43:31 GMT',
      'Tue Sep 11 19:43:31 2012 GMT',
      'Tue Sep 11 9:43:31 2012',
      '2012-09-11T19:43:31Z',
      ' Tue, 11 Sep 2012 19:43:31 GMT',
      '',
    ]) {
      expect([value, iso(value)]).toEqual([value, undefined]);
    }
  });

  it('DEC-14 refuses values longer than the longest HTTP-date before matching', () => {
    const longest = 'Wednesday, 12-Sep-12 19:43:31 GMT';
    expect(longest).toHaveLength(HTTP_DATE_MAX_LENGTH);
    expect(iso(longest)).toBe('2012-09-12T19:43:31.000Z');
    expect(iso(`${longest} `)).toBeUndefined();
  });
});

describe('x-fapi-customer-ip-address', () => {
  it('FAPIA-RS-06 XFAPI-03 takes every textual IPv4 and IPv6 form', () => {
    for (const value of [
      '198.51.100.119',
      '0.0.0.0',
      '255.255.255.255',
      '2001:DB8::1893:25c8:1946',
      '2001:0db8:0000:0000:0000:0000:0000:0001',
      '::',
      '::ffff:198.51.100.7',
      'fe80::1%eth0',
      '1:2:3:4:5:6:7:8',
    ]) {
      expect([value, isCustomerIpAddress(value)]).toEqual([value, true]);
    }
  });

  it('DEC-14 refuses what is not an address', () => {
    for (const value of [
      '',
      '256.1.1.1',
      '010.1.1.1',
      '1.2.3',
      '198.51.100.7:443',
      '[2001:db8::1]',
      '2001:db8::1/64',
      '1.2.3.4%eth0',
      'fe80::1%',
      'fe80::1%<script>',
      'localhost',
      '1:2:3:4:5:6:7:8:9',
    ]) {
      expect([value, isCustomerIpAddress(value)]).toEqual([value, false]);
    }
  });

  it('DEC-14 bounds the value at 64 characters (an IPv6 address with a zone fits)', () => {
    expect(isCustomerIpAddress(`fe80::1%${'a'.repeat(56)}`)).toBe(true);
    expect(isCustomerIpAddress(`fe80::1%${'a'.repeat(57)}`)).toBe(false);
  });
});

describe('optional whitespace (RFC 9110 §5.5)', () => {
  it('DEC-14 removes SP and HTAB at both ends, nothing inside and no other blank', () => {
    expect(trimOws(' \t a \t b \t ')).toBe('a \t b');
    expect(trimOws('\t\t')).toBe('');
    expect(trimOws('')).toBe('');
    expect(trimOws('a')).toBe('a');
    for (const blank of ['\u00a0', '\r', '\n', '\v', '\f', '\u2003']) {
      expect(trimOws(`${blank}a${blank}`)).toBe(`${blank}a${blank}`);
    }
  });

  it('DEC-14 runs in linear time: 100 000 blanks between two characters (attack review 16)', () => {
    const value = `1${' '.repeat(100_000)}1`;
    const started = performance.now();
    expect(trimOws(value)).toBe(value);
    expect(trimOws(`\t${value} `)).toBe(value);
    // A regex for trailing blanks retries at every blank of the run: seconds for this; a scan, well under a ms.
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('readFapiCustomerHeaders', () => {
  const read = (headers: Record<string, string[]>) => readFapiCustomerHeaders(headers, NOW, 10);

  it('FAPIA-RS-06 FAPIA-RS-07 hands over both values, without surrounding whitespace', () => {
    expect(read({})).toEqual({ ok: true, headers: {} });
    expect(
      read({ 'x-fapi-customer-ip-address': [' \t2001:db8::1 \t'], 'x-fapi-auth-date': [' Sun, 06 Nov 1994 08:49:37 GMT\t '] }),
    ).toEqual({
      ok: true,
      headers: { customerIpAddress: '2001:db8::1', authDate: new Date('1994-11-06T08:49:37Z') },
    });
  });

  it('DEC-14 allows an auth date up to the clock tolerance ahead, not a second more', () => {
    const at = (ms: number) => read({ 'x-fapi-auth-date': [new Date(ms).toUTCString()] });
    expect(at(NOW + 10_000).ok).toBe(true);
    expect(at(NOW + 11_000)).toEqual({ ok: false, detail: 'x-fapi-auth-date is in the future' });
  });

  it('DEC-14 refuses a value that is not an HTTP-date or not an address, saying which', () => {
    expect(read({ 'x-fapi-auth-date': ['2026-12-06T09:00:00Z'] })).toEqual({
      ok: false,
      detail: 'x-fapi-auth-date is not an HTTP-date (RFC 7231 §7.1.1.1)',
    });
    expect(read({ 'x-fapi-customer-ip-address': ['198.51.100.256'] })).toEqual({
      ok: false,
      detail: 'x-fapi-customer-ip-address is not an IPv4 or IPv6 address',
    });
  });

  it('DEC-14 refuses each header sent twice', () => {
    expect(read({ 'x-fapi-customer-ip-address': ['198.51.100.7', '198.51.100.7'] })).toEqual({
      ok: false,
      detail: '2 x-fapi-customer-ip-address header lines',
    });
    expect(read({ 'x-fapi-auth-date': ['Sun, 06 Nov 1994 08:49:37 GMT', 'Sun, 06 Nov 1994 08:49:37 GMT'] })).toEqual({
      ok: false,
      detail: '2 x-fapi-auth-date header lines',
    });
  });
});
