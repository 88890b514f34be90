//! Every injected fault, through the Rust handle, seen by a client over TCP.

mod common;

use std::time::Duration;

use common::{Target, get, put, send};
use consul_double::{Config, ConsulDouble, ErrorFault};
use tokio::time::Instant;

async fn start() -> (ConsulDouble, Target) {
    let mut cfg = Config::default();
    cfg.timing.jitter = false;
    let double = ConsulDouble::start(cfg).await.unwrap();
    let t = Target::Tcp(double.http_addr().unwrap());
    put(
        &t,
        "/v1/agent/service/register",
        r#"{"ID":"a","Name":"a","Check":{"TTL":"1h","Status":"passing"}}"#,
    )
    .await;
    (double, t)
}

#[tokio::test]
async fn down_refuses_connections_then_comes_back_on_the_same_address() {
    let (double, t) = start().await;
    let addr = double.http_addr().unwrap();
    double.go_down().await;
    assert!(double.faults().down);
    let err = send(&t, "GET", "/v1/status/leader", &[], None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    double.come_up().await.unwrap();
    assert_eq!(double.http_addr(), Some(addr));
    assert_eq!(get(&t, "/v1/status/leader").await.status, 200);
    assert!(double.service("a").is_some(), "going down keeps state");
}

#[tokio::test]
async fn down_drops_pending_blocking_queries() {
    let (double, t) = start().await;
    let idx = get(&t, "/v1/health/service/a").await.index();
    let t2 = t.clone();
    let pending = tokio::spawn(async move {
        send(
            &t2,
            "GET",
            &format!("/v1/health/service/a?index={idx}&wait=30s"),
            &[],
            None,
        )
        .await
    });
    while double.blocked_queries() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    double.go_down().await;
    let result = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("dropped promptly")
        .unwrap();
    assert!(result.is_err(), "the connection was cut: {result:?}");
}

#[tokio::test]
async fn slow_delays_every_answer() {
    let (double, t) = start().await;
    double.set_slow(Some(Duration::from_millis(300)));
    let t0 = Instant::now();
    assert_eq!(get(&t, "/v1/agent/services").await.status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    double.set_slow(None);
    let t0 = Instant::now();
    get(&t, "/v1/agent/services").await;
    assert!(t0.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn error_answers_for_n_requests_or_until_cleared() {
    let (double, t) = start().await;
    double.fail_requests(ErrorFault::no_leader().times(2).on_paths("/v1/health/"));
    assert_eq!(
        get(&t, "/v1/agent/services").await.status,
        200,
        "other paths unaffected"
    );
    for _ in 0..2 {
        let r = get(&t, "/v1/health/service/a").await;
        assert_eq!((r.status, r.text().as_str()), (500, "No cluster leader"));
        assert_eq!(r.header("x-consul-knownleader").as_deref(), Some("false"));
        assert_eq!(r.index(), 1);
    }
    assert_eq!(get(&t, "/v1/health/service/a").await.status, 200);
    // KV and agent endpoints send no index or leader headers with an error (transcript 14).
    double.fail_requests(ErrorFault::no_leader().times(2));
    for path in ["/v1/kv/k", "/v1/agent/services"] {
        let r = get(&t, path).await;
        assert_eq!((r.status, r.text().as_str()), (500, "No cluster leader"));
        assert!(r.header("x-consul-index").is_none(), "{path}");
        assert!(r.header("x-consul-knownleader").is_none(), "{path}");
    }
    double.fail_requests(ErrorFault {
        status: 503,
        body: "busy".into(),
        path_prefix: None,
        remaining: None,
    });
    for _ in 0..3 {
        assert_eq!(
            put(&t, "/v1/agent/check/pass/service:a", "").await.status,
            503
        );
    }
    double.clear_errors();
    assert_eq!(
        put(&t, "/v1/agent/check/pass/service:a", "").await.status,
        200
    );
}

#[tokio::test]
async fn reset_closes_the_connection_without_an_answer() {
    let (double, t) = start().await;
    double.reset_connections(1);
    let err = send(&t, "GET", "/v1/health/service/a", &[], None)
        .await
        .unwrap_err();
    assert!(!err.to_string().is_empty());
    assert_eq!(
        get(&t, "/v1/health/service/a").await.status,
        200,
        "only one reset"
    );
    let last_two: Vec<Option<u16>> = double
        .requests()
        .iter()
        .rev()
        .take(2)
        .map(|r| r.status)
        .collect();
    assert_eq!(
        last_two,
        [Some(200), None],
        "the reset is logged without a status"
    );
}

#[tokio::test]
async fn index_rewind_lowers_answers_and_blocks_a_client_holding_the_old_index() {
    let (double, t) = start().await;
    let real = get(&t, "/v1/health/service/a").await.index();
    double.rewind_index(5, Some(1));
    assert_eq!(get(&t, "/v1/health/service/a").await.index(), real - 5);
    assert_eq!(
        get(&t, "/v1/health/service/a").await.index(),
        real,
        "one answer only"
    );
    double.rewind_index(5, None);
    let t0 = Instant::now();
    let r = get(
        &t,
        &format!("/v1/health/service/a?index={}&wait=300ms", real - 1),
    )
    .await;
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "the lowered index is not above what the client holds"
    );
    assert_eq!(r.index(), real - 5);
    double.clear_index_rewind();
    assert_eq!(get(&t, "/v1/health/service/a").await.index(), real);
}

#[tokio::test]
async fn lost_state_empties_everything_and_restarts_the_index_low() {
    let (double, t) = start().await;
    put(&t, "/v1/kv/k", "v").await;
    let before = get(&t, "/v1/health/service/a").await.index();
    double.lose_state();
    assert!(
        double.services().is_empty()
            && double.checks().is_empty()
            && double.kv_entries().is_empty()
    );
    let r = get(&t, "/v1/health/service/a").await;
    assert_eq!(r.json(), serde_json::json!([]));
    assert!(
        r.index() < before,
        "index went backwards: {} -> {}",
        before,
        r.index()
    );
    let r = put(
        &t,
        "/v1/agent/check/update/service:a",
        r#"{"Status":"passing","Output":"ok"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "CheckID \"service:a\" does not have associated TTL")
    );
}

#[tokio::test]
async fn spurious_wakeups_return_unchanged_data() {
    let (double, t) = start().await;
    let first = get(&t, "/v1/health/service/a").await;
    let idx = first.index();
    double.spurious_wakeups(Some(Duration::from_millis(200)));
    let t0 = Instant::now();
    let r = get(&t, &format!("/v1/health/service/a?index={idx}&wait=30s")).await;
    let e = t0.elapsed();
    assert!(
        e >= Duration::from_millis(200) && e < Duration::from_secs(5),
        "{e:?}"
    );
    assert_eq!((r.index(), r.json()), (idx, first.json()));
    double.spurious_wakeups(None);

    let t2 = t.clone();
    let pending = tokio::spawn(async move {
        get(&t2, &format!("/v1/health/service/a?index={idx}&wait=30s")).await
    });
    while double.blocked_queries() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let t0 = Instant::now();
    double.wake_blocked_queries();
    let r = pending.await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(r.index(), idx);
}

#[tokio::test]
async fn clear_faults_resets_everything() {
    let (double, t) = start().await;
    double.set_slow(Some(Duration::from_millis(10)));
    double.fail_requests(ErrorFault::no_leader());
    double.go_down().await;
    double.clear_faults().await.unwrap();
    assert_eq!(double.faults(), consul_double::Faults::default());
    assert_eq!(get(&t, "/v1/health/service/a").await.status, 200);
}
