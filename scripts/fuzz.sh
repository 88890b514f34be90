#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 20) on its committed seeds, with nightly Rust and
# cargo-fuzz (installed when missing). Fails when a target does not build or finds a problem
# (a crash, a leak, a timeout or an out-of-memory: libFuzzer then exits non-zero).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-20}"
cargo +nightly --version >/dev/null
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
targets=(config control render consul)
for target in "${targets[@]}"; do
  cargo +nightly fuzz build "$target"
done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  extra=()
  [ "$target" = config ] && extra=(-dict=config.dict)
  if ! cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
      "${extra[@]}" -max_len=8192 -timeout=10 -max_total_time="$seconds" >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $target found a problem (see fuzz/artifacts/$target)"
    exit 1
  fi
  echo "fuzz: $target: $(grep -E '^Done' "$log" | tail -n 1)"
done
