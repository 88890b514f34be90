#!/usr/bin/env bash
# Builds pilot's static release binaries and checks each: statically linked, and within the
# 3,000,000-byte budget (README, "Performance targets").
#
#   scripts/build-static.sh [x86_64] [aarch64]     (default: both)
#
#   target/x86_64-unknown-linux-musl/release/pilot
#   target/aarch64-unknown-linux-musl/release/pilot
#
# x86_64 needs musl-gcc (Debian's musl-tools); aarch64 needs zig (PyPI's ziglang) for ring's C,
# see .cargo/config.toml. scripts/deps.sh installs both, and the rustup targets.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
budget=3000000

arches=("$@")
[ "${#arches[@]}" -gt 0 ] || arches=(x86_64 aarch64)
for arch in "${arches[@]}"; do
  case "$arch" in
    x86_64 | aarch64) ;;
    *) echo "build-static: unknown architecture $arch (x86_64 or aarch64)" >&2; exit 2 ;;
  esac
  triple=$arch-unknown-linux-musl
  echo "cargo build --release --target $triple -p pilot"
  cargo build --release --target "$triple" -p pilot
  bin=$target_dir/$triple/release/pilot
  file "$bin" 2>/dev/null || true
  size=$(stat -c %s "$bin")
  echo "pilot ($arch): $size bytes: $bin"
  # The stricter, decimal reading of 3 MB.
  [ "$size" -le "$budget" ] || { echo "pilot ($arch) exceeds the budget of $budget bytes"; exit 1; }
  # Static: no program interpreter and no shared library needed, whatever the architecture
  # (ldd only reads the machine's own). The x86_64 build is a static PIE: it has a dynamic
  # section, for its own relocations, but no interpreter.
  if LC_ALL=C readelf -lW "$bin" | grep -q 'INTERP' || LC_ALL=C readelf -dW "$bin" | grep -q 'NEEDED'; then
    echo "pilot ($arch) is not static"
    exit 1
  fi
done
