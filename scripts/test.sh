#!/usr/bin/env bash
# Runs pilot's whole test suite, on a fresh Debian machine too: installs what is missing first.
# Run it as root: the tests that run pilot as PID 1 of a PID namespace need it (without root
# they say they are skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  scripts/deps.sh
fi
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace "$@"
else
  exec cargo test --workspace "$@"
fi
