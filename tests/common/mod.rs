//! Helpers shared by the integration tests: running the real `pilot` binary, as PID 1 in a new
//! PID namespace when root and as a plain process (a child subreaper) otherwise, and reading its
//! output line by line with generous timeouts (timeouts only keep a broken test from hanging;
//! no test asserts on timing).

#![allow(dead_code)] // each test binary uses a different subset

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long any single expectation may take before the test fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The pilot binary under test: cargo's, or the one `PILOT_TEST_BIN` names (the static aarch64
/// build that `scripts/test-aarch64.sh` runs the init-mode tests with).
pub fn pilot_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("PILOT_TEST_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_pilot").to_string())
    })
}

/// The emulator that runs `pilot_bin()` when it is built for another architecture
/// (`PILOT_TEST_RUNNER=qemu-aarch64-static`), if any.
pub fn pilot_runner() -> Option<String> {
    std::env::var("PILOT_TEST_RUNNER")
        .ok()
        .filter(|r| !r.is_empty())
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the tests run in CI (`CI` set to anything but empty, `0` or `false`), where every
/// test must run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Says that a test (or part of one) is skipped, and why; in CI that is a failure, since CI's
/// machine runs as root with a Docker engine and must run every test.
pub fn skip(why: &str) {
    assert!(!in_ci(), "skipped in CI, where every test must run: {why}");
    eprintln!("skipped: {why}");
}

/// `true`, after `skip`ping, when the tests do not run as root; `why` says what needs root.
pub fn skip_unless_root(why: &str) -> bool {
    if is_root() {
        return false;
    }
    skip(&format!("{why}, which needs root"));
    true
}

/// How pilot is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A plain process: pilot makes itself a child subreaper.
    Plain,
    /// PID 1 of a new PID namespace (`unshare --pid --fork --mount-proc`), as in a container.
    Pid1,
}

/// The modes a test should run in: both when root, only `Plain` otherwise (saying so). Under an
/// emulator only `Pid1`: qemu-user (7.2) refuses `PR_SET_CHILD_SUBREAPER`, so a plain pilot
/// cannot reap orphans there, while PID 1, the container's case, reaps them as any init does.
pub fn modes() -> Vec<Mode> {
    if pilot_runner().is_some() {
        assert!(
            is_root(),
            "PILOT_TEST_RUNNER: the emulated tests run pilot as PID 1, which needs root"
        );
        return vec![Mode::Pid1];
    }
    if skip_unless_root("the PID-1 variant runs pilot in a PID namespace") {
        vec![Mode::Plain]
    } else {
        vec![Mode::Plain, Mode::Pid1]
    }
}

/// A `Command` that runs pilot with `args` in `mode`.
pub fn pilot<I, S>(mode: Mode, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    match mode {
        Mode::Plain => {
            let mut cmd = match pilot_runner() {
                Some(runner) => {
                    let mut cmd = Command::new(runner);
                    cmd.arg(pilot_bin());
                    cmd
                }
                None => Command::new(pilot_bin()),
            };
            cmd.args(args);
            cmd
        }
        Mode::Pid1 => {
            let mut cmd = Command::new("unshare");
            cmd.args(["--pid", "--fork", "--mount-proc"]);
            cmd.args(pilot_runner()).arg(pilot_bin()).args(args);
            cmd
        }
    }
}

