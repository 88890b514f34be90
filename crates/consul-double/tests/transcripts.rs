//! Replays every recorded Consul transcript against the double and checks each step: status,
//! the presence (and, where deterministic, the value) of the recorded headers, the body's shape
//! and values, index relations, and blocking behaviour.
//!
//! Indexes differ from run to run in real Consul too, so they are compared by their relations: a
//! per-file mapping from recorded to actual index values must be consistent (equal stays equal)
//! and strictly order-preserving. Requested `?index=`/`?cas=` values are translated through the
//! same mapping before sending.
//!
//! Replays run on paused tokio time over a unix socket, so the 90-second reaping scenario and
//! every blocking wait take no real time and timings are exact; a second pass replays the files
//! without timing over TCP on real time.
//!
//! Binary bodies (`body_encoding: base64`) are decoded before sending and comparing.
//! `X-Consul-Lastcontact` is compared exactly when it was recorded as 0; otherwise it is a live
//! number of milliseconds: a follower's value is a configured input (so only "positive" is
//! checked), and without a leader it must grow by exactly the replay time between the queries
//! that measured it (it is measured when a query runs, so at the start of a blocking one).
//!
//! Transcript 14 was recorded from a three-server cluster losing its leaders. The double plays
//! the server the steps were read from (B); the scenario below sets up the cluster, and the
//! cluster events between steps (who leads, a node failing) are applied through the double's
//! leadership and peer API. Steps sent to another server's agent endpoints are what that agent's
//! sync writes to the catalog, so they are applied through the peer API; steps sent to another
//! server's cluster-wide endpoints (KV, status) are sent to the double.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use base64::Engine;
use common::{Reply, Target, send};
use consul_double::{CheckStatus, Config, ConsulDouble, ConsulVersion, Listen, PeerServer};

const RECORDED_HEADERS: &[&str] = &[
    "Content-Type",
    "X-Consul-Index",
    "X-Consul-Knownleader",
    "X-Consul-Lastcontact",
    "X-Consul-Effective-Consistency",
    "Allow",
    "Location",
];

struct Transcript {
    name: String,
    version: ConsulVersion,
    steps: Vec<Value>,
}

fn load(name: &str) -> Transcript {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/transcripts")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    let version =
        ConsulVersion::parse(v["consul_version"].as_str().unwrap()).expect("known version");
    Transcript {
        name: name.to_string(),
        version,
        steps: v["steps"].as_array().unwrap().clone(),
    }
}

/// Recorded index → actual index, kept consistent and order-preserving.
#[derive(Default)]
struct IndexMap {
    map: BTreeMap<u64, u64>,
}

impl IndexMap {
    fn new() -> Self {
        let mut m = IndexMap::default();
        // 0 and 1 are not data indexes: "no index" and "nothing yet / error".
        m.map.insert(0, 0);
        m.map.insert(1, 1);
        m
    }

    fn relate(&mut self, recorded: u64, actual: u64, ctx: &str) {
        if let Some(&a) = self.map.get(&recorded) {
            assert_eq!(
                a, actual,
                "{ctx}: recorded index {recorded} was seen as {a} before, now {actual}"
            );
            return;
        }
        for (&r, &a) in &self.map {
            if r < recorded {
                assert!(
                    a < actual,
                    "{ctx}: recorded {r} < {recorded} but actual {a} >= {actual}"
                );
            } else {
                assert!(
                    a > actual,
                    "{ctx}: recorded {r} > {recorded} but actual {a} <= {actual}"
                );
            }
        }
        self.map.insert(recorded, actual);
    }

    /// An actual value for a recorded index sent in a request.
    fn translate(&self, recorded: u64) -> u64 {
        if let Some(&a) = self.map.get(&recorded) {
            return a;
        }
        let below = self.map.range(..recorded).next_back();
        let above = self.map.range(recorded..).next();
        match (below, above) {
            (Some((&r, &a)), None) => a + (recorded - r),
            (Some((_, &lo)), Some((_, &hi))) if hi > lo + 1 => lo + 1,
            _ => panic!(
                "cannot translate recorded index {recorded} into the actual index space {:?}",
                self.map
            ),
        }
    }
}

