//! Init mode, `pilot -- CMD`, with the real binary: as PID 1 of a new PID namespace (when root)
//! and as a plain process that makes itself a child subreaper.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Instant;

use common::{Mode, Running, code, fixture, modes, pilot, process_running, run};

/// `-- SCRIPT ARGS...` for one of the fixture scripts.
fn script_args(script: &std::path::Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["--".to_string(), script.display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

fn sh(script: &str) -> Vec<String> {
    vec!["--".into(), "sh".into(), "-c".into(), script.into()]
}

#[test]
fn exit_codes_0_to_255_pass_through() {
    for mode in modes() {
        for expected in 0..=255 {
            let (status, _, stderr) = run(pilot(mode, sh(&format!("exit {expected}"))));
            assert_eq!(code(status), expected, "{mode:?}: stderr {stderr}");
        }
    }
}

#[test]
fn a_signal_death_is_128_plus_the_signal() {
    for mode in modes() {
        for (name, number) in [("TERM", 15), ("USR1", 10), ("USR2", 12), ("KILL", 9)] {
            let (status, _, _) = run(pilot(mode, sh(&format!("kill -{name} $$"))));
            assert_eq!(code(status), 128 + number, "{mode:?} SIG{name}");
        }
    }
}

#[test]
fn a_missing_program_is_127_and_a_non_executable_one_126() {
    for mode in modes() {
        let (status, _, stderr) = run(pilot(mode, ["--", "/nonexistent/program"]));
        assert_eq!(code(status), 127, "{mode:?}");
        assert_eq!(
            stderr, "pilot: cannot find \"/nonexistent/program\": no such file or directory\n",
            "{mode:?}"
        );

        let (status, _, stderr) = run(pilot(mode, ["--", "/etc/passwd"]));
        assert_eq!(code(status), 126, "{mode:?}");
        assert_eq!(
            stderr, "pilot: cannot execute \"/etc/passwd\": permission denied\n",
            "{mode:?}"
        );

        // A program name without a slash is looked up on PATH.
        let (status, _, stderr) = run(pilot(mode, ["no-such-program-anywhere"]));
        assert_eq!(code(status), 127, "{mode:?}");
        assert!(
            stderr.starts_with("pilot: cannot find \"no-such-program-anywhere\""),
            "{stderr}"
        );
    }
}

#[test]
fn the_command_may_follow_the_flags_without_a_double_dash() {
    for mode in modes() {
        let (status, stdout, _) = run(pilot(mode, ["echo", "-n", "plain"]));
        assert_eq!((code(status), stdout.as_str()), (0, "plain"), "{mode:?}");
    }
}

#[test]
fn a_hundred_double_forked_orphans_are_reaped() {
    for mode in modes() {
        let orphans = fixture("orphans.py");
        let (status, stdout, stderr) = run(pilot(mode, script_args(&orphans, &["reap", "100"])));
        assert_eq!(code(status), 0, "{mode:?}: {stderr}");
        assert_eq!(stdout, "zombies=0\n", "{mode:?}");
    }
}

#[test]
fn the_exit_status_survives_two_thousand_orphans_exiting_at_once() {
    for mode in modes() {
        let orphans = fixture("orphans.py");
        let (status, _, stderr) = run(pilot(mode, script_args(&orphans, &["flood", "2000", "7"])));
        assert_eq!(code(status), 7, "{mode:?}: {stderr}");
    }
}

#[test]
fn every_catchable_signal_is_forwarded() {
    let signals = [
        ("SIGHUP", libc::SIGHUP),
        ("SIGINT", libc::SIGINT),
        ("SIGQUIT", libc::SIGQUIT),
        ("SIGUSR1", libc::SIGUSR1),
        ("SIGUSR2", libc::SIGUSR2),
        ("SIGPIPE", libc::SIGPIPE),
        ("SIGALRM", libc::SIGALRM),
        ("SIGCONT", libc::SIGCONT),
        ("SIGTSTP", libc::SIGTSTP),
        ("SIGTTIN", libc::SIGTTIN),
        ("SIGTTOU", libc::SIGTTOU),
        ("SIGURG", libc::SIGURG),
        ("SIGXCPU", libc::SIGXCPU),
        ("SIGVTALRM", libc::SIGVTALRM),
        ("SIGPROF", libc::SIGPROF),
        ("SIGWINCH", libc::SIGWINCH),
        ("SIGIO", libc::SIGIO),
        ("SIGPWR", libc::SIGPWR),
        ("SIGRTMIN", libc::SIGRTMIN()),
        ("SIGRTMIN+1", libc::SIGRTMIN() + 1),
        ("SIGRTMIN+7", libc::SIGRTMIN() + 7),
        ("SIGTERM", libc::SIGTERM),
    ];
    for mode in modes() {
        let script = fixture("signals.py");
        let mut running = Running::start(pilot(mode, script_args(&script, &["all"])), mode);
        running.expect_line("ready", |l| l == "ready");
        for (name, number) in signals {
            running.signal(number);
            let want = format!("got {name}");
            running.expect_line(&want, |l| l == want);
        }
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}: {}", finished.stderr);
    }
}

/// The real-time signals the C library reserves (32 and 33 in glibc, 32 to 34 in musl) are taken
/// over and forwarded like the others. The command has them at their default, so it dies of each,
/// and pilot, which must survive them, exits with 128 + N.
#[test]
fn the_signals_the_c_library_reserves_are_forwarded() {
    for mode in modes() {
        for signal in 32..=34 {
            let mut cmd = pilot(mode, sh("echo ready; exec sleep 100"));
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    reset_dispositions();
                    Ok(())
                });
            }
            let mut running = Running::start(cmd, mode);
            running.expect_line("ready", |l| l == "ready");
            running.signal(signal);
            let finished = running.wait();
            // `code()` would fold pilot's own death by the signal into the same number.
            assert_eq!(
                finished.status.code(),
                Some(128 + signal),
                "{mode:?}: signal {signal}: {:?} {}",
                finished.status,
                finished.stderr
            );
        }
    }
}