/// Runs to completion and returns the status and both outputs.
pub fn run(mut cmd: Command) -> (ExitStatus, String, String) {
    let out = cmd.stdin(Stdio::null()).output().expect("start pilot");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The exit code the shell would report (128 + N for a signal).
pub fn code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// A running pilot whose stdout is read line by line.
pub struct Running {
    pub child: Child,
    pub mode: Mode,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    /// Indexes in `seen` of the lines an expectation has matched.
    matched: Vec<usize>,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Running {
    pub fn start(mut cmd: Command, mode: Mode) -> Running {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start pilot");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Running {
            child,
            mode,
            lines,
            seen: Vec::new(),
            matched: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Waits for a stdout line that satisfies `want` and that no earlier expectation matched,
    /// and returns it. Lines that arrived earlier count too, so two expectations about lines
    /// from different processes do not depend on the order the lines arrive in.
    pub fn expect_line(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut checked = 0;
        loop {
            for i in checked..self.seen.len() {
                if !self.matched.contains(&i) && want(&self.seen[i]) {
                    self.matched.push(i);
                    return self.seen[i].clone();
                }
            }
            checked = self.seen.len();
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "no line {what} within {PATIENCE:?}; stdout so far: {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Takes every stdout line that has arrived so far into `seen`, without waiting, and
    /// returns them all.
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Whether pilot (or, as PID 1, `unshare` around it) is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The pid of pilot itself, in the test's PID namespace.
    pub fn pilot_pid(&self) -> i32 {
        let outer = self.child.id() as i32;
        match self.mode {
            Mode::Plain => outer,
            Mode::Pid1 => wait_for(
                || children_of(outer).first().copied(),
                "pilot under unshare",
            ),
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill takes plain integers.
        let rc = unsafe { libc::kill(self.pilot_pid(), signal) };
        assert_eq!(rc, 0, "kill pilot with signal {signal}");
    }

    /// Waits for pilot to exit; returns its status, every stdout line and stderr.
    pub fn wait(mut self) -> Finished {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait pilot") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "pilot did not exit within {PATIENCE:?}; stdout: {:#?}",
                    self.seen
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        // The reader thread ends at EOF, once every process holding the pipe is gone.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("stdout never closed; so far: {:#?}", self.seen)
                }
            }
        }
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        Finished {
            status,
            stdout: std::mem::take(&mut self.seen),
            stderr,
        }
    }
}

/// How a `Running` pilot ended.
pub struct Finished {
    pub status: ExitStatus,
    /// Every line pilot wrote to stdout.
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failing test must not leave pilot, or anything it started, running. SIGKILL gives
        // pilot no chance to clean up, so its whole tree is killed here.
        if let Ok(None) = self.child.try_wait() {
            let tree = descendants(self.child.id() as i32);
            let _ = self.child.kill();
            for pid in tree {
                // SAFETY: kill takes plain integers.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = self.child.wait();
        }
    }
}

/// Every descendant of `root`, from /proc.
pub fn descendants(root: i32) -> Vec<i32> {
    let all = processes();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|p| p.ppid == parent).map(|p| p.pid));
        i += 1;
    }
    found.remove(0);
    found
}

/// Polls `f` until it returns `Some`, for at most `PATIENCE`.
pub fn wait_for<T>(mut f: impl FnMut() -> Option<T>, what: &str) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `f` until it returns `Ok`, for as long as it makes progress: `Err(progress)` says how
/// far the awaited work has come (a count of runs, say), and only `PATIENCE` without any change
/// in it fails. For work whose amount is fixed but whose speed is the machine's: a slow machine
/// takes longer, a hung one fails.
pub fn wait_progressing<T, P: PartialEq + std::fmt::Debug>(
    mut f: impl FnMut() -> Result<T, P>,
    what: &str,
) -> T {
    let mut deadline = Instant::now() + PATIENCE;
    let mut last: Option<P> = None;
    loop {
        match f() {
            Ok(value) => return value,
            Err(progress) => {
                if last.as_ref() != Some(&progress) {
                    deadline = Instant::now() + PATIENCE;
                    last = Some(progress);
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: no progress in {PATIENCE:?} (stuck at {last:?})"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// The processes whose parent is `parent`, read from /proc.
pub fn children_of(parent: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|p| p.ppid == parent)
        .map(|p| p.pid)
        .collect()
}

pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub state: char,
    pub cmdline: String,
}

/// Every process visible in /proc.
pub fn processes() -> Vec<Proc> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        out.push(Proc {
            pid,
            ppid,
            state,
            cmdline,
        });
    }
    out
}

/// Whether any live process has exactly this command line (a unique marker argument makes it
/// specific to one test).
pub fn process_running(cmdline: &str) -> bool {
    processes()
        .iter()
        .any(|p| p.cmdline == cmdline && p.state != 'Z')
}

/// A scratch directory for one test, removed when dropped.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!("pilot-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        Scratch { dir: path }
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `text` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("write scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The events in pilot's debug log lines (`... event: {ExitSuccess app}`), as `"ExitSuccess app"`.
pub fn events(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.split_once("event: {"))
        .map(|(_, rest)| rest.trim_end().trim_end_matches('}').to_string())
        .collect()
}

/// The text of a job's output line in the default log format (`<time> <job> <pid> <text>`).
pub fn job_output<'a>(line: &'a str, job: &str) -> Option<&'a str> {
    let mut parts = line.splitn(4, ' ');
    let _time = parts.next()?;
    if parts.next()? != job {
        return None;
    }
    let pid = parts.next()?;
    if !pid.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(parts.next().unwrap_or(""))
}

/// One HTTP/1.1 request to pilot's control socket; returns the status and the body.
pub fn control(socket: &Path, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    try_control(socket, method, path, body)
        .unwrap_or_else(|e| panic!("connect to {}: {e}", socket.display()))
}

/// `control`, or the error when nothing listens on the socket (yet).
pub fn try_control(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    use std::io::Write;
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: control\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, rest) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        },
    ))
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        text = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// `GET /v3/status` as JSON.
pub fn status(socket: &Path) -> serde_json::Value {
    let (code, body) = control(socket, "GET", "/v3/status", None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// `GET /v3/status` as JSON, or `None` while nothing listens on the socket.
pub fn try_status(socket: &Path) -> Option<serde_json::Value> {
    let (code, body) = try_control(socket, "GET", "/v3/status", None).ok()?;
    (code == 200)
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

/// The pid of job `name` in a `/v3/status` answer, once it runs.
pub fn job_pid(status: &serde_json::Value, name: &str) -> Option<i64> {
    status["jobs"]
        .as_array()?
        .iter()
        .find(|j| j["name"] == name)?["pid"]
        .as_i64()
}

/// The resident memory of a process in KiB (`VmRSS` in `/proc/<pid>/status`), while it exists.
pub fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The lines of a file that a job appends to (none while it does not exist).
pub fn file_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The zombies whose parent is `parent`.
pub fn zombies_of(parent: i32) -> usize {
    processes()
        .iter()
        .filter(|p| p.ppid == parent && p.state == 'Z')
        .count()
}

/// Raises this process's soft limit on open files to its hard limit (as Go programs do at
/// start), for tests that hold thousands of connections; returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    limit.rlim_cur
}

/// Plain HTTP and headless Chromium, for the end-to-end tests.
pub mod web;
