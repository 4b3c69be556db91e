/**
 * The probe's reader of `WWW-Authenticate` (RFC 9110 §11.6.1) and its RFC 6750 §3 / RFC 9449 §7.1
 * judgement: `errors.challenge-syntax` can only fail a server if these refuse what they must.
 */
import { challengeAdvice, challengeProblems, param, parseChallenges } from '../src/challenge';

/** The problems of one field value: the syntax error, else the RFC 6750 §3 problems of each challenge. */
function judge(value: string): string[] {
  const parsed = parseChallenges([value]);
  return parsed.ok ? parsed.challenges.flatMap(challengeProblems) : [parsed.error];
}

describe('WWW-Authenticate reader (RFC 9110 §11.6.1)', () => {
  it('BEARER-03 reads valid challenges: params, several challenges in one field, token68, empty list elements', () => {
    const parsed = parseChallenges([
      'Bearer realm="example", error="invalid_token", error_description="The access token expired"',
      ', DPoP algs="ES256 PS256" , error=use_dpop_nonce,, Negotiate abc+/_-.~==',
      'bearer REALM = "a\\"b"',
    ]);
    expect(parsed).toEqual({
      ok: true,
      challenges: [
        {
          scheme: 'Bearer',
          params: [
            ['realm', 'example'],
            ['error', 'invalid_token'],
            ['error_description', 'The access token expired'],
          ],
        },
        {
          scheme: 'DPoP',
          params: [
            ['algs', 'ES256 PS256'],
            ['error', 'use_dpop_nonce'],
          ],
        },
        { scheme: 'Negotiate', token68: 'abc+/_-.~==', params: [] },
        { scheme: 'bearer', params: [['realm', 'a"b']] },
      ],
    });
    if (parsed.ok) expect(param(parsed.challenges[1] as never, 'error')).toBe('use_dpop_nonce');
  });

  it.each([
    [
      'an unquoted value with spaces',
      'Bearer error=invalid_token, error_description=the token expired',
      '"," expected between auth-params',
    ],
    ['a missing comma between params', 'Bearer realm="a" error="invalid_token"', '"," expected between auth-params'],
    ['a token68 with a character outside its set', 'Negotiate abc$def', '"," expected after token68'],
    ['a token68 of padding only', 'Negotiate ==', 'token68 or auth-param expected'],
    ['a token68 followed by more', 'Negotiate abc== def', '"," expected after token68'],
    ['an unterminated quoted-string', 'Bearer realm="abc', 'malformed value of auth-param "realm"'],
    ['a control character in a quoted-string', 'Bearer realm="a\u0001b"', 'malformed value of auth-param "realm"'],
    ['an auth-param without a value', 'Bearer realm="a", error=', 'SP expected after the auth-scheme'],
    ['no SP after the scheme', 'Bearer\trealm="a"', 'SP expected after the auth-scheme'],
    ['a scheme that is not a token', '"Bearer" realm="a"', 'auth-scheme expected'],
  ])('BEARER-03 refuses %s', (_what, value, error) => {
    const parsed = parseChallenges([value]);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toContain(error);
  });

  it('BEARER-03 refuses the whole list when one field value is malformed', () => {
    expect(parseChallenges(['Bearer realm="a"', 'DPoP algs=ES256 PS256']).ok).toBe(false);
  });
});

describe('RFC 6750 §3 / RFC 9449 §7.1 auth-params', () => {
  it.each([
    'Bearer realm="example"',
    'Bearer error="invalid_token", error_description="expired", error_uri="https://example.com/e?x=1"',
    'Bearer error="insufficient_scope", scope="accounts payments:read"',
    'DPoP algs="ES256 EdDSA", error="invalid_dpop_proof"',
    'DPoP',
    'Bearer error="insufficient_user_authentication"',
    'Basic realm="other scheme", error="anything at all"',
    'Negotiate abc==',
    // RFC 6750 §3 sets no character rule for realm: a quoted-pair and obs-text are fine.
    'Bearer realm="a\\\\b \\"q\\" Z\u00fcrich"',
    ...['https://example.com/errors#e1', '/errors?code=a%20b', 'errors', 'urn:example:error', 'https://[2001:db8::1]:8443/e', '#x'].map(
      (uri) => `Bearer error_uri="${uri}"`,
    ),
  ])('BEARER-04 finds no problem in %s', (value) => {
    expect(judge(value)).toEqual([]);
  });

  it.each([
    ['Bearer error="invalid_token", error="invalid_request"', 'Bearer challenge repeats "error"'],
    ['DPoP algs="ES256", algs="PS256"', 'DPoP challenge repeats "algs"'],
    ['Bearer realm="a", REALM="b"', 'Bearer challenge repeats "realm"'],
    ['Bearer error="invalid\\"token"', '"error" holds characters RFC 6750 §3 does not allow'],
    ['Bearer error_description="caf\u00e9"', '"error_description" holds characters RFC 6750 §3 does not allow'],
    ['Bearer error_description="a\\\\b"', '"error_description" holds characters RFC 6750 §3 does not allow'],
    ['Negotiate a=1, A=2', 'Negotiate challenge repeats "a"'],
    ['Bearer scope="a  b"', '"scope" is not a space-separated list of scope-tokens'],
    ['Bearer scope=""', '"scope" is not a space-separated list of scope-tokens'],
    ...[
      'https://example.com/a b',
      'https://example.com/{x}',
      'https://example.com/a#b#c',
      'https://example.com/%zz',
      '1a:b',
      'https://[::1/x',
      'https://example.com/[x]',
    ].map((uri) => [`Bearer error_uri="${uri}"`, '"error_uri" is not a URI-reference (RFC 3986 §4.1)']),
    ['DPoP algs=" ES256"', '"algs" is not a space-separated list of algorithms'],
    ['Bearer', 'Bearer challenge without any auth-param (RFC 6750 §3)'],
    ['Bearer abc==', 'Bearer challenge carries a token68, not auth-params'],
    ['DPoP abc', 'DPoP challenge carries a token68, not auth-params'],
  ])('BEARER-04 finds the problem in %s', (value, problem) => {
    expect(judge(value)).toContain(problem);
  });

  it.each([
    ['Bearer error="server_error"', 'server_error'],
    ['DPoP error="invalid_client"', 'invalid_client'],
  ])('an unregistered error code in %s is advice, not a MUST problem', (value, code) => {
    expect(judge(value)).toEqual([]);
    const parsed = parseChallenges([value]);
    const advice = parsed.ok ? parsed.challenges.flatMap(challengeAdvice) : [];
    expect(advice).toEqual([`"error" "${code}" is not a registered resource-access error code (clients act on registered codes)`]);
  });

  it('a registered error code is no advice', () => {
    const parsed = parseChallenges(['DPoP error="use_dpop_nonce", Bearer error="insufficient_scope"']);
    expect(parsed.ok && parsed.challenges.flatMap(challengeAdvice)).toEqual([]);
  });
});
