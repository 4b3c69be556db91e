#!/usr/bin/env node
// The documentation site as a reader sees it: builds it (tools/docs.mjs: no broken internal link
// or anchor), opens every page in headless Chromium (Debian's `chromium`, driven by
// playwright-core, over a static server on 127.0.0.1; no request goes anywhere else), and checks that each page renders without script
// errors and that the code blocks of the quickstarts and of the testing guide are, character for
// character, the files the test suite runs (docs/snippets, test/consumers).
// Usage: node tools/docs-check.mjs   (npm run docs:check; .ci/run)
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, relative } from 'node:path';
import { chromium } from 'playwright-core';
import { build, PAGES } from './docs.mjs';

const root = join(import.meta.dirname, '..');
const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css',
  '.js': 'text/javascript',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
};

/** The built site over HTTP on a loopback port, as a static host would serve it. */
async function serve(site) {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    const file = join(site, path.endsWith('/') ? `${path}index.html` : path);
    if (!file.startsWith(site) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** Test files that run the snippets: a snippet no test imports is not "the code the tests run". */
function testSources() {
  const dirs = [join(root, 'test'), join(root, 'docs', 'snippets', 'test')];
  return dirs
    .flatMap((dir) => readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith('.test.ts')))
    .map((e) => readFileSync(join(e.parentPath, e.name), 'utf8'))
    .join('\n');
}

async function main() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (bash tools/ensure-test-tools.sh)`);
  const site = await build();
  const pages = readdirSync(site, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.html'))
    .map((e) => relative(site, join(e.parentPath, e.name)))
    // Every page of ours, the reference's index and one page per package; not every symbol page.
    .filter((p) => !p.startsWith('api/') || p === 'api/index.html' || p.startsWith('api/modules/'))
    .sort();
  const server = await serve(site);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, timeout: 60_000 });
  const problems = [];
  const shownOn = new Map();
  try {
    const context = await browser.newContext({ javaScriptEnabled: true });
    await context.route('**/*', (route) => (route.request().url().startsWith(`${server.url}/`) ? route.continue() : route.abort()));
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    for (const path of pages) {
      errors.length = 0;
      const response = await page.goto(`${server.url}/${path}`, { waitUntil: 'load', timeout: 30_000 });
      if (response?.status() !== 200) problems.push(`${path}: HTTP ${response?.status()}`);
      const heading = await page
        .locator('h1')
        .first()
        .textContent({ timeout: 5_000 })
        .catch(() => null);
      if (!heading?.trim()) problems.push(`${path}: no heading rendered`);
      const blocks = await page.$$eval('pre[data-snippet]', (pres) =>
        pres.map((pre) => ({ path: pre.getAttribute('data-snippet'), text: pre.textContent })),
      );
      for (const block of blocks) {
        if (readFileSync(join(root, block.path), 'utf8') !== block.text)
          problems.push(`${path}: the block of ${block.path} is not that file`);
        shownOn.set(block.path, [...(shownOn.get(block.path) ?? []), path]);
      }
      if (errors.length) problems.push(`${path}: ${errors.join('; ')}`);
    }
  } finally {
    await browser.close();
    await server.close();
  }
  // The quickstarts and the testing guide show what the tests run, and all of it.
  const tests = testSources();
  const snippets = readdirSync(join(root, 'docs', 'snippets')).filter((f) => f.endsWith('-quickstart.ts'));
  for (const file of snippets) {
    const path = `docs/snippets/${file}`;
    if (!shownOn.get(path)?.includes('guides/quickstart.html')) problems.push(`guides/quickstart.html does not show ${path}`);
    if (!tests.includes(`/${file.replace(/\.ts$/, '.js')}'`)) problems.push(`no test imports ${path}`);
  }
  for (const file of readdirSync(join(root, 'docs', 'snippets', 'test'))) {
    if (!shownOn.get(`docs/snippets/test/${file}`)?.includes('testing.html'))
      problems.push(`testing.html does not show docs/snippets/test/${file}`);
  }
  const quickstart = PAGES.find(([, p]) => p === 'guides/quickstart.html');
  if (!quickstart) problems.push('no quickstart page');
  if (problems.length) throw new Error(problems.join('\n'));
  const shown = [...shownOn.keys()].length;
  process.stdout.write(`docs check: ${pages.length} pages opened in Chromium, ${shown} code blocks equal to the files the tests run\n`);
}

main().catch((e) => {
  process.stderr.write(`docs check: ${e.message}\n`);
  process.exit(1);
});
