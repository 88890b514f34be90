//! The standalone `consul-double` binary: readiness output, the `/_double/` control API, flags
//! and signal handling, run as a real process.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Target, get, put, send};

struct Running {
    child: Child,
    api: SocketAddr,
    control: Option<SocketAddr>,
    rest: std::sync::mpsc::Receiver<String>,
}

fn addr_of(line: &str) -> SocketAddr {
    let url = line.rsplit(' ').next().unwrap();
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
        .parse()
        .unwrap()
}

fn spawn(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_consul-double"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn consul-double");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let (mut api, mut control) = (None, None);
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("readiness output");
        if line.contains("listening on") && api.is_none() {
            api = Some(addr_of(&line));
        } else if line.contains("control api on") {
            control = Some(addr_of(&line));
        } else if line.contains("ready") {
            break;
        }
    }
    Running {
        child,
        api: api.expect("api address printed"),
        control,
        rest: rx,
    }
}

impl Running {
    fn stop(mut self) {
        // std can only SIGKILL a child; SIGTERM goes through kill(1).
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "exit status after SIGTERM: {exit:?}");
        // The reader thread ends at EOF, which closes the channel, so this cannot hang.
        let lines: Vec<String> = self.rest.iter().collect();
        assert!(lines.iter().any(|l| l.contains("stopped")), "{lines:?}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn control_listener_drives_faults_and_reports_state() {
    let run = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--control-listen",
        "127.0.0.1:0",
        "--no-jitter",
        "--node",
        "box1",
    ]);
    let api = Target::Tcp(run.api);
    let ctl = Target::Tcp(run.control.expect("control address printed"));
    assert_eq!(get(&ctl, "/_double/health").await.text(), "ok");
    let r = send(
        &api,
        "PUT",
        "/v1/agent/service/register",
        &[("X-Consul-Token", "t1")],
        Some(br#"{"ID":"web-1","Name":"web","Check":{"TTL":"30s"}}"#.to_vec()),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let state = get(&ctl, "/_double/state").await.json();
    assert_eq!(state["services"]["web-1"]["Service"], "web");
    assert_eq!(state["checks"]["service:web-1"]["Node"], "box1");
    assert_eq!(state["checks"]["service:web-1"]["Status"], "critical");

    assert_eq!(
        put(
            &ctl,
            "/_double/errors?count=1&status=500&body=No%20cluster%20leader",
            ""
        )
        .await
        .status,
        200
    );
    let r = get(&api, "/v1/health/service/web").await;
    assert_eq!((r.status, r.text().as_str()), (500, "No cluster leader"));
    assert_eq!(get(&api, "/v1/health/service/web").await.status, 200);

    let log = get(&ctl, "/_double/requests").await.json();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 3, "control requests are not logged: {log:?}");
    assert_eq!(log[0]["token_source"], "header");
    assert_eq!(log[0]["token"], "t1");
    assert_eq!(log[1]["status"], 500);
    assert_eq!(
        get(&ctl, "/_double/requests?since=2")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    assert_eq!(put(&ctl, "/_double/down?for=500ms", "").await.status, 200);
    assert!(
        send(&api, "GET", "/v1/status/leader", &[], None)
            .await
            .is_err(),
        "down refuses connections"
    );
    assert_eq!(get(&ctl, "/_double/faults").await.json()["down"], true);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        get(&api, "/v1/status/leader").await.status,
        200,
        "back up on the same address"
    );

    assert_eq!(put(&ctl, "/_double/slow?delay=200ms", "").await.status, 200);
    let t0 = std::time::Instant::now();
    get(&api, "/v1/agent/services").await;
    assert!(t0.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        send(&ctl, "DELETE", "/_double/faults", &[], None)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        get(&ctl, "/_double/faults").await.json()["slow"],
        serde_json::Value::Null
    );

    assert_eq!(put(&ctl, "/_double/lose-state", "").await.status, 200);
    assert_eq!(
        get(&api, "/v1/agent/services").await.json(),
        serde_json::json!({})
    );
    assert_eq!(put(&ctl, "/_double/nonsense", "").await.status, 404);
    assert_eq!(
        get(&api, "/_double/state").await.status,
        200,
        "control api also on the api listener by default"
    );
    run.stop();
}