fn rewrite_query(path: &str, map: &IndexMap) -> String {
    let Some((p, q)) = path.split_once('?') else {
        return path.to_string();
    };
    let parts: Vec<String> = q
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k @ ("index" | "cas"), v)) => match v.parse::<u64>() {
                Ok(n) => format!("{k}={}", map.translate(n)),
                Err(_) => kv.to_string(),
            },
            _ => kv.to_string(),
        })
        .collect();
    format!("{p}?{}", parts.join("&"))
}

fn compare_json(recorded: &Value, actual: &Value, at: &str, map: &mut IndexMap, subset: bool) {
    match (recorded, actual) {
        (Value::Object(r), Value::Object(a)) => {
            if !subset {
                let rk: Vec<&String> = r.keys().collect();
                let ak: Vec<&String> = a.keys().collect();
                let mut rs = rk.clone();
                let mut as_ = ak.clone();
                rs.sort();
                as_.sort();
                assert_eq!(rs, as_, "{at}: keys differ");
            }
            for (k, rv) in r {
                let av = a.get(k).unwrap_or_else(|| panic!("{at}: missing key {k}"));
                let here = format!("{at}.{k}");
                match k.as_str() {
                    "CreateIndex" | "ModifyIndex" => {
                        let (rv, av) = (
                            rv.as_u64().unwrap(),
                            av.as_u64().unwrap_or_else(|| panic!("{here} not a number")),
                        );
                        if rv == 0 {
                            assert_eq!(av, 0, "{here}: agent-local indexes are 0");
                        } else {
                            map.relate(rv, av, &here);
                        }
                    }
                    // Consul's hashstructure value cannot be reproduced; it must be an opaque hex string.
                    "ContentHash" => {
                        let s = av.as_str().unwrap_or_else(|| panic!("{here} not a string"));
                        assert!(
                            !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit()),
                            "{here}: {s:?} is not hex"
                        );
                    }
                    _ => compare_json(rv, av, &here, map, subset),
                }
            }
        }
        (Value::Array(r), Value::Array(a)) => {
            assert_eq!(
                r.len(),
                a.len(),
                "{at}: array length differs\nrecorded {recorded}\nactual   {actual}"
            );
            for (i, (rv, av)) in r.iter().zip(a).enumerate() {
                compare_json(rv, av, &format!("{at}[{i}]"), map, subset);
            }
        }
        _ => assert_eq!(recorded, actual, "{at}: value differs"),
    }
}

/// A cluster event applied between steps.
#[derive(Clone, Copy)]
enum Event {
    /// Another server leads; the double follows it with this last contact (ms).
    Follow(&'static str, u64),
    /// The cluster loses its leader.
    LoseLeader,
    /// The leader marks a node's serfHealth.
    NodeHealth(&'static str, CheckStatus),
    /// Time passes (as it did in the recording between steps).
    Pass(u64),
}

/// How a transcript recorded from a cluster is replayed: the double is the server at `agent`.
struct Scenario {
    agent: &'static str,
    config: fn(&Transcript) -> Config,
    /// Events applied before the step at that position.
    before: &'static [(usize, &'static [Event])],
}

fn peer(name: &str, id: char, address: &str) -> PeerServer {
    PeerServer {
        node_name: name.into(),
        node_id: format!("00000000-0000-0000-0000-00000000000{id}"),
        address: address.into(),
    }
}

/// Transcript 14's description: servers consul-a/b/c on 127.0.0.11-13, the steps read from B.
fn cluster_14(t: &Transcript) -> Config {
    Config {
        version: t.version,
        node_name: "consul-b".into(),
        node_id: "00000000-0000-0000-0000-00000000000b".into(),
        node_address: "127.0.0.12".into(),
        peers: vec![
            peer("consul-a", 'a', "127.0.0.11"),
            peer("consul-c", 'c', "127.0.0.13"),
        ],
        ..Config::default()
    }
}

fn scenario(name: &str) -> Option<Scenario> {
    match name {
        "14-no-leader-stale.json" => Some(Scenario {
            agent: "127.0.0.12:8500",
            config: cluster_14,
            before: &[
                // The leader was server C; B follows it.
                (0, &[Event::Follow("127.0.0.13:8300", 18)]),
                // C killed; A elected 14 s later and marks C's node critical.
                (
                    9,
                    &[
                        Event::LoseLeader,
                        Event::Pass(14_000),
                        Event::Follow("127.0.0.11:8300", 18),
                        Event::NodeHealth("consul-c", CheckStatus::Critical),
                        Event::Pass(1_000),
                    ],
                ),
                // A killed too, 8 s before step 10: no leader from here on.
                (10, &[Event::LoseLeader, Event::Pass(8_000)]),
            ],
        }),
        _ => None,
    }
}

