//! Helpers for the watch, render and nginx tests: the Consul double with instances registered
//! in it, pilot configs with watches, and `GET /v3/watches` over pilot's control socket.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use consul_double::{BackgroundDouble, CheckStatus, Config as DoubleConfig};
use serde_json::Value;

use crate::common::{PATIENCE, wait_for};

/// The double with test timings (no jitter, fast reaper and output sync).
pub fn double() -> BackgroundDouble {
    double_with(DoubleConfig::default())
}

pub fn double_with(cfg: DoubleConfig) -> BackgroundDouble {
    BackgroundDouble::start(DoubleConfig {
        timing: DoubleConfig::fast_timing(),
        ..cfg
    })
    .expect("start the Consul double")
}

pub fn address(double: &BackgroundDouble) -> String {
    double.http_addr().expect("a TCP listener").to_string()
}

/// An instance to register in the double.
#[derive(Clone, Debug)]
pub struct Inst<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub address: &'a str,
    pub port: u16,
    pub tags: &'a [&'a str],
    pub meta: &'a [(&'a str, &'a str)],
}

impl<'a> Inst<'a> {
    pub fn new(id: &'a str, name: &'a str, address: &'a str, port: u16) -> Inst<'a> {
        Inst {
            id,
            name,
            address,
            port,
            tags: &[],
            meta: &[],
        }
    }

    pub fn tags(mut self, tags: &'a [&'a str]) -> Inst<'a> {
        self.tags = tags;
        self
    }

    pub fn meta(mut self, meta: &'a [(&'a str, &'a str)]) -> Inst<'a> {
        self.meta = meta;
        self
    }
}

/// Registers `inst` with a TTL check that is passing (or as `status` says), as pilot itself
/// would register a service.
pub fn register_with(double: &BackgroundDouble, inst: &Inst<'_>, status: &str) {
    let meta: serde_json::Map<String, Value> = inst
        .meta
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    let body = serde_json::json!({
        "ID": inst.id,
        "Name": inst.name,
        "Address": inst.address,
        "Port": inst.port,
        "Tags": inst.tags,
        "Meta": meta,
        "Check": { "TTL": "1h", "Status": status },
    });
    double
        .register_service_json(&body.to_string(), false)
        .unwrap_or_else(|e| panic!("register {}: {e:?}", inst.id));
}

pub fn register(double: &BackgroundDouble, inst: &Inst<'_>) {
    register_with(double, inst, "passing");
}

pub fn deregister(double: &BackgroundDouble, id: &str) {
    assert!(double.deregister_service(id), "{id} was registered");
}

/// Marks the TTL check of service `id` (`service:<id>`).
pub fn set_check(double: &BackgroundDouble, id: &str, status: CheckStatus, output: &str) {
    double
        .update_ttl(&format!("service:{id}"), status, output)
        .unwrap_or_else(|e| panic!("update the check of {id}: {e}"));
}

/// A pilot config: Consul at `consul`, logging at DEBUG (so that every event is in the log),
/// the control socket at `socket`, and the given `jobs` and `watches` entries (JSON5 text of
/// the arrays' contents). Without a job pilot would have nothing to run: `hold` keeps it up.
pub fn pilot_config(consul: &str, socket: &Path, jobs: &str, watches: &str) -> String {
    format!(
        r#"{{
  consul: "{consul}",
  logging: {{ level: "DEBUG" }},
  control: {{ socket: "{}" }},
  jobs: [
    {{ name: "hold", exec: ["sleep", "100000"] }},
    {jobs}
  ],
  watches: [{watches}],
}}
"#,
        socket.display()
    )
}

/// `GET path` on pilot's control socket: the status code and the body.
pub fn control_get(socket: &Path, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: control\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {text:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok((status, body.to_string()))
}

/// Every watch pilot reports on `GET /v3/watches`, once its socket answers.
pub fn watches(socket: &Path) -> Vec<Value> {
    let (status, body) = wait_for(|| control_get(socket, "/v3/watches").ok(), "/v3/watches");
    assert_eq!(status, 200, "/v3/watches: {body}");
    let value: Value = serde_json::from_str(&body).expect("/v3/watches is JSON");
    value.as_array().expect("an array of watches").clone()
}

/// The IDs of the instances the watch on `service` (with `tag`) reports, `None` before its
/// first answer.
pub fn instance_ids(socket: &Path, service: &str, tag: Option<&str>) -> Option<Vec<String>> {
    let all = watches(socket);
    let watch = all
        .iter()
        .find(|w| w["Service"] == service && w["Tag"].as_str() == tag)
        .unwrap_or_else(|| panic!("no watch on {service} {tag:?} in {all:#?}"));
    watch["Instances"].as_array().map(|list| {
        list.iter()
            .map(|i| i["ID"].as_str().unwrap_or_default().to_string())
            .collect()
    })
}

/// Waits until the watch on `service` (with `tag`) reports exactly `ids`.
pub fn wait_for_instances(socket: &Path, service: &str, tag: Option<&str>, ids: &[&str]) {
    wait_for(
        || {
            let now = instance_ids(socket, service, tag)?;
            (now == ids).then_some(())
        },
        &format!("watch {service} {tag:?} to report {ids:?}"),
    );
}

/// The health queries pilot sent for `service` (path with query), oldest first.
pub fn health_queries(double: &BackgroundDouble, service: &str) -> Vec<String> {
    double
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path_only() == format!("/v1/health/service/{service}"))
        .map(|r| r.path)
        .collect()
}

/// `PUT /v1/kv/<key>?flags=<flags>` on the double's HTTP API (its handle sets no flags).
pub fn put_kv_flags(double: &BackgroundDouble, key: &str, value: &[u8], flags: u64) {
    let mut stream = std::net::TcpStream::connect(double.http_addr().expect("a TCP listener"))
        .expect("connect to the double");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "PUT /v1/kv/{key}?flags={flags} HTTP/1.1\r\nHost: consul\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        value.len()
    )
    .unwrap();
    stream.write_all(value).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// The `index` parameter of a query path (0 when absent).
pub fn index_param(path: &str) -> u64 {
    path.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("index="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Sleeps `d`: for windows in which the tests count requests or look for events that must not
/// come, never to wait for something to happen.
pub fn quiet_for(d: Duration) {
    std::thread::sleep(d);
}

/// The events of `source` in pilot's debug log lines, as `"StatusChanged"`.
pub fn events_of(lines: &[String], source: &str) -> Vec<String> {
    crate::common::events(lines)
        .into_iter()
        .filter_map(|e| {
            let (code, from) = e.split_once(' ')?;
            (from == source).then(|| code.to_string())
        })
        .collect()
}