#[tokio::test]
async fn control_api_reset_rewind_and_wake() {
    let run = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--no-jitter",
        "--version",
        "1.0.8",
    ]);
    let t = Target::Tcp(run.api);
    assert_eq!(
        get(&t, "/v1/agent/self").await.json()["Config"]["Version"],
        "1.0.8"
    );
    put(&t, "/v1/agent/service/register", r#"{"Name":"a"}"#).await;
    let idx = get(&t, "/v1/health/service/a").await.index();
    put(&t, "/_double/reset?count=1", "").await;
    assert!(
        send(&t, "GET", "/v1/health/service/a", &[], None)
            .await
            .is_err()
    );
    put(&t, "/_double/rewind?by=3&count=1", "").await;
    assert_eq!(get(&t, "/v1/health/service/a").await.index(), idx - 3);
    let t2 = t.clone();
    let pending = tokio::spawn(async move {
        get(&t2, &format!("/v1/health/service/a?index={idx}&wait=1m")).await
    });
    while get(&t, "/_double/state").await.json()["blocked_queries"] == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    put(&t, "/_double/wake", "").await;
    let r = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(r.index(), idx, "unchanged data");
    run.stop();
}

/// The leadership and cluster controls over HTTP, on a real-time binary with a short hold.
#[tokio::test]
async fn control_api_loses_and_elects_leaders_and_writes_for_peers() {
    let run = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--no-jitter",
        "--version",
        "1.8.5",
        "--node",
        "consul-b",
        "--node-address",
        "127.0.0.12",
        "--peer",
        "consul-a@127.0.0.11",
        "--rpc-hold-timeout",
        "200ms",
    ]);
    let t = Target::Tcp(run.api);
    assert_eq!(get(&t, "/v1/status/leader").await.json(), "127.0.0.12:8300");
    assert_eq!(
        get(&t, "/v1/status/peers").await.json(),
        serde_json::json!(["127.0.0.11:8300", "127.0.0.12:8300"])
    );
    let r = send(
        &t,
        "PUT",
        "/_double/peer-service?node=consul-a",
        &[],
        Some(br#"{"ID":"db-1","Name":"db","Port":5432,"Check":{"TTL":"1m"}}"#.to_vec()),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        put(
            &t,
            "/_double/peer-check?node=consul-a&id=service:db-1&status=passing&output=ok",
            ""
        )
        .await
        .status,
        200
    );
    let health = get(&t, "/v1/health/service/db?passing").await.json();
    assert_eq!(health[0]["Node"]["Node"], "consul-a");
    assert_eq!(health[0]["Checks"][1]["Output"], "ok");
    let r = put(&t, "/_double/peer-check?node=nope&id=x&status=passing", "").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "no node \"nope\" in the catalog")
    );

    assert_eq!(put(&t, "/_double/leader/lose", "").await.status, 200);
    let state = get(&t, "/_double/leader").await.json();
    assert_eq!(
        (state["state"].as_str(), state["known_leader"].as_bool()),
        (Some("none"), Some(false))
    );
    assert_eq!(get(&t, "/v1/status/leader").await.json(), "");
    let t0 = std::time::Instant::now();
    let r = get(&t, "/v1/health/service/db").await;
    assert_eq!((r.status, r.text().as_str()), (500, "No cluster leader"));
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "held for the hold timeout"
    );
    let r = get(&t, "/v1/health/service/db?stale").await;
    assert_eq!(
        (r.status, r.header("x-consul-knownleader").as_deref()),
        (200, Some("false"))
    );
    let r = put(&t, "/_double/node-health?node=consul-a&status=critical", "").await;
    assert_eq!(r.status, 503, "no leader to write it: {}", r.text());

    assert_eq!(
        put(
            &t,
            "/_double/leader/follow?leader=127.0.0.11:8300&last_contact=1500ms",
            ""
        )
        .await
        .status,
        200
    );
    assert_eq!(get(&t, "/v1/status/leader").await.json(), "127.0.0.11:8300");
    let r = get(&t, "/v1/kv/x?stale").await;
    assert_eq!(
        (r.status, r.header("x-consul-lastcontact").as_deref()),
        (404, Some("1500"))
    );
    assert_eq!(
        get(&t, "/_double/state").await.json()["leadership"]["last_contact_ms"],
        1500
    );
    assert_eq!(put(&t, "/_double/leader/elect", "").await.status, 200);
    assert_eq!(get(&t, "/v1/status/leader").await.json(), "127.0.0.12:8300");
    run.stop();
}

#[tokio::test]
async fn tls_generate_writes_a_ca_clients_can_trust() {
    let dir = std::env::temp_dir().join(format!("consul-double-bin-pki-{}", std::process::id()));
    let run = spawn(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-generate",
        dir.to_str().unwrap(),
    ]);
    let ca = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let t = Target::Tls(run.api, std::sync::Arc::new(cfg));
    assert_eq!(get(&t, "/v1/status/leader").await.status, 200);
    run.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_flags_exit_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_consul-double"))
        .args(["--version", "9.9.9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported --version \"9.9.9\""), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_consul-double"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("--control-listen")
    );
}