/// What the replay remembers between steps.
struct Replay {
    map: IndexMap,
    /// The last leaderless `?stale` answer: its X-Consul-Lastcontact and when its query started.
    last_contact: Option<(u64, tokio::time::Instant)>,
    /// When the double last lost its leader.
    lost_at: Option<tokio::time::Instant>,
}

struct Outcome {
    /// `None` when the step went to another server's agent, through the peer API.
    reply: Option<Reply>,
    started: tokio::time::Instant,
    elapsed: Duration,
}

fn decoded_body(v: &Value, encoding: &Value) -> Option<Vec<u8>> {
    match (v, encoding.as_str()) {
        (Value::Null, _) => None,
        (Value::String(s), Some("base64")) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .expect("base64 body"),
        ),
        (Value::String(s), _) => Some(s.as_bytes().to_vec()),
        (other, _) => Some(serde_json::to_vec(other).unwrap()),
    }
}

/// Applies a step sent to another server's agent as what that agent's sync writes.
fn apply_to_peer(double: &ConsulDouble, node: &str, step: &Value) {
    let req = &step["request"];
    let path = req["path"].as_str().unwrap();
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let note = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("note="))
        .unwrap_or("");
    let ttl = [
        ("/v1/agent/check/pass/", CheckStatus::Passing),
        ("/v1/agent/check/warn/", CheckStatus::Warning),
        ("/v1/agent/check/fail/", CheckStatus::Critical),
    ];
    let result = if path == "/v1/agent/service/register" {
        double.register_peer_service_json(node, &req["body"].to_string())
    } else if let Some((id, status)) = ttl
        .iter()
        .find_map(|(p, st)| path.strip_prefix(p).map(|id| (id, *st)))
    {
        double.update_peer_check(node, id, status, note)
    } else {
        panic!("no peer equivalent for {path} on {node}");
    };
    result.unwrap_or_else(|e| panic!("{path} on {node}: {e}"));
    assert_eq!(step["response"]["status"], 200, "recorded as accepted");
}

async fn run_step(
    target: &Target,
    double: &ConsulDouble,
    scenario: Option<&Scenario>,
    step: &Value,
    map: &IndexMap,
) -> Outcome {
    let started = tokio::time::Instant::now();
    let req = &step["request"];
    if let (Some(sc), Some(agent)) = (scenario, step.get("agent").and_then(Value::as_str))
        && agent != sc.agent
        && req["path"].as_str().unwrap().starts_with("/v1/agent/")
    {
        let host = agent.split(':').next().unwrap();
        let node = double
            .config()
            .peers
            .iter()
            .find(|p| p.address == host)
            .unwrap_or_else(|| panic!("no peer at {agent}"))
            .node_name
            .clone();
        apply_to_peer(double, &node, step);
        return Outcome {
            reply: None,
            started,
            elapsed: started.elapsed(),
        };
    }
    send_step(target, step, map).await
}

