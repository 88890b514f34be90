//! Process-wide signal ownership.
//!
//! pilot installs no signal handlers. At start-up, before any thread exists, it blocks every
//! catchable signal except the synchronous ones and reads them from a `signalfd`. This has three
//! properties an init needs:
//!
//! - As PID 1 the kernel drops signals whose disposition is the default, *unless they are
//!   blocked* (`sig_ignored` in kernel/signal.c checks the mask first). Blocked signals are queued,
//!   so `docker stop` reaches pilot without a handler.
//! - Every thread started later (tokio's blocking pool, DNS lookups) inherits the mask, so no
//!   signal can be delivered to an arbitrary thread and lost.
//! - The child can be given exactly what pilot inherited: the original mask, and the signals that
//!   were ignored when pilot started (`Inherited`, restored in `child_setup`).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use libc::c_int;
use tokio::io::unix::AsyncFd;

/// Signals that a fault delivers to the faulting thread. Blocking them would turn a crash into a
/// hang, and forwarding them makes no sense, so pilot leaves them alone (as tini does).
const SYNCHRONOUS: [c_int; 7] = [
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// The highest signal number pilot considers (Linux has 64).
const MAX_SIGNAL: c_int = 64;

/// A signal set as the kernel sees it: bit `n - 1` stands for signal `n`.
///
/// pilot uses the raw system calls with it because the C library's wrappers refuse the real-time
/// signals it reserves for itself (32 and 33 in glibc, 32 to 34 in musl), and musl's even hides
/// them when reading the mask. Those signals must still be taken over: 34 is what glibc tools and
/// Docker call SIGRTMIN, and a signal left at its default would kill pilot and orphan the command.
///
/// Taking them over is safe because pilot never asks its C library to use them. musl uses 32 for
/// `timer_create(SIGEV_THREAD)` and 33 for `pthread_cancel`, neither of which Rust or tokio call;
/// it uses 34 in `__synccall`, which `setuid`, `setgid`, `setgroups` and friends run on every
/// thread, and which would hang here if the process had a second thread (tokio's blocking pool
/// may start one), since every thread has 34 blocked. pilot never changes its own credentials:
/// a child that does (`Command::uid`) does it after the fork, with one thread, where `__synccall`
/// signals nobody. glibc's 32 and 33 serve the same two purposes (cancellation, set*id), but glibc
/// unblocks 32 in the threads it creates, so with glibc a 32 may still reach such a thread; the
/// shipped build is static musl, whose threads inherit the mask unchanged.
type RawSet = u64;

/// What pilot inherited from its parent: the signal mask and the set of ignored signals.
///
/// It is `Copy` so that the spawner's `pre_exec` closure can own a copy and restore it in the
/// child without allocating.
#[derive(Clone, Copy)]
pub struct Inherited {
    mask: RawSet,
    /// Bit `n - 1` is set when signal `n` was ignored (`SIG_IGN`) at start-up.
    ignored: RawSet,
}

impl Inherited {
    /// Whether `signal` was ignored when pilot started.
    pub fn was_ignored(&self, signal: c_int) -> bool {
        (1..=MAX_SIGNAL).contains(&signal) && self.ignored & bit(signal) != 0
    }
}

fn bit(signal: c_int) -> RawSet {
    1 << (signal - 1)
}

/// Pilot's ownership of the process's signals: what it inherited and the signalfd it reads.
pub struct Ownership {
    pub(super) inherited: Inherited,
    pub(super) fd: OwnedFd,
}

impl Ownership {
    /// What pilot inherited; the spawner restores it in every child.
    pub fn inherited(&self) -> Inherited {
        self.inherited
    }
}

/// Whether pilot blocks `signal` and reads it from its signalfd.
fn takes_over(signal: c_int) -> bool {
    signal != libc::SIGKILL && signal != libc::SIGSTOP && !SYNCHRONOUS.contains(&signal)
}

/// Takes over every catchable signal. Call it first thing in `main`, before any thread exists:
/// the mask is per thread and only threads created afterwards inherit it.
pub fn take_over() -> io::Result<Ownership> {
    let inherited_mask = set_mask(None)?;
    let mut owned: RawSet = 0;
    let mut ignored: RawSet = 0;
    for signal in (1..=MAX_SIGNAL).filter(|&s| takes_over(s)) {
        owned |= bit(signal);
        if handler(signal) == Some(libc::SIG_IGN) {
            ignored |= bit(signal);
            // An ignored signal is discarded even while blocked. Reset it to the default so that
            // pilot hears and forwards it; being blocked, its default action never runs here.
            set_handler(signal, libc::SIG_DFL);
        }
    }
    set_mask(Some(&owned))?;
    // SAFETY: signalfd4 with fd -1 creates a new descriptor for `owned`, a set of the size given.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_signalfd4,
            -1,
            &owned as *const RawSet,
            size_of::<RawSet>(),
            libc::SFD_NONBLOCK | libc::SFD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Ownership {
        inherited: Inherited {
            mask: inherited_mask,
            ignored,
        },
        // SAFETY: signalfd4 returned a new descriptor (it fits a c_int) that nothing else owns.
        fd: unsafe { OwnedFd::from_raw_fd(fd as c_int) },
    })
}

