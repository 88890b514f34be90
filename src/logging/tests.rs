//! The logger as a whole, without installing it globally: each test builds its own [`Logger`]
//! and makes it the default subscriber of its own thread only.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, UNIX_EPOCH};

use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::config::LogOutput;

const TS: &str = "2018-05-02T10:11:12.5Z";

fn fixed_clock() -> Clock {
    Arc::new(|| UNIX_EPOCH + Duration::new(1_525_255_872, 500_000_000))
}

type Memory = Arc<Mutex<Vec<u8>>>;

fn memory_logger(level: LogLevel, format: LogFormat) -> (Logger, Memory) {
    let memory = Memory::default();
    let output = Output::Memory(memory.clone());
    (
        Logger::with_output(level, format, output, fixed_clock()),
        memory,
    )
}

fn text(memory: &Memory) -> String {
    String::from_utf8(memory.lock().unwrap().clone()).unwrap()
}

/// Runs `f` with `logger` as this thread's subscriber.
fn with_logger<R>(logger: &Logger, f: impl FnOnce() -> R) -> R {
    let subscriber = tracing_subscriber::registry().with(logger.layer());
    tracing::subscriber::with_default(subscriber, f)
}

fn logging(level: LogLevel, format: LogFormat, output: LogOutput) -> Logging {
    Logging {
        level,
        format,
        output,
    }
}

fn file_logging(format: LogFormat, path: &Path) -> Logging {
    logging(LogLevel::Info, format, LogOutput::File(path.to_path_buf()))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn emit_every_level() {
    tracing::debug!("d");
    tracing::info!("i");
    tracing::warn!("w");
    tracing::error!("e");
}

#[test]
fn events_below_the_level_are_dropped() {
    for (level, expected) in [
        (LogLevel::Debug, "d i w e"),
        (LogLevel::Info, "i w e"),
        (LogLevel::Warn, "w e"),
        (LogLevel::Error, "e"),
    ] {
        let (logger, memory) = memory_logger(level, LogFormat::Default);
        with_logger(&logger, emit_every_level);
        let got: Vec<String> = text(&memory)
            .lines()
            .map(|l| l.strip_prefix(&format!("{TS} ")).unwrap().to_string())
            .collect();
        assert_eq!(got.join(" "), expected, "at {level:?}");
    }
}

#[test]
fn trace_events_are_never_shown() {
    let (logger, memory) = memory_logger(LogLevel::Debug, LogFormat::Default);
    with_logger(&logger, || {
        tracing::trace!("t");
        tracing::debug!("d");
    });
    assert_eq!(text(&memory), format!("{TS} d\n"));
}

#[test]
fn other_crates_debug_events_are_hidden_but_their_warnings_are_not() {
    let (logger, memory) = memory_logger(LogLevel::Debug, LogFormat::Default);
    with_logger(&logger, || {
        tracing::debug!(target: "hyper_util::client", "connecting");
        tracing::info!(target: "hyper_util::client", "info");
        tracing::warn!(target: "hyper_util::client", "warned");
        tracing::debug!(target: "pilot::jobs", "ours");
    });
    assert_eq!(
        text(&memory),
        format!("{TS} info\n{TS} warned\n{TS} ours\n")
    );
}

#[test]
fn events_carry_their_fields_in_each_format() {
    for (format, expected) in [
        (
            LogFormat::Default,
            format!("{TS} app 12 restarting in 1s attempt=2 reason=\"exit status 1\"\n"),
        ),
        (
            LogFormat::Text,
            "time=\"2018-05-02T10:11:12Z\" level=info msg=\"restarting in 1s\" attempt=2 \
             job=app pid=12 reason=\"exit status 1\" \n"
                .to_string(),
        ),
        (
            LogFormat::Json,
            format!(
                "{{\"attempt\":2,\"job\":\"app\",\"level\":\"info\",\"msg\":\"restarting in 1s\",\
                 \"pid\":12,\"reason\":\"exit status 1\",\"time\":\"{TS}\"}}\n"
            ),
        ),
    ] {
        let (logger, memory) = memory_logger(LogLevel::Info, format);
        let name = "app";
        let delay = Duration::from_secs(1);
        with_logger(
            &logger,
            || tracing::info!(job = %name, pid = 12, attempt = 2u64, reason = "exit status 1", "restarting in {delay:?}"),
        );
        assert_eq!(text(&memory), expected, "{format:?}");
    }
}

#[test]
fn events_inside_spans_carry_the_spans_fields() {
    let (logger, memory) = memory_logger(LogLevel::Info, LogFormat::Text);
    with_logger(&logger, || {
        let outer = tracing::info_span!("job", job = "app", pid = tracing::field::Empty);
        let _outer = outer.enter();
        outer.record("pid", 33);
        // A debug span still carries its fields to an info event at level info.
        let inner = tracing::debug_span!("check", attempt = 1);
        let _inner = inner.enter();
        tracing::info!(attempt = 2, "started");
    });
    assert_eq!(
        text(&memory),
        "time=\"2018-05-02T10:11:12Z\" level=info msg=started attempt=2 job=app pid=33 \n"
    );
}

#[inline(never)]
fn debug_at_one_callsite() {
    tracing::debug!("from one callsite");
}

#[test]
fn reconfigure_changes_the_level_of_callsites_already_seen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pilot.log");
    let at = |level| logging(level, LogFormat::Default, LogOutput::File(path.clone()));
    let logger = Logger::new(&at(LogLevel::Info), fixed_clock()).unwrap();
    with_logger(&logger, || {
        debug_at_one_callsite();
        logger.reconfigure(&at(LogLevel::Debug)).unwrap();
        debug_at_one_callsite();
        logger.reconfigure(&at(LogLevel::Info)).unwrap();
        debug_at_one_callsite();
    });
    assert_eq!(read(&path), format!("{TS} from one callsite\n"));
}

#[test]
fn reconfigure_switches_level_format_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first.log"), dir.path().join("second.log"));
    let logger = Logger::new(&file_logging(LogFormat::Default, &first), fixed_clock()).unwrap();
    with_logger(&logger, || {
        tracing::info!("before");
        tracing::debug!("hidden");
        logger
            .reconfigure(&logging(
                LogLevel::Debug,
                LogFormat::Json,
                LogOutput::File(second.clone()),
            ))
            .unwrap();
        tracing::debug!("after");
    });
    assert_eq!(read(&first), format!("{TS} before\n"));
    assert_eq!(
        read(&second),
        format!("{{\"level\":\"debug\",\"msg\":\"after\",\"time\":\"{TS}\"}}\n")
    );
}

#[test]
fn a_failed_reconfigure_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pilot.log");
    let logger = Logger::new(&file_logging(LogFormat::Default, &path), fixed_clock()).unwrap();
    let missing = dir.path().join("missing").join("pilot.log");
    let err = logger
        .reconfigure(&logging(
            LogLevel::Error,
            LogFormat::Json,
            LogOutput::File(missing.clone()),
        ))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot open log file {missing:?}: no such file or directory")
    );
    with_logger(&logger, || tracing::info!("still here"));
    assert_eq!(read(&path), format!("{TS} still here\n"));
}

#[test]
fn reconfigure_to_the_same_file_keeps_the_open_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pilot.log");
    let moved = dir.path().join("pilot.log.1");
    let cfg = file_logging(LogFormat::Default, &path);
    let logger = Logger::new(&cfg, fixed_clock()).unwrap();
    std::fs::rename(&path, &moved).unwrap();
    logger.reconfigure(&cfg).unwrap();
    with_logger(&logger, || tracing::info!("same handle"));
    assert_eq!(read(&moved), format!("{TS} same handle\n"));
    assert!(!path.exists());
}

#[test]
fn a_file_output_is_appended_to_and_created_0666_less_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pilot.log");
    std::fs::write(dir.path().join("existing.log"), "kept\n").unwrap();
    let existing = dir.path().join("existing.log");

    let logger = Logger::new(&file_logging(LogFormat::Default, &existing), fixed_clock()).unwrap();
    with_logger(&logger, || tracing::info!("appended"));
    assert_eq!(read(&existing), format!("kept\n{TS} appended\n"));

    let _logger = Logger::new(&file_logging(LogFormat::Default, &path), fixed_clock()).unwrap();
    let status = read(Path::new("/proc/self/status"));
    let umask = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .map(|m| u32::from_str_radix(m.trim(), 8).unwrap())
        .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666 & !umask);
}

#[test]
fn the_log_file_is_not_inherited_by_children() {
    let dir = tempfile::tempdir().unwrap();
    let logger = Logger::new(
        &file_logging(LogFormat::Default, &dir.path().join("pilot.log")),
        fixed_clock(),
    )
    .unwrap();
    let state = logger.shared.lock();
    let Output::File { file, .. } = &state.output else {
        panic!("not a file output")
    };
    let flags = nix::fcntl::fcntl(file, nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(flags & libc::FD_CLOEXEC, 0);
}

#[test]
fn an_unopenable_file_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no").join("pilot.log");
    let err = Logger::new(&file_logging(LogFormat::Text, &missing), fixed_clock()).unwrap_err();
    assert!(matches!(&err, LogError::Open { path, .. } if *path == missing));
    assert_eq!(
        err.to_string(),
        format!("cannot open log file {missing:?}: no such file or directory")
    );
}