#[test]
fn signals_reach_a_grandchild_in_the_commands_group() {
    for mode in modes() {
        let script = fixture("signals.py");
        let mut running = Running::start(pilot(mode, script_args(&script, &["grandchild"])), mode);
        running.expect_line("ready", |l| l == "ready");
        running.signal(libc::SIGUSR1);
        running.expect_line("the grandchild's report", |l| l == "grandchild got SIGUSR1");
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}");
    }
}

#[test]
fn the_command_sees_the_mask_and_ignored_signals_pilot_inherited() {
    for mode in modes() {
        let mut cmd = pilot(
            mode,
            ["--", "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"],
        );
        // Start pilot with SIGUSR2 blocked and SIGUSR1 and SIGPIPE ignored, everything else at
        // its default.
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                reset_dispositions();
                libc::signal(libc::SIGUSR1, libc::SIG_IGN);
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGUSR2);
                libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        let (status, stdout, stderr) = run(cmd);
        assert_eq!(code(status), 0, "{mode:?}: {stderr}");
        // Bit N-1 stands for signal N: SIGUSR2 (12) is 0x800, SIGUSR1 (10) 0x200, SIGPIPE (13) 0x1000.
        assert_eq!(
            stdout, "SigBlk:\t0000000000000800\nSigIgn:\t0000000000001200\n",
            "{mode:?}"
        );
    }
}

#[test]
fn nothing_blocked_or_ignored_reaches_the_command_by_default() {
    for mode in modes() {
        let mut cmd = pilot(
            mode,
            ["--", "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"],
        );
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                reset_dispositions();
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        let (_, stdout, _) = run(cmd);
        assert_eq!(
            stdout, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
            "{mode:?}"
        );
    }
}

/// Sets every signal's disposition to the default, including the real-time signals the C library
/// reserves (glibc's `posix_spawn` leaves some of those ignored in its children), with the raw
/// system call since the libc wrappers refuse them. Async-signal-safe.
unsafe fn reset_dispositions() {
    // The kernel's `struct sigaction` on x86_64: handler, flags, restorer, mask; all zero is
    // SIG_DFL with no flags.
    let default = [0usize; 4];
    for signal in 1..=64 {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            // SAFETY: a valid pointer to a zeroed kernel sigaction of the size the kernel expects.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signal,
                    default.as_ptr(),
                    0usize,
                    8usize,
                )
            };
        }
    }
}

#[test]
fn the_command_gets_no_descriptor_of_pilots_besides_0_1_2() {
    for mode in modes() {
        let mut cmd = pilot(mode, sh("ls /proc/$$/fd"));
        // Hand pilot an extra descriptor 7, without close-on-exec.
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::dup2(2, 7) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let (status, stdout, _) = run(cmd);
        assert_eq!(code(status), 0);
        // `ls` lists the shell's descriptors, which are the command's. No pipeline: the shell
        // would hold the pipe's descriptors while `ls` looks.
        assert_eq!(stdout, "0\n1\n2\n", "{mode:?}");
    }
}

