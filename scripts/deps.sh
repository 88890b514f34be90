#!/usr/bin/env bash
# Installs what pilot's build, tests and demo need on a fresh Debian machine and that it may lack.
# Idempotent: installs only what is missing. Needs root (apt-get, rustup targets).
set -euo pipefail

packages=()
need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 || packages+=("$2")
}
need musl-gcc musl-tools      # static release build (crates that compile C)
need unshare util-linux       # PID namespaces in tests
need script bsdutils
need ip iproute2              # network namespaces
need python3 python3          # test fixtures
need gcc gcc                  # benchmark helpers

if [ "${#packages[@]}" -gt 0 ]; then
  echo "installing: ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

rustup target list --installed | grep -qx x86_64-unknown-linux-musl \
  || rustup target add x86_64-unknown-linux-musl