#[test]
fn reopen_after_the_file_was_moved_writes_to_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pilot.log");
    let moved = dir.path().join("pilot.log.1");
    let logger = Logger::new(&file_logging(LogFormat::Default, &path), fixed_clock()).unwrap();
    with_logger(&logger, || {
        tracing::info!("one");
        std::fs::rename(&path, &moved).unwrap();
        // Like logrotate's window between the move and the signal: still the old file.
        tracing::info!("two");
        logger.reopen().unwrap();
        tracing::info!("three");
    });
    assert_eq!(read(&moved), format!("{TS} one\n{TS} two\n"));
    assert_eq!(read(&path), format!("{TS} three\n"));
}

#[test]
fn a_failed_reopen_keeps_logging_to_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("logs");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("pilot.log");
    let logger = Logger::new(&file_logging(LogFormat::Default, &path), fixed_clock()).unwrap();
    // The directory goes away with the file in it, so the path cannot be created again.
    let moved_dir = dir.path().join("old-logs");
    std::fs::rename(&sub, &moved_dir).unwrap();
    let err = logger.reopen().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot open log file {path:?}: no such file or directory")
    );
    with_logger(&logger, || tracing::info!("after the failed reopen"));
    assert_eq!(
        read(&moved_dir.join("pilot.log")),
        format!("{TS} after the failed reopen\n")
    );
    // And it recovers once the path can be opened again.
    std::fs::create_dir(&sub).unwrap();
    logger.reopen().unwrap();
    with_logger(&logger, || tracing::info!("recovered"));
    assert_eq!(read(&path), format!("{TS} recovered\n"));
}

#[test]
fn reopen_with_stdout_or_stderr_does_nothing() {
    for output in [LogOutput::Stdout, LogOutput::Stderr] {
        let logger = Logger::new(
            &logging(LogLevel::Info, LogFormat::Default, output.clone()),
            fixed_clock(),
        )
        .unwrap();
        logger.reopen().unwrap();
        assert!(logger.shared.lock().output.is(&output));
    }
}

// ---- child output ----

fn job(name: &str, pid: i32) -> Origin {
    Origin {
        job: name.into(),
        pid,
        check: false,
    }
}

/// Feeds `input` through a pipe to `log_lines` on pilot's runtime, with `logger` as the
/// thread's subscriber, and returns once `log_lines` has.
fn run_log_lines(logger: &Logger, origin: Origin, input: Vec<u8>) {
    let (reader, mut writer) = std::io::pipe().unwrap();
    let feeder = std::thread::spawn(move || writer.write_all(&input).unwrap());
    let subscriber = tracing_subscriber::registry().with(logger.layer());
    let _guard = tracing::subscriber::set_default(subscriber);
    crate::runtime()
        .unwrap()
        .block_on(log_lines(OwnedFd::from(reader), origin));
    feeder.join().unwrap();
}

/// The messages of default-format lines written for job `app`, pid 7.
fn messages(memory: &Memory) -> Vec<String> {
    let prefix = format!("{TS} app 7");
    text(memory)
        .split_terminator('\n')
        .map(|line| {
            let rest = line.strip_prefix(&prefix).expect(line);
            rest.strip_prefix(' ').unwrap_or(rest).to_string()
        })
        .collect()
}

#[test]
fn child_output_is_logged_line_by_line_in_order() {
    let (logger, memory) = memory_logger(LogLevel::Info, LogFormat::Default);
    let input: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    run_log_lines(&logger, job("app", 7), input.into_bytes());
    let expected: Vec<String> = (0..20_000).map(|i| format!("line {i}")).collect();
    assert_eq!(messages(&memory), expected);
}

