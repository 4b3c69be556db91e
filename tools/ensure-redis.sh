#!/usr/bin/env bash
# The Redis suites run against a real redis-server (a missing one is a failure, not a skip).
# Installs Debian's redis-server when it is missing and this machine can (root or sudo + apt-get).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "redis-server is required by the tests: install it (e.g. apt-get install redis-server)" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "redis-server is required by the tests: apt-get install -y redis-server (as root)" >&2
    exit 1
  fi
fi
echo "installing redis-server (needed by the Redis test suites)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools
