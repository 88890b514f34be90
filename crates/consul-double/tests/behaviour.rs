//! Behaviour beyond the transcripts: TTL expiry and reaping with short timings, deferred output
//! sync, blocking-query limits, KV details, check runners, the 1.11-style switch, ACLs and the
//! request log. Timer tests run on paused tokio time over a unix socket.

mod common;

use std::time::Duration;

use common::{Target, get, put, send};
use consul_double::{
    AclConfig, CheckStatus, Config, ConsulDouble, Listen, TokenRights, TokenSource,
};
use tokio::time::{Instant, sleep};

async fn start_unix(mut cfg: Config) -> (ConsulDouble, Target) {
    let sock = common::socket_path("behaviour");
    cfg.listen = vec![Listen::Unix(sock.clone())];
    let double = ConsulDouble::start(cfg).await.unwrap();
    (double, Target::Unix(sock))
}

fn fast() -> Config {
    Config {
        timing: Config::fast_timing(),
        ..Config::default()
    }
}

const TTL_SERVICE: &str = r#"{"ID":"app-1","Name":"app","Port":80,"Check":{"TTL":"2s","Status":"passing","DeregisterCriticalServiceAfter":"100ms"}}"#;

#[tokio::test(start_paused = true)]
async fn ttl_expires_to_critical_quotes_last_output_and_is_not_rearmed() {
    let (double, t) = start_unix(fast()).await;
    let body = r#"{"ID":"app-1","Name":"app","Port":80,"Check":{"TTL":"2s","Status":"passing"}}"#;
    assert_eq!(
        put(&t, "/v1/agent/service/register", body).await.status,
        200
    );
    sleep(Duration::from_millis(1900)).await;
    assert_eq!(
        double.check("service:app-1").unwrap().status,
        CheckStatus::Passing,
        "not expired before the TTL"
    );
    sleep(Duration::from_millis(200)).await;
    let c = double.check("service:app-1").unwrap();
    assert_eq!(
        (c.status, c.output.as_str()),
        (CheckStatus::Critical, "TTL expired")
    );

    assert_eq!(
        put(
            &t,
            "/v1/agent/check/update/service:app-1",
            r#"{"Status":"passing","Output":"ok"}"#
        )
        .await
        .status,
        200
    );
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        put(&t, "/v1/agent/check/pass/service:app-1?note=still%20ok", "")
            .await
            .status,
        200
    );
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        double.check("service:app-1").unwrap().status,
        CheckStatus::Passing,
        "the update reset the timer"
    );
    sleep(Duration::from_millis(600)).await;
    let c = double.check("service:app-1").unwrap();
    assert_eq!(c.status, CheckStatus::Critical);
    assert_eq!(
        c.output,
        "TTL expired (last output before timeout follows): still ok"
    );
    let before = double.raft_index();
    sleep(Duration::from_secs(10)).await;
    assert_eq!(double.check("service:app-1").unwrap().output, c.output);
    assert_eq!(
        double.raft_index(),
        before,
        "an expired timer is not re-armed"
    );
}

#[tokio::test(start_paused = true)]
async fn critical_service_is_reaped_after_the_floor_and_a_reaper_tick() {
    // Floor 1 s (DCSA 100 ms is raised to it), reaper every 250 ms, TTL 2 s.
    let (double, t) = start_unix(fast()).await;
    let start = Instant::now();
    put(&t, "/v1/agent/service/register", TTL_SERVICE).await;
    let idx = get(&t, "/v1/health/service/app").await.index();
    let woke = get(&t, &format!("/v1/health/service/app?index={idx}&wait=1m")).await;
    assert!(
        woke.json().as_array().unwrap()[0]["Checks"][1]["Status"] == "critical",
        "first wake-up is the expiry"
    );
    let idx = woke.index();
    let gone = get(&t, &format!("/v1/health/service/app?index={idx}&wait=1m")).await;
    let elapsed = start.elapsed();
    assert_eq!(gone.json(), serde_json::json!([]));
    assert!(
        elapsed > Duration::from_secs(3),
        "not before TTL + floor: {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_millis(3250),
        "within one reaper interval after: {elapsed:?}"
    );
    assert!(double.services().is_empty() && double.checks().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_check_registered_critical_is_not_reaped_until_it_turns_critical_again() {
    let (double, t) = start_unix(fast()).await;
    let body =
        r#"{"ID":"x","Name":"x","Check":{"TTL":"1h","DeregisterCriticalServiceAfter":"1s"}}"#;
    put(&t, "/v1/agent/service/register", body).await;
    sleep(Duration::from_secs(5)).await;
    assert!(
        double.service("x").is_some(),
        "registering critical does not start the critical clock"
    );
    put(&t, "/v1/agent/check/fail/service:x", "").await;
    sleep(Duration::from_millis(1500)).await;
    assert!(double.service("x").is_none(), "a fail starts it");
}

#[tokio::test(start_paused = true)]
async fn output_only_changes_reach_the_catalog_after_half_the_update_interval() {
    // fast_timing: check_update_interval 2 s, no jitter, so the write-back comes after 1 s.
    let (double, t) = start_unix(fast()).await;
    put(
        &t,
        "/v1/agent/service/register",
        r#"{"ID":"a","Name":"a","Check":{"TTL":"1h","Status":"passing"}}"#,
    )
    .await;
    let idx = get(&t, "/v1/health/service/a").await.index();
    put(&t, "/v1/agent/check/pass/service:a?note=new", "").await;
    assert_eq!(
        double.check("service:a").unwrap().output,
        "new",
        "agent view at once"
    );
    let t0 = Instant::now();
    let r = get(&t, &format!("/v1/health/service/a?index={idx}&wait=10s")).await;
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(1),
        "woken by the write-back, not before"
    );
    assert!(r.index() > idx);
    assert_eq!(r.json()[0]["Checks"][1]["Output"], "new");
    let t0 = Instant::now();
    put(&t, "/v1/agent/check/pass/service:a?note=newer", "").await;
    let r2 = get(
        &t,
        &format!("/v1/health/service/a?index={}&wait=10s", r.index()),
    )
    .await;
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    assert_eq!(r2.json()[0]["Checks"][1]["Output"], "newer");
}

#[tokio::test(start_paused = true)]
async fn blocking_waits_use_the_default_and_the_cap() {
    let mut cfg = Config::default();
    cfg.timing.jitter = false;
    cfg.timing.default_wait = Duration::from_secs(7);
    cfg.timing.max_wait = Duration::from_secs(9);
    let (_double, t) = start_unix(cfg).await;
    let idx = get(&t, "/v1/health/service/none").await.index();
    let t0 = Instant::now();
    get(&t, &format!("/v1/health/service/none?index={idx}")).await;
    assert_eq!(t0.elapsed(), Duration::from_secs(7));
    let t0 = Instant::now();
    get(&t, &format!("/v1/health/service/none?index={idx}&wait=1h")).await;
    assert_eq!(t0.elapsed(), Duration::from_secs(9));
}

#[tokio::test(start_paused = true)]
async fn jitter_stays_within_a_sixteenth_of_the_wait() {
    let (_double, t) = start_unix(Config::default()).await;
    let idx = get(&t, "/v1/kv/k").await.index();
    for _ in 0..5 {
        let t0 = Instant::now();
        get(&t, &format!("/v1/kv/k?index={idx}&wait=16s")).await;
        let e = t0.elapsed();
        assert!(
            e >= Duration::from_secs(16) && e < Duration::from_secs(17),
            "{e:?}"
        );
    }
}

#[tokio::test]
async fn output_is_truncated_at_4096_bytes() {
    let (double, t) = start_unix(Config::default()).await;
    put(
        &t,
        "/v1/agent/service/register",
        r#"{"ID":"a","Name":"a","Check":{"TTL":"1h"}}"#,
    )
    .await;
    let long = "x".repeat(5000);
    let body = serde_json::json!({"Status": "passing", "Output": long}).to_string();
    assert_eq!(
        put(&t, "/v1/agent/check/update/service:a", &body)
            .await
            .status,
        200
    );
    let out = double.check("service:a").unwrap().output;
    assert_eq!(
        out,
        format!("{} ... (captured 4096 of 5000 bytes)", "x".repeat(4096))
    );
}

#[tokio::test]
async fn kv_prefixes_keys_flags_raw_and_cas_delete() {
    let (_double, t) = start_unix(Config::default()).await;
    for (k, v) in [
        ("app/a", "1"),
        ("app/b/c", "2"),
        ("app/b/d", ""),
        ("other", "x"),
    ] {
        assert_eq!(
            put(&t, &format!("/v1/kv/{k}?flags=42"), v).await.json(),
            true
        );
    }
    let list = get(&t, "/v1/kv/app/?recurse").await;
    let listed = list.json();
    let keys: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["app/a", "app/b/c", "app/b/d"]);
    assert_eq!(
        list.json()[2]["Value"],
        serde_json::Value::Null,
        "empty values are null"
    );
    assert_eq!(list.json()[0]["Flags"], 42);
    assert_eq!(
        get(&t, "/v1/kv/app/?keys&separator=/").await.json(),
        serde_json::json!(["app/a", "app/b/"])
    );
    assert_eq!(get(&t, "/v1/kv/nope/?keys").await.status, 404);
    assert_eq!(
        get(&t, "/v1/kv/?keys")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let raw = get(&t, "/v1/kv/app/a?raw").await;
    assert_eq!(
        (
            raw.text().as_str(),
            raw.header("content-type").unwrap().as_str()
        ),
        ("1", "text/plain; charset=utf-8")
    );
    let mi = get(&t, "/v1/kv/app/a").await.json()[0]["ModifyIndex"]
        .as_u64()
        .unwrap();
    assert_eq!(
        send(
            &t,
            "DELETE",
            &format!("/v1/kv/app/a?cas={}", mi + 1),
            &[],
            None
        )
        .await
        .unwrap()
        .json(),
        false
    );
    assert_eq!(
        send(&t, "DELETE", &format!("/v1/kv/app/a?cas={mi}"), &[], None)
            .await
            .unwrap()
            .json(),
        true
    );
    assert_eq!(
        send(&t, "DELETE", "/v1/kv/app/?recurse", &[], None)
            .await
            .unwrap()
            .json(),
        true
    );
    assert_eq!(get(&t, "/v1/kv/app/?recurse").await.status, 404);
    assert_eq!(get(&t, "/v1/kv/other").await.status, 200);
    let conflict = put(&t, "/v1/kv/x?cas=1&acquire=s", "v").await;
    assert_eq!(
        (conflict.status, conflict.text().as_str()),
        (400, "Conflicting flags: acquire=s&cas=1")
    );
    let big = "v".repeat(512 * 1024 + 1);
    assert_eq!(put(&t, "/v1/kv/big", &big).await.status, 413);
}

#[tokio::test(start_paused = true)]
async fn kv_blocking_read_of_one_key_ignores_other_keys() {
    let (double, t) = start_unix(Config {
        timing: Config::fast_timing(),
        ..Config::default()
    })
    .await;
    double.put_kv("watched", b"before");
    let idx = get(&t, "/v1/kv/watched").await.index();
    let t2 = t.clone();
    let pending =
        tokio::spawn(async move { get(&t2, &format!("/v1/kv/watched?index={idx}&wait=5s")).await });
    sleep(Duration::from_secs(1)).await;
    double.put_kv("unrelated", b"x");
    double.put_kv("watched-too", b"a key that splits the path");
    sleep(Duration::from_secs(1)).await;
    assert!(!pending.is_finished(), "other keys do not wake it");
    double.put_kv("watched", b"now");
    let t0 = Instant::now();
    let r = pending.await.unwrap();
    assert!(t0.elapsed() < Duration::from_millis(10));
    assert_eq!(r.status, 200);
    assert!(r.index() > idx);
}

/// A missing key watches the closest node of its path in Consul's radix tree: writes elsewhere
/// leave it asleep while its neighbours exist; with nothing left on its path, every write wakes
/// it with an unchanged 404 and a higher index (transcript 12, steps 19 and 27).
#[tokio::test(start_paused = true)]
async fn kv_blocking_read_of_a_missing_key_wakes_as_consul_does() {
    let (double, t) = start_unix(fast()).await;
    double.put_kv("app/flags/a", b"1");
    double.put_kv("app/flags/b", b"2");
    let missing = get(&t, "/v1/kv/app/flags/missing").await;
    assert_eq!(missing.status, 404);
    let idx = missing.index();
    let t2 = t.clone();
    let started = Instant::now();
    let pending = tokio::spawn(async move {
        get(
            &t2,
            &format!("/v1/kv/app/flags/missing?index={idx}&wait=3s"),
        )
        .await
    });
    sleep(Duration::from_secs(1)).await;
    double.put_kv("other/x", b"x");
    let r = pending.await.unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(3),
        "slept to the end"
    );
    assert_eq!(
        (r.status, r.index()),
        (404, idx),
        "the index it started with"
    );

    double.delete_kv("app/flags/a");
    double.delete_kv("app/flags/b");
    let idx = get(&t, "/v1/kv/app/flags/missing").await.index();
    let t2 = t.clone();
    let pending = tokio::spawn(async move {
        get(
            &t2,
            &format!("/v1/kv/app/flags/missing?index={idx}&wait=3s"),
        )
        .await
    });
    sleep(Duration::from_secs(1)).await;
    let woken_at = Instant::now();
    double.put_kv("other/y", b"y");
    let r = pending.await.unwrap();
    assert_eq!(
        woken_at.elapsed(),
        Duration::ZERO,
        "woken by an unrelated write"
    );
    assert_eq!(r.status, 404);
    assert!(r.index() > idx);
}

#[tokio::test]
async fn tcp_checks_run_against_their_target() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (double, t) = start_unix(fast()).await;
    let body = format!(r#"{{"ID":"p","Name":"p","Check":{{"TCP":"{addr}","Interval":"100ms"}}}}"#);
    assert_eq!(
        put(&t, "/v1/agent/service/register", &body).await.status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let c = double.check("service:p").unwrap();
        if c.status == CheckStatus::Passing {
            assert_eq!(c.output, format!("TCP connect {addr}: Success"));
            assert_eq!(c.kind, "tcp");
            break;
        }
        assert!(Instant::now() < deadline, "tcp check never passed: {c:?}");
        sleep(Duration::from_millis(20)).await;
    }
    drop(listener);
    loop {
        let c = double.check("service:p").unwrap();
        if c.status == CheckStatus::Critical {
            assert_eq!(
                c.output,
                format!("dial tcp {addr}: connect: connection refused")
            );
            break;
        }
        assert!(Instant::now() < deadline, "tcp check never failed");
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_server_agent_answers_compact_json_unless_asked_for_pretty() {
    let (_double, t) = start_unix(Config {
        compact_json: true,
        ..Config::default()
    })
    .await;
    let service = r#"{"ID":"web-1","Name":"web","Address":"10.0.0.1","Port":80,"Tags":["a b"],"Meta":{"k":"v \" w"}}"#;
    assert_eq!(
        put(&t, "/v1/agent/service/register", service).await.status,
        200
    );
    let compact = get(&t, "/v1/health/service/web").await;
    let pretty = get(&t, "/v1/health/service/web?pretty").await;
    let text = compact.text();
    assert!(!text.contains('\n') && !text.contains(": "), "{text}");
    // Spaces inside strings are data, not layout.
    assert!(
        text.contains(r#""Tags":["a b"]"#) && text.contains(r#""k":"v \" w""#),
        "{text}"
    );
    assert!(pretty.text().starts_with("[\n    {") && pretty.text().ends_with("]\n"));
    assert_eq!(compact.json(), pretty.json());
    // The dev agent the transcripts come from always indents.
    let (_dev, t) = start_unix(Config::default()).await;
    assert_eq!(
        put(&t, "/v1/agent/service/register", service).await.status,
        200
    );
    assert!(
        get(&t, "/v1/health/service/web")
            .await
            .text()
            .ends_with("]\n")
    );
}

#[tokio::test]
async fn newer_consul_answers_unknown_ids_with_404() {
    let (_double, t) = start_unix(Config {
        unknown_id_404: true,
        ..Config::default()
    })
    .await;
    let r = put(&t, "/v1/agent/check/pass/service:nope", "").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            404,
            "Unknown check ID \"service:nope\". Ensure that the check ID is passed, not the check name."
        )
    );
    let r = put(&t, "/v1/agent/service/deregister/nope", "").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            404,
            "Unknown service ID \"nope\". Ensure that the service ID is passed, not the service name."
        )
    );
    let (_old, t) = start_unix(Config::default()).await;
    let r = put(&t, "/v1/agent/check/pass/service:nope", "").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "CheckID \"service:nope\" does not have associated TTL")
    );
}

fn acl_config() -> Config {
    let mut acl = AclConfig::with_write_tokens(["writer"]);
    acl.tokens.insert("reader".into(), TokenRights::Read);
    Config {
        acl: Some(acl),
        ..Config::default()
    }
}

#[tokio::test]
async fn acl_tokens_gate_writes_and_filter_reads() {
    let (double, t) = start_unix(acl_config()).await;
    let svc = r#"{"ID":"a","Name":"a","Check":{"TTL":"1h"}}"#;
    let anon = send(
        &t,
        "PUT",
        "/v1/agent/service/register",
        &[],
        Some(svc.into()),
    )
    .await
    .unwrap();
    assert_eq!(
        (anon.status, anon.text().as_str()),
        (403, "Permission denied")
    );
    let bogus = send(
        &t,
        "PUT",
        "/v1/agent/service/register",
        &[("X-Consul-Token", "nope")],
        Some(svc.into()),
    )
    .await
    .unwrap();
    assert_eq!(
        (bogus.status, bogus.text().as_str()),
        (403, "ACL not found")
    );
    let reader = send(
        &t,
        "PUT",
        "/v1/agent/service/register",
        &[("X-Consul-Token", "reader")],
        Some(svc.into()),
    )
    .await
    .unwrap();
    assert_eq!(reader.status, 403);
    assert!(double.services().is_empty());
    let ok = send(
        &t,
        "PUT",
        "/v1/agent/service/register",
        &[("Authorization", "Bearer writer")],
        Some(svc.into()),
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200);

    assert_eq!(
        get(&t, "/v1/agent/services").await.json(),
        serde_json::json!({}),
        "anonymous reads are filtered"
    );
    let h = get(&t, "/v1/health/service/a").await;
    assert_eq!((h.status, h.json()), (200, serde_json::json!([])));
    assert_eq!(
        get(&t, "/v1/health/service/a?token=reader")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let bad = get(&t, "/v1/health/service/a?token=nope").await;
    assert_eq!((bad.status, bad.text().as_str()), (403, "ACL not found"));
    assert_eq!(get(&t, "/v1/agent/self").await.status, 403);
    assert_eq!(
        get(&t, "/v1/status/leader").await.status,
        200,
        "status endpoints need no token"
    );

    // ?token beats X-Consul-Token beats Authorization: Bearer.
    let r = send(
        &t,
        "PUT",
        "/v1/agent/check/pass/service:a?token=writer",
        &[("X-Consul-Token", "nope"), ("Authorization", "Bearer nope")],
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let r = send(
        &t,
        "PUT",
        "/v1/agent/check/pass/service:a",
        &[
            ("X-Consul-Token", "writer"),
            ("Authorization", "Bearer nope"),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let sources: Vec<TokenSource> = double.requests().iter().map(|r| r.token_source).collect();
    assert_eq!(
        sources,
        [
            TokenSource::None,
            TokenSource::Header,
            TokenSource::Header,
            TokenSource::Bearer,
            TokenSource::None,
            TokenSource::None,
            TokenSource::Query,
            TokenSource::Query,
            TokenSource::None,
            TokenSource::None,
            TokenSource::Query,
            TokenSource::Header
        ]
    );
}

#[tokio::test]
async fn request_log_records_what_was_asked_and_answered() {
    let (double, t) = start_unix(Config::default()).await;
    put(&t, "/v1/agent/service/register", r#"{"Name":"a"}"#).await;
    send(
        &t,
        "PUT",
        "/v1/agent/service/deregister/a",
        &[("X-Consul-Token", "tok")],
        None,
    )
    .await
    .unwrap();
    get(&t, "/v1/nope").await;
    let log = double.requests();
    assert_eq!(log.len(), 3);
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str(), log[0].status),
        ("PUT", "/v1/agent/service/register", Some(200))
    );
    assert_eq!(log[0].body_text(), r#"{"Name":"a"}"#);
    assert_eq!(
        (log[1].token_source, log[1].token.as_deref()),
        (TokenSource::Header, Some("tok"))
    );
    assert_eq!(log[2].status, Some(404));
    assert!(log[0].seq < log[1].seq && log[1].since_start >= log[0].since_start);
    assert_eq!(
        double
            .requests_to("PUT", "/v1/agent/service/deregister/a")
            .len(),
        1
    );
    double.clear_requests();
    assert!(double.requests().is_empty());
}

#[tokio::test]
async fn rust_api_writes_follow_the_same_rules() {
    let (double, t) = start_unix(Config::default()).await;
    let err = double
        .register_service_json(r#"{"Name":"x","Bogus":1}"#, false)
        .unwrap_err();
    assert_eq!(
        (err.status, err.message.as_str()),
        (400, "Request decode failed: json: unknown field \"Bogus\"")
    );
    double
        .register_service_json(
            r#"{"ID":"x1","Name":"x","Tags":["t"],"Check":{"TTL":"1m"}}"#,
            false,
        )
        .unwrap();
    assert_eq!(
        double.update_ttl("service:x1", CheckStatus::Warning, "hmm"),
        Ok(())
    );
    let entry = &get(&t, "/v1/health/service/x").await.json()[0];
    assert_eq!(entry["Checks"][1]["Status"], "warning");
    assert!(double.service_maintenance("x1", true, ""));
    assert_eq!(
        double
            .catalog_checks()
            .iter()
            .filter(|c| c.value.kind == "maintenance")
            .count(),
        1
    );
    double.node_maintenance(true, "r");
    assert!(double.check("_node_maintenance").is_some());
    assert!(double.deregister_service("x1"));
    assert!(!double.deregister_service("x1"));
}

#[tokio::test(start_paused = true)]
async fn agent_service_blocks_on_its_content_hash() {
    let (double, t) = start_unix(fast()).await;
    put(
        &t,
        "/v1/agent/service/register",
        r#"{"ID":"h","Name":"h","Port":1}"#,
    )
    .await;
    let first = get(&t, "/v1/agent/service/h").await;
    let hash = first.json()["ContentHash"].as_str().unwrap().to_string();
    assert_eq!(
        first.header("x-consul-contenthash").as_deref(),
        Some(hash.as_str())
    );
    assert!(
        first.header("x-consul-index").is_none(),
        "hash blocking has no index"
    );
    let t0 = Instant::now();
    let same = get(&t, &format!("/v1/agent/service/h?hash={hash}&wait=2s")).await;
    assert_eq!(
        (t0.elapsed(), same.json()["ContentHash"].as_str()),
        (Duration::from_secs(2), Some(hash.as_str()))
    );
    let t2 = t.clone();
    let h2 = hash.clone();
    let pending =
        tokio::spawn(
            async move { get(&t2, &format!("/v1/agent/service/h?hash={h2}&wait=1m")).await },
        );
    sleep(Duration::from_secs(1)).await;
    double
        .register_service_json(r#"{"ID":"h","Name":"h","Port":2}"#, false)
        .unwrap();
    let t0 = Instant::now();
    let changed = pending.await.unwrap();
    assert!(t0.elapsed() < Duration::from_millis(10));
    assert_eq!(changed.json()["Port"], 2);
    assert_ne!(changed.json()["ContentHash"].as_str(), Some(hash.as_str()));
}

#[tokio::test]
async fn standalone_checks_register_and_deregister() {
    let (double, t) = start_unix(Config::default()).await;
    put(
        &t,
        "/v1/agent/service/register",
        r#"{"ID":"s","Name":"svc","Tags":["x"]}"#,
    )
    .await;
    let r = put(
        &t,
        "/v1/agent/check/register",
        r#"{"Name":"extra","ServiceID":"s","TTL":"1m","Status":"warning"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let c = double.check("extra").unwrap();
    assert_eq!(
        (c.status, c.service_name.as_str(), c.service_tags.clone()),
        (CheckStatus::Warning, "svc", vec!["x".to_string()])
    );
    let node = put(
        &t,
        "/v1/agent/check/register",
        r#"{"ID":"disk","Name":"disk","TTL":"1m"}"#,
    )
    .await;
    assert_eq!(node.status, 200);
    assert_eq!(
        put(&t, "/v1/agent/check/register", r#"{"TTL":"1m"}"#)
            .await
            .text(),
        "Missing check name"
    );
    let r = put(
        &t,
        "/v1/agent/check/register",
        r#"{"Name":"n","ServiceID":"nope","TTL":"1m"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "ServiceID \"nope\" does not exist")
    );
    let checks = get(&t, "/v1/health/checks/svc").await.json();
    assert_eq!(
        checks.as_array().unwrap().len(),
        1,
        "the node-level disk check is not a service check"
    );
    let filtered = get(&t, "/v1/agent/checks?filter=Status%20%3D%3D%20warning")
        .await
        .json();
    assert_eq!(
        filtered.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["extra"]
    );
    assert_eq!(
        put(&t, "/v1/agent/check/deregister/extra", "").await.status,
        200
    );
    assert!(double.check("extra").is_none());
    assert_eq!(
        put(&t, "/v1/agent/check/deregister/", "").await.text(),
        "CheckID missing"
    );
    let services = get(&t, "/v1/catalog/services").await.json();
    assert_eq!(services, serde_json::json!({"svc": ["x"]}));
}

#[tokio::test]
async fn snake_case_and_lower_case_registration_fields() {
    let (double, _t) = start_unix(Config::default()).await;
    double
        .register_service_json(
            r#"{"name":"s","ID":"s1","enable_tag_override":true,"tagged_addresses":{"lan":{"address":"10.1.1.1","port":9}},
                "check":{"ttl":"1m","deregister_critical_service_after":"2m","notes":"n"}}"#,
            false,
        )
        .unwrap();
    let s = double.service("s1").unwrap();
    assert!(s.enable_tag_override);
    assert_eq!(s.tagged_addresses["lan"].address, "10.1.1.1");
    assert_eq!(double.check("service:s1").unwrap().notes, "n");
}

#[tokio::test]
async fn http_checks_run_against_their_target() {
    // The double's own status endpoint serves as the checked application.
    let app = ConsulDouble::start(Config::default()).await.unwrap();
    let url = format!("{}/v1/status/leader", app.url());
    let (double, t) = start_unix(fast()).await;
    let body = format!(r#"{{"ID":"w","Name":"w","Check":{{"HTTP":"{url}","Interval":"100ms"}}}}"#);
    assert_eq!(
        put(&t, "/v1/agent/service/register", &body).await.status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let c = double.check("service:w").unwrap();
        if c.status == CheckStatus::Passing {
            assert_eq!(
                c.output,
                format!("HTTP GET {url}: 200 OK Output: \"127.0.0.1:8300\"\n")
            );
            assert_eq!(c.kind, "http");
            break;
        }
        assert!(Instant::now() < deadline, "http check never passed: {c:?}");
        sleep(Duration::from_millis(20)).await;
    }
    app.fail_requests(consul_double::ErrorFault::no_leader());
    loop {
        let c = double.check("service:w").unwrap();
        if c.status == CheckStatus::Critical {
            assert_eq!(
                c.output,
                format!("HTTP GET {url}: 500 Internal Server Error Output: No cluster leader")
            );
            break;
        }
        assert!(Instant::now() < deadline, "http check never failed");
        sleep(Duration::from_millis(20)).await;
    }
}

// ---- consistency modes and leadership (transcripts 13 and 14) ----

fn header(r: &common::Reply, name: &str) -> String {
    r.header(name).unwrap_or_else(|| panic!("no {name} header"))
}

/// `(Knownleader, Lastcontact, Effective-Consistency)` of an answer.
fn leader_headers(r: &common::Reply) -> (String, String, Option<String>) {
    (
        header(r, "x-consul-knownleader"),
        header(r, "x-consul-lastcontact"),
        r.header("x-consul-effective-consistency"),
    )
}

fn meta(known: &str, contact: &str, consistency: Option<&str>) -> (String, String, Option<String>) {
    (
        known.to_string(),
        contact.to_string(),
        consistency.map(str::to_string),
    )
}

const APP_1: &str =
    r#"{"ID":"app-1","Name":"app","Port":80,"Check":{"TTL":"1h","Status":"passing"}}"#;

#[tokio::test(start_paused = true)]
async fn consistency_parameters_and_their_conflicts() {
    let (_double, t) = start_unix(fast()).await;
    put(&t, "/v1/agent/service/register", APP_1).await;
    for (query, consistency) in [
        ("", "leader"),
        ("?leader", "leader"),
        ("?stale", "stale"),
        ("?stale=false", "stale"),
        ("?max_stale=5s", "stale"),
        ("?max_stale=0s", "leader"),
        ("?consistent", "consistent"),
    ] {
        let r = get(&t, &format!("/v1/health/service/app{query}")).await;
        assert_eq!(r.status, 200, "{query}");
        assert_eq!(
            leader_headers(&r),
            meta("true", "0", Some(consistency)),
            "{query}"
        );
    }
    let conflict = "Cannot specify ?stale with ?consistent, conflicting semantics.";
    for (query, text) in [
        ("?stale&consistent", conflict),
        ("?consistent&max_stale=5s", conflict),
        (
            "?max_stale=abc&stale&consistent",
            "Invalid max_stale value \"abc\"",
        ),
        (
            "?cached&consistent",
            "Cannot specify ?cached with ?consistent, conflicting semantics.",
        ),
    ] {
        for path in ["/v1/health/service/app", "/v1/kv/k"] {
            let r = get(&t, &format!("{path}{query}")).await;
            assert_eq!((r.status, r.text().as_str()), (400, text), "{path}{query}");
            assert!(r.header("x-consul-index").is_none());
        }
    }
    put(&t, "/v1/kv/k", "v").await;
    let r = get(&t, "/v1/kv/k?stale").await;
    assert_eq!(
        leader_headers(&r),
        meta("true", "0", None),
        "KV never sends the consistency"
    );
}

/// Transcript 14 on fast timing: without a leader, reads that need one are held for the RPC
/// hold (1 s here) and fail; stale reads answer at once from the local state; agent writes are
/// kept locally and answer 200 after the hold; nothing reaches the catalog until a leader is back.
#[tokio::test(start_paused = true)]
async fn without_a_leader_only_stale_reads_answer() {
    let (double, t) = start_unix(fast()).await;
    put(&t, "/v1/agent/service/register", APP_1).await;
    put(&t, "/v1/kv/cfg", "v1").await;
    let before = get(&t, "/v1/health/service/app").await;

    double.lose_leader();
    assert_eq!(get(&t, "/v1/status/leader").await.json(), "");
    sleep(Duration::from_millis(2500)).await;
    let t0 = Instant::now();
    let stale = get(&t, "/v1/health/service/app?stale").await;
    assert_eq!(t0.elapsed(), Duration::ZERO, "answered at once");
    assert_eq!(stale.status, 200);
    assert_eq!(stale.json(), before.json(), "the last replicated state");
    assert_eq!(stale.index(), before.index());
    assert_eq!(leader_headers(&stale), meta("false", "2500", Some("stale")));
    sleep(Duration::from_secs(3)).await;
    let later = get(&t, "/v1/kv/cfg?stale").await;
    assert_eq!(
        (later.status, leader_headers(&later)),
        (200, meta("false", "5500", None)),
        "Lastcontact grows with the time since the leader was lost"
    );

    for path in [
        "/v1/health/service/app",
        "/v1/health/service/app?consistent",
        "/v1/catalog/service/app",
    ] {
        let t0 = Instant::now();
        let r = get(&t, path).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(1), "{path}: held");
        assert_eq!(
            (r.status, r.text().as_str()),
            (500, "No cluster leader"),
            "{path}"
        );
        assert_eq!(
            (r.index(), leader_headers(&r)),
            (1, meta("false", "0", None)),
            "{path}: the headers of a failed RPC"
        );
    }
    for (method, path, body) in [
        ("GET", "/v1/kv/cfg", None),
        ("GET", "/v1/kv/cfg?consistent", None),
        ("PUT", "/v1/kv/cfg", Some(b"v2".to_vec())),
        ("DELETE", "/v1/kv/cfg", None),
    ] {
        let t0 = Instant::now();
        let r = send(&t, method, path, &[], body).await.unwrap();
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(1),
            "{method} {path}: held"
        );
        assert_eq!((r.status, r.text().as_str()), (500, "No cluster leader"));
        assert!(r.header("x-consul-index").is_none(), "KV errors carry none");
        assert!(r.header("x-consul-knownleader").is_none());
    }
    assert_eq!(double.kv("cfg").unwrap().value, b"v1", "nothing written");

    // An agent write with nothing to sync answers at once; one that changes the agent is
    // applied locally, held for the failed sync, and answers 200.
    let t0 = Instant::now();
    assert_eq!(
        put(&t, "/v1/agent/check/pass/service:app-1", "")
            .await
            .status,
        200
    );
    assert_eq!(t0.elapsed(), Duration::ZERO, "idempotent: no RPC");
    let t0 = Instant::now();
    let app_2 = r#"{"ID":"app-2","Name":"app","Port":81,"Check":{"TTL":"1h","Status":"passing"}}"#;
    assert_eq!(
        put(&t, "/v1/agent/service/register", app_2).await.status,
        200
    );
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    assert!(double.service("app-2").is_some(), "kept by the agent");
    let t0 = Instant::now();
    assert_eq!(
        put(&t, "/v1/agent/check/pass/service:app-1?note=x", "")
            .await
            .status,
        200
    );
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(1),
        "held: the agent has changes to send"
    );
    let stale = get(&t, "/v1/health/service/app?stale").await;
    assert_eq!(
        stale.json().as_array().unwrap().len(),
        1,
        "not in the catalog"
    );
    assert_eq!(double.catalog_service("app").len(), 1);

    double.elect_leader();
    assert_eq!(get(&t, "/v1/status/leader").await.json(), "127.0.0.1:8300");
    let after = get(&t, "/v1/health/service/app").await;
    assert_eq!(after.status, 200);
    assert_eq!(
        after.json().as_array().unwrap().len(),
        2,
        "synced on election"
    );
    assert!(after.index() > before.index());
    assert_eq!(
        leader_headers(&get(&t, "/v1/kv/cfg?stale").await),
        meta("true", "0", None)
    );
}

#[tokio::test(start_paused = true)]
async fn a_held_request_proceeds_as_soon_as_a_leader_is_elected() {
    let (double, t) = start_unix(fast()).await;
    put(&t, "/v1/kv/cfg", "v1").await;
    double.lose_leader();
    let t2 = t.clone();
    let t0 = Instant::now();
    let pending = tokio::spawn(async move { put(&t2, "/v1/kv/cfg", "v2").await });
    sleep(Duration::from_millis(600)).await;
    assert!(!pending.is_finished());
    double.follow_leader("10.0.0.9:8300", Duration::from_millis(40));
    let r = pending.await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(600));
    assert_eq!((r.status, r.json()), (200, serde_json::json!(true)));
    assert_eq!(double.kv("cfg").unwrap().value, b"v2");
}

/// A blocking read that needs the leader is held from the moment the leader is lost, as
/// Consul retries its broken forwarded RPC: it fails after the hold, or goes on waiting once a
/// leader is back. A `?stale` one keeps waiting on the local state throughout.
#[tokio::test(start_paused = true)]
async fn blocking_reads_across_a_lost_leader() {
    let (double, t) = start_unix(fast()).await;
    put(&t, "/v1/agent/service/register", APP_1).await;
    let idx = get(&t, "/v1/health/service/app").await.index();
    let query = |extra: &'static str| {
        let t = t.clone();
        tokio::spawn(async move {
            get(
                &t,
                &format!("/v1/health/service/app?index={idx}&wait=10s{extra}"),
            )
            .await
        })
    };

    let default = query("");
    let stale = query("&stale");
    sleep(Duration::from_secs(2)).await;
    double.lose_leader();
    let t0 = Instant::now();
    let failed = default.await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(1), "held, then failed");
    assert_eq!(
        (failed.status, failed.text().as_str()),
        (500, "No cluster leader")
    );
    assert!(!stale.is_finished(), "the stale read still waits");

    // A new leader within the hold: the read goes on waiting and sees the next change.
    let default = query("");
    sleep(Duration::from_millis(500)).await;
    double.elect_leader();
    sleep(Duration::from_secs(2)).await;
    assert!(!default.is_finished(), "still waiting after the election");
    assert!(!stale.is_finished());
    put(&t, "/v1/agent/check/fail/service:app-1", "").await;
    for r in [default.await.unwrap(), stale.await.unwrap()] {
        assert_eq!(r.status, 200);
        assert!(r.index() > idx);
        assert_eq!(
            r.json()[0]["Checks"][1]["Status"],
            "critical",
            "woken by the change"
        );
    }
}

/// A watch that keeps answering while the cluster elects a leader: a blocking `?stale` read
/// sleeps through the leaderless period (agent changes do not reach the catalog) and is woken
/// by the sync that follows the election.
#[tokio::test(start_paused = true)]
async fn a_stale_watch_sees_the_changes_synced_at_the_election() {
    let (double, t) = start_unix(fast()).await;
    put(&t, "/v1/agent/service/register", APP_1).await;
    let idx = get(&t, "/v1/health/service/app?stale").await.index();
    double.lose_leader();
    let t2 = t.clone();
    let pending = tokio::spawn(async move {
        get(
            &t2,
            &format!("/v1/health/service/app?stale&index={idx}&wait=1m"),
        )
        .await
    });
    sleep(Duration::from_secs(1)).await;
    let app_2 = r#"{"ID":"app-2","Name":"app","Port":81,"Check":{"TTL":"1h","Status":"passing"}}"#;
    assert_eq!(
        put(&t, "/v1/agent/service/register", app_2).await.status,
        200
    );
    sleep(Duration::from_secs(5)).await;
    assert!(!pending.is_finished(), "nothing reached the catalog");
    double.follow_leader("10.0.0.9:8300", Duration::from_millis(30));
    let r = pending.await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.index() > idx);
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    assert_eq!(leader_headers(&r), meta("true", "30", Some("stale")));
}

/// A follower whose last contact with the leader is N ms: `?stale` answers carry it, the others
/// come from the leader (`0`), so a client's maximum-staleness rule can be tested.
#[tokio::test(start_paused = true)]
async fn a_follower_reports_its_last_contact_on_stale_reads() {
    let (double, t) = start_unix(fast()).await;
    put(&t, "/v1/agent/service/register", APP_1).await;
    put(&t, "/v1/kv/cfg", "v1").await;
    double.follow_leader("10.0.0.9:8300", Duration::from_millis(7250));
    assert_eq!(
        double.leadership(),
        consul_double::Leadership::Follower {
            leader: "10.0.0.9:8300".into(),
            last_contact: Duration::from_millis(7250),
        }
    );
    assert_eq!(get(&t, "/v1/status/leader").await.json(), "10.0.0.9:8300");
    let cases = [
        (
            "/v1/health/service/app?stale",
            meta("true", "7250", Some("stale")),
        ),
        (
            "/v1/health/service/app?max_stale=1s",
            meta("true", "7250", Some("stale")),
        ),
        ("/v1/health/service/app", meta("true", "0", Some("leader"))),
        (
            "/v1/catalog/service/app?consistent",
            meta("true", "0", Some("consistent")),
        ),
        ("/v1/kv/cfg?stale", meta("true", "7250", None)),
        ("/v1/kv/cfg", meta("true", "0", None)),
    ];
    for (path, expected) in cases {
        let r = get(&t, path).await;
        assert_eq!((r.status, leader_headers(&r)), (200, expected), "{path}");
    }
    double.lose_leader();
    sleep(Duration::from_millis(750)).await;
    assert_eq!(
        double.leadership(),
        consul_double::Leadership::NoLeader {
            last_contact: Duration::from_secs(8)
        },
        "the contact clock runs on from the follower's last contact"
    );
    assert_eq!(
        leader_headers(&get(&t, "/v1/kv/cfg?stale").await),
        meta("false", "8000", None)
    );
}

fn cluster() -> Config {
    Config {
        node_name: "consul-b".into(),
        node_address: "127.0.0.12".into(),
        peers: vec![
            consul_double::PeerServer {
                node_name: "consul-a".into(),
                node_id: "00000000-0000-0000-0000-00000000000a".into(),
                address: "127.0.0.11".into(),
            },
            consul_double::PeerServer {
                node_name: "consul-c".into(),
                node_id: "00000000-0000-0000-0000-00000000000c".into(),
                address: "127.0.0.13".into(),
            },
        ],
        ..fast()
    }
}

#[tokio::test(start_paused = true)]
async fn peers_register_through_their_own_agents_and_can_fail() {
    let (double, t) = start_unix(cluster()).await;
    assert_eq!(
        get(&t, "/v1/status/peers").await.json(),
        serde_json::json!(["127.0.0.11:8300", "127.0.0.12:8300", "127.0.0.13:8300"])
    );
    put(&t, "/v1/agent/service/register", APP_1).await;
    double
        .register_peer_service_json(
            "consul-a",
            r#"{"ID":"app-9","Name":"app","Address":"10.0.0.9","Port":80,"Check":{"TTL":"1h"}}"#,
        )
        .unwrap();
    let health = get(&t, "/v1/health/service/app").await.json();
    let rows: Vec<(&str, &str, &str)> = health
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["Node"]["Node"].as_str().unwrap(),
                e["Node"]["Address"].as_str().unwrap(),
                e["Service"]["ID"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("consul-a", "127.0.0.11", "app-9"),
            ("consul-b", "127.0.0.12", "app-1")
        ],
        "ordered by node"
    );
    assert_eq!(
        health[0]["Checks"][1]["Status"], "critical",
        "a new check starts critical"
    );
    assert!(!double.services().contains_key("app-9"), "not on our agent");
    let passing = || async {
        let r = get(&t, "/v1/health/service/app?passing").await;
        let ids: Vec<String> = r
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Service"]["ID"].as_str().unwrap().to_string())
            .collect();
        (r.index(), ids)
    };
    let (idx, ids) = passing().await;
    assert_eq!(ids, ["app-1"]);

    // A watch on the service is woken by the peer's check turning passing.
    let t2 = t.clone();
    let pending = tokio::spawn(async move {
        get(
            &t2,
            &format!("/v1/health/service/app?passing&index={idx}&wait=1m"),
        )
        .await
    });
    sleep(Duration::from_secs(1)).await;
    double
        .update_peer_check("consul-a", "service:app-9", CheckStatus::Passing, "ok")
        .unwrap();
    let r = pending.await.unwrap();
    assert!(r.index() > idx);
    assert_eq!(r.json().as_array().unwrap().len(), 2);

    // The leader marks the peer's node failed: its instance is no longer passing.
    double
        .set_node_health("consul-a", CheckStatus::Critical)
        .unwrap();
    assert_eq!(passing().await.1, ["app-1"]);
    let node = get(&t, "/v1/health/node/consul-a").await.json();
    assert_eq!(node[0]["CheckID"], "serfHealth");
    assert_eq!(node[0]["Output"], "Agent not live or unreachable");
    assert_eq!(node[0]["Node"], "consul-a");

    use consul_double::PeerError;
    assert_eq!(
        double.update_peer_check("consul-z", "x", CheckStatus::Passing, ""),
        Err(PeerError::UnknownNode("consul-z".into()))
    );
    assert!(matches!(
        double.register_peer_service_json("consul-b", APP_1),
        Err(PeerError::OwnNode(_))
    ));
    assert_eq!(
        double.deregister_peer_service("consul-a", "app-9"),
        Ok(true)
    );
    double.lose_leader();
    assert_eq!(
        double.set_node_health("consul-c", CheckStatus::Critical),
        Err(PeerError::NoLeader("consul-c".into())),
        "without a leader nothing commits"
    );
}

#[tokio::test]
async fn kv_values_are_bytes() {
    let (double, t) = start_unix(Config::default()).await;
    let binary = vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0x01];
    let latin1 = vec![b'c', b'a', b'f', 0xe9];
    for (key, value) in [("bin", &binary), ("latin1", &latin1)] {
        let r = send(
            &t,
            "PUT",
            &format!("/v1/kv/{key}"),
            &[],
            Some(value.clone()),
        )
        .await
        .unwrap();
        assert_eq!(r.json(), true);
        assert_eq!(&double.kv(key).unwrap().value, value, "stored as sent");
        let raw = get(&t, &format!("/v1/kv/{key}?raw")).await;
        assert_eq!(&raw.body.to_vec(), value, "?raw gives the bytes back");
        let json = get(&t, &format!("/v1/kv/{key}")).await.json();
        use base64::Engine;
        assert_eq!(
            json[0]["Value"],
            base64::engine::general_purpose::STANDARD.encode(value)
        );
    }
    let ct = |key: &'static str| {
        let t = t.clone();
        async move {
            get(&t, &format!("/v1/kv/{key}?raw"))
                .await
                .header("content-type")
        }
    };
    assert_eq!(ct("bin").await.as_deref(), Some("application/octet-stream"));
    assert_eq!(
        ct("latin1").await.as_deref(),
        Some("text/plain; charset=utf-8"),
        "Go sniffs control bytes, not UTF-8 validity"
    );
    put(&t, "/v1/kv/empty", "").await;
    let empty = get(&t, "/v1/kv/empty?raw").await;
    assert_eq!((empty.status, empty.body.len()), (200, 0));
    assert_eq!(empty.header("content-type"), None, "nothing to sniff");
}
