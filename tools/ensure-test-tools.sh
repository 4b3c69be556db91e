#!/usr/bin/env bash
# Programs the test suites run for real (a missing one is a failure, not a skip): redis-server and
# redis-cli (Redis suites, including the 3-master cluster), nginx, HAProxy and Caddy
# (test/deploy-proxies.test.ts runs docs/deploy's configurations), and Chromium (tools/docs-check.mjs
# opens the documentation site in it). Installs the missing ones from
# Debian's packages when this machine can (root, or sudo + apt-get). Nothing is started here: the
# tests run their own instances on loopback ports.
set -euo pipefail
# program → Debian package
declare -A packages=([redis-server]=redis-server [redis-cli]=redis-tools [nginx]=nginx [haproxy]=haproxy [caddy]=caddy [chromium]=chromium)
missing=()
for bin in "${!packages[@]}"; do command -v "$bin" >/dev/null 2>&1 || missing+=("${packages[$bin]}"); done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if ! command -v apt-get >/dev/null 2>&1; then
  echo "the tests need ${missing[*]}: install them (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "the tests need ${missing[*]}: apt-get install -y ${missing[*]} (as root)" >&2
    exit 1
  fi
fi
echo "installing ${missing[*]} (needed by the test suites)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
