//! pilot's logger installed as the process's global subscriber, as the daemon does it.
//!
//! One test in its own binary: the global subscriber can be installed once per process, so the
//! steps share it in order.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;

use pilot::config::{LogFormat, LogLevel, LogOutput, Logging};
use pilot::logging::{self, LogError, Origin};

fn cfg(level: LogLevel, format: LogFormat, path: &Path) -> Logging {
    Logging {
        level,
        format,
        output: LogOutput::File(path.to_path_buf()),
    }
}

fn read(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Checks that `ts` is an RFC 3339 UTC time with an optional fraction without trailing zeros,
/// in a plausible year (so the clock is the real one).
fn assert_time(ts: &str, fraction: bool) {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let body = ts.strip_suffix('Z').expect(ts);
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    let b = whole.as_bytes();
    assert_eq!(b.len(), 19, "{ts}");
    assert_eq!(
        (b[4], b[7], b[10], b[13], b[16]),
        (b'-', b'-', b'T', b':', b':')
    );
    for part in [
        &whole[..4],
        &whole[5..7],
        &whole[8..10],
        &whole[11..13],
        &whole[14..16],
    ] {
        assert!(digits(part), "{ts}");
    }
    let year: u32 = whole[..4].parse().unwrap();
    assert!((2024..2200).contains(&year), "{ts}");
    if fraction && !frac.is_empty() {
        assert!(
            digits(frac) && frac.len() <= 9 && !frac.ends_with('0'),
            "{ts}"
        );
    } else {
        assert_eq!(frac, "", "{ts}");
    }
}

/// Splits a default-format line into its time and the rest.
fn default_line(line: &str) -> (&str, &str) {
    let (ts, rest) = line.split_once(' ').expect(line);
    assert_time(ts, true);
    (ts, rest)
}

fn log_child_output(input: &'static [u8], origin: Origin) {
    let (reader, mut writer) = std::io::pipe().unwrap();
    let feeder = std::thread::spawn(move || writer.write_all(input).unwrap());
    pilot::runtime()
        .unwrap()
        .block_on(logging::log_lines(OwnedFd::from(reader), origin));
    feeder.join().unwrap();
}

#[test]
fn the_global_logger_filters_formats_reconfigures_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pilot.log");
    let logger = logging::init(&cfg(LogLevel::Info, LogFormat::Default, &path)).unwrap();

    let again = logging::init(&cfg(LogLevel::Info, LogFormat::Default, &path));
    assert!(matches!(again, Err(LogError::AlreadyInstalled)));

    // Default format, level info.
    tracing::info!(target: "pilot::itest", "hello");
    tracing::debug!(target: "pilot::itest", "hidden");
    tracing::info!(target: "pilot::itest", job = "app", pid = 12, "started");
    let lines = read(&path);
    let rest: Vec<&str> = lines.iter().map(|l| default_line(l).1).collect();
    assert_eq!(rest, ["hello", "app 12 started"]);

    // Child output at level error, in the text format.
    logger
        .reconfigure(&cfg(LogLevel::Error, LogFormat::Text, &path))
        .unwrap();
    tracing::warn!(target: "pilot::itest", "dropped");
    let origin = Origin {
        job: "app".into(),
        pid: 7,
        check: false,
    };
    log_child_output(b"child line\npartial", origin);
    let lines = read(&path);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    for (line, msg) in lines[2..].iter().zip(["\"child line\"", "partial"]) {
        let ts = line
            .strip_prefix("time=\"")
            .and_then(|l| l.split_once('"'))
            .expect(line);
        assert_time(ts.0, false);
        assert_eq!(ts.1, format!(" level=info msg={msg} job=app pid=7 "));
    }

    // Debug, for a callsite that was already seen while it was disabled.
    logger
        .reconfigure(&cfg(LogLevel::Debug, LogFormat::Default, &path))
        .unwrap();
    for i in 0..2 {
        if i == 1 {
            logger
                .reconfigure(&cfg(LogLevel::Info, LogFormat::Default, &path))
                .unwrap();
        }
        tracing::debug!(target: "pilot::itest", "debug {i}");
    }
    let lines = read(&path);
    assert_eq!(default_line(lines.last().unwrap()).1, "debug 0");
    assert_eq!(lines.len(), 5);

    // logrotate: move, log, reopen, log.
    let moved = dir.path().join("pilot.log.1");
    std::fs::rename(&path, &moved).unwrap();
    tracing::info!(target: "pilot::itest", "into the moved file");
    logger.reopen().unwrap();
    tracing::info!(target: "pilot::itest", "into the new file");
    let old = read(&moved);
    assert_eq!(old.len(), 6);
    assert_eq!(default_line(&old[5]).1, "into the moved file");
    let new = read(&path);
    assert_eq!(new.len(), 1);
    assert_eq!(default_line(&new[0]).1, "into the new file");

    // JSON, to another file.
    let json_path = dir.path().join("pilot.json");
    logger
        .reconfigure(&cfg(LogLevel::Info, LogFormat::Json, &json_path))
        .unwrap();
    tracing::error!(target: "pilot::itest", job = "app", "say \"hi\"");
    assert_eq!(read(&path).len(), 1);
    let json = read(&json_path);
    assert_eq!(json.len(), 1);
    let parsed: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
    assert_eq!(parsed["msg"], "say \"hi\"");
    assert_eq!(parsed["level"], "error");
    assert_eq!(parsed["job"], "app");
    assert_time(parsed["time"].as_str().unwrap(), true);
}
