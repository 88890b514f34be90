//! The control socket over a real unix socket, against a fake daemon: every endpoint's answers,
//! the limits that protect it from slow and abusive clients, the socket file, and the
//! subcommands of the real binary.

mod control_support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use control_support::*;
use pilot::events::EventCode;
use pilot::serve::{
    ConsulReport, HealthReport, JobReport, JobState, Limits, ServiceReport, StatusReport,
};
use tokio::io::AsyncWriteExt;

fn runtime_test<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

// ---------------------------------------------------------------- /v3/environ

#[test]
fn environ_sets_and_unsets_variables() {
    runtime_test(async {
        let h = Harness::start();
        h.env.set("OLD_EMPTY", "x");
        h.env.set("OLD_NULL", "y");
        let answer = h
            .send(
                "POST",
                "/v3/environ",
                Some(r#"{"A":"1","B":"x=y","OLD_EMPTY":"","OLD_NULL":null}"#),
            )
            .await;
        assert_eq!((answer.status, answer.body.as_str()), (200, "ok\n"));
        assert_eq!(h.env.get("A").as_deref(), Some("1"));
        assert_eq!(h.env.get("B").as_deref(), Some("x=y"));
        assert_eq!(h.env.get("OLD_EMPTY"), None);
        assert_eq!(h.env.get("OLD_NULL"), None);
        // The documented name works too.
        let answer = h.send("POST", "/v3/env", Some(r#"{"C":"3"}"#)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(h.env.get("C").as_deref(), Some("3"));
    });
}

#[test]
fn environ_refuses_a_bad_key_and_applies_nothing() {
    runtime_test(async {
        let h = Harness::start();
        for (body, message) in [
            (
                r#"{"GOOD":"1","A=B":"2"}"#,
                "environment variable name \"A=B\" must not contain '='\n",
            ),
            (
                r#"{"GOOD":"1","":"2"}"#,
                "environment variable name must not be empty\n",
            ),
            (
                r#"{"GOOD":"1","A\u0000":"2"}"#,
                "environment variable name \"A\\0\" must not contain a NUL byte\n",
            ),
            (
                r#"{"GOOD":"1","N":2}"#,
                "value of environment variable \"N\" must be a string or null, got a number\n",
            ),
            (
                r#"["GOOD"]"#,
                "request body must be a JSON object of strings, got an array\n",
            ),
        ] {
            let answer = h.send("POST", "/v3/environ", Some(body)).await;
            assert_eq!(answer.status, 400, "{body}");
            assert_eq!(answer.body, message, "{body}");
            assert_eq!(
                answer.header("content-type"),
                Some("text/plain; charset=utf-8")
            );
        }
        assert_eq!(
            h.env.get("GOOD"),
            None,
            "nothing of a refused request applies"
        );
    });
}

// ---------------------------------------------------------------- errors common to endpoints

#[test]
fn bad_json_is_a_400_with_one_line() {
    runtime_test(async {
        let h = Harness::start();
        for path in ["/v3/environ", "/v3/metric"] {
            let answer = h.send("POST", path, Some("{not json")).await;
            assert_eq!(answer.status, 400, "{path}");
            assert!(
                answer.body.starts_with("request body is not valid JSON: "),
                "{path}: {:?}",
                answer.body
            );
            assert_eq!(answer.body.matches('\n').count(), 1, "one line");
            assert!(answer.body.ends_with('\n'));
        }
    });
}

#[test]
fn a_wrong_method_is_a_405_naming_it() {
    runtime_test(async {
        let h = Harness::start();
        for (method, path, allowed) in [
            ("GET", "/v3/reload", "POST"),
            ("PUT", "/v3/environ", "POST"),
            ("GET", "/v3/metric", "POST"),
            ("DELETE", "/v3/maintenance/enable", "POST"),
            ("POST", "/v3/status", "GET"),
        ] {
            let answer = h.send(method, path, None).await;
            assert_eq!(answer.status, 405, "{method} {path}");
            assert_eq!(
                answer.body,
                format!("method {method} not allowed for {path}: use {allowed}\n")
            );
            assert_eq!(answer.header("allow"), Some(allowed));
        }
        assert_eq!(
            h.fake.reloads(),
            0,
            "a refused reload never reaches the daemon"
        );
    });
}

#[test]
fn an_unknown_path_is_a_404() {
    runtime_test(async {
        let h = Harness::start();
        let answer = h.send("GET", "/v3/nope", None).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (404, "unknown path /v3/nope\n")
        );
        let answer = h.send("POST", "/v2/reload", None).await;
        assert_eq!(answer.status, 404);
    });
}

#[test]
fn a_body_over_the_limit_is_a_413() {
    runtime_test(async {
        let limits = Limits {
            max_body_bytes: 1024,
            ..Limits::default()
        };
        let h = Harness::start_with(0o600, limits);
        // Declared too large: refused before the body is sent at all.
        let head =
            b"POST /v3/environ HTTP/1.1\r\nHost: control\r\nContent-Length: 10485760\r\n\r\n";
        let answer = exchange(&h.socket, head).await;
        assert_eq!(answer.status, 413);
        assert_eq!(
            answer.body,
            "request body too large: the limit is 1024 bytes\n"
        );
        // Chunked, with no length given: refused once the limit is crossed.
        let mut chunked =
            b"POST /v3/metric HTTP/1.1\r\nHost: control\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for _ in 0..4 {
            chunked.extend_from_slice(b"200\r\n");
            chunked.extend_from_slice(&[b' '; 0x200]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let answer = exchange(&h.socket, &chunked).await;
        assert_eq!(answer.status, 413);
        // Just under the limit is fine.
        let body = format!(r#"{{"A":"{}"}}"#, "x".repeat(1000));
        let answer = h.send("POST", "/v3/environ", Some(&body)).await;
        assert_eq!(answer.status, 200);
    });
}

#[test]
fn oversized_headers_are_refused() {
    runtime_test(async {
        let h = Harness::start();
        let head = format!(
            "GET /v3/ping HTTP/1.1\r\nHost: control\r\nX-Big: {}\r\n\r\n",
            "x".repeat(64 * 1024)
        );
        let answer = exchange(&h.socket, head.as_bytes()).await;
        assert_eq!(answer.status, 431);
        assert_eq!(h.send("GET", "/v3/ping", None).await.status, 200);
    });
}

#[test]
fn garbage_is_answered_or_closed_and_the_server_goes_on() {
    runtime_test(async {
        let limits = Limits {
            header_timeout: Duration::from_millis(300),
            body_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let h = Harness::start_with(0o600, limits);
        let inputs: Vec<Vec<u8>> = vec![
            b"\x00\xff\xfe garbage\r\n\r\n".to_vec(),
            b"GET\r\n\r\n".to_vec(),
            b"GET /v3/ping HTTP/9.9\r\n\r\n".to_vec(),
            b"POST /v3/environ HTTP/1.1\r\nContent-Length: -5\r\n\r\n".to_vec(),
            b"POST /v3/environ HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"
                .to_vec(),
            b"POST /v3/metric HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nx"
                .to_vec(),
            b"POST /v3/environ HTTP/1.1\r\nContent-Length: 6\r\n\r\n{\"\xff\":1}".to_vec(),
            b"POST /v3/metric HTTP/1.1\r\nContent-Length: 30\r\n\r\n{\"app_hits\":1e999999}"
                .to_vec(),
            b"POST /v3/metric HTTP/1.1\r\nContent-Length: 27\r\n\r\n[[[[[[[[[[[[[[[[[[[[[[[[[[["
                .to_vec(),
            format!("GET /{} HTTP/1.1\r\n\r\n", "%".repeat(5000)).into_bytes(),
        ];
        for input in &inputs {
            let mut stream = tokio::net::UnixStream::connect(&h.socket).await.unwrap();
            let _ = stream.write_all(input).await;
            let mut out = Vec::new();
            let read = tokio::time::timeout(
                PATIENCE,
                tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut out),
            )
            .await;
            assert!(read.is_ok(), "answered or closed: {input:?}");
            let text = String::from_utf8_lossy(&out);
            assert!(!text.starts_with("HTTP/1.1 200"), "{input:?} got {text:?}");
        }
        assert_eq!(h.send("GET", "/v3/ping", None).await.status, 200);
        assert_eq!(samples(&h.metrics.encode(), "app_hits"), ["app_hits 0"]);
    });
}

#[test]
fn a_ten_megabyte_body_streamed_in_full_is_refused_without_being_kept() {
    runtime_test(async {
        let h = Harness::start();
        let mut stream = tokio::net::UnixStream::connect(&h.socket).await.unwrap();
        stream
            .write_all(
                b"POST /v3/environ HTTP/1.1\r\nHost: control\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .await
            .unwrap();
        let chunk = format!("100000\r\n{}\r\n", "y".repeat(0x100000));
        // The server stops reading after 64 KiB; its answer arrives while we are still writing.
        let writer = async {
            for _ in 0..10 {
                if stream.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
        let answer = tokio::time::timeout(PATIENCE, read_answer(&mut stream))
            .await
            .unwrap();
        assert_eq!(answer.status, 413);
        // And the server goes on serving.
        assert_eq!(h.send("GET", "/v3/ping", None).await.status, 200);
    });
}

// ---------------------------------------------------------------- /v3/metric

#[test]
fn metric_puts_reach_metrics_and_the_bus() {
    runtime_test(async {
        let h = Harness::start();
        let mut events = h.bus.subscribe();
        let answer = h
            .send(
                "POST",
                "/v3/metric",
                Some(
                    r#"{"app_hits":40,"app_temperature":"21.5","__latency":0.3,"app_db_query":" 7 "}"#,
                ),
            )
            .await;
        assert_eq!((answer.status, answer.body.as_str()), (200, "ok\n"));
        let answer = h
            .send("POST", "/v3/metric", Some(r#"{"app_hits":"2"}"#))
            .await;
        assert_eq!(answer.status, 200);
        let text = h.metrics.encode();
        assert_eq!(samples(&text, "app_hits"), ["app_hits 42"]);
        assert_eq!(samples(&text, "app_temperature"), ["app_temperature 21.5"]);
        assert_eq!(samples(&text, "latency_count"), ["latency_count 1"]);
        assert_eq!(samples(&text, "app_db_query_sum"), ["app_db_query_sum 7"]);
        // One Metric event per value, `<key>|<value>`, as ContainerPilot published them.
        let mut sources = Vec::new();
        while let Ok(event) = events.try_recv() {
            assert_eq!(event.code, EventCode::Metric);
            sources.push(event.source.to_string());
        }
        sources.sort();
        assert_eq!(
            sources,
            [
                "__latency|0.3",
                "app_db_query|7",
                "app_hits|2",
                "app_hits|40",
                "app_temperature|21.5"
            ]
        );
        // Metric events are not counted as events.
        assert!(samples(&text, "containerpilot_events").is_empty(), "{text}");
    });
}

#[test]
fn metric_refusals_apply_nothing() {
    runtime_test(async {
        let h = Harness::start();
        for (body, message) in [
            (
                r#"{"app_temperature":1,"nope":1}"#,
                "unknown metric \"nope\"\n",
            ),
            (
                r#"{"app_temperature":1,"app_hits":-1}"#,
                "metric \"app_hits\" is a counter, which cannot decrease: got -1\n",
            ),
            (
                r#"{"app_temperature":1,"app_hits":"-0.5"}"#,
                "metric \"app_hits\" is a counter, which cannot decrease: got -0.5\n",
            ),
            (
                r#"{"app_temperature":1,"app_hits":"many"}"#,
                "value of metric \"app_hits\" must be a number or a numeric string, got \"many\"\n",
            ),
            (
                r#"{"app_temperature":1,"app_hits":true}"#,
                "value of metric \"app_hits\" must be a number or a numeric string, got a boolean\n",
            ),
            (
                r#"{"app_temperature":"NaN"}"#,
                "metric \"app_temperature\": value must be a finite number, got NaN\n",
            ),
        ] {
            let answer = h.send("POST", "/v3/metric", Some(body)).await;
            assert_eq!(
                (answer.status, answer.body.as_str()),
                (400, message),
                "{body}"
            );
        }
        let text = h.metrics.encode();
        assert_eq!(samples(&text, "app_temperature"), ["app_temperature 0"]);
        assert_eq!(samples(&text, "app_hits"), ["app_hits 0"]);
    });
}

// ---------------------------------------------------------------- daemon requests

#[test]
fn reload_answers_after_the_daemon_and_reports_its_error() {
    runtime_test(async {
        let h = Harness::start();
        let answer = h.send("POST", "/v3/reload", None).await;
        assert_eq!((answer.status, answer.body.as_str()), (200, "ok\n"));
        assert_eq!(h.fake.reloads(), 1);
        *h.fake.reload_result.lock().unwrap() = Err(
            "invalid config /etc/pilot.json5 (1 problem):\njobs[0].name is missing (line 3)".into(),
        );
        let answer = h.send("POST", "/v3/reload", None).await;
        assert_eq!(answer.status, 422);
        assert_eq!(
            answer.body,
            "reload failed, the running config is kept: invalid config /etc/pilot.json5 (1 problem):\njobs[0].name is missing (line 3)\n"
        );
        assert_eq!(h.fake.reloads(), 2);
    });
}

#[test]
fn a_daemon_that_is_gone_or_silent_is_a_503() {
    runtime_test(async {
        // Nothing reads the requests: the daemon never answers.
        let dir = tempfile::tempdir().unwrap();
        let (daemon, requests) = pilot::serve::daemon_channel();
        let handles = pilot::control::Handles {
            env: pilot::exec::Environment::default(),
            bus: pilot::events::Bus::new(),
            metrics: pilot::metrics::Metrics::new(&[]).unwrap(),
            daemon,
            watches: pilot::watches::Snapshots::default(),
        };
        let control = pilot::config::Control {
            socket: dir.path().join("s"),
            mode: 0o600,
        };
        let limits = Limits {
            daemon_timeout: Duration::from_millis(200),
            reload_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let server = pilot::control::Server::start_with(&control, handles, limits).unwrap();
        let answer = send(server.path(), "POST", "/v3/maintenance/enable", None).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (503, "pilot did not answer within 0.2s\n")
        );
        let answer = send(server.path(), "POST", "/v3/reload", None).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (503, "pilot did not finish reloading within 0.2s\n")
        );
        // The daemon went away.
        drop(requests);
        let answer = send(server.path(), "GET", "/v3/status", None).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (503, "pilot is shutting down and cannot answer\n")
        );
    });
}

#[test]
fn maintenance_answers_whether_it_changed() {
    runtime_test(async {
        let h = Harness::start();
        for (path, updated) in [
            ("/v3/maintenance/enable", true),
            ("/v3/maintenance/enable", false),
            ("/v3/maintenance/disable", true),
            ("/v3/maintenance/disable", false),
        ] {
            let answer = h.send("POST", path, None).await;
            assert_eq!(answer.status, 200, "{path}");
            assert_eq!(answer.header("content-type"), Some("application/json"));
            assert_eq!(
                answer.body,
                format!("{{\"updated\":{updated}}}\n"),
                "{path}"
            );
        }
    });
}

#[test]
fn ping_answers_ok_to_any_method() {
    runtime_test(async {
        let h = Harness::start();
        for method in ["GET", "POST", "HEAD"] {
            let answer = h.send(method, "/v3/ping", None).await;
            assert_eq!(answer.status, 200, "{method}");
            if method != "HEAD" {
                assert_eq!(answer.body, "ok\n");
            }
        }
    });
}

#[test]
fn status_reports_jobs_watches_maintenance_and_consul() {
    runtime_test(async {
        let h = Harness::start();
        *h.fake.report.lock().unwrap() = StatusReport {
            jobs: vec![JobReport {
                name: "app".into(),
                state: JobState::Running,
                pid: Some(42),
                restarts: 2,
                last_exit: None,
                health: HealthReport::Healthy,
                service: Some(ServiceReport {
                    id: "app-host".into(),
                    name: "app".into(),
                    address: "10.0.0.2".into(),
                    port: 8000,
                }),
            }],
            watches: vec![],
            maintenance: false,
            consul: ConsulReport {
                address: "consul:8500".into(),
                reachable: false,
                error: Some("connection refused".into()),
            },
        };
        h.send("POST", "/v3/maintenance/enable", None).await;
        let answer = h.send("GET", "/v3/status", None).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(
            answer.json(),
            serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "jobs": [{
                    "name": "app", "state": "running", "pid": 42, "restarts": 2,
                    "last_exit": null, "health": "healthy",
                    "service": {"id": "app-host", "name": "app", "address": "10.0.0.2", "port": 8000}
                }],
                "watches": [],
                "maintenance": true,
                "consul": {"address": "consul:8500", "reachable": false, "error": "connection refused"}
            })
        );
    });
}

#[test]
fn every_request_is_counted() {
    runtime_test(async {
        let h = Harness::start();
        h.send("GET", "/v3/ping", None).await;
        h.send("GET", "/v3/ping", None).await;
        h.send("GET", "/v3/reload", None).await;
        h.send("POST", "/v3/metric", Some("{}")).await;
        h.send("GET", "/v3/random-1", None).await;
        h.send("GET", "/v3/random-2", None).await;
        let text = h.metrics.encode();
        let mut lines = samples(&text, "containerpilot_control_http_requests");
        lines.sort();
        assert_eq!(
            lines,
            [
                "containerpilot_control_http_requests{code=\"200\",path=\"/v3/metric\"} 1",
                "containerpilot_control_http_requests{code=\"200\",path=\"/v3/ping\"} 2",
                "containerpilot_control_http_requests{code=\"404\",path=\"unknown\"} 2",
                "containerpilot_control_http_requests{code=\"405\",path=\"/v3/reload\"} 1",
            ]
        );
    });
}

// ---------------------------------------------------------------- the socket file

#[test]
fn the_socket_has_its_mode_and_is_removed_on_stop() {
    runtime_test(async {
        for mode in [0o600, 0o660] {
            let mut h = Harness::start_with(mode, Limits::default());
            let meta = std::fs::symlink_metadata(&h.socket).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, mode, "{mode:o}");
            assert_eq!(h.send("GET", "/v3/ping", None).await.status, 200);
            h.server.take().unwrap().stop().await;
            assert!(!h.socket.exists(), "removed on stop");
            assert!(
                tokio::net::UnixStream::connect(&h.socket).await.is_err(),
                "nothing listens any more"
            );
        }
    });
}

#[test]
fn a_stale_socket_file_is_replaced() {
    runtime_test(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pilot.socket");
        // A socket left by a pilot that died: the file exists, nobody listens.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(std::os::unix::net::UnixStream::connect(&path).is_err());
        let (daemon, _requests) = pilot::serve::daemon_channel();
        let handles = pilot::control::Handles {
            env: pilot::exec::Environment::default(),
            bus: pilot::events::Bus::new(),
            metrics: pilot::metrics::Metrics::new(&[]).unwrap(),
            daemon,
            watches: pilot::watches::Snapshots::default(),
        };
        let control = pilot::config::Control {
            socket: path.clone(),
            mode: 0o600,
        };
        let server = pilot::control::Server::start(&control, handles).unwrap();
        assert_eq!(send(&path, "GET", "/v3/ping", None).await.status, 200);
        drop(server);
        assert!(!path.exists());
    });
}

// ---------------------------------------------------------------- slow and abusive clients

/// Whether `stream` has had no answer and no EOF yet: a read does not complete in a moment.
async fn still_pending(stream: &mut tokio::net::UnixStream) -> bool {
    let mut byte = [0u8; 1];
    tokio::time::timeout(
        Duration::from_millis(200),
        tokio::io::AsyncReadExt::read(stream, &mut byte),
    )
    .await
    .is_err()
}

#[test]
fn a_client_that_never_sends_its_body_does_not_block_others() {
    runtime_test(async {
        // The stalled client would hold a serial server far longer than the test's patience.
        let limits = Limits {
            body_timeout: Duration::from_secs(600),
            ..Limits::default()
        };
        let h = Harness::start_with(0o600, limits);
        let mut stalled = tokio::net::UnixStream::connect(&h.socket).await.unwrap();
        stalled
            .write_all(
                b"POST /v3/environ HTTP/1.1\r\nHost: control\r\nContent-Length: 100\r\n\r\n{\"A\":",
            )
            .await
            .unwrap();
        for _ in 0..5 {
            let answer = h.send("POST", "/v3/environ", Some(r#"{"B":"1"}"#)).await;
            assert_eq!(answer.status, 200);
        }
        assert_eq!(h.env.get("B").as_deref(), Some("1"));
        assert!(
            still_pending(&mut stalled).await,
            "the others were served while it still stalled"
        );
        assert_eq!(h.env.get("A"), None);
    });
}

#[test]
fn a_body_that_never_comes_is_a_408() {
    runtime_test(async {
        let limits = Limits {
            body_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let h = Harness::start_with(0o600, limits);
        let head =
            b"POST /v3/environ HTTP/1.1\r\nHost: control\r\nContent-Length: 100\r\n\r\n{\"A\":";
        let answer = exchange(&h.socket, head).await;
        assert_eq!(answer.status, 408);
        assert_eq!(answer.body, "request body not received within 0.3s\n");
        assert_eq!(h.env.get("A"), None);
    });
}

#[test]
fn a_client_that_never_finishes_its_headers_does_not_block_others() {
    runtime_test(async {
        let limits = Limits {
            header_timeout: Duration::from_secs(600),
            ..Limits::default()
        };
        let h = Harness::start_with(0o600, limits);
        let mut stalled = tokio::net::UnixStream::connect(&h.socket).await.unwrap();
        stalled
            .write_all(b"GET /v3/ping HTTP/1.1\r\nHo")
            .await
            .unwrap();
        for _ in 0..5 {
            assert_eq!(h.send("GET", "/v3/ping", None).await.status, 200);
        }
        assert!(still_pending(&mut stalled).await);
    });
}

#[test]
fn a_client_that_never_finishes_its_headers_is_dropped() {
    runtime_test(async {
        let limits = Limits {
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let h = Harness::start_with(0o600, limits);
        let mut stalled = tokio::net::UnixStream::connect(&h.socket).await.unwrap();
        stalled
            .write_all(b"GET /v3/ping HTTP/1.1\r\nHo")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            PATIENCE,
            tokio::io::AsyncReadExt::read_to_end(&mut stalled, &mut rest),
        )
        .await;
        assert!(read.is_ok(), "the server closed the connection");
        assert!(
            !String::from_utf8_lossy(&rest).contains("200 OK"),
            "and never answered it"
        );
    });
}

#[test]
fn a_thousand_connections_are_served_or_cleanly_refused() {
    runtime_test(async {
        let limits = Limits {
            max_connections: 16,
            // Idle connections never give way to new ones here, however slow the machine.
            idle_grace: Duration::from_secs(600),
            ..Limits::default()
        };
        let h = Harness::start_with(0o600, limits);
        // 1,000 idle connections: the first 16 take every slot, the rest are refused at once.
        let mut idle = Vec::new();
        for _ in 0..1000 {
            idle.push(tokio::net::UnixStream::connect(&h.socket).await.unwrap());
        }
        let mut refused = 0;
        for stream in idle.iter_mut().skip(16) {
            let answer = tokio::time::timeout(PATIENCE, read_answer(stream))
                .await
                .unwrap();
            assert_eq!(answer.status, 503);
            assert_eq!(answer.body, "too many connections\n");
            refused += 1;
        }
        assert_eq!(refused, 1000 - 16);
        // Once the idle ones go, everyone is served again.
        drop(idle);
        let mut served = false;
        for _ in 0..100 {
            if h.send("GET", "/v3/ping", None).await.status == 200 {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(served);
        // 200 clients at once: each gets an answer, 200 or 503, none hangs.
        let clients: Vec<_> = (0..200)
            .map(|_| {
                let socket = h.socket.clone();
                tokio::spawn(async move { send(&socket, "GET", "/v3/ping", None).await.status })
            })
            .collect();
        let mut ok = 0;
        for client in clients {
            let status = client.await.unwrap();
            assert!(status == 200 || status == 503, "{status}");
            ok += usize::from(status == 200);
        }
        assert!(ok > 0);
    });
}

// ---------------------------------------------------------------- the subcommands

#[test]
fn ping_subcommand() {
    runtime_test(async {
        let h = Harness::start();
        let config = h.config_file();
        let run = pilot(&["-ping", "-config", config.to_str().unwrap()], &[]).await;
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (0, "ok\n", "")
        );
        // Found through PILOT_CONFIG, then CONTAINERPILOT; with two dashes.
        let config = config.to_str().unwrap();
        let run = pilot(&["--ping"], &[("PILOT_CONFIG", config)]).await;
        assert_eq!((run.code, run.stdout.as_str()), (0, "ok\n"), "{run:?}");
        let run = pilot(&["-ping"], &[("CONTAINERPILOT", config)]).await;
        assert_eq!((run.code, run.stdout.as_str()), (0, "ok\n"), "{run:?}");
        // -config wins over the environment.
        let run = pilot(
            &["-ping", "-config", config],
            &[("PILOT_CONFIG", "/nonexistent.json5")],
        )
        .await;
        assert_eq!(run.code, 0, "{run:?}");
    });
}

#[test]
fn the_socket_path_is_rendered_from_the_config_template() {
    runtime_test(async {
        let h = Harness::start();
        let config = h.dir.path().join("templated.json5");
        std::fs::write(
            &config,
            "{control: {socket: \"{{ .SOCKET_DIR }}/pilot.socket\"}, jobs: [{bogus: true}]}",
        )
        .unwrap();
        let dir = h.dir.path().to_str().unwrap();
        let run = pilot(
            &["-ping", "-config", config.to_str().unwrap()],
            &[("SOCKET_DIR", dir)],
        )
        .await;
        assert_eq!((run.code, run.stdout.as_str()), (0, "ok\n"), "{run:?}");
    });
}

#[test]
fn putenv_subcommand() {
    runtime_test(async {
        let h = Harness::start();
        h.env.set("GONE", "x");
        let config = h.config_file();
        let config = config.to_str().unwrap();
        let run = pilot(
            &[
                "-config", config, "-putenv", "A=1", "-putenv", "B=x=y", "-putenv", "GONE=",
            ],
            &[],
        )
        .await;
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (0, "", "")
        );
        assert_eq!(h.env.get("A").as_deref(), Some("1"));
        assert_eq!(h.env.get("B").as_deref(), Some("x=y"));
        assert_eq!(h.env.get("GONE"), None);
        // A value without `=` is a usage error, and nothing is sent.
        let run = pilot(
            &["-config", config, "-putenv", "A=2", "-putenv", "NOPE"],
            &[],
        )
        .await;
        assert_eq!(run.code, 2);
        assert!(
            run.stderr.starts_with(
                "pilot: invalid value \"NOPE\" for flag -putenv: flag value 'NOPE' was not in the format 'key=val'\n"
            ),
            "{}",
            run.stderr
        );
        assert_eq!(h.env.get("A").as_deref(), Some("1"));
    });
}

#[test]
fn putmetric_subcommand() {
    runtime_test(async {
        let h = Harness::start();
        let config = h.config_file();
        let config = config.to_str().unwrap();
        let run = pilot(
            &[
                "-config",
                config,
                "-putmetric",
                "app_hits=42",
                "-putmetric",
                "__latency=0.2",
            ],
            &[],
        )
        .await;
        assert_eq!((run.code, run.stderr.as_str()), (0, ""));
        let text = h.metrics.encode();
        assert_eq!(samples(&text, "app_hits"), ["app_hits 42"]);
        assert_eq!(samples(&text, "latency_count"), ["latency_count 1"]);
        // The server's refusal is the message, and the status is 1.
        let run = pilot(&["-config", config, "-putmetric", "nope=1"], &[]).await;
        assert_eq!(
            (run.code, run.stderr.as_str()),
            (1, "pilot: unknown metric \"nope\"\n")
        );
        let run = pilot(&["-config", config, "-putmetric", "app_hits=-1"], &[]).await;
        assert_eq!(
            (run.code, run.stderr.as_str()),
            (
                1,
                "pilot: metric \"app_hits\" is a counter, which cannot decrease: got -1\n"
            )
        );
        assert_eq!(samples(&h.metrics.encode(), "app_hits"), ["app_hits 42"]);
    });
}

#[test]
fn reload_subcommand() {
    runtime_test(async {
        let h = Harness::start();
        let config = h.config_file();
        let config = config.to_str().unwrap();
        let run = pilot(&["-reload", "-config", config], &[]).await;
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (0, "", "")
        );
        assert_eq!(h.fake.reloads(), 1);
        *h.fake.reload_result.lock().unwrap() = Err("bad config".into());
        let run = pilot(&["-reload", "-config", config], &[]).await;
        assert_eq!(
            (run.code, run.stderr.as_str()),
            (
                1,
                "pilot: reload failed, the running config is kept: bad config\n"
            )
        );
    });
}

#[test]
fn maintenance_subcommand() {
    runtime_test(async {
        let h = Harness::start();
        let config = h.config_file();
        let config = config.to_str().unwrap();
        let run = pilot(&["-maintenance", "enable", "-config", config], &[]).await;
        assert_eq!((run.code, run.stderr.as_str()), (0, ""));
        assert!(*h.fake.maintenance.lock().unwrap());
        // Already on: still a success.
        let run = pilot(&["-maintenance=enable", "-config", config], &[]).await;
        assert_eq!(run.code, 0);
        let run = pilot(&["-maintenance", "disable", "-config", config], &[]).await;
        assert_eq!(run.code, 0);
        assert!(!*h.fake.maintenance.lock().unwrap());
        // ContainerPilot read anything but "enable" as "disable"; pilot refuses it.
        let run = pilot(&["-maintenance", "enabled", "-config", config], &[]).await;
        assert_eq!(run.code, 2);
        assert!(
            run.stderr.starts_with(
                "pilot: invalid value \"enabled\" for flag -maintenance: use enable or disable\n"
            ),
            "{}",
            run.stderr
        );
        assert!(!*h.fake.maintenance.lock().unwrap());
    });
}

#[test]
fn subcommands_without_a_listening_pilot_fail_naming_the_socket() {
    runtime_test(async {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("nobody.socket");
        let config = dir.path().join("c.json5");
        std::fs::write(
            &config,
            format!("{{control: {{socket: \"{}\"}}}}", socket.display()),
        )
        .unwrap();
        let config = config.to_str().unwrap();
        for args in [
            vec!["-ping"],
            vec!["-reload"],
            vec!["-putenv", "A=1"],
            vec!["-putmetric", "m=1"],
            vec!["-maintenance", "disable"],
        ] {
            let mut all = vec!["-config", config];
            all.extend(&args);
            let run = pilot(&all, &[]).await;
            assert_eq!(run.code, 1, "{args:?}");
            assert_eq!(
                run.stderr,
                format!(
                    "pilot: cannot reach pilot's control socket {}: no such file or directory: is pilot running, with this control.socket?\n",
                    socket.display()
                ),
                "{args:?}"
            );
        }
        // A socket file nobody listens on.
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        let run = pilot(&["-ping", "-config", config], &[]).await;
        assert_eq!(run.code, 1);
        assert!(run.stderr.contains("connection refused"), "{}", run.stderr);
    });
}

#[test]
fn subcommand_usage_and_config_errors_exit_2() {
    runtime_test(async {
        let run = pilot(&["-ping", "-reload"], &[]).await;
        assert_eq!(run.code, 2);
        assert!(run.stderr.starts_with(
            "pilot: give only one of -reload, -maintenance, -putenv, -putmetric, -ping, -signal and -events\n"
        ));
        let run = pilot(&["-putmetric", "novalue"], &[]).await;
        assert_eq!(run.code, 2);
        let run = pilot(&["-maintenance"], &[]).await;
        assert_eq!(run.code, 2);
        assert!(
            run.stderr
                .starts_with("pilot: flag needs an argument: -maintenance\n")
        );
        let run = pilot(&["-ping", "-config", "/nonexistent/pilot.json5"], &[]).await;
        assert_eq!(run.code, 2);
        assert_eq!(
            run.stderr,
            "pilot: could not read config file /nonexistent/pilot.json5: no such file or directory\n"
        );
    });
}