#[test]
fn inherited_descriptors_are_closed_for_the_command_even_without_proc() {
    if common::skip_unless_root("unmounting /proc in a new mount namespace") {
        return;
    }
    // pilot gets descriptor 7 (its stdout) open, in a mount namespace without /proc; the
    // command writes to 7 if it still has it.
    let script = format!(
        "umount -l /proc && exec {} -- sh -c 'echo leaked >&7'",
        common::pilot_bin()
    );
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "sh", "-c", &script]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::dup2(1, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (status, stdout, stderr) = run(cmd);
    assert_ne!(
        code(status),
        0,
        "the write to descriptor 7 succeeded: {stderr}"
    );
    assert_eq!(stdout, "", "{stderr}");
}

#[test]
fn stdin_stdout_and_stderr_pass_straight_through() {
    for mode in modes() {
        let mut cmd = pilot(mode, sh("cat; echo to-stderr >&2"));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"line one\nno newline")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(out.status), 0);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "line one\nno newline",
            "{mode:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "to-stderr\n",
            "{mode:?}"
        );
    }
}

#[test]
fn a_background_leftover_is_stopped_when_the_command_exits() {
    for mode in modes() {
        let marker = format!("sleep 1000.{}{}", std::process::id(), mode as u8);
        let started = Instant::now();
        let (status, _, _) = run(pilot(mode, sh(&format!("{marker} & exit 0"))));
        assert_eq!(code(status), 0, "{mode:?}");
        assert!(
            !process_running(&marker),
            "{mode:?}: `{marker}` outlived pilot"
        );
        // It went on SIGTERM, not at the SIGKILL after the grace period.
        assert!(
            started.elapsed() < pilot_grace(),
            "{mode:?}: took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_leftover_gets_sigterm_only_once() {
    for mode in modes() {
        // Several runs: two SIGTERMs sent close together can merge into one pending signal.
        for _ in 0..5 {
            let script = fixture("signals.py");
            let (status, stdout, stderr) = run(pilot(mode, script_args(&script, &["leftover"])));
            assert_eq!(code(status), 0, "{mode:?}: {stderr}");
            assert_eq!(stdout, "SIGTERM 1\n", "{mode:?}");
        }
    }
}

#[test]
fn a_leftover_that_ignores_sigterm_is_killed_after_the_grace_period() {
    for mode in modes() {
        let marker = format!("sleep 1001.{}{}", std::process::id(), mode as u8);
        let started = Instant::now();
        // The script waits until the leftover has exec'd `sleep` (before that, its command line
        // is the shell's, which mentions sleep too), so its `trap` is in place.
        let script = format!(
            "(trap '' TERM; exec {marker}) & until grep -q '^sleep' /proc/$!/cmdline; do sleep 0.01; done; exit 3"
        );
        let (status, _, _) = run(pilot(mode, sh(&script)));
        assert_eq!(code(status), 3, "{mode:?}");
        assert!(
            !process_running(&marker),
            "{mode:?}: `{marker}` outlived pilot"
        );
        assert!(
            started.elapsed() >= pilot_grace(),
            "{mode:?}: killed before the grace period"
        );
    }
}

#[test]
fn a_daemon_that_left_the_group_does_not_outlive_pilot() {
    for mode in modes() {
        let marker = format!("sleep 1002.{}{}", std::process::id(), mode as u8);
        let (status, _, _) = run(pilot(mode, sh(&format!("setsid {marker} & exit 0"))));
        assert_eq!(code(status), 0, "{mode:?}");
        assert!(
            !process_running(&marker),
            "{mode:?}: `{marker}` outlived pilot"
        );
    }
}

/// Runs `command` on a new terminal (`terminal.py`) and types `keys` once it prints `ready`.
/// Returns what the terminal showed, ending in `exit=<code>`.
fn on_a_terminal(keys: &str, command: &std::process::Command) -> String {
    let mut cmd = std::process::Command::new(fixture("terminal.py"));
    cmd.arg(keys)
        .arg(command.get_program())
        .args(command.get_args());
    let (status, stdout, stderr) = run(cmd);
    assert_eq!(code(status), 0, "{stderr}");
    stdout
}

/// `script` run by `sh` on a new terminal, `hello` typed once it prints `ready`; `PILOT` in it
/// stands for pilot's path.
fn script_on_a_terminal(script: &str) -> String {
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(script.replace("PILOT", common::pilot_bin()));
    on_a_terminal("hello\n", &sh)
}

/// The process group and the terminal's foreground group from the first `/proc/PID/stat` line
/// in `shown`.
fn pgrp_and_tpgid(shown: &str) -> (String, String) {
    let stat = shown
        .lines()
        .find(|l| l.contains(") "))
        .unwrap_or_else(|| panic!("no stat line: {shown}"));
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // After the name: state ppid pgrp session tty_nr tpgid.
    (fields[2].to_string(), fields[5].to_string())
}

#[test]
fn the_command_takes_the_terminal_and_ctrl_c_reaches_it() {
    for mode in modes() {
        let inner = pilot(mode, sh("cat /proc/$$/stat; echo ready; exec sleep 100"));
        let shown = on_a_terminal("\u{3}", &inner);
        let (pgrp, tpgid) = pgrp_and_tpgid(&shown);
        assert_eq!(
            pgrp, tpgid,
            "{mode:?}: the command is not the terminal's foreground group: {shown}"
        );
        assert!(
            shown.ends_with("exit=130\n"),
            "{mode:?}: Ctrl-C did not end the command: {shown}"
        );
    }
}

#[test]
fn the_terminal_is_given_back_when_the_command_exits() {
    for command in ["true", "/nonexistent/program"] {
        let shown = script_on_a_terminal(&format!(
            "PILOT -- {command}; echo ready; read x; echo got=$x"
        ));
        assert!(
            shown.ends_with("got=hello\nexit=0\n"),
            "after `pilot -- {command}` the shell cannot read: {shown}"
        );
    }
}

#[test]
fn a_background_pilot_leaves_the_terminal_alone() {
    // With job control (`set -m`), `&` puts pilot in a background process group.
    let shown = script_on_a_terminal(
        "set -m; PILOT -- sh -c 'cat /proc/$$/stat' & wait; echo ready; read x; echo got=$x",
    );
    let (pgrp, tpgid) = pgrp_and_tpgid(&shown);
    assert_ne!(
        pgrp, tpgid,
        "the command took the terminal from the shell: {shown}"
    );
    assert!(shown.ends_with("got=hello\nexit=0\n"), "{shown}");
}

/// The grace period of init mode, as documented (`pilot::init::GRACE`).
fn pilot_grace() -> std::time::Duration {
    pilot::init::GRACE
}

#[test]
fn usage_errors_exit_2_and_version_and_help_exit_0() {
    let (status, _, stderr) = run(pilot(Mode::Plain, ["-no-such-flag"]));
    assert_eq!(code(status), 2);
    assert_eq!(
        stderr,
        "pilot: flag provided but not defined: -no-such-flag\nsee pilot -help\n"
    );
    for args in [["-putenv", "FOO"], ["-maintenance", "foo"]] {
        let (status, _, stderr) = run(pilot(Mode::Plain, args));
        assert_eq!(code(status), 2);
        assert_eq!(stderr.lines().count(), 2, "one line and the hint: {stderr}");
        assert!(stderr.ends_with("\nsee pilot -help\n"), "{stderr}");
    }

    let (status, _, stderr) = run(pilot(Mode::Plain, Vec::<String>::new()));
    assert_eq!(code(status), 2);
    assert!(stderr.contains("Usage: pilot"), "{stderr}");

    for flag in ["-version", "--version"] {
        let (status, stdout, _) = run(pilot(Mode::Plain, [flag]));
        assert_eq!(code(status), 0);
        assert!(
            stdout.starts_with(&format!(
                "Version: {}\nGitHash: ",
                env!("CARGO_PKG_VERSION")
            )),
            "{stdout}"
        );
    }
    for flag in ["-help", "--help", "-h"] {
        let (status, stdout, _) = run(pilot(Mode::Plain, [flag]));
        assert_eq!(code(status), 0);
        assert!(stdout.starts_with("Usage: pilot"), "{stdout}");
    }
    // A stdout that cannot take the text is an error exit, not a panic.
    for flag in ["-version", "-help"] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let mut cmd = pilot(Mode::Plain, [flag]);
        cmd.stdout(full);
        let out = cmd.stderr(std::process::Stdio::piped()).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{flag}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "pilot: cannot write to stdout: no space left on device\n",
            "{flag}"
        );
    }
}
