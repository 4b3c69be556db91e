/**
 * Jest setup: the guard's default logger writes one JSON line to stderr per warning or error, and
 * many suites provoke those on purpose (issuer down, a store failing, a proof for another origin).
 * A passing run keeps them out of its output; `FAPI_TEST_LOGS=1` shows them. Suites that check
 * the lines themselves spy on `process.stderr.write` and see them, since this wrapper sits below.
 */
if (!process.env.FAPI_TEST_LOGS) {
  const write = process.stderr.write.bind(process.stderr) as (...args: unknown[]) => boolean;
  const isGuardLine = (chunk: unknown) =>
    typeof chunk === 'string' && chunk.startsWith('{"level":') && chunk.includes('"name":"fapi-guard"');
  process.stderr.write = ((chunk: unknown, ...rest: unknown[]) =>
    isGuardLine(chunk) ? true : write(chunk, ...rest)) as typeof process.stderr.write;
}
