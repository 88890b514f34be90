//! The Consul client and the registration task against the Consul double (in-process): the
//! registration payload, when pilot registers, heartbeats, failing checks, an agent that is down,
//! restarted, slow or hung, maintenance, HTTPS, ACL tokens and the unix-socket transport.
//!
//! Most tests run the double on a unix socket with paused time: TTLs, backoff and timeouts then
//! pass without sleeping. No test asserts on speed; the time limits only stop a broken test.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consul_double::{AclConfig, CheckStatus as DoubleStatus, Config, ConsulDouble, Listen};
use pilot::config::{self, CheckStatus, Scheme, Secret, Tls};
use pilot::consul::{
    Client, ConsulError, HealthQuery, Registration, RegistrationStatus, ServiceRegistration,
};
use tokio::time::Instant;

const HOSTNAME: &str = "3f2a9c1e0b7d";

fn tls_default() -> Tls {
    Tls::default()
}

fn service(name: &str) -> config::Service {
    config::Service {
        id: format!("{name}-{HOSTNAME}"),
        name: name.to_string(),
        port: 8000,
        address: "172.18.0.3".parse::<IpAddr>().unwrap(),
        tags: vec![],
        meta: BTreeMap::new(),
        initial_status: None,
        enable_tag_override: false,
        deregister_critical_service_after: None,
    }
}

/// A double on a unix socket in a fresh directory, and the consul settings that reach it.
struct Unix {
    double: ConsulDouble,
    consul: config::Consul,
    _dir: tempfile::TempDir,
}

async fn unix_double(mut cfg: Config) -> Unix {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("consul.sock");
    cfg.listen = vec![Listen::Unix(path.clone())];
    cfg.timing = Config::fast_timing();
    let double = ConsulDouble::start(cfg).await.unwrap();
    Unix {
        double,
        consul: config::Consul {
            scheme: Scheme::Unix,
            address: path.display().to_string(),
            token: None,
            tls: tls_default(),
        },
        _dir: dir,
    }
}

impl Unix {
    fn client(&self) -> Client {
        Client::new(&self.consul).unwrap()
    }

    fn requests(&self, method: &str, path: &str) -> usize {
        self.double.requests_to(method, path).len()
    }
}