/// Sends a step to the double over HTTP.
async fn send_step(target: &Target, step: &Value, map: &IndexMap) -> Outcome {
    let started = tokio::time::Instant::now();
    let req = &step["request"];
    let method = req["method"].as_str().unwrap();
    let path = rewrite_query(req["path"].as_str().unwrap(), map);
    let headers: Vec<(String, String)> = req["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let body = decoded_body(&req["body"], &req["body_encoding"]);
    let reply = send(target, method, &path, &header_refs, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    Outcome {
        reply: Some(reply),
        started,
        elapsed: started.elapsed(),
    }
}

/// The RPC hold the double was configured with (transcript 14's `rpc_hold_timeout`).
const HOLD_MS: u64 = 7_000;

fn check_step(
    t: &Transcript,
    i: usize,
    step: &Value,
    out: &Outcome,
    rp: &mut Replay,
    timing: bool,
    concurrent_sent_after: Option<u64>,
) {
    let ctx = format!(
        "{} step {i} ({} {})",
        t.name, step["request"]["method"], step["request"]["path"]
    );
    let Some(reply) = &out.reply else {
        return;
    };
    let map = &mut rp.map;
    let rec = &step["response"];
    assert_eq!(
        u64::from(reply.status),
        rec["status"].as_u64().unwrap(),
        "{ctx}: status; body {}",
        reply.text()
    );

    let rec_headers = rec["headers"].as_object().unwrap();
    for name in RECORDED_HEADERS {
        let recorded = rec_headers.get(*name).and_then(Value::as_str);
        let actual = reply.header(name);
        match (recorded, actual) {
            (None, None) => {}
            (Some(r), None) => panic!("{ctx}: header {name} missing (recorded {r:?})"),
            (None, Some(a)) => panic!("{ctx}: unexpected header {name}: {a:?}"),
            (Some(r), Some(a)) if *name == "X-Consul-Index" => {
                map.relate(
                    r.parse().unwrap(),
                    a.parse().unwrap(),
                    &format!("{ctx} X-Consul-Index"),
                );
            }
            (Some(r), Some(a)) if *name == "X-Consul-Lastcontact" && r != "0" => {
                let (r, a): (u64, u64) = (r.parse().unwrap(), a.parse().unwrap());
                assert!(a > 0, "{ctx}: Lastcontact {a}, recorded {r}");
                if reply.header("X-Consul-Knownleader").as_deref() == Some("false") {
                    let since_lost = out.started - rp.lost_at.expect("a lost leader");
                    assert!(
                        u128::from(a) >= since_lost.as_millis(),
                        "{ctx}: Lastcontact {a} ms, but the leader was lost {since_lost:?} ago"
                    );
                    if let Some((prev, at)) = rp.last_contact {
                        let passed = (out.started - at).as_millis() as u64;
                        assert_eq!(
                            a - prev,
                            passed,
                            "{ctx}: Lastcontact grew from {prev} to {a} in {passed} ms"
                        );
                    }
                    rp.last_contact = Some((a, out.started));
                }
            }
            (Some(r), Some(a)) => assert_eq!(r, a, "{ctx}: header {name}"),
        }
    }

    let is_json =
        rec_headers.get("Content-Type").and_then(Value::as_str) == Some("application/json");
    if is_json {
        let actual = reply.json();
        let subset = step["request"]["path"]
            .as_str()
            .unwrap()
            .starts_with("/v1/agent/self");
        compare_json(&rec["body"], &actual, &ctx, map, subset);
    } else {
        let expected = decoded_body(&rec["body"], &rec["body_encoding"]).unwrap_or_default();
        assert_eq!(
            expected,
            reply.body.to_vec(),
            "{ctx}: body {:?}",
            reply.text()
        );
    }

    if let (true, Some(recorded)) = (timing, step.get("elapsed_ms").and_then(Value::as_u64)) {
        let actual = out.elapsed.as_millis() as u64;
        let note = step["note"].as_str().unwrap_or("");
        if recorded < 100 {
            assert!(
                actual < 100,
                "{ctx}: recorded an immediate answer ({recorded} ms), took {actual} ms"
            );
        } else if note.contains("reaper") {
            // The reaper's 30 s phase decides the exact moment; allow one full interval.
            let slack = 30_000;
            assert!(
                actual + slack >= recorded && actual <= recorded + slack,
                "{ctx}: reaped after {actual} ms, recorded {recorded} ms"
            );
        } else if note.contains("local-state lock") {
            // Transcript 14: without a leader, Consul's background anti-entropy sync holds the
            // agent's local-state lock through its own RPC hold, and agent requests that arrive
            // meanwhile wait for it. The double does not model that background sync: it holds a
            // request only for its own inline sync (when it has changes to send), so it answers
            // no later than recorded, and at least the hold when the note says so.
            assert!(
                actual <= recorded,
                "{ctx}: took {actual} ms, recorded {recorded} ms"
            );
            if note.contains("at least the RPC hold timeout") {
                assert!(actual >= HOLD_MS, "{ctx}: took {actual} ms, not held");
            }
        } else if let Some(sent_after) = concurrent_sent_after {
            assert!(
                actual >= sent_after && actual < sent_after + 100,
                "{ctx}: woken after {actual} ms, change sent at {sent_after} ms"
            );
            assert!(recorded < sent_after + 100, "{ctx}: recorded as woken");
        } else {
            // A timeout or an RPC hold: Consul adds up to a sixteenth of jitter, the replay runs
            // without.
            let slack = recorded / 16 + 100;
            assert!(
                actual + slack >= recorded && actual <= recorded + 100,
                "{ctx}: took {actual} ms, recorded {recorded} ms"
            );
        }
    }
}

async fn apply_events(double: &ConsulDouble, rp: &mut Replay, events: &[Event]) {
    for event in events {
        match *event {
            Event::Follow(leader, ms) => double.follow_leader(leader, Duration::from_millis(ms)),
            Event::LoseLeader => {
                double.lose_leader();
                rp.lost_at = Some(tokio::time::Instant::now());
                rp.last_contact = None;
            }
            Event::NodeHealth(node, status) => double.set_node_health(node, status).unwrap(),
            Event::Pass(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
    }
}

async fn replay(
    t: &Transcript,
    target: Target,
    double: &ConsulDouble,
    timing: bool,
    scenario: Option<&Scenario>,
) {
    let mut rp = Replay {
        map: IndexMap::new(),
        last_contact: None,
        lost_at: None,
    };
    let steps = &t.steps;
    let mut i = 0;
    while i < steps.len() {
        let step = &steps[i];
        if let Some(sc) = scenario
            && let Some((_, events)) = sc.before.iter().find(|(at, _)| *at == i)
        {
            apply_events(double, &mut rp, events).await;
        }
        if let (true, Some(ms)) = (timing, step.get("delay_before_ms").and_then(Value::as_u64)) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let concurrent: Vec<usize> = (i + 1..steps.len())
            .filter(|&j| {
                steps[j].get("concurrent_with_step").and_then(Value::as_u64) == Some(i as u64)
            })
            .collect();
        if concurrent.is_empty() {
            let out = run_step(&target, double, scenario, step, &rp.map).await;
            check_step(t, i, step, &out, &mut rp, timing, None);
            i += 1;
            continue;
        }
        assert!(timing, "concurrent steps need the timed replay");
        let started = tokio::time::Instant::now();
        let blocking = {
            let target = target.clone();
            let step = step.clone();
            let path = rewrite_query(step["request"]["path"].as_str().unwrap(), &rp.map);
            let mut translated = step.clone();
            translated["request"]["path"] = Value::String(path);
            let frozen = IndexMap::new();
            // A blocking step is never a peer step: it goes to the double.
            tokio::spawn(async move { send_step(&target, &translated, &frozen).await })
        };
        let mut last_sent = 0;
        for &j in &concurrent {
            let after = steps[j]["sent_after_ms"].as_u64().unwrap();
            tokio::time::sleep_until(started + Duration::from_millis(after)).await;
            assert!(
                double.blocked_queries() > 0,
                "{} step {i}: the blocking query is not waiting when step {j} is sent",
                t.name
            );
            let out = run_step(&target, double, scenario, &steps[j], &rp.map).await;
            check_step(t, j, &steps[j], &out, &mut rp, timing, None);
            last_sent = after;
        }
        let out = blocking.await.unwrap();
        let woken = step
            .get("elapsed_ms")
            .and_then(Value::as_u64)
            .is_some_and(|e| e < last_sent + 100);
        check_step(
            t,
            i,
            step,
            &out,
            &mut rp,
            timing,
            woken.then_some(last_sent),
        );
        i = concurrent.last().unwrap() + 1;
    }
}

fn timed_config(t: &Transcript, sock: PathBuf) -> Config {
    let mut cfg = match scenario(&t.name) {
        Some(sc) => (sc.config)(t),
        None => Config {
            version: t.version,
            ..Config::default()
        },
    };
    cfg.listen = vec![Listen::Unix(sock)];
    cfg.timing.jitter = false;
    assert_eq!(
        cfg.timing.rpc_hold_timeout,
        Duration::from_millis(HOLD_MS),
        "Consul's default, as recorded"
    );
    cfg
}

fn replay_timed(name: &str) {
    let t = load(name);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let sock = common::socket_path("replay");
        let double = ConsulDouble::start(timed_config(&t, sock.clone()))
            .await
            .unwrap();
        let sc = scenario(name);
        replay(&t, Target::Unix(sock), &double, true, sc.as_ref()).await;
    });
}

/// Files without timing-dependent steps also replay on real time over TCP.
fn replay_tcp(name: &str) {
    let t = load(name);
    assert!(scenario(name).is_none(), "{name} needs its timed scenario");
    for (i, s) in t.steps.iter().enumerate() {
        for key in ["concurrent_with_step", "delay_before_ms"] {
            assert!(
                s.get(key).is_none(),
                "{name} step {i} has {key}; only the timed replay can check it"
            );
        }
        let path = s["request"]["path"].as_str().unwrap();
        assert!(
            !path.contains("index=") && !path.contains("wait="),
            "{name} step {i} blocks; only the timed replay can check it"
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cfg = Config {
            version: t.version,
            ..Config::default()
        };
        let double = ConsulDouble::start(cfg).await.unwrap();
        let target = Target::Tcp(double.http_addr().unwrap());
        replay(&t, target, &double, false, None).await;
    });
}

macro_rules! timed {
    ($($name:ident => $file:literal;)*) => {$(
        #[test]
        fn $name() {
            replay_timed($file);
        }
    )*};
}

macro_rules! over_tcp {
    ($($name:ident => $file:literal;)*) => {$(
        #[test]
        fn $name() {
            replay_tcp($file);
        }
    )*};
}

timed! {
    t00_status_and_self => "00-status-and-self.json";
    t00_status_and_self_1_0_8 => "00-status-and-self-consul-1.0.8.json";
    t01_register_ttl_service => "01-register-ttl-service.json";
    t02_ttl_updates => "02-ttl-updates.json";
    t02_ttl_updates_1_0_8 => "02-ttl-updates-consul-1.0.8.json";
    t03_initial_status_and_multiple_checks => "03-initial-status-and-multiple-checks.json";
    t04_reregister_keeps_check_status => "04-reregister-keeps-check-status.json";
    t05_blocking_queries => "05-blocking-queries.json";
    t06_ttl_expiry => "06-ttl-expiry.json";
    t07_error_cases => "07-error-cases.json";
    t07_error_cases_1_0_8 => "07-error-cases-consul-1.0.8.json";
    t08_maintenance => "08-maintenance.json";
    t08_maintenance_1_0_8 => "08-maintenance-consul-1.0.8.json";
    t09_tags_and_instances => "09-tags-and-instances.json";
    t10_deregister_and_kv => "10-deregister-and-kv.json";
    t11_dcsa_reap => "11-dcsa-reap.json";
    t12_kv_prefix_and_blocking => "12-kv-prefix-and-blocking.json";
    t13_consistency_modes => "13-consistency-modes.json";
    t14_no_leader_stale => "14-no-leader-stale.json";
}

// The files without blocking, expiry or concurrent steps, once more on real time over TCP.
over_tcp! {
    tcp_00_status_and_self => "00-status-and-self.json";
    tcp_00_status_and_self_1_0_8 => "00-status-and-self-consul-1.0.8.json";
    tcp_01_register_ttl_service => "01-register-ttl-service.json";
    tcp_02_ttl_updates => "02-ttl-updates.json";
    tcp_02_ttl_updates_1_0_8 => "02-ttl-updates-consul-1.0.8.json";
    tcp_03_initial_status_and_multiple_checks => "03-initial-status-and-multiple-checks.json";
    tcp_04_reregister_keeps_check_status => "04-reregister-keeps-check-status.json";
    tcp_07_error_cases => "07-error-cases.json";
    tcp_07_error_cases_1_0_8 => "07-error-cases-consul-1.0.8.json";
    tcp_09_tags_and_instances => "09-tags-and-instances.json";
}

#[test]
fn every_transcript_file_has_a_test() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let this = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts.rs"),
    )
    .unwrap();
    let timed_list = &this[this.find("timed! {").unwrap()..];
    let timed_list = &timed_list[..timed_list.find("\n}\n").unwrap()];
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".json") {
            count += 1;
            assert!(
                timed_list.contains(&format!("=> \"{name}\";")),
                "no timed replay test for {name}"
            );
        }
    }
    assert_eq!(count, 19, "the recorded transcripts");
}
