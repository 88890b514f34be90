//! Abuse of the control socket, against the real daemon: malformed requests, 10 MB bodies, a
//! thousand connections at once (idle, stalled in their headers, and active), clients that never
//! send their body. Through all of it a normal request is served, the daemon's resident memory
//! stays bounded, no file descriptor leaks, and pilot shuts down cleanly afterwards.
//!
//! The clients are plain blocking sockets on threads, so that the test never shares a runtime
//! with what it measures.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// The most resident memory pilot may use at any time during a test (the debug build idles at
/// about 11 MB; a body or a connection held in memory per client would pass this at once).
const MAX_RSS_KIB: u64 = 20 * 1024;

/// How long a connection waits for its client before it gives way to a new one when every
/// slot is taken (pilot's default `idle_grace`).
const IDLE_GRACE: Duration = Duration::from_secs(1);

/// A running daemon with a control socket.
struct Daemon {
    _dir: Scratch,
    socket: PathBuf,
    running: Running,
    pid: i32,
    fds: usize,
}

impl Daemon {
    fn start(name: &str) -> Daemon {
        let dir = Scratch::new(&format!("abuse-{name}"));
        let socket = dir.path("pilot.sock");
        let cfg = dir.write(
            "pilot.json5",
            &format!(
                r#"{{ consul: "127.0.0.1:1", control: {{ socket: "{}" }},
  jobs: [{{ name: "app", exec: ["sleep", "1000"] }}] }}"#,
                socket.display()
            ),
        );
        let running = Running::start(
            pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]),
            Mode::Plain,
        );
        let pid = running.pilot_pid();
        wait_for(|| try_status(&socket), "the control socket");
        let fds = open_fds(pid);
        Daemon {
            _dir: dir,
            socket,
            running,
            pid,
            fds,
        }
    }

    /// One normal request, one attempt: it must be answered `200 ok`.
    fn assert_serves(&self, when: &str) {
        match request(
            &self.socket,
            b"GET /v3/ping HTTP/1.1\r\nHost: control\r\n\r\n",
        ) {
            Ok(Answer::Status(200, body)) if body == "ok\n" => {}
            other => panic!("{when}: a normal request got {other:?}"),
        }
    }

    /// Waits until pilot has taken in every connection opened so far, then until those in its
    /// slots are older than the idle grace (1 s), after which they give way to a client with a
    /// request. A ping sent after them is answered once pilot's accept loop is past them all
    /// (served, or refused with a 503 while the slots are young: either will do); the grace is
    /// then slept out after it, a lower bound of pilot's own clock that a slow machine only
    /// lengthens. Nothing is concluded from the wait itself.
    fn let_connections_age(&self) {
        match request(
            &self.socket,
            b"GET /v3/ping HTTP/1.1\r\nHost: control\r\n\r\n",
        ) {
            Ok(Answer::Status(200 | 503, _)) => {}
            other => panic!("a ping behind the held connections got {other:?}"),
        }
        thread::sleep(IDLE_GRACE + Duration::from_millis(500));
    }

    /// Waits until pilot holds no more descriptors than when it had started: every
    /// connection's descriptor was closed.
    fn assert_no_leak(&self) {
        let before = self.fds;
        wait_for(
            || (open_fds(self.pid) <= before).then_some(()),
            &format!("pilot's open descriptors to go back to {before}"),
        );
    }

    /// SIGTERM: pilot exits 0, without a panic.
    fn finish(mut self) {
        assert!(self.running.is_running(), "pilot exited");
        self.running.signal(libc::SIGTERM);
        let finished = self.running.wait();
        let all = finished.stdout.join("\n") + "\n" + &finished.stderr;
        assert!(!all.contains("panicked"), "pilot panicked:\n{all}");
        assert_eq!(code(finished.status), 0, "{all}");
    }
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Samples pilot's resident memory until dropped, keeping the peak.
struct RssPeak {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RssPeak {
    fn watch(pid: i32) -> RssPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = rss_kib(pid) {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    thread::sleep(Duration::from_millis(5));
                }
            })
        };
        RssPeak {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// The peak so far, which must be under `MAX_RSS_KIB`.
    fn check(&self, what: &str) -> u64 {
        let peak = self.peak.load(Ordering::Relaxed);
        eprintln!("{what}: peak RSS {peak} KiB");
        assert!(
            peak < MAX_RSS_KIB,
            "{what}: pilot's resident memory reached {peak} KiB"
        );
        peak
    }
}

impl Drop for RssPeak {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// An HTTP answer: its status and body.
    Status(u16, String),
    /// Closed without a byte of answer.
    Closed,
    /// Reset by pilot (closing with unread input does that on a unix socket).
    Reset,
}

fn parse(answer: &[u8]) -> Answer {
    if answer.is_empty() {
        return Answer::Closed;
    }
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    Answer::Status(status, body.to_string())
}

/// Reads until pilot closes the connection, at most `PATIENCE`.
fn read_answer(stream: &mut UnixStream) -> Answer {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return parse(&answer),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return if answer.is_empty() {
                    Answer::Reset
                } else {
                    parse(&answer)
                };
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no answer and no close within {PATIENCE:?}; so far {answer:?}")
            }
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
}

/// Sends `bytes` (from another thread, so that a large input cannot deadlock against an
/// answer) and reads how pilot answered.
fn request(socket: &Path, bytes: &[u8]) -> std::io::Result<Answer> {
    let mut stream = UnixStream::connect(socket)?;
    let mut writer = stream.try_clone()?;
    let bytes = bytes.to_vec();
    let sender = thread::spawn(move || {
        // pilot may answer and close before it has read everything: a failed write is fine.
        let _ = writer.write_all(&bytes);
    });
    let answer = read_answer(&mut stream);
    drop(stream);
    sender.join().unwrap();
    Ok(answer)
}

#[test]
fn malformed_requests_are_refused_and_the_daemon_goes_on() {
    let daemon = Daemon::start("malformed");
    let rss = RssPeak::watch(daemon.pid);
    let mut garbage = Vec::with_capacity(64 * 1024);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..64 * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        garbage.push(x as u8);
    }
    let many_headers: String = (0..5000).map(|i| format!("X-H{i}: v\r\n")).collect();
    // What each input is, and the answers allowed: `None` for "refused somehow" (a 4xx or 5xx,
    // or the connection closed or reset without an answer).
    let cases: Vec<(&str, Vec<u8>, Option<u16>)> =
        vec![
        ("random bytes", garbage.clone(), None),
        ("empty lines", b"\r\n\r\n\r\n\r\n".to_vec(), None),
        ("a method alone", b"GET\r\n\r\n".to_vec(), None),
        (
            "an unknown HTTP version",
            b"GET /v3/ping HTTP/9.9\r\n\r\n".to_vec(),
            None,
        ),
        (
            "a header without a colon",
            b"GET /v3/ping HTTP/1.1\r\nHost control\r\n\r\n".to_vec(),
            None,
        ),
        (
            "NUL in a header",
            b"GET /v3/ping HTTP/1.1\r\nHost: a\x00b\r\n\r\n".to_vec(),
            None,
        ),
        (
            "a 1 MB header",
            format!(
                "GET /v3/ping HTTP/1.1\r\nHost: control\r\nX-Big: {}\r\n\r\n",
                "x".repeat(1 << 20)
            )
            .into_bytes(),
            None,
        ),
        (
            "5,000 headers",
            format!("GET /v3/ping HTTP/1.1\r\nHost: control\r\n{many_headers}\r\n").into_bytes(),
            None,
        ),
        (
            "a 100 KB path",
            format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(100 * 1024)).into_bytes(),
            None,
        ),
        (
            "a bad Content-Length",
            b"POST /v3/environ HTTP/1.1\r\nContent-Length: abc\r\n\r\n".to_vec(),
            None,
        ),
        (
            "two Content-Lengths",
            b"POST /v3/environ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
                .to_vec(),
            None,
        ),
        (
            "a bad chunk size",
            b"POST /v3/environ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n"
                .to_vec(),
            None,
        ),
        (
            "a body after garbage",
            [b"POST /v3/environ HTTP/1.1\r\n".as_slice(), &garbage[..4096]].concat(),
            None,
        ),
        (
            "bad JSON",
            b"POST /v3/environ HTTP/1.1\r\nContent-Length: 9\r\n\r\n{not json".to_vec(),
            Some(400),
        ),
        (
            "JSON that is not an object",
            b"POST /v3/environ HTTP/1.1\r\nContent-Length: 5\r\n\r\n[1,2]".to_vec(),
            Some(400),
        ),
        (
            "deeply nested JSON",
            format!(
                "POST /v3/metric HTTP/1.1\r\nContent-Length: 60000\r\n\r\n{}",
                "[".repeat(60000)
            )
            .into_bytes(),
            Some(400),
        ),
        (
            "invalid UTF-8 in JSON",
            b"POST /v3/environ HTTP/1.1\r\nContent-Length: 8\r\n\r\n{\"\xff\":\"\"}".to_vec(),
            Some(400),
        ),
        (
            "an unknown metric",
            b"POST /v3/metric HTTP/1.1\r\nContent-Length: 8\r\n\r\n{\"x\": 1}".to_vec(),
            Some(400),
        ),
        (
            "an unknown path",
            b"GET /v3/../../etc/passwd HTTP/1.1\r\nHost: control\r\n\r\n".to_vec(),
            Some(404),
        ),
        (
            "a wrong method",
            b"DELETE /v3/reload HTTP/1.1\r\nHost: control\r\n\r\n".to_vec(),
            Some(405),
        ),
    ];
    for (what, input, want) in &cases {
        let answer = request(&daemon.socket, input).expect("connect");
        match (want, &answer) {
            (Some(code), Answer::Status(got, _)) if got == code => {}
            (None, Answer::Status(got, _)) if *got >= 400 => {}
            (None, Answer::Closed | Answer::Reset) => {}
            _ => panic!("{what}: got {answer:?}, wanted {want:?}"),
        }
        eprintln!("{what}: {answer:?}");
        daemon.assert_serves(&format!("after {what}"));
    }
    rss.check("malformed requests");
    assert_eq!(
        status(&daemon.socket)["jobs"][0]["state"],
        "running",
        "the app was not disturbed"
    );
    daemon.assert_no_leak();
    daemon.finish();
}

#[test]
fn ten_megabyte_bodies_are_refused_without_being_kept() {
    let daemon = Daemon::start("ten-mb");
    let rss = RssPeak::watch(daemon.pid);
    let ten_mb = 10 * 1024 * 1024;
    let declared = [
        format!("POST /v3/environ HTTP/1.1\r\nHost: control\r\nContent-Length: {ten_mb}\r\n\r\n")
            .into_bytes(),
        vec![b'x'; ten_mb],
    ]
    .concat();
    let mut chunked =
        b"POST /v3/metric HTTP/1.1\r\nHost: control\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..10 {
        chunked.extend_from_slice(b"100000\r\n");
        chunked.extend(std::iter::repeat_n(b'y', 0x100000));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    for (what, input) in [("declared", &declared), ("chunked", &chunked)] {
        let answer = request(&daemon.socket, input).expect("connect");
        eprintln!("10 MB {what}: {answer:?}");
        match answer {
            Answer::Status(413, body) => {
                assert_eq!(body, "request body too large: the limit is 65536 bytes\n")
            }
            // pilot stopped reading at the limit and closed: the client may see the reset first.
            Answer::Reset => {}
            other => panic!("10 MB {what}: {other:?}"),
        }
        daemon.assert_serves(&format!("after 10 MB {what}"));
    }
    // Several at once.
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let socket = daemon.socket.clone();
            let input = declared.clone();
            thread::spawn(move || request(&socket, &input).expect("connect"))
        })
        .collect();
    for sender in senders {
        let answer = sender.join().unwrap();
        assert!(
            matches!(answer, Answer::Status(413, _) | Answer::Reset),
            "{answer:?}"
        );
    }
    daemon.assert_serves("after eight 10 MB bodies at once");
    let (code, _) = control(&daemon.socket, "GET", "/v3/status", None);
    assert_eq!(code, 200);
    rss.check("10 MB bodies");
    daemon.assert_no_leak();
    daemon.finish();
}

/// Opens `n` connections that send `prefix` (maybe nothing) and then nothing more.
fn hold_connections(socket: &Path, n: usize, prefix: &[u8]) -> Vec<UnixStream> {
    let limit = raise_fd_limit();
    assert!(
        limit > n as u64 * 2 + 100,
        "this test needs a limit on open files above {}, and the hard limit is {limit}",
        n * 2 + 100
    );
    (0..n)
        .map(|_| {
            let mut stream = UnixStream::connect(socket).expect("connect");
            if !prefix.is_empty() {
                // Refused connections may be closed already.
                let _ = stream.write_all(prefix);
            }
            stream
        })
        .collect()
}

#[test]
fn a_thousand_idle_connections_do_not_lock_out_a_normal_request() {
    let daemon = Daemon::start("idle");
    let rss = RssPeak::watch(daemon.pid);
    let idle = hold_connections(&daemon.socket, 1000, b"");
    // Every idle connection has been open for a while when the normal request comes.
    daemon.let_connections_age();
    let started = Instant::now();
    daemon.assert_serves("with 1,000 idle connections open");
    eprintln!(
        "with 1,000 idle connections: served in {:?}",
        started.elapsed()
    );
    daemon.assert_serves("again with 1,000 idle connections open");
    // Connections stalled in the middle of their request line are no better.
    let stalled = hold_connections(&daemon.socket, 1000, b"GET /v3/pi");
    daemon.let_connections_age();
    let started = Instant::now();
    daemon.assert_serves("with 1,000 stalled connections open");
    eprintln!(
        "with 1,000 stalled connections: served in {:?}",
        started.elapsed()
    );
    rss.check("2,000 idle and stalled connections");
    drop(idle);
    drop(stalled);
    daemon.assert_no_leak();
    daemon.finish();
}

#[test]
fn a_thousand_active_connections_are_served_or_cleanly_refused() {
    let daemon = Daemon::start("active");
    let rss = RssPeak::watch(daemon.pid);
    // 500 idle connections stay open while 500 clients send requests at once.
    let idle = hold_connections(&daemon.socket, 500, b"");
    // Long enough for the idle ones to give way to clients with a request.
    daemon.let_connections_age();
    let go = Arc::new(std::sync::Barrier::new(50));
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let socket = daemon.socket.clone();
            let go = go.clone();
            thread::spawn(move || {
                go.wait();
                let streams: Vec<UnixStream> = (0..10)
                    .map(|_| {
                        let mut s = UnixStream::connect(&socket).expect("connect");
                        let _ = s.write_all(b"GET /v3/status HTTP/1.1\r\nHost: control\r\n\r\n");
                        s
                    })
                    .collect();
                streams
                    .into_iter()
                    .map(|mut s| read_answer(&mut s))
                    .collect::<Vec<Answer>>()
            })
        })
        .collect();
    let mut served = 0;
    let mut refused = 0;
    for client in clients {
        for answer in client.join().unwrap() {
            match answer {
                Answer::Status(200, _) => served += 1,
                Answer::Status(503, body) => {
                    assert_eq!(body, "too many connections\n");
                    refused += 1;
                }
                other => panic!("an active client got {other:?}"),
            }
        }
    }
    eprintln!("500 active clients next to 500 idle ones: {served} served, {refused} refused");
    assert!(served > 0, "nobody was served");
    daemon.assert_serves("after 1,000 connections");
    rss.check("1,000 connections");
    drop(idle);
    daemon.assert_no_leak();
    daemon.finish();
}

#[test]
fn a_client_that_never_sends_its_body_does_not_hold_up_the_others() {
    let daemon = Daemon::start("no-body");
    let rss = RssPeak::watch(daemon.pid);
    let mut stalled = UnixStream::connect(&daemon.socket).unwrap();
    stalled
        .write_all(
            b"POST /v3/environ HTTP/1.1\r\nHost: control\r\nContent-Length: 100\r\n\r\n{\"A\":",
        )
        .unwrap();
    let started = Instant::now();
    for _ in 0..20 {
        daemon.assert_serves("while a client withholds its body");
    }
    let (code, body) = control(&daemon.socket, "POST", "/v3/environ", Some(r#"{"B":"1"}"#));
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    eprintln!(
        "21 requests served beside the stalled client in {:?}",
        started.elapsed()
    );
    // The stalled client is answered 408 at the body timeout, and nothing of it is applied.
    let answer = read_answer(&mut stalled);
    assert_eq!(
        answer,
        Answer::Status(408, "request body not received within 10s\n".to_string())
    );
    rss.check("a client that never sends its body");
    daemon.assert_no_leak();
    daemon.finish();
}

#[test]
fn clients_that_never_send_their_body_do_not_lock_out_the_others() {
    let daemon = Daemon::start("no-bodies");
    let rss = RssPeak::watch(daemon.pid);
    // More than pilot serves at once (32): the first take every slot, waiting for their bodies.
    let stalled = hold_connections(
        &daemon.socket,
        40,
        b"POST /v3/environ HTTP/1.1\r\nHost: control\r\nContent-Length: 100\r\n\r\n{\"A\":",
    );
    daemon.let_connections_age();
    for _ in 0..5 {
        daemon.assert_serves("while 40 clients withhold their body");
    }
    let (code, body) = control(&daemon.socket, "POST", "/v3/environ", Some(r#"{"B":"1"}"#));
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    rss.check("40 clients that never send their body");
    drop(stalled);
    daemon.assert_no_leak();
    daemon.finish();
}