/// Waits (in virtual time when paused) until `pred` holds, failing after a minute.
async fn until(what: &str, mut pred: impl FnMut() -> bool) {
    let limit = Instant::now() + Duration::from_secs(60);
    while !pred() {
        assert!(Instant::now() < limit, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lets the registration task run until it has nothing left to do (in paused time, a few
/// virtual milliseconds).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn check_status(u: &Unix, id: &str) -> Option<(DoubleStatus, String)> {
    u.double
        .check(&format!("service:{id}"))
        .map(|c| (c.status, c.output))
}

#[tokio::test(start_paused = true)]
async fn registration_payload_field_by_field() {
    let u = unix_double(Config::default()).await;
    let mut svc = service("app");
    svc.tags = vec!["application".into(), "v1".into()];
    svc.enable_tag_override = true;
    svc.deregister_critical_service_after = Some(Duration::from_secs(600));
    svc.meta = [("version".to_string(), "1.2".to_string())].into();
    let reg = ServiceRegistration::new(&svc, Duration::from_secs(5), CheckStatus::Passing);
    u.client().register_service(&reg).await.unwrap();

    let logged = u.double.requests_to("PUT", "/v1/agent/service/register");
    assert_eq!(logged.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&logged[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "ID": "app-3f2a9c1e0b7d", "Name": "app", "Tags": ["application", "v1"], "Port": 8000,
            "Address": "172.18.0.3", "EnableTagOverride": true, "Meta": {"version": "1.2"},
            "Check": {"TTL": "5s", "Status": "passing", "Notes": "TTL for app set by containerpilot",
                      "DeregisterCriticalServiceAfter": "10m0s"}
        })
    );

    // What /v1/agent/services and /v1/agent/checks show.
    let services = u.double.services();
    let s = &services["app-3f2a9c1e0b7d"];
    assert_eq!(s.name, "app");
    assert_eq!(s.tags, ["application", "v1"]);
    assert_eq!(s.port, 8000);
    assert_eq!(s.address, "172.18.0.3");
    assert!(s.enable_tag_override);
    assert_eq!(
        s.meta
            .as_ref()
            .and_then(|m| m.get("version"))
            .map(String::as_str),
        Some("1.2")
    );
    let c = u.double.check("service:app-3f2a9c1e0b7d").unwrap();
    assert_eq!(c.status, DoubleStatus::Passing);
    assert_eq!(c.notes, "TTL for app set by containerpilot");
    assert_eq!(c.name, "Service 'app' check");
    assert_eq!(c.service_id, "app-3f2a9c1e0b7d");
    assert_eq!(c.kind, "ttl");
    assert_eq!(u.double.checks().len(), 1, "one TTL check, no other");

    // A bare service: no tags, meta, tag override or DCSA keys at all.
    let bare = service("db");
    let reg = ServiceRegistration::new(&bare, Duration::from_secs(15), CheckStatus::Critical);
    u.client().register_service(&reg).await.unwrap();
    let logged = u.double.requests_to("PUT", "/v1/agent/service/register");
    let body: serde_json::Value = serde_json::from_slice(&logged[1].body).unwrap();
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["Address", "Check", "ID", "Name", "Port"]);
    let mut check_keys: Vec<&str> = body["Check"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    check_keys.sort_unstable();
    assert_eq!(check_keys, ["Notes", "Status", "TTL"]);
    assert_eq!(
        check_status(&u, "db-3f2a9c1e0b7d").unwrap().0,
        DoubleStatus::Critical
    );
}

#[tokio::test(start_paused = true)]
async fn without_initial_status_the_service_registers_at_the_first_pass() {
    let u = unix_double(Config::default()).await;
    let reg = Registration::spawn(
        u.client(),
        Arc::new(service("app")),
        Duration::from_secs(10),
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(u.requests("PUT", "/v1/agent/service/register"), 0);
    // A failing check before any pass registers nothing either.
    reg.failing("check.app: exit status 1");
    settle().await;
    assert!(u.double.requests().is_empty(), "{:?}", u.double.requests());
    assert!(!reg.status().registered);

    reg.passing("ok");
    until("registered", || reg.status().registered).await;
    settle().await;
    assert_eq!(
        check_status(&u, "app-3f2a9c1e0b7d"),
        Some((DoubleStatus::Passing, "ok".to_string()))
    );
    assert_eq!(u.requests("PUT", "/v1/agent/service/register"), 1);
    let updates = u
        .double
        .requests_to("PUT", "/v1/agent/check/update/service:app-3f2a9c1e0b7d");
    assert_eq!(updates.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&updates[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"Status": "passing", "Output": "ok"})
    );
    let status = reg.status();
    assert_eq!(status.check_status, Some(CheckStatus::Passing));
    assert!(status.last_contact.is_some());
    assert_eq!(status.last_error, None);
}

#[tokio::test(start_paused = true)]
async fn with_initial_status_the_service_registers_at_once() {
    let u = unix_double(Config::default()).await;
    let mut svc = service("app");
    svc.initial_status = Some(CheckStatus::Warning);
    let reg = Registration::spawn(u.client(), Arc::new(svc), Duration::from_secs(10));
    until("registered", || reg.status().registered).await;
    settle().await;
    assert_eq!(
        check_status(&u, "app-3f2a9c1e0b7d").map(|c| c.0),
        Some(DoubleStatus::Warning)
    );
    let logged = u.double.requests_to("PUT", "/v1/agent/service/register");
    let body: serde_json::Value = serde_json::from_slice(&logged[0].body).unwrap();
    assert_eq!(body["Check"]["Status"], "warning");
    reg.passing("ok");
    until("passing", || {
        check_status(&u, "app-3f2a9c1e0b7d").map(|c| c.0) == Some(DoubleStatus::Passing)
    })
    .await;
    assert_eq!(u.requests("PUT", "/v1/agent/service/register"), 1);
}

#[tokio::test(start_paused = true)]
async fn each_heartbeat_is_one_ttl_update_and_keeps_the_check_passing() {
    let u = unix_double(Config::default()).await;
    let ttl = Duration::from_secs(3);
    let reg = Registration::spawn(u.client(), Arc::new(service("app")), ttl);
    // A job heartbeating every 2 s, well within the 3 s TTL, for 20 s.
    for _ in 0..10 {
        reg.passing("ok");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            check_status(&u, "app-3f2a9c1e0b7d").map(|c| c.0),
            Some(DoubleStatus::Passing)
        );
    }
    assert_eq!(
        u.requests("PUT", "/v1/agent/check/update/service:app-3f2a9c1e0b7d"),
        10
    );
    assert_eq!(u.requests("PUT", "/v1/agent/service/register"), 1);
    // Without heartbeats the TTL lapses, as Consul does it.
    tokio::time::sleep(ttl * 2).await;
    let (status, output) = check_status(&u, "app-3f2a9c1e0b7d").unwrap();
    assert_eq!(status, DoubleStatus::Critical);
    assert!(output.starts_with("TTL expired"), "{output}");
}

#[tokio::test(start_paused = true)]
async fn reports_that_pile_up_behind_a_slow_agent_are_sent_as_one() {
    let u = unix_double(Config::default()).await;
    let reg = Registration::spawn(
        u.client(),
        Arc::new(service("app")),
        Duration::from_secs(60),
    );
    reg.passing("ok");
    until("registered", || reg.status().registered).await;
    settle().await;
    u.double.clear_requests();
    u.double.set_slow(Some(Duration::from_secs(2)));
    reg.passing("ok");
    tokio::time::sleep(Duration::from_millis(100)).await; // that update is in flight now
    reg.passing("ok");
    reg.failing("check.app: exit status 1");
    reg.passing("ok");
    reg.failing("check.app: exit status 7");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let updates = u
        .double
        .requests_to("PUT", "/v1/agent/check/update/service:app-3f2a9c1e0b7d");
    assert_eq!(updates.len(), 2, "the one in flight, then the latest");
    let last: serde_json::Value = serde_json::from_slice(&updates[1].body).unwrap();
    assert_eq!(
        last,
        serde_json::json!({"Status": "critical", "Output": "check.app: exit status 7"})
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_check_turns_the_check_critical_at_once() {
    let u = unix_double(Config::default()).await;
    let reg = Registration::spawn(
        u.client(),
        Arc::new(service("app")),
        Duration::from_secs(60),
    );
    reg.passing("ok");
    until("registered", || reg.status().registered).await;
    let failed_at = Instant::now();
    reg.failing("check.app: exit status 1");
    until("critical", || {
        check_status(&u, "app-3f2a9c1e0b7d")
            == Some((DoubleStatus::Critical, "check.app: exit status 1".into()))
    })
    .await;
    // Long before the 60 s TTL could have lapsed.
    assert!(failed_at.elapsed() < Duration::from_secs(5));
    assert_eq!(reg.status().check_status, Some(CheckStatus::Critical));
    reg.passing("ok");
    until("passing again", || {
        check_status(&u, "app-3f2a9c1e0b7d") == Some((DoubleStatus::Passing, "ok".into()))
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn consul_down_at_start_registers_once_it_is_up() {
    let u = unix_double(Config::default()).await;
    u.double.go_down().await;
    let mut svc = service("app");
    svc.initial_status = Some(CheckStatus::Critical);
    let reg = Registration::spawn(u.client(), Arc::new(svc), Duration::from_secs(60));
    until("an error is recorded", || reg.status().last_error.is_some()).await;
    let status = reg.status();
    assert!(!status.registered);
    assert_eq!(status.last_contact, None);
    let error = status.last_error.unwrap();
    assert!(error.contains("cannot connect to consul"), "{error}");
    // Heartbeats while it is down only update what is wanted.
    for _ in 0..5 {
        reg.passing("ok");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    assert!(u.double.services().is_empty());
    u.double.come_up().await.unwrap();
    until("registered", || reg.status().registered).await;
    until("passing", || {
        check_status(&u, "app-3f2a9c1e0b7d") == Some((DoubleStatus::Passing, "ok".into()))
    })
    .await;
    until("the error is cleared", || reg.status().last_error.is_none()).await;
    assert_eq!(u.requests("PUT", "/v1/agent/service/register"), 1);
}

async fn lost_state_is_restored_on_the_next_heartbeat(cfg: Config) {
    let u = unix_double(cfg).await;
    let reg = Registration::spawn(
        u.client(),
        Arc::new(service("app")),
        Duration::from_secs(60),
    );
    reg.passing("ok");
    until("registered", || reg.status().registered).await;
    settle().await;
    u.double.lose_state();
    assert!(u.double.services().is_empty());
    reg.passing("ok");
    until("registered again", || {
        check_status(&u, "app-3f2a9c1e0b7d") == Some((DoubleStatus::Passing, "ok".into()))
    })
    .await;
    assert_eq!(u.requests("PUT", "/v1/agent/service/register"), 2);
    assert!(u.double.service("app-3f2a9c1e0b7d").is_some());
    let updates = u
        .double
        .requests_to("PUT", "/v1/agent/check/update/service:app-3f2a9c1e0b7d");
    let refused: Vec<_> = updates
        .iter()
        .filter(|r| r.status != Some(200))
        .map(|r| r.status)
        .collect();
    assert_eq!(refused.len(), 1, "{updates:?}");
    assert_eq!(reg.status().last_error, None);
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_lost_its_state_gets_the_registration_back_500() {
    // Consul before 1.11.2: 500 `CheckID "..." does not have associated TTL`.
    lost_state_is_restored_on_the_next_heartbeat(Config::default()).await;
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_lost_its_state_gets_the_registration_back_404() {
    // Consul 1.11.2 and later: 404 `Unknown check ID "..."`.
    let cfg = Config {
        unknown_id_404: true,
        ..Config::default()
    };
    lost_state_is_restored_on_the_next_heartbeat(cfg).await;
}

#[tokio::test(start_paused = true)]
async fn an_old_agent_that_lost_its_state_gets_the_registration_back() {
    // Consul 1.0.8, the version ContainerPilot 3.8 was built against.
    let cfg = Config {
        version: consul_double::ConsulVersion::V1_0_8,
        ..Config::default()
    };
    lost_state_is_restored_on_the_next_heartbeat(cfg).await;
}

#[tokio::test(start_paused = true)]
async fn maintenance_deregisters_and_leaving_it_registers_again() {
    let u = unix_double(Config::default()).await;
    let reg = Registration::spawn(
        u.client(),
        Arc::new(service("app")),
        Duration::from_secs(60),
    );
    reg.passing("ok");
    until("registered", || reg.status().registered).await;
    reg.enter_maintenance();
    until("deregistered", || u.double.services().is_empty()).await;
    until("status says maintenance", || reg.status().maintenance).await;
    assert!(!reg.status().registered);
    // Reports during maintenance are not sent.
    u.double.clear_requests();
    reg.passing("ok");
    reg.failing("check.app: exit status 1");
    reg.passing("ok");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(u.double.requests().is_empty(), "{:?}", u.double.requests());
    reg.exit_maintenance();
    until("registered again", || {
        check_status(&u, "app-3f2a9c1e0b7d") == Some((DoubleStatus::Passing, "ok".into()))
    })
    .await;
    let status = reg.status();
    assert!(status.registered && !status.maintenance, "{status:?}");
    assert_eq!(u.requests("PUT", "/v1/agent/service/register"), 1);
}

#[tokio::test(start_paused = true)]
async fn deregistration_removes_the_service_and_ends_registering() {
    let u = unix_double(Config::default()).await;
    let reg = Registration::spawn(
        u.client(),
        Arc::new(service("app")),
        Duration::from_secs(60),
    );
    reg.passing("ok");
    until("registered", || reg.status().registered).await;
    assert!(reg.deregister(Duration::from_secs(2)).await);
    assert!(u.double.services().is_empty());
    assert_eq!(
        u.requests("PUT", "/v1/agent/service/deregister/app-3f2a9c1e0b7d"),
        1
    );
    // Idempotent, and nothing is registered afterwards.
    assert!(reg.deregister(Duration::from_secs(2)).await);
    reg.passing("ok");
    reg.exit_maintenance();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(u.double.services().is_empty());
    assert_eq!(u.requests("PUT", "/v1/agent/service/register"), 1);
    let status = reg.status();
    assert_eq!(status.deregistered, Some(true));
    assert!(!status.registered);
}

#[tokio::test(start_paused = true)]
async fn deregistration_is_bounded_when_consul_hangs() {
    let u = unix_double(Config::default()).await;
    let reg = Registration::spawn(
        u.client(),
        Arc::new(service("app")),
        Duration::from_secs(60),
    );
    reg.passing("ok");
    until("registered", || reg.status().registered).await;
    u.double.set_slow(Some(Duration::from_secs(3600)));
    // A heartbeat is stuck in flight when the job stops.
    reg.passing("ok");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let done = reg.deregister(Duration::from_secs(2)).await;
    let took = started.elapsed();
    assert!(!done);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "{took:?}"
    );
    until("the task gives up", || reg.status().deregistered.is_some()).await;
    assert_eq!(reg.status().deregistered, Some(false));
}

#[tokio::test(start_paused = true)]
async fn deregistration_when_consul_is_down_is_bounded_or_skipped() {
    let u = unix_double(Config::default()).await;
    u.double.go_down().await;
    let reg = Registration::spawn(
        u.client(),
        Arc::new(service("app")),
        Duration::from_secs(60),
    );
    let started = Instant::now();
    assert!(!reg.deregister(Duration::from_secs(10)).await);
    // Never registered and unreachable: it gives up at once instead of retrying until the end.
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );

    // Registered, then the agent went away: retried until the deadline.
    let u = unix_double(Config::default()).await;
    let reg = Registration::spawn(
        u.client(),
        Arc::new(service("app")),
        Duration::from_secs(60),
    );
    reg.passing("ok");
    until("registered", || reg.status().registered).await;
    u.double.go_down().await;
    let started = Instant::now();
    assert!(!reg.deregister(Duration::from_secs(3)).await);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took <= Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn requests_time_out() {
    let u = unix_double(Config::default()).await;
    u.double.set_slow(Some(Duration::from_secs(60)));
    let client = u.client().with_write_timeout(Duration::from_secs(2));
    let started = Instant::now();
    let err = client.leader().await.unwrap_err();
    assert!(matches!(err, ConsulError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        err.to_string().contains("did not answer within 2s"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn unix_socket_transport_and_errors() {
    let u = unix_double(Config::default()).await;
    let client = u.client();
    assert_eq!(client.leader().await.unwrap(), "127.0.0.1:8300");
    client.deregister_service("nothing-here").await.unwrap();
    // An update of an unknown check is recognised as such.
    let err = client
        .update_ttl("service:nothing", CheckStatus::Passing, "ok")
        .await
        .unwrap_err();
    assert!(err.is_unknown_check(), "{err:?}");
    assert!(!err.is_retryable());
    // A 500 from a leaderless cluster is retryable.
    u.double
        .fail_requests(consul_double::ErrorFault::no_leader().times(1));
    let err = client.leader().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "consul GET /v1/status/leader: consul answered 500: No cluster leader"
    );
    // A socket nobody listens on.
    let mut gone = u.consul.clone();
    gone.address = "/nonexistent/consul.sock".into();
    let err = Client::new(&gone).unwrap().leader().await.unwrap_err();
    assert!(matches!(err, ConsulError::Connect { .. }), "{err:?}");
    assert!(
        err.to_string().contains("no such file or directory"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn health_service_queries_filter_and_block() {
    let u = unix_double(Config::default()).await;
    let client = u.client();
    let mut web = service("web");
    web.tags = vec!["blue".into()];
    let register = |svc: &config::Service, status| {
        let reg = ServiceRegistration::new(svc, Duration::from_secs(60), status);
        let client = client.clone();
        async move { client.register_service(&reg).await.unwrap() }
    };
    register(&web, CheckStatus::Passing).await;
    let mut web2 = service("web");
    web2.id = "web-other".into();
    web2.address = "10.0.0.9".parse().unwrap();
    web2.port = 9000;
    register(&web2, CheckStatus::Critical).await;

    let all = client
        .health_service(&HealthQuery {
            service: "web",
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.instances.len(), 2);
    assert!(all.index >= 1);
    let passing = client
        .health_service(&HealthQuery {
            service: "web",
            passing: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(passing.instances.len(), 1);
    let i = &passing.instances[0];
    assert_eq!(
        (i.id.as_str(), i.name.as_str(), i.address.as_str(), i.port),
        ("web-3f2a9c1e0b7d", "web", "172.18.0.3", 8000)
    );
    assert_eq!(i.node, "NODE");
    assert_eq!(i.tags, ["blue"]);
    let tagged = client
        .health_service(&HealthQuery {
            service: "web",
            tag: Some("green"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(tagged.instances.is_empty());

    // A blocking query returns when the other instance starts passing.
    let blocking = {
        let client = client.clone();
        let index = passing.index;
        tokio::spawn(async move {
            client
                .health_service(&HealthQuery {
                    service: "web",
                    passing: true,
                    index,
                    wait: Some(Duration::from_secs(120)),
                    ..Default::default()
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!blocking.is_finished());
    client
        .update_ttl("service:web-other", CheckStatus::Passing, "ok")
        .await
        .unwrap();
    let answer = blocking.await.unwrap().unwrap();
    assert_eq!(answer.instances.len(), 2);
    assert!(answer.index > passing.index);
    let logged = u.double.requests_to("GET", "/v1/health/service/web");
    assert!(
        logged
            .last()
            .unwrap()
            .path
            .ends_with(&format!("?passing=1&index={}&wait=120000ms", passing.index)),
        "{:?}",
        logged.last().unwrap().path
    );
}

// ---- TCP, HTTPS and tokens: real time (TCP connects are not instant enough for paused time) ----

async fn tcp_double(cfg: Config) -> (ConsulDouble, std::net::SocketAddr) {
    let double = ConsulDouble::start(cfg).await.unwrap();
    let addr = double.addrs()[0].clone();
    let addr = match addr {
        consul_double::BoundAddr::Tcp(a) | consul_double::BoundAddr::Tls(a) => a,
        other => panic!("{other:?}"),
    };
    (double, addr)
}

#[tokio::test]
async fn tcp_with_a_host_name() {
    let (double, addr) = tcp_double(Config::default()).await;
    let consul = config::Consul {
        scheme: Scheme::Http,
        address: format!("localhost:{}", addr.port()),
        token: None,
        tls: tls_default(),
    };
    let client = Client::new(&consul).unwrap();
    assert_eq!(client.leader().await.unwrap(), "127.0.0.1:8300");
    // The pool reuses the connection, and the agent sees every request.
    for _ in 0..3 {
        client.leader().await.unwrap();
    }
    assert_eq!(double.requests_to("GET", "/v1/status/leader").len(), 4);
    drop(double);
    let err = client.leader().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

/// An agent behind a reverse proxy at `/consul/`: every request carries the prefix. A bare
/// listener answers each request with its request line, as an error the client reports whole.
#[tokio::test]
async fn an_address_with_a_path_prefix_prefixes_every_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut head = vec![0; 4096];
            let n = conn.read(&mut head).await.unwrap_or(0);
            let line = String::from_utf8_lossy(&head[..n]);
            let line = line.lines().next().unwrap_or("").to_string();
            let answer = format!(
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{line}",
                line.len()
            );
            let _ = conn.write_all(answer.as_bytes()).await;
        }
    });
    for address in [
        format!("127.0.0.1:{port}/consul"),
        format!("127.0.0.1:{port}/consul/"),
    ] {
        let consul = config::Consul {
            scheme: Scheme::Http,
            address,
            token: None,
            tls: tls_default(),
        };
        let err = Client::new(&consul).unwrap().leader().await.unwrap_err();
        assert!(
            err.to_string()
                .contains("GET /consul/v1/status/leader HTTP/1.1"),
            "{err}"
        );
    }
    let consul = config::Consul {
        scheme: Scheme::Http,
        address: format!("127.0.0.1:{port}/consul?dc=x"),
        token: None,
        tls: tls_default(),
    };
    let err = Client::new(&consul).unwrap_err();
    assert!(
        err.to_string()
            .contains("expected host:port or host:port/prefix"),
        "{err}"
    );
}

struct Https {
    double: ConsulDouble,
    port: u16,
    dir: tempfile::TempDir,
    files: consul_double::PkiFiles,
}

async fn https_double() -> Https {
    let pki = consul_double::generate_localhost_pki().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = pki.write_to(dir.path()).unwrap();
    let cfg = Config {
        listen: vec![Listen::Tls(([127, 0, 0, 1], 0).into(), pki.server.clone())],
        ..Config::default()
    };
    let (double, addr) = tcp_double(cfg).await;
    Https {
        double,
        port: addr.port(),
        dir,
        files,
    }
}

fn https_consul(port: u16, tls: Tls) -> config::Consul {
    config::Consul {
        scheme: Scheme::Https,
        address: format!("localhost:{port}"),
        token: None,
        tls,
    }
}

#[tokio::test]
async fn https_with_the_test_ca_verifies() {
    let h = https_double().await;
    let tls = Tls {
        ca_file: Some(h.files.ca_cert.clone()),
        ..tls_default()
    };
    let client = Client::new(&https_consul(h.port, tls.clone())).unwrap();
    let reg = ServiceRegistration::new(
        &service("app"),
        Duration::from_secs(10),
        CheckStatus::Passing,
    );
    client.register_service(&reg).await.unwrap();
    assert!(h.double.service("app-3f2a9c1e0b7d").is_some());
    // 127.0.0.1 is in the certificate too; and a CA directory works like a CA file.
    let ca_dir = h.dir.path().join("cas");
    std::fs::create_dir(&ca_dir).unwrap();
    std::fs::copy(&h.files.ca_cert, ca_dir.join("ca.pem")).unwrap();
    std::fs::write(ca_dir.join("README"), "not a certificate").unwrap();
    let mut consul = https_consul(
        h.port,
        Tls {
            ca_path: Some(ca_dir),
            ..tls_default()
        },
    );
    consul.address = format!("127.0.0.1:{}", h.port);
    assert_eq!(
        Client::new(&consul).unwrap().leader().await.unwrap(),
        "127.0.0.1:8300"
    );
    // servername: the certificate is checked against that name, not the address.
    let mut named = https_consul(
        h.port,
        Tls {
            server_name: Some("consul.example".into()),
            ..tls
        },
    );
    named.address = format!("127.0.0.1:{}", h.port);
    let err = Client::new(&named).unwrap().leader().await.unwrap_err();
    assert!(matches!(err, ConsulError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[tokio::test]
async fn https_with_a_wrong_ca_fails_clearly() {
    let h = https_double().await;
    let other = consul_double::generate_localhost_pki().unwrap();
    let other_ca = h.dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, &other.ca_cert_pem).unwrap();
    let tls = Tls {
        ca_file: Some(other_ca),
        ..tls_default()
    };
    let err = Client::new(&https_consul(h.port, tls))
        .unwrap()
        .leader()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConsulError::Connect { .. }), "{err:?}");
    // Both test CAs have the same name, so rustls finds the issuer and rejects its signature.
    assert!(
        text.contains("invalid peer certificate: BadSignature"),
        "{text}"
    );
    assert!(text.contains(&format!("localhost:{}", h.port)), "{text}");
    assert!(h.double.requests().is_empty());
}

#[tokio::test]
async fn https_without_verification_accepts_any_certificate() {
    let h = https_double().await;
    let tls = Tls {
        verify: false,
        ..tls_default()
    };
    let client = Client::new(&https_consul(h.port, tls)).unwrap();
    assert_eq!(client.leader().await.unwrap(), "127.0.0.1:8300");
}

#[tokio::test]
async fn tls_settings_that_cannot_work_are_refused_up_front() {
    let h = https_double().await;
    let missing = Tls {
        ca_file: Some(h.dir.path().join("missing.pem")),
        ..tls_default()
    };
    let err = Client::new(&https_consul(h.port, missing)).unwrap_err();
    assert!(
        err.to_string().starts_with("cannot read consul tls cafile")
            && err.to_string().contains("no such file or directory"),
        "{err}"
    );
    let half = Tls {
        client_cert: Some(h.files.server_cert.clone()),
        ..tls_default()
    };
    let err = Client::new(&https_consul(h.port, half)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "consul tls clientcert and clientkey must be given together"
    );
    let not_pem = h.dir.path().join("garbage.pem");
    std::fs::write(&not_pem, "garbage").unwrap();
    let err = Client::new(&https_consul(
        h.port,
        Tls {
            ca_file: Some(not_pem),
            ..tls_default()
        },
    ))
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no certificate found in consul tls cafile"),
        "{err}"
    );
    // A client pair (mutual TLS) loads, and the connection still works.
    let pair = Tls {
        ca_file: Some(h.files.ca_cert.clone()),
        client_cert: Some(h.files.server_cert.clone()),
        client_key: Some(h.files.server_key.clone()),
        ..tls_default()
    };
    let client = Client::new(&https_consul(h.port, pair)).unwrap();
    assert_eq!(client.leader().await.unwrap(), "127.0.0.1:8300");
}

/// Collects everything logged through `tracing` while it is the default subscriber.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_wrong_token_gives_a_clear_error_that_never_shows_the_token() {
    const TOKEN: &str = "f00dfeed-0bad-cafe-d00d-5ecre7700001";
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let cfg = Config {
        acl: Some(AclConfig::with_write_tokens(["the-right-token"])),
        ..Config::default()
    };
    let (double, addr) = tcp_double(cfg).await;
    let consul = config::Consul {
        scheme: Scheme::Http,
        address: addr.to_string(),
        token: Some(Secret::new(TOKEN)),
        tls: tls_default(),
    };
    let client = Client::new(&consul).unwrap();
    let reg = ServiceRegistration::new(
        &service("app"),
        Duration::from_secs(10),
        CheckStatus::Passing,
    );
    let err = client.register_service(&reg).await.unwrap_err();
    assert!(err.is_permission_denied(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "consul PUT /v1/agent/service/register: consul answered 403: ACL not found"
    );
    // The token went in the header.
    let logged = double.requests_to("PUT", "/v1/agent/service/register");
    assert_eq!(logged[0].token.as_deref(), Some(TOKEN));
    assert_eq!(logged[0].token_source, consul_double::TokenSource::Header);

    // The registration task logs and records the failure.
    let registration = Registration::spawn(
        client.clone(),
        Arc::new(service("app")),
        Duration::from_secs(10),
    );
    registration.passing("ok");
    let limit = Instant::now() + Duration::from_secs(30);
    while registration.status().last_error.is_none() {
        assert!(Instant::now() < limit);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status: RegistrationStatus = registration.status();
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("ACL not found")
    );
    assert!(!registration.deregister(Duration::from_millis(500)).await);

    let mut seen = vec![
        err.to_string(),
        format!("{err:?}"),
        format!("{client:?}"),
        format!("{consul:?}"),
        format!("{status:?}"),
        format!("{registration:?}"),
        capture.text(),
    ];
    // An agent (or a proxy) that echoes the token back does not get it printed either.
    let echo = consul_double::ErrorFault {
        status: 500,
        body: format!("bad token {TOKEN}"),
        ..consul_double::ErrorFault::no_leader()
    };
    double.fail_requests(echo);
    let echoed = client.leader().await.unwrap_err();
    assert!(
        echoed.to_string().contains("bad token <redacted>"),
        "{echoed}"
    );
    seen.push(echoed.to_string());
    assert!(
        capture.text().contains("ACL not found"),
        "{}",
        capture.text()
    );
    for text in seen {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
}
