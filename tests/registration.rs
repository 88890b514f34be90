//! Consul registration with the real binary against the Consul double: the payload, heartbeats,
//! failing checks, Consul down at start or losing its state, deregistration before the app's
//! SIGTERM, TLS, and ACL tokens.

mod common;

use std::time::Duration;

use common::*;
use consul_double::{
    AclConfig, BackgroundDouble, CheckStatus, Config as DoubleConfig, Listen, TokenRights,
};

fn double() -> BackgroundDouble {
    BackgroundDouble::start(fast()).expect("start the Consul double")
}

/// The double with test timings (no jitter, a 1 s DCSA floor, a fast reaper).
fn fast() -> DoubleConfig {
    DoubleConfig {
        timing: DoubleConfig::fast_timing(),
        ..DoubleConfig::default()
    }
}

fn address(double: &BackgroundDouble) -> String {
    double.http_addr().expect("a TCP listener").to_string()
}

fn hostname() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

/// A config whose only service is `app` with a check that passes while `ok_file` exists.
fn app_config(consul: &str, ok_file: &std::path::Path, extra: &str) -> String {
    format!(
        r#"{{
  consul: "{consul}",
  jobs: [{{
    name: "app",
    exec: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"],
    port: 8080,
    interfaces: "static:10.1.2.3",
    tags: ["web", "v1"],
    meta: {{ version: "1.2" }},
    consul: {{ enableTagOverride: true, deregisterCriticalServiceAfter: "10m" }},
    health: {{ exec: ["test", "-e", "{}"], interval: 1, ttl: 5 }},
    {extra}
  }}]
}}"#,
        ok_file.display()
    )
}

fn wait_for_check(double: &BackgroundDouble, id: &str, want: CheckStatus) {
    wait_for(
        || {
            double
                .check(&format!("service:{id}"))
                .filter(|c| c.status == want)
                .map(|_| ())
        },
        &format!("check of {id} to be {want:?}"),
    );
}

#[test]
fn the_service_is_registered_as_containerpilot_does_and_heartbeated() {
    for mode in modes() {
        let double = double();
        let dir = Scratch::new("registration");
        let ok = dir.write("ok", "");
        let cfg = dir.write("pilot.json5", &app_config(&address(&double), &ok, ""));
        let running = Running::start(pilot(mode, ["-config", cfg.to_str().unwrap()]), mode);
        let id = format!("app-{}", hostname());
        wait_for_check(&double, &id, CheckStatus::Passing);

        // The payload, field by field.
        let register = double.requests_to("PUT", "/v1/agent/service/register");
        assert_eq!(register.len(), 1, "{mode:?}: registered once");
        let body: serde_json::Value = serde_json::from_slice(&register[0].body).unwrap();
        assert_eq!(body["ID"], id.as_str());
        assert_eq!(body["Name"], "app");
        assert_eq!(body["Port"], 8080);
        assert_eq!(body["Address"], "10.1.2.3");
        assert_eq!(body["Tags"], serde_json::json!(["web", "v1"]));
        assert_eq!(body["Meta"], serde_json::json!({"version": "1.2"}));
        assert_eq!(body["EnableTagOverride"], true);
        assert_eq!(body["Check"]["TTL"], "5s");
        assert_eq!(body["Check"]["Notes"], "TTL for app set by containerpilot");
        assert_eq!(body["Check"]["DeregisterCriticalServiceAfter"], "10m0s");
        let service = double.service(&id).expect("in the agent's services");
        assert_eq!(service.address, "10.1.2.3");

        // Heartbeats: one TTL update per passing check, once a second.
        double.clear_requests();
        std::thread::sleep(Duration::from_millis(3500));
        let beats = double
            .requests_to("PUT", &format!("/v1/agent/check/update/service:{id}"))
            .len();
        assert!(
            (2..=5).contains(&beats),
            "{mode:?}: {beats} heartbeats in 3.5 s at interval 1 s"
        );

        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}: {}", finished.stderr);
        assert!(
            double.service(&id).is_none(),
            "{mode:?}: deregistered on shutdown"
        );
        // ContainerPilot's words, with no field: `<time> Service registered: app`.
        let registered: Vec<&String> = finished
            .stdout
            .iter()
            .filter(|l| l.contains("registered: app"))
            .collect();
        assert!(
            registered.len() == 1
                && registered[0].split_once(' ').map(|(_, m)| m) == Some("Service registered: app"),
            "{mode:?}: {registered:#?}"
        );
    }
}