#[test]
fn child_output_has_job_and_pid_in_text_and_json() {
    let (logger, memory) = memory_logger(LogLevel::Info, LogFormat::Text);
    run_log_lines(&logger, job("job1", 41), b"job1 exec\n".to_vec());
    assert_eq!(
        text(&memory),
        "time=\"2018-05-02T10:11:12Z\" level=info msg=\"job1 exec\" job=job1 pid=41 \n"
    );
    let (logger, memory) = memory_logger(LogLevel::Info, LogFormat::Json);
    run_log_lines(&logger, job("job1", 41), b"job1 exec\n".to_vec());
    assert_eq!(
        text(&memory),
        format!(
            "{{\"job\":\"job1\",\"level\":\"info\",\"msg\":\"job1 exec\",\"pid\":41,\"time\":\"{TS}\"}}\n"
        )
    );
}

#[test]
fn health_check_output_has_the_check_field_instead_of_job() {
    let origin = Origin {
        check: true,
        ..job("job4", 9)
    };
    let (logger, memory) = memory_logger(LogLevel::Info, LogFormat::Text);
    run_log_lines(&logger, origin.clone(), b"job4 health\n".to_vec());
    assert_eq!(
        text(&memory),
        "time=\"2018-05-02T10:11:12Z\" level=info msg=\"job4 health\" check=check.job4 pid=9 \n"
    );
    let (logger, memory) = memory_logger(LogLevel::Info, LogFormat::Default);
    run_log_lines(&logger, origin, b"job4 health\n".to_vec());
    assert_eq!(text(&memory), format!("{TS} check.job4 9 job4 health\n"));
}

#[test]
fn child_output_ignores_the_fields_of_the_surrounding_span() {
    let (logger, memory) = memory_logger(LogLevel::Info, LogFormat::Text);
    let origin = Origin {
        check: true,
        ..job("app", 5)
    };
    let (reader, mut writer) = std::io::pipe().unwrap();
    writer.write_all(b"ok\n").unwrap();
    drop(writer);
    with_logger(&logger, || {
        let span = tracing::info_span!("job", job = "app", extra = 1);
        let _entered = span.enter();
        crate::runtime()
            .unwrap()
            .block_on(log_lines(OwnedFd::from(reader), origin));
    });
    assert_eq!(
        text(&memory),
        "time=\"2018-05-02T10:11:12Z\" level=info msg=ok check=check.app pid=5 \n"
    );
}

#[test]
fn child_output_is_logged_at_level_error() {
    let (logger, memory) = memory_logger(LogLevel::Error, LogFormat::Default);
    run_log_lines(&logger, job("app", 7), b"still shown\n".to_vec());
    with_logger(&logger, || tracing::info!("not shown"));
    assert_eq!(messages(&memory), ["still shown"]);
}

#[test]
fn a_last_line_without_newline_is_logged() {
    let (logger, memory) = memory_logger(LogLevel::Info, LogFormat::Default);
    run_log_lines(&logger, job("app", 7), b"line1\npartial".to_vec());
    assert_eq!(messages(&memory), ["line1", "partial"]);
}

#[test]
fn a_200_kib_line_is_logged_in_64_kib_pieces() {
    let (logger, memory) = memory_logger(LogLevel::Info, LogFormat::Default);
    let long: String = (0..200 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    run_log_lines(
        &logger,
        job("app", 7),
        format!("{long}\nafter\n").into_bytes(),
    );
    let got = messages(&memory);
    let sizes: Vec<usize> = got.iter().map(String::len).collect();
    assert_eq!(sizes, [65536, 65536, 65536, 8192, 5]);
    assert_eq!(got[..4].concat(), long);
    assert_eq!(got[4], "after");
}

#[test]
fn crlf_line_endings_are_stripped() {
    let (logger, memory) = memory_logger(LogLevel::Info, LogFormat::Default);
    run_log_lines(&logger, job("app", 7), b"one\r\ntwo\r\nthree\r".to_vec());
    assert_eq!(messages(&memory), ["one", "two", "three"]);
    assert!(!text(&memory).contains('\r'));
}

#[test]
fn invalid_utf8_is_replaced() {
    let (logger, memory) = memory_logger(LogLevel::Info, LogFormat::Json);
    run_log_lines(&logger, job("app", 7), b"ok \xff\xfe end\n".to_vec());
    let parsed: serde_json::Value = serde_json::from_str(&text(&memory)).unwrap();
    assert_eq!(parsed["msg"], "ok \u{fffd}\u{fffd} end");
}

#[test]
fn a_closed_log_output_neither_panics_nor_stops_the_reading() {
    let (log_reader, log_writer) = std::io::pipe().unwrap();
    drop(log_reader);
    let log_file = std::fs::File::from(OwnedFd::from(log_writer));
    // The premise: writing there fails with EPIPE (the test harness ignores SIGPIPE, as pilot
    // blocks it).
    let err = nix::unistd::write(&log_file, b"x").unwrap_err();
    assert_eq!(err, nix::errno::Errno::EPIPE);
    let logger = Logger::with_output(
        LogLevel::Info,
        LogFormat::Default,
        Output::Fd(log_file),
        fixed_clock(),
    );
    // Several pipe buffers' worth: if reading stopped at the first failed write, the feeder
    // would never finish and neither would this test.
    let input: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
    run_log_lines(&logger, job("app", 7), input.into_bytes());
    with_logger(&logger, || tracing::error!("still alive"));
}

#[test]
fn waiting_for_child_output_does_not_block_the_runtime() {
    let (logger, memory) = memory_logger(LogLevel::Info, LogFormat::Default);
    let (reader, mut writer) = std::io::pipe().unwrap();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    // Writes one line, waits for the runtime to show it is still running other tasks, then
    // finishes. If reading blocked the runtime's thread, the signal would never come.
    let feeder = std::thread::spawn(move || {
        writer.write_all(b"first\n").unwrap();
        let signalled = go_rx.recv_timeout(Duration::from_secs(10)).is_ok();
        writer.write_all(b"second\n").unwrap();
        signalled
    });
    let subscriber = tracing_subscriber::registry().with(logger.layer());
    let _guard = tracing::subscriber::set_default(subscriber);
    crate::runtime().unwrap().block_on(async {
        let reading = log_lines(OwnedFd::from(reader), job("app", 7));
        let other_task = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            // Fails only once the feeder gave up waiting, which the assertion below reports.
            let _ = go_tx.send(());
        };
        tokio::join!(reading, other_task);
    });
    assert!(feeder.join().unwrap(), "the runtime was blocked");
    assert_eq!(messages(&memory), ["first", "second"]);
}