/// Sets the calling thread's signal mask to `set` (or only reads it, for `None`) and returns the
/// previous one. Async-signal-safe: the child calls it between fork and exec.
fn set_mask(set: Option<&RawSet>) -> io::Result<RawSet> {
    let mut old: RawSet = 0;
    let new = set.map_or(std::ptr::null(), |set| set as *const RawSet);
    // SAFETY: both pointers are null or point to a set of the size given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            new,
            &mut old as *mut RawSet,
            size_of::<RawSet>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(old)
}

/// The kernel's `struct sigaction`: handler, flags, restorer, mask. Only the handler is read, and
/// only `SIG_DFL` or `SIG_IGN` is written, which need no flags and no restorer.
type RawAction = [usize; 4];

/// The disposition of `signal` (a handler address, `SIG_DFL` or `SIG_IGN`), if it can be read.
fn handler(signal: c_int) -> Option<libc::sighandler_t> {
    let mut old: RawAction = [0; 4];
    // SAFETY: a null new action only reads the current one into `old`, of the size the kernel uses.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            std::ptr::null::<RawAction>(),
            &mut old as *mut RawAction,
            size_of::<RawSet>(),
        )
    };
    (rc == 0).then_some(old[0])
}

/// Sets `signal` to `SIG_DFL` or `SIG_IGN`. Async-signal-safe; errors are ignored, as the only
/// failure is a signal that cannot be changed.
fn set_handler(signal: c_int, disposition: libc::sighandler_t) {
    let action: RawAction = [disposition, 0, 0, 0];
    // SAFETY: a valid action of the size the kernel uses; the old one is not read.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            &action as *const RawAction,
            std::ptr::null_mut::<RawAction>(),
            size_of::<RawSet>(),
        )
    };
}

/// One signal read from the signalfd.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    pub signal: c_int,
    /// The sender's pid as seen from pilot's PID namespace (0 for the kernel).
    pub sender: u32,
}

/// The readable end of pilot's signalfd, registered with tokio.
pub(super) struct SignalFd {
    fd: AsyncFd<OwnedFd>,
}

impl SignalFd {
    pub(super) fn new(fd: OwnedFd) -> io::Result<Self> {
        // SAFETY: an OwnedFd is a valid descriptor that stays open, and always the same one,
        // for as long as the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self { fd })
    }

    /// Waits for at least one signal and returns every signal that is pending.
    pub(super) async fn recv(&self) -> io::Result<Vec<Received>> {
        loop {
            let mut guard = self.fd.readable().await?;
            let received = read_pending(guard.get_inner().as_raw_fd())?;
            if received.is_empty() {
                guard.clear_ready();
                continue;
            }
            return Ok(received);
        }
    }
}

fn read_pending(fd: c_int) -> io::Result<Vec<Received>> {
    const BATCH: usize = 32;
    let mut out = Vec::new();
    loop {
        let mut buf = MaybeUninit::<[libc::signalfd_siginfo; BATCH]>::uninit();
        let size = size_of::<libc::signalfd_siginfo>();
        // SAFETY: the buffer is large enough for BATCH records; read never writes past its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), BATCH * size) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock => Ok(out),
                io::ErrorKind::Interrupted => continue,
                _ => Err(err),
            };
        }
        let records = n as usize / size;
        let buf = buf.as_ptr().cast::<libc::signalfd_siginfo>();
        for i in 0..records {
            // SAFETY: the kernel wrote `records` whole records at the start of the buffer.
            let info = unsafe { &*buf.add(i) };
            out.push(Received {
                signal: info.ssi_signo as c_int,
                sender: info.ssi_pid,
            });
        }
        if records < BATCH {
            return Ok(out);
        }
    }
}

/// Whether a received signal is one pilot passes on to its children: everything it takes over
/// except SIGCHLD, which is pilot's own business.
pub fn is_forwardable(signal: c_int) -> bool {
    signal != libc::SIGCHLD
}

