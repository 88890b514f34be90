//! The control socket's request handling on arbitrary bytes: one HTTP/1.1 connection through
//! hyper and pilot's endpoints (routing, body limits, JSON, environment keys, metric puts), with
//! a daemon that answers at once. It must answer or close, never panic or hang.
//!
//! The input is what the client sends; the client then closes its side.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pilot::config::{Metric, MetricKind};
use pilot::control::{Handles, api};
use pilot::serve::{DaemonRequest, Limits, daemon_channel, http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn metrics() -> pilot::metrics::Metrics {
    let metric = |name: &str, kind| Metric {
        namespace: String::new(),
        subsystem: String::new(),
        name: name.into(),
        help: "h".into(),
        kind,
    };
    pilot::metrics::Metrics::new(&[
        metric("c", MetricKind::Counter),
        metric("g", MetricKind::Gauge),
        metric("h", MetricKind::Histogram),
        metric("s", MetricKind::Summary),
    ])
    .unwrap()
}

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (daemon, mut requests) = daemon_channel();
        tokio::spawn(async move {
            while let Some(request) = requests.recv().await {
                match request {
                    DaemonRequest::Reload(reply) => {
                        let _ = reply.send(Err("no\nreload".into()));
                    }
                    DaemonRequest::Maintenance { reply, .. } => {
                        let _ = reply.send(true);
                    }
                    DaemonRequest::Status(reply) => {
                        let _ = reply.send(Default::default());
                    }
                    DaemonRequest::Signal { reply, .. } => {
                        let _ = reply.send(pilot::serve::SignalAnswer::NotRunning);
                    }
                }
            }
        });
        let limits = Limits {
            header_timeout: Duration::from_millis(100),
            body_timeout: Duration::from_millis(100),
            daemon_timeout: Duration::from_millis(100),
            reload_timeout: Duration::from_millis(100),
            stream_keep_alive: Duration::from_millis(100),
            max_body_bytes: 4096,
            ..Limits::default()
        };
        let handles = Handles {
            env: pilot::exec::Environment::default(),
            bus: pilot::events::Bus::new(),
            metrics: metrics(),
            daemon,
            watches: pilot::watches::Snapshots::default(),
        };
        let handler = api::handler(handles, limits.clone());
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let served = tokio::spawn(async move {
            http::serve_connection(server, &limits, handler, "fuzz").await;
        });
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await;
        // A client that asked for the event stream is still reading it: it leaves now.
        drop(client);
        tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .expect("the connection ends")
            .unwrap();
    });
});