#[test]
fn a_descriptor_that_is_not_a_pipe_is_reported_not_read() {
    let (logger, memory) = memory_logger(LogLevel::Info, LogFormat::Default);
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("f")).unwrap();
    let fd = file.as_raw_fd();
    assert!(fd >= 0);
    let subscriber = tracing_subscriber::registry().with(logger.layer());
    let _guard = tracing::subscriber::set_default(subscriber);
    crate::runtime()
        .unwrap()
        .block_on(log_lines(OwnedFd::from(file), job("app", 7)));
    let out = text(&memory);
    assert!(
        out.starts_with(&format!("{TS} cannot read the output of job \"app\": ")),
        "{out}"
    );
}

#[test]
fn log_lines_feeds_any_subscriber_as_info_events() {
    // Another module's test may capture events with its own subscriber; child output reaches it
    // as ordinary INFO events with the origin's fields.
    let captured = Arc::new(Mutex::new(Vec::<String>::new()));
    struct Capture(Arc<Mutex<Vec<String>>>);
    impl<S: Subscriber> tracing_subscriber::Layer<S> for Capture {
        fn on_event(&self, event: &Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            struct V(String);
            impl tracing::field::Visit for V {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn fmt::Debug) {
                    self.0.push_str(&format!("{}={v:?} ", f.name()));
                }
            }
            let mut v = V(format!("{} ", event.metadata().level()));
            event.record(&mut v);
            self.0.lock().unwrap().push(v.0);
        }
    }
    let (reader, mut writer) = std::io::pipe().unwrap();
    writer.write_all(b"hi\n").unwrap();
    drop(writer);
    let subscriber = tracing_subscriber::registry().with(Capture(captured.clone()));
    tracing::subscriber::with_default(subscriber, || {
        crate::runtime()
            .unwrap()
            .block_on(log_lines(OwnedFd::from(reader), job("app", 3)));
    });
    assert_eq!(
        *captured.lock().unwrap(),
        ["INFO message=hi job=\"app\" pid=3 "]
    );
}

#[test]
fn many_threads_never_interleave_within_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pilot.log");
    let logger = Logger::new(&file_logging(LogFormat::Json, &path), fixed_clock()).unwrap();
    let long = "x".repeat(10_000);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (logger, long) = (&logger, &long);
            s.spawn(move || {
                with_logger(logger, || {
                    for i in 0..200 {
                        tracing::info!(thread = t, i, "{long}");
                    }
                })
            });
        }
    });
    let mut contents = String::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_string(&mut contents)
        .unwrap();
    let lines: Vec<&str> = contents.lines().collect();
    assert_eq!(lines.len(), 800);
    for line in lines {
        let parsed: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(parsed["msg"].as_str().unwrap().len(), 10_000);
    }
}
