//! The telemetry server over TCP on the loopback: `/metrics` read by a real Prometheus parser
//! after `-putmetric` (the real binary, through the control socket) set one value of each type,
//! and ContainerPilot's `/status` shape.

mod control_support;

use std::net::SocketAddr;

use control_support::*;
use pilot::events::{Event, EventCode};
use pilot::serve::{
    HealthReport, JobReport, JobState, Limits, ServiceReport, StatusReport, WatchReport,
};
use pilot::telemetry::Server;
use serde_json::{Value, json};

fn runtime_test<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A control harness plus a telemetry server sharing its metrics and its fake daemon.
fn start() -> (Harness, Server) {
    let h = Harness::start();
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = Server::start_at(
        loopback,
        h.metrics.clone(),
        h.daemon.clone(),
        Limits::default(),
    )
    .unwrap();
    (h, server)
}

async fn get(server: &Server, path: &str) -> Answer {
    exchange_tcp(server.address(), &request("GET", path, None)).await
}

/// The family called `name` in the parser's output.
fn family<'a>(families: &'a Value, name: &str) -> &'a Value {
    families
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no family {name} in {families}"))
}

/// The value of the sample `name` with exactly `labels` in a family.
fn sample(family: &Value, name: &str, labels: Value) -> f64 {
    family["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name && s["labels"] == labels)
        .unwrap_or_else(|| panic!("no sample {name} {labels} in {family}"))["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("{name} {family}"))
}

#[test]
fn metrics_parse_with_a_prometheus_parser_and_show_each_put() {
    runtime_test(async {
        let (h, server) = start();
        let config = h.config_file();
        let config = config.to_str().unwrap();
        // One value of each type, by the real binary; the histogram by its legacy key.
        for put in [
            "app_hits=42",
            "app_temperature=21.5",
            "__latency=0.3",
            "app_db_query=7",
        ] {
            let run = pilot(&["-config", config, "-putmetric", put], &[]).await;
            assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{put}");
        }
        h.bus.publish(Event::new(EventCode::Startup, "global"));
        h.metrics.set_watch_instances("db", 2);

        let answer = get(&server, "/metrics").await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let families = parse_with_prometheus(answer.body.clone()).await;

        // Every family has the type pilot declared; nothing was parsed as an untyped stray.
        for f in families.as_array().unwrap() {
            let kind = f["type"].as_str().unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary"].contains(&kind),
                "{f}\n{}",
                answer.body
            );
        }
        // The parser names counter samples `_total` internally; the text has `app_hits 42`.
        let hits = family(&families, "app_hits");
        assert_eq!(hits["type"], "counter");
        assert_eq!(hits["help"], "hits of the app");
        assert_eq!(sample(hits, "app_hits_total", json!({})), 42.0);
        assert!(answer.body.contains("\napp_hits 42\n"), "{}", answer.body);

        let temperature = family(&families, "app_temperature");
        assert_eq!(temperature["type"], "gauge");
        assert_eq!(sample(temperature, "app_temperature", json!({})), 21.5);

        let latency = family(&families, "latency");
        assert_eq!(latency["type"], "histogram");
        assert_eq!(sample(latency, "latency_count", json!({})), 1.0);
        assert_eq!(sample(latency, "latency_sum", json!({})), 0.3);
        assert_eq!(
            sample(latency, "latency_bucket", json!({"le": "0.25"})),
            0.0
        );
        assert_eq!(sample(latency, "latency_bucket", json!({"le": "0.5"})), 1.0);
        assert_eq!(
            sample(latency, "latency_bucket", json!({"le": "+Inf"})),
            1.0
        );

        let query = family(&families, "app_db_query");
        assert_eq!(query["type"], "summary");
        for q in ["0.5", "0.9", "0.99"] {
            assert_eq!(sample(query, "app_db_query", json!({"quantile": q})), 7.0);
        }
        assert_eq!(sample(query, "app_db_query_sum", json!({})), 7.0);
        assert_eq!(sample(query, "app_db_query_count", json!({})), 1.0);

        // pilot's own metrics, with ContainerPilot's names.
        let events = family(&families, "containerpilot_events");
        assert_eq!(events["type"], "counter");
        assert_eq!(
            sample(
                events,
                "containerpilot_events_total",
                json!({"code": "Startup", "source": "global"})
            ),
            1.0
        );
        let requests = family(&families, "containerpilot_control_http_requests");
        assert_eq!(requests["type"], "counter");
        assert_eq!(
            sample(
                requests,
                "containerpilot_control_http_requests_total",
                json!({"code": "200", "path": "/v3/metric"})
            ),
            4.0
        );
        let watches = family(&families, "containerpilot_watch_instances");
        assert_eq!(watches["type"], "gauge");
        assert_eq!(
            sample(
                watches,
                "containerpilot_watch_instances",
                json!({"service": "db"})
            ),
            2.0
        );

        // The process metrics of pilot's own process (here, the test process).
        let cpu = family(&families, "process_cpu_seconds");
        assert_eq!(cpu["type"], "counter");
        for name in [
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            let f = family(&families, name);
            assert_eq!(f["type"], "gauge", "{name}");
            let v = sample(f, name, json!({}));
            assert!(v > 0.0, "{name} {v}");
        }
    });
}

fn report() -> StatusReport {
    let job = |name: &str, service: Option<u16>, health| JobReport {
        name: name.into(),
        state: JobState::Running,
        pid: Some(10),
        restarts: 0,
        last_exit: None,
        health,
        service: service.map(|port| ServiceReport {
            id: format!("{name}-host"),
            name: name.into(),
            address: "172.18.0.3".into(),
            port,
        }),
    };
    StatusReport {
        jobs: vec![
            job("myjob1", None, HealthReport::Unknown),
            job("app", Some(8000), HealthReport::Healthy),
            job("containerpilot", Some(9090), HealthReport::Healthy),
        ],
        watches: vec![WatchReport {
            name: "otherapp".into(),
            tag: None,
            dc: None,
            key: None,
            prefix: None,
            instances: None,
            error: None,
        }],
        ..StatusReport::default()
    }
}

#[test]
fn status_has_containerpilots_shape() {
    runtime_test(async {
        let (h, server) = start();
        *h.fake.report.lock().unwrap() = report();
        let answer = get(&server, "/status").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(
            answer.body,
            format!(
                "{{\"Version\":\"3.8.0\",\"Jobs\":[{{\"Name\":\"myjob1\",\"Status\":\"unknown\"}}],\"Services\":[{{\"Name\":\"app\",\"Address\":\"172.18.0.3\",\"Port\":8000,\"Status\":\"healthy\"}},{{\"Name\":\"containerpilot\",\"Address\":\"172.18.0.3\",\"Port\":9090,\"Status\":\"healthy\"}}],\"Watches\":[\"otherapp\"],\"PilotVersion\":\"{}\"}}\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        // Maintenance shows in the jobs' status as the daemon reports it.
        h.send("POST", "/v3/maintenance/enable", None).await;
        let answer = get(&server, "/status").await;
        assert_eq!(answer.json()["Services"][0]["Status"], "healthy");
    });
}

#[test]
fn status_writes_empty_lists_as_arrays() {
    runtime_test(async {
        let (_h, server) = start();
        let answer = get(&server, "/status").await;
        assert_eq!(
            answer.json(),
            json!({"Version": "3.8.0", "Jobs": [], "Services": [], "Watches": [], "PilotVersion": env!("CARGO_PKG_VERSION")})
        );
    });
}

#[test]
fn only_get_on_known_paths() {
    runtime_test(async {
        let (_h, server) = start();
        for path in ["/metrics", "/status"] {
            let answer = exchange_tcp(server.address(), &request("POST", path, Some("{}"))).await;
            assert_eq!(answer.status, 405, "{path}");
            assert_eq!(
                answer.body,
                format!("method POST not allowed for {path}: use GET\n")
            );
            let answer = exchange_tcp(server.address(), &request("HEAD", path, None)).await;
            assert_eq!((answer.status, answer.body.as_str()), (200, ""), "{path}");
        }
        let answer = get(&server, "/metrics/extra").await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (404, "unknown path /metrics/extra\n")
        );
    });
}

#[test]
fn stop_closes_the_port() {
    runtime_test(async {
        let (_h, server) = start();
        let address = server.address();
        assert_eq!(get(&server, "/metrics").await.status, 200);
        server.stop().await;
        assert!(tokio::net::TcpStream::connect(address).await.is_err());
    });
}