/// pilot's process group, if it is the foreground group of the terminal on stdin. Only then may
/// a child take the terminal (a background pilot must not steal it from its shell), and the
/// terminal must go back to this group when the child is done.
pub fn terminal_foreground() -> Option<libc::pid_t> {
    // SAFETY: tcgetpgrp and getpgrp take plain integers; tcgetpgrp fails on a non-terminal.
    let (foreground, own) = unsafe { (libc::tcgetpgrp(libc::STDIN_FILENO), libc::getpgrp()) };
    // Both read as 0 when neither group is visible from pilot's PID namespace (PID 1 under
    // `unshare --pid --fork` on a terminal). pilot is then taken to be in the foreground, as a
    // container's init on a terminal is, but cannot give the terminal back by number.
    (foreground >= 0 && foreground == own).then_some(own)
}

/// Makes `pgid` the foreground group of the terminal on stdin again. pilot has SIGTTOU blocked,
/// so it is not stopped for doing this from a background group.
pub fn give_terminal_to(pgid: libc::pid_t) {
    if pgid <= 0 {
        return; // not visible from here (see `terminal_foreground`)
    }
    // SAFETY: tcsetpgrp takes plain integers; a failure leaves the terminal as it was.
    unsafe { libc::tcsetpgrp(libc::STDIN_FILENO, pgid) };
}

/// Runs in the forked child before `exec`, so it may only make async-signal-safe calls.
///
/// The standard library has already emptied the signal mask and set SIGPIPE to its default by the
/// time this runs. This puts back what pilot inherited: the mask and the ignored signals. When
/// `foreground` is set (pilot's group owned the terminal on stdin), the child's new process group
/// first becomes the terminal's foreground group, with SIGTTOU ignored for the call (a background
/// group calling `tcsetpgrp` would otherwise be stopped).
pub(super) fn child_setup(inherited: &Inherited, foreground: bool) {
    // SAFETY: signal, tcsetpgrp and getpid are async-signal-safe and are called with valid
    // arguments; errors are deliberately ignored (the child runs regardless).
    unsafe {
        if foreground {
            libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
            libc::signal(libc::SIGTTOU, libc::SIG_DFL);
        }
    }
    for signal in (1..=MAX_SIGNAL).filter(|&s| inherited.was_ignored(s)) {
        set_handler(signal, libc::SIG_IGN);
    }
    // Raw, so that the C library's reserved signals get exactly the state pilot inherited.
    let _ = set_mask(Some(&inherited.mask));
}

/// The name of a signal for messages (`SIGTERM`, `SIGRTMIN+3`).
pub fn name(signal: c_int) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => {
            let min = libc::SIGRTMIN();
            if signal >= min {
                format!("SIGRTMIN+{}", signal - min)
            } else {
                format!("signal {signal}")
            }
        }
    }
}

/// A signal named as Docker's `STOPSIGNAL` and `docker kill --signal` read it: a number
/// (`"3"`), or a name in any case with or without `SIG` (`"SIGQUIT"`, `"quit"`), including
/// `RTMIN`, `RTMIN+n`, `RTMAX` and `RTMAX-n`. `None` for anything else.
pub fn parse(text: &str) -> Option<c_int> {
    if let Ok(number) = text.parse::<c_int>() {
        return (1..=MAX_SIGNAL).contains(&number).then_some(number);
    }
    let upper = text.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let realtime = |base: c_int, rest: &str, sign: c_int| -> Option<c_int> {
        let offset = if rest.is_empty() {
            0
        } else {
            rest.parse::<c_int>().ok()?
        };
        let signal = base + sign * offset;
        (libc::SIGRTMIN()..=libc::SIGRTMAX())
            .contains(&signal)
            .then_some(signal)
    };
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        return realtime(libc::SIGRTMIN(), rest.strip_prefix('+').unwrap_or(rest), 1);
    }
    if let Some(rest) = bare.strip_prefix("RTMAX") {
        return realtime(libc::SIGRTMAX(), rest.strip_prefix('-').unwrap_or(rest), -1);
    }
    // Docker's aliases.
    let bare = match bare {
        "CLD" => "CHLD",
        "IOT" => "ABRT",
        "POLL" => "IO",
        other => other,
    };
    if bare.is_empty()
        || !bare
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return None;
    }
    format!("SIG{bare}")
        .parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as c_int)
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn names_numbers_and_realtime_signals_read_as_docker_reads_them() {
        for (text, signal) in [
            ("SIGQUIT", libc::SIGQUIT),
            ("quit", libc::SIGQUIT),
            ("Int", libc::SIGINT),
            ("15", libc::SIGTERM),
            ("SIGCLD", libc::SIGCHLD),
            ("RTMIN", libc::SIGRTMIN()),
            ("SIGRTMIN+3", libc::SIGRTMIN() + 3),
            ("RTMAX-1", libc::SIGRTMAX() - 1),
        ] {
            assert_eq!(parse(text), Some(signal), "{text}");
        }
        for text in [
            "",
            "0",
            "65",
            "-1",
            "SIG",
            "TERMINATE",
            "RTMIN+99",
            "SIG TERM",
            "ＴERM",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
