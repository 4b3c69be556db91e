/** The demo's walkthrough: numbered steps, each with the status it must get, printed as they run. */

export interface Step {
  title: string;
  expect: number;
  run(): Promise<Response>;
}

const clip = (text: string, max = 160) => (text.length > max ? `${text.slice(0, max - 3)}...` : text);

function show(res: Response, body: string): string {
  const lines = [`   → ${res.status} ${res.statusText}`];
  for (const name of ['www-authenticate', 'dpop-nonce', 'x-jws-signature', 'content-type']) {
    const value = res.headers.get(name);
    if (value && (name !== 'content-type' || value.startsWith('application/jwt')))
      lines.push(`     ${name}: ${value.length > 120 ? `${value.slice(0, 117)}...` : value}`);
  }
  lines.push(`     ${clip(body, 280)}`);
  // A signed JWT answer (Open Finance Brasil): its claims, as the client reads them once verified.
  if (res.headers.get('content-type')?.startsWith('application/jwt')) {
    const claims = body.split('.')[1];
    if (claims) lines.push(`     claims: ${clip(Buffer.from(claims, 'base64url').toString(), 320)}`);
  }
  return lines.join('\n');
}

/** Runs the steps in order and returns how many did not get the expected status. */
export async function runSteps(steps: readonly Step[]): Promise<number> {
  let failures = 0;
  for (const [i, step] of steps.entries()) {
    const res = await step.run();
    const body = await res.text();
    const ok = res.status === step.expect;
    if (!ok) failures++;
    console.log(`${i + 1}. ${step.title}${ok ? '' : `  [UNEXPECTED: wanted ${step.expect}]`}`);
    console.log(`${show(res, body)}\n`);
  }
  console.log(failures === 0 ? 'Every outcome was the expected one.' : `${failures} unexpected outcome(s).`);
  return failures;
}
