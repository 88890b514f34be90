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

/// What pilot inherited from its parent: the signal mask and the set of ignored signals.
///
/// It is `Copy` so that the spawner's `pre_exec` closure can own a copy and restore it in the
/// child without allocating.
#[derive(Clone, Copy)]
pub struct Inherited {
    mask: libc::sigset_t,
    /// Bit `n - 1` is set when signal `n` was ignored (`SIG_IGN`) at start-up.
    ignored: u64,
}

impl Inherited {
    /// Whether `signal` was ignored when pilot started.
    pub fn was_ignored(&self, signal: c_int) -> bool {
        (1..=MAX_SIGNAL).contains(&signal) && self.ignored & bit(signal) != 0
    }
}

fn bit(signal: c_int) -> u64 {
    1u64 << (signal - 1)
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

/// Takes over every catchable signal. Call it first thing in `main`, before any thread exists:
/// the mask is per thread and only threads created afterwards inherit it.
pub fn take_over() -> io::Result<Ownership> {
    let mut inherited_mask = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: a null `set` only reads the current mask into `inherited_mask`.
    let rc = unsafe {
        libc::pthread_sigmask(
            libc::SIG_BLOCK,
            std::ptr::null(),
            inherited_mask.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: pthread_sigmask succeeded, so it initialised the set.
    let inherited_mask = unsafe { inherited_mask.assume_init() };

    let mut owned = empty_set();
    let mut ignored = 0u64;
    for signal in 1..=MAX_SIGNAL {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP || SYNCHRONOUS.contains(&signal) {
            continue;
        }
        // Signals the C library reserves for itself are rejected by sigaddset; skip them.
        // SAFETY: `owned` is an initialised sigset_t.
        if unsafe { libc::sigaddset(&mut owned, signal) } != 0 {
            continue;
        }
        let mut old = MaybeUninit::<libc::sigaction>::uninit();
        // SAFETY: a null `act` only reads the current disposition into `old`.
        if unsafe { libc::sigaction(signal, std::ptr::null(), old.as_mut_ptr()) } != 0 {
            continue;
        }
        // SAFETY: sigaction succeeded, so it initialised `old`.
        let old = unsafe { old.assume_init() };
        if old.sa_sigaction == libc::SIG_IGN {
            ignored |= bit(signal);
            // An ignored signal is discarded even while blocked. Reset it to the default so that
            // pilot hears and forwards it; being blocked, its default action never runs here.
            // SAFETY: installing SIG_DFL has no memory-safety requirements.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
        }
    }
    // SAFETY: `owned` is initialised; the old mask is not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &owned, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: signalfd with fd -1 creates a new descriptor for the initialised set `owned`.
    let fd = unsafe { libc::signalfd(-1, &owned, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Ownership {
        inherited: Inherited {
            mask: inherited_mask,
            ignored,
        },
        // SAFETY: signalfd returned a new descriptor that nothing else owns.
        fd: unsafe { OwnedFd::from_raw_fd(fd) },
    })
}

fn empty_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    }
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

/// Runs in the forked child before `exec`, so it may only make async-signal-safe calls.
///
/// The standard library has already emptied the signal mask and set SIGPIPE to its default by the
/// time this runs. This puts back what pilot inherited: the mask and the ignored signals. When
/// `foreground` is set and stdin is a terminal, the child's new process group first becomes the
/// terminal's foreground group, with SIGTTOU ignored for the call (a background group calling
/// `tcsetpgrp` would otherwise be stopped).
pub(super) fn child_setup(inherited: &Inherited, foreground: bool) {
    // SAFETY: isatty, signal, tcsetpgrp, getpid and pthread_sigmask are async-signal-safe and are
    // called with valid arguments; errors are deliberately ignored (the child runs regardless).
    unsafe {
        if foreground && libc::isatty(libc::STDIN_FILENO) == 1 {
            libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
            libc::signal(libc::SIGTTOU, libc::SIG_DFL);
        }
        for signal in 1..=MAX_SIGNAL {
            if inherited.was_ignored(signal) {
                libc::signal(signal, libc::SIG_IGN);
            }
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &inherited.mask, std::ptr::null_mut());
    }
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
