//! Helpers for the control-socket and telemetry tests: a fake daemon answering
//! `DaemonRequest`s, a control server over a real unix socket in a temporary directory, a raw
//! HTTP/1.1 client (so that tests can send what a well-behaved client never would), and running
//! the real `pilot` binary against the server.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pilot::config::{Control, Metric, MetricKind};
use pilot::control::{Handles, Server};
use pilot::events::Bus;
use pilot::exec::Environment;
use pilot::metrics::Metrics;
use pilot::serve::{DaemonRequest, Limits, SignalAnswer, StatusReport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// How long any single exchange may take before the test fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// What the fake daemon answers and remembers.
#[derive(Clone)]
pub struct Fake {
    pub maintenance: Arc<Mutex<bool>>,
    /// What a reload answers.
    pub reload_result: Arc<Mutex<Result<(), String>>>,
    pub reloads: Arc<AtomicUsize>,
    pub report: Arc<Mutex<StatusReport>>,
}

impl Default for Fake {
    fn default() -> Self {
        Fake {
            maintenance: Arc::default(),
            reload_result: Arc::new(Mutex::new(Ok(()))),
            reloads: Arc::default(),
            report: Arc::default(),
        }
    }
}

impl Fake {
    pub fn reloads(&self) -> usize {
        self.reloads.load(Ordering::SeqCst)
    }
}

/// Answers every request on `requests` as the daemon would, from `fake`'s state.
pub fn fake_daemon(fake: Fake, mut requests: mpsc::Receiver<DaemonRequest>) {
    tokio::spawn(async move {
        while let Some(request) = requests.recv().await {
            match request {
                DaemonRequest::Reload(reply) => {
                    fake.reloads.fetch_add(1, Ordering::SeqCst);
                    let _ = reply.send(fake.reload_result.lock().unwrap().clone());
                }
                DaemonRequest::Maintenance { enable, reply } => {
                    let mut on = fake.maintenance.lock().unwrap();
                    let changed = *on != enable;
                    *on = enable;
                    let _ = reply.send(changed);
                }
                DaemonRequest::Status(reply) => {
                    let mut report = fake.report.lock().unwrap().clone();
                    report.maintenance = *fake.maintenance.lock().unwrap();
                    let _ = reply.send(report);
                }
                // The real daemon is tested in tests/operate.rs; here only a job "app" runs.
                DaemonRequest::Signal { job, reply, .. } => {
                    let _ = reply.send(if job == "app" {
                        SignalAnswer::Sent
                    } else {
                        SignalAnswer::UnknownJob
                    });
                }
            }
        }
    });
}

/// One metric of each type: `app_hits` (counter), `app_temperature` (gauge), `__latency`'s
/// `latency` (histogram, no namespace: its legacy key is `__latency`), `app_db_query` (summary).
pub fn user_metrics() -> Vec<Metric> {
    let metric = |namespace: &str, subsystem: &str, name: &str, kind| Metric {
        namespace: namespace.into(),
        subsystem: subsystem.into(),
        name: name.into(),
        help: format!("{name} of the app"),
        kind,
    };
    vec![
        metric("app", "", "hits", MetricKind::Counter),
        metric("app", "", "temperature", MetricKind::Gauge),
        metric("", "", "latency", MetricKind::Histogram),
        metric("app", "db", "query", MetricKind::Summary),
    ]
}

/// A control server on a real unix socket, with a fake daemon behind it.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub env: Environment,
    pub bus: Bus,
    pub metrics: Metrics,
    pub fake: Fake,
    pub daemon: mpsc::Sender<DaemonRequest>,
    pub server: Option<Server>,
}

impl Harness {
    /// Starts with the default limits and mode 0600. Must run inside a runtime.
    pub fn start() -> Harness {
        Harness::start_with(0o600, Limits::default())
    }

    pub fn start_with(mode: u32, limits: Limits) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("pilot.socket");
        let env = Environment::default();
        let bus = Bus::new();
        let metrics = Metrics::new(&user_metrics()).unwrap();
        metrics.observe(&bus);
        let (daemon, requests) = pilot::serve::daemon_channel();
        let fake = Fake::default();
        fake_daemon(fake.clone(), requests);
        let handles = Handles {
            env: env.clone(),
            bus: bus.clone(),
            metrics: metrics.clone(),
            daemon: daemon.clone(),
            watches: pilot::watches::Snapshots::default(),
        };
        let control = Control {
            socket: socket.clone(),
            mode,
        };
        let server = Server::start_with(&control, handles, limits).unwrap();
        Harness {
            dir,
            socket,
            env,
            bus,
            metrics,
            fake,
            daemon,
            server: Some(server),
        }
    }

    /// Sends a request with an optional body and returns the answer.
    pub async fn send(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        send(&self.socket, method, path, body).await
    }

    /// A config file whose `control.socket` is this server's socket.
    pub fn config_file(&self) -> PathBuf {
        let path = self.dir.path().join("pilot.json5");
        std::fs::write(
            &path,
            format!(
                "{{\n  consul: 'localhost:8500',\n  // only control.socket is read\n  jobs: 'not even valid',\n  control: {{ socket: '{}' }},\n}}\n",
                self.socket.display()
            ),
        )
        .unwrap();
        path
    }
}

/// A parsed HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Builds the bytes of a request.
pub fn request(method: &str, path: &str, body: Option<&str>) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: control\r\n");
    if let Some(body) = body {
        text.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        text.push_str("\r\n");
    }
    text.into_bytes()
}

pub async fn send(socket: &Path, method: &str, path: &str, body: Option<&str>) -> Answer {
    exchange(socket, &request(method, path, body)).await
}

/// Writes `bytes` on a new connection and reads the answer until the server closes it.
pub async fn exchange(socket: &Path, bytes: &[u8]) -> Answer {
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    tokio::time::timeout(PATIENCE, async {
        // A server that refuses at once may close before the request is written; the answer
        // is still there to read.
        let _ = stream.write_all(bytes).await;
        read_answer(&mut stream).await
    })
    .await
    .expect("an answer within the patience")
}

/// Reads until EOF and parses what came.
pub async fn read_answer(stream: &mut (impl AsyncReadExt + Unpin)) -> Answer {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    parse(&raw)
}

pub fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// The result of running the real binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `pilot ARGS` with `env` added to a clean config environment (no `PILOT_CONFIG` nor
/// `CONTAINERPILOT` unless given), off the runtime's threads so that the server keeps serving.
pub async fn pilot(args: &[&str], env: &[(&str, &str)]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pilot"))
            .args(&args)
            .env_remove("PILOT_CONFIG")
            .env_remove("CONTAINERPILOT")
            .envs(env)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run pilot");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// The sample lines of a metrics text whose name is exactly `name`.
pub fn samples(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .map(str::to_string)
        .collect()
}

/// Writes `bytes` on a new TCP connection and reads the answer until the server closes it.
pub async fn exchange_tcp(address: std::net::SocketAddr, bytes: &[u8]) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    tokio::time::timeout(PATIENCE, async {
        let _ = stream.write_all(bytes).await;
        read_answer(&mut stream).await
    })
    .await
    .expect("an answer within the patience")
}

/// Parses a metrics text with the Prometheus client library's parser (Python's
/// `prometheus_client`, installed by `scripts/deps.sh`) and returns its families.
pub async fn parse_with_prometheus(text: String) -> serde_json::Value {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parse_metrics.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 is needed to parse /metrics: run scripts/deps.sh");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the Prometheus parser refused /metrics ({}): {}\n{text}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    })
    .await
    .unwrap()
}
