#!/usr/bin/env bash
# Consumer check: the packages as users get them. Packs every package from a clean build, checks
# each tarball's contents, runs publint --strict and arethetypeswrong on it, then installs the
# tarballs into the apps of test/consumers/ (copied to a temp dir, outside the workspace), type-
# checks them under nodenext and bundler resolution and runs their tests under Jest, Vitest and
# node:test. The apps' test files are the ones docs/testing.md shows (checked first).
# Network: the npm registry only (the apps' dependencies; npm's cache is used first).
# Usage: bash tools/consumer-check.sh            Time: bounded by the timeouts below.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export TURBO_TELEMETRY_DISABLED=1 CI=true
work=$(mktemp -d "${TMPDIR:-/tmp}/fapi-guard-consumers.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Every published package (all of packages/*; none is private).
mapfile -t packages < <(cd packages && ls -d */ | tr -d /)
apps=(express-esm-ts koa-cjs fastify-ts)
step() { printf '\n== [%ss] %s\n' "$SECONDS" "$*"; }
bounded() { local seconds=$1; shift; timeout --kill-after=10 "$seconds" "$@"; }

step 'docs/testing.md shows the consumer apps as they are'
node tools/consumer-guide.mjs

step 'clean build'
rm -rf packages/*/dist
bounded 300 npx turbo run build --force --output-logs=errors-only --filter='./packages/*'

step 'pack'
mkdir -p "$work/tarballs" "$work/unpacked"
for p in "${packages[@]}"; do
  (cd "packages/$p" && npm pack --silent --pack-destination "$work/tarballs" >/dev/null)
done
# What a tarball may hold: compiled code and its types, README, LICENSE, package.json (and the
# Jest preset of @fapi-guard/testing). No .tsbuildinfo, no source maps, no sources.
allowed='^package/(package\.json|README\.md|LICENSE|dist/.+\.(js|d\.ts)|jest-preset\.(js|d\.ts)|jest-transform\.js)$'
for tgz in "$work"/tarballs/*.tgz; do
  name=$(basename "$tgz" .tgz)
  listing=$(tar -tzf "$tgz" | sort)
  echo "$name: $(echo "$listing" | wc -l) files"
  if echo "$listing" | grep -Ev "$allowed"; then echo "unexpected files in $name (above)" >&2; exit 1; fi
  mkdir -p "$work/unpacked/$name" && tar -xzf "$tgz" -C "$work/unpacked/$name"
  if grep -rl 'sourceMappingURL' "$work/unpacked/$name"; then echo "source map reference in $name (above)" >&2; exit 1; fi
done

step 'publint --strict and arethetypeswrong'
for tgz in "$work"/tarballs/*.tgz; do
  bounded 120 npx --no-install publint run --strict "$tgz"
  bounded 120 npx --no-install attw --no-definitely-typed --format table-flipped "$tgz"
done

# An app's dependencies on @fapi-guard/* (and their own, through overrides) point at the tarballs.
point_at_tarballs() {
  node -e '
    const fs = require("node:fs");
    const [file, dir] = process.argv.slice(1);
    const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
    const tarballs = Object.fromEntries(fs.readdirSync(dir).map((f) => [f.replace(/^fapi-guard-(.+)-\d+\.\d+\.\d+.*\.tgz$/, "@fapi-guard/$1"), `file:${dir}/${f}`]));
    for (const deps of [pkg.dependencies, pkg.devDependencies]) for (const name of Object.keys(deps ?? {})) if (tarballs[name]) deps[name] = tarballs[name];
    pkg.overrides = tarballs;
    fs.writeFileSync(file, JSON.stringify(pkg, null, 2));
  ' "$1" "$work/tarballs"
}

for app in "${apps[@]}"; do
  step "app $app: install"
  cp -r "test/consumers/$app" "$work/$app"
  point_at_tarballs "$work/$app/package.json"
  (cd "$work/$app" && bounded 420 npm install --no-audit --no-fund --prefer-offline --no-package-lock --loglevel=error)
  for script in typecheck test:jest test:vitest test:node; do
    if node -e 'process.exit(require(process.argv[1]).scripts[process.argv[2]] ? 0 : 1)' "$work/$app/package.json" "$script"; then
      step "app $app: npm run $script"
      (cd "$work/$app" && bounded 240 npm run --silent "$script")
    fi
  done
done

step "consumer check passed (${#packages[@]} packages, ${#apps[@]} apps)"