#[test]
fn a_failing_check_turns_the_consul_check_critical_at_once() {
    let mode = Mode::Plain;
    let double = double();
    let dir = Scratch::new("failing");
    let ok = dir.write("ok", "");
    let cfg = dir.write("pilot.json5", &app_config(&address(&double), &ok, ""));
    let running = Running::start(pilot(mode, ["-config", cfg.to_str().unwrap()]), mode);
    let id = format!("app-{}", hostname());
    wait_for_check(&double, &id, CheckStatus::Passing);
    std::fs::remove_file(&ok).unwrap();
    // Within one interval (1 s) of the failing check, not when the 5 s TTL lapses: the TTL
    // updates say critical.
    wait_for_check(&double, &id, CheckStatus::Critical);
    let updates = double.requests_to("PUT", &format!("/v1/agent/check/update/service:{id}"));
    assert!(
        updates
            .iter()
            .any(|r| r.body_text().contains("\"critical\"")),
        "pilot sent a critical update"
    );
    std::fs::write(&ok, "").unwrap();
    wait_for_check(&double, &id, CheckStatus::Passing);
    running.signal(libc::SIGTERM);
    running.wait();
}

#[test]
fn consul_down_at_start_then_up() {
    let mode = Mode::Plain;
    let double = double();
    double.go_down();
    let dir = Scratch::new("down-at-start");
    let ok = dir.write("ok", "");
    let cfg = dir.write("pilot.json5", &app_config(&address(&double), &ok, ""));
    let mut running = Running::start(pilot(mode, ["-config", cfg.to_str().unwrap()]), mode);
    // The job runs while Consul is down.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "pilot keeps running"
    );
    double.come_up().unwrap();
    let id = format!("app-{}", hostname());
    wait_for_check(&double, &id, CheckStatus::Passing);
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    assert_eq!(code(finished.status), 0);
}

#[test]
fn a_registration_the_agent_lost_is_restored() {
    let mode = Mode::Plain;
    let double = double();
    let dir = Scratch::new("lost-state");
    let ok = dir.write("ok", "");
    let cfg = dir.write("pilot.json5", &app_config(&address(&double), &ok, ""));
    let running = Running::start(pilot(mode, ["-config", cfg.to_str().unwrap()]), mode);
    let id = format!("app-{}", hostname());
    wait_for_check(&double, &id, CheckStatus::Passing);
    double.lose_state();
    assert!(double.service(&id).is_none());
    // The next heartbeat finds the check unknown and registers again.
    wait_for_check(&double, &id, CheckStatus::Passing);
    running.signal(libc::SIGTERM);
    running.wait();
}

#[test]
fn the_service_leaves_consul_before_the_app_gets_sigterm() {
    for mode in modes() {
        let double = double();
        let dir = Scratch::new("deregister-first");
        let ok = dir.write("ok", "");
        let id = format!("app-{}", hostname());
        // On SIGTERM the app asks Consul whether it is still registered.
        let probe = dir.write(
            "probe.py",
            &format!(
                "import json, urllib.request\nservices = json.load(urllib.request.urlopen('http://{}/v1/agent/services'))\nprint('still registered' if '{id}' in services else 'gone from consul', flush=True)\n",
                address(&double)
            ),
        );
        let cfg = dir.write(
            "pilot.json5",
            &app_config(&address(&double), &ok, "logging: { raw: true },").replace(
                "trap 'exit 0' TERM",
                &format!("trap 'python3 {}; exit 0' TERM", probe.display()),
            ),
        );
        let mut running = Running::start(pilot(mode, ["-config", cfg.to_str().unwrap()]), mode);
        wait_for_check(&double, &id, CheckStatus::Passing);
        running.signal(libc::SIGTERM);
        let line = running.expect_line("the app's answer", |l| {
            l.ends_with("registered") || l.ends_with("consul")
        });
        assert_eq!(line, "gone from consul", "{mode:?}");
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}: {}", finished.stderr);
        let deregs = double.requests_to("PUT", &format!("/v1/agent/service/deregister/{id}"));
        assert_eq!(deregs.len(), 1, "{mode:?}");
    }
}

