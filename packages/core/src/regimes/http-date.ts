/**
 * HTTP-date (RFC 7231 §7.1.1.1, unchanged in RFC 9110 §5.6.7): a recipient that parses one
 * MUST accept all three formats — IMF-fixdate, the obsolete RFC 850 date and asctime. The
 * grammar is case-sensitive and fixed-width, so each format is one anchored expression (linear
 * time); the value must also name a real instant (day of month, time of day, and the weekday
 * that date fell on).
 */

const DAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const DAY_NAMES_LONG = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] as const;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

const DAY = DAY_NAMES.join('|');
const MONTH = MONTHS.join('|');
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
/** `Sun, 06 Nov 1994 08:49:37 GMT` */
const IMF_FIXDATE = new RegExp(`^(${DAY}), (\\d{2}) (${MONTH}) (\\d{4}) ${TIME} GMT$`);
/** `Sunday, 06-Nov-94 08:49:37 GMT` */
const RFC850_DATE = new RegExp(`^(${DAY_NAMES_LONG.join('|')}), (\\d{2})-(${MONTH})-(\\d{2}) ${TIME} GMT$`);
/** `Sun Nov  6 08:49:37 1994` (the day is two digits or a space and one digit). */
const ASCTIME_DATE = new RegExp(`^(${DAY}) (${MONTH}) ((?:\\d| )\\d) ${TIME} (\\d{4})$`);

/** The longest HTTP-date (an RFC 850 date on a Wednesday) has 33 characters. */
export const HTTP_DATE_MAX_LENGTH = 33;

interface Parts {
  weekday: number;
  day: number;
  month: number;
  year: number;
  hour: number;
  minute: number;
  second: number;
}

/**
 * RFC 7231 §7.1.1.1: a two-digit year that would be more than 50 years in the future is the most
 * recent past year with the same last two digits.
 */
function fullYear(twoDigits: number, nowMs: number): number {
  const current = new Date(nowMs).getUTCFullYear();
  let year = current - (current % 100) + twoDigits;
  if (year > current + 50) year -= 100;
  return year;
}

function match(value: string, nowMs: number): Parts | undefined {
  let m = IMF_FIXDATE.exec(value);
  if (m) {
    const [, wd, day, month, year, hour, minute, second] = m as unknown as string[];
    return {
      weekday: DAY_NAMES.indexOf(wd as (typeof DAY_NAMES)[number]),
      day: Number(day),
      month: MONTHS.indexOf(month as (typeof MONTHS)[number]),
      year: Number(year),
      hour: Number(hour),
      minute: Number(minute),
      second: Number(second),
    };
  }
  m = RFC850_DATE.exec(value);
  if (m) {
    const [, wd, day, month, year, hour, minute, second] = m as unknown as string[];
    return {
      weekday: DAY_NAMES_LONG.indexOf(wd as (typeof DAY_NAMES_LONG)[number]),
      day: Number(day),
      month: MONTHS.indexOf(month as (typeof MONTHS)[number]),
      year: fullYear(Number(year), nowMs),
      hour: Number(hour),
      minute: Number(minute),
      second: Number(second),
    };
  }
  m = ASCTIME_DATE.exec(value);
  if (m) {
    const [, wd, month, day, hour, minute, second, year] = m as unknown as string[];
    return {
      weekday: DAY_NAMES.indexOf(wd as (typeof DAY_NAMES)[number]),
      day: Number(day), // Number() skips the leading space of a one-digit day
      month: MONTHS.indexOf(month as (typeof MONTHS)[number]),
      year: Number(year),
      hour: Number(hour),
      minute: Number(minute),
      second: Number(second),
    };
  }
  return undefined;
}

/**
 * The instant an HTTP-date names, or `undefined` when the value is not one. `nowMs` resolves the
 * century of an RFC 850 date. A leap second (`:60`, allowed by the grammar's note) is read as the
 * next second, as JavaScript time has none.
 */
export function parseHttpDate(value: string, nowMs: number): Date | undefined {
  // No format matches a longer value; the bound spares the expressions attacker-sized input.
  // Stryker disable next-line ConditionalExpression: equivalent, the anchored expressions refuse a longer value too
  if (value.length > HTTP_DATE_MAX_LENGTH) return undefined;
  const p = match(value, nowMs);
  if (!p) return undefined;
  if (p.hour > 23 || p.minute > 59 || p.second > 60) return undefined;
  const ms = Date.UTC(p.year, p.month, p.day, p.hour, p.minute, p.second);
  const date = new Date(ms);
  // A day outside the month rolls over in Date.UTC (31 Apr comes back as 1 May, day 00 as the
  // last of the month before) and so never comes back as the day asked for.
  const midnight = new Date(Date.UTC(p.year, p.month, p.day));
  if (midnight.getUTCDate() !== p.day) return undefined;
  // Date.UTC maps years 0–99 to 1900–1999; a four-digit year below 1000 is not worth that trap.
  if (p.year < 1000) return undefined;
  if (midnight.getUTCDay() !== p.weekday) return undefined;
  return date;
}
