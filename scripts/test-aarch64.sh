#!/usr/bin/env bash
# Runs init-mode tests (tests/init_mode.rs) with the static aarch64 pilot under
# qemu-aarch64-static, Debian's user-mode emulator: as PID 1 of a PID namespace, as in a
# container. The ones chosen prove, under emulation, what an init must do: exec the command (and
# report one it cannot), pass its exit status through (128+N for a signal), forward every
# catchable signal to its process group, reap orphans, and stop what it left behind.
#
# Left out: the C library's reserved real-time signals 32 to 34 (qemu-user keeps some host
# real-time signals for itself, so a guest cannot be sent them), and the terminal tests, whose
# shell scripts run pilot's path directly (binfmt_misc, which would hand it to qemu, is not
# mounted everywhere). As a plain process (not PID 1) qemu-user refuses
# PR_SET_CHILD_SUBREAPER, so tests/common runs only the PID-1 variant under an emulator.
#
# Needs root (PID namespaces). Builds the binary first (scripts/build-static.sh aarch64).
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
command -v qemu-aarch64-static >/dev/null \
  || { echo "qemu-aarch64-static is missing: scripts/deps.sh installs qemu-user-static"; exit 1; }
scripts/build-static.sh aarch64

tests=(
  exit_codes_0_to_255_pass_through
  a_signal_death_is_128_plus_the_signal
  a_missing_program_is_127_and_a_non_executable_one_126
  the_command_may_follow_the_flags_without_a_double_dash
  a_hundred_double_forked_orphans_are_reaped
  the_exit_status_survives_two_thousand_orphans_exiting_at_once
  every_catchable_signal_is_forwarded
  signals_reach_a_grandchild_in_the_commands_group
  the_command_sees_the_mask_and_ignored_signals_pilot_inherited
  stdin_stdout_and_stderr_pass_straight_through
  a_leftover_gets_sigterm_only_once
  a_leftover_that_ignores_sigterm_is_killed_after_the_grace_period
  a_daemon_that_left_the_group_does_not_outlive_pilot
)
filter=$(printf 'test(=%s) | ' "${tests[@]}")
filter=${filter% | }

export PILOT_TEST_BIN=$target_dir/aarch64-unknown-linux-musl/release/pilot
export PILOT_TEST_RUNNER=qemu-aarch64-static
echo "PILOT_TEST_BIN=$PILOT_TEST_BIN PILOT_TEST_RUNNER=$PILOT_TEST_RUNNER"
exec cargo nextest run --test init_mode -E "$filter"