#[test]
fn tls_with_a_test_ca_verify_on_and_off() {
    let pki = consul_double::generate_localhost_pki().unwrap();
    let dir = Scratch::new("tls");
    let files = pki.write_to(&dir.dir).unwrap();
    let other = consul_double::generate_localhost_pki().unwrap();
    let other_dir = Scratch::new("tls-other-ca");
    let other_files = other.write_to(&other_dir.dir).unwrap();
    let cfg = DoubleConfig {
        listen: vec![Listen::Tls(
            "127.0.0.1:0".parse().unwrap(),
            pki.server.clone(),
        )],
        ..fast()
    };
    let double = BackgroundDouble::start(cfg).unwrap();
    let consul_double::BoundAddr::Tls(tls_addr) = double.addrs()[0].clone() else {
        panic!("a TLS listener");
    };
    let port = tls_addr.port();
    let id = format!("app-{}", hostname());
    let ok = dir.write("ok", "");

    for (name, tls, should_register) in [
        (
            "verified",
            format!("cafile: \"{}\", verify: true", files.ca_cert.display()),
            true,
        ),
        (
            "wrong CA",
            format!(
                "cafile: \"{}\", verify: true",
                other_files.ca_cert.display()
            ),
            false,
        ),
        ("unverified", "verify: false".to_string(), true),
    ] {
        double.clear_requests();
        let consul =
            format!("{{ address: \"localhost:{port}\", scheme: \"https\", tls: {{ {tls} }} }}");
        let text = app_config("X", &ok, "").replace("consul: \"X\"", &format!("consul: {consul}"));
        let cfg_path = dir.write(&format!("{}.json5", name.replace(' ', "-")), &text);
        let running = Running::start(
            pilot(Mode::Plain, ["-config", cfg_path.to_str().unwrap()]),
            Mode::Plain,
        );
        if should_register {
            wait_for_check(&double, &id, CheckStatus::Passing);
            running.signal(libc::SIGTERM);
            let finished = running.wait();
            assert_eq!(code(finished.status), 0, "{name}: {}", finished.stderr);
            assert!(double.service(&id).is_none(), "{name}: deregistered");
        } else {
            std::thread::sleep(Duration::from_millis(2500));
            assert!(
                double.service(&id).is_none(),
                "{name}: registered through an unverified server"
            );
            running.signal(libc::SIGTERM);
            let finished = running.wait();
            let log = finished.stdout.join("\n") + &finished.stderr;
            assert!(
                log.to_lowercase().contains("certificate"),
                "{name}: the log says why: {log}"
            );
        }
    }
}

#[test]
fn a_wrong_token_gives_a_clear_error_that_never_shows_the_token() {
    let cfg = DoubleConfig {
        acl: Some(AclConfig {
            tokens: [("right-token".to_string(), TokenRights::Write)]
                .into_iter()
                .collect(),
        }),
        ..fast()
    };
    let double = BackgroundDouble::start(cfg).unwrap();
    let dir = Scratch::new("token");
    let ok = dir.write("ok", "");
    let cfg_path = dir.write("pilot.json5", &app_config(&address(&double), &ok, ""));
    let mut cmd = pilot(Mode::Plain, ["-config", cfg_path.to_str().unwrap()]);
    cmd.env("CONSUL_HTTP_TOKEN", "s3cr3t-wrong-token");
    let running = Running::start(cmd, Mode::Plain);
    wait_for(
        || {
            double
                .requests_to("PUT", "/v1/agent/service/register")
                .first()
                .map(|_| ())
        },
        "a registration attempt",
    );
    std::thread::sleep(Duration::from_millis(500));
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    let log = finished.stdout.join("\n") + &finished.stderr;
    assert!(
        log.contains("403") || log.contains("ACL not found"),
        "the error says why: {log}"
    );
    assert!(
        !log.contains("s3cr3t"),
        "the token leaked into the log: {log}"
    );
    assert_eq!(
        double.requests_to("PUT", "/v1/agent/service/register")[0]
            .token
            .as_deref(),
        Some("s3cr3t-wrong-token")
    );
}
