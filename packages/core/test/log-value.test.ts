import { logValue, MAX_LOG_VALUE_LENGTH } from '../src/observe/log-value';

describe('logValue (issue 15 item 12)', () => {
  it('15.12 log injection: leaves plain values alone', () => {
    expect(logValue('no ES256 key with kid k1 at https://as.example.com')).toBe('no ES256 key with kid k1 at https://as.example.com');
  });

  it('15.12 log injection: escapes CR/LF, tabs, ANSI and other C0/C1 controls, quotes and backslashes as in a JSON string', () => {
    expect(logValue('a\r\nallow 200 POST /payments')).toBe('a\\r\\nallow 200 POST /payments');
    expect(logValue('\u001b[31mred\u001b[0m\t"q"\\')).toBe('\\u001b[31mred\\u001b[0m\\t\\"q\\"\\\\');
    expect(logValue('\u0000\u007f\u0085\u009b')).toBe('\\u0000\\u007f\\u0085\\u009b');
  });

  it('15.12 log injection: escapes Unicode line separators and bidirectional overrides', () => {
    expect(logValue('a\u2028b\u2029c\u202ed\u2066e')).toBe('a\\u2028b\\u2029c\\u202ed\\u2066e');
  });

  it('15.12 log injection: bounds the length; exactly the limit is kept, one more is cut with a count', () => {
    const max = MAX_LOG_VALUE_LENGTH;
    expect(logValue('x'.repeat(max))).toBe('x'.repeat(max));
    expect(logValue('x'.repeat(max + 1))).toBe(`${'x'.repeat(max)}…[1 more characters]`);
    expect(logValue('x'.repeat(100_000)).length).toBeLessThan(max + 40);
  });

  it('15.12 log injection: never cuts inside an escape or a surrogate pair', () => {
    // 9 characters of room: "ab" then "\n" (2) fits, then "\u001b" (6) does not.
    expect(logValue('ab\n\u001bcd', 9)).toBe('ab\\n…[3 more characters]');
    expect(logValue('ab\\\\', 3)).toBe('ab…[2 more characters]');
    expect(logValue('ab\u{1F600}cd', 3)).toBe('ab…[4 more characters]');
  });
});
