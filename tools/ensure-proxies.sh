#!/usr/bin/env bash
# test/deploy-proxies.test.ts runs docs/deploy's configurations with Debian's nginx, HAProxy and
# Caddy (a missing binary is a failure, not a skip). Installs the missing ones when this machine
# can (root or sudo + apt-get). Services are not started: the tests run their own instances.
set -euo pipefail
missing=()
for bin in nginx haproxy caddy; do command -v "$bin" >/dev/null 2>&1 || missing+=("$bin"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "the proxy tests need ${missing[*]}: install them (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "the proxy tests need ${missing[*]}: apt-get install -y ${missing[*]} (as root)" >&2
    exit 1
  fi
fi
echo "installing ${missing[*]} (needed by test/deploy-proxies.test.ts)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
