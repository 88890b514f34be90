//! The daemon behind the control socket, with the real binary: reload (unchanged jobs keep
//! running, changed ones restart, added ones start, removed ones stop, an invalid config changes
//! nothing), `-putenv` across reloads, maintenance with the Consul double, `/v3/status`, and the
//! telemetry service registered and heartbeating.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use consul_double::{BackgroundDouble, CheckStatus, Config as DoubleConfig};

/// Runs a pilot subcommand (`-reload`, `-putenv`...) against the config at `cfg`.
fn subcommand(cfg: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["-config", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    let (status, stdout, stderr) = run(pilot(Mode::Plain, all));
    (code(status), stdout, stderr)
}

fn jobs_config(socket: &Path, jobs: &str) -> String {
    format!(
        "{{ consul: \"127.0.0.1:1\", control: {{ socket: \"{}\" }}, jobs: [{jobs}] }}",
        socket.display()
    )
}

fn wait_for_pid(socket: &Path, job: &str) -> i64 {
    wait_for(
        || job_pid(&try_status(socket)?, job),
        &format!("job {job} running"),
    )
}

#[test]
fn reload_restarts_only_what_changed() {
    for mode in modes() {
        let dir = Scratch::new("reload");
        let socket = dir.path("pilot.sock");
        let tag = format!("{}{}", std::process::id(), mode as u8);
        let v1 = jobs_config(
            &socket,
            &format!(
                r#"{{ name: "same", exec: ["sleep", "1001.{tag}"] }},
    {{ name: "changed", exec: ["sleep", "1002.{tag}"] }},
    {{ name: "removed", exec: ["sleep", "1003.{tag}"] }}"#
            ),
        );
        let cfg = dir.write("pilot.json5", &v1);
        let running = Running::start(pilot(mode, ["-config", cfg.to_str().unwrap()]), mode);
        wait_for(|| socket.exists().then_some(()), "the control socket");
        let same = wait_for_pid(&socket, "same");
        let changed = wait_for_pid(&socket, "changed");
        wait_for_pid(&socket, "removed");

        // An invalid config is refused and changes nothing.
        dir.write(
            "pilot.json5",
            &v1.replace("jobs: [", "jobs: [{ name: \"same\", exec: \"x\" },"),
        );
        let (status, _, stderr) = subcommand(&cfg, &["-reload"]);
        assert_eq!(status, 1, "{mode:?}");
        assert!(
            stderr.contains("reload failed, the running config is kept"),
            "{stderr}"
        );
        assert!(stderr.contains("same"), "the problem is named: {stderr}");
        assert_eq!(job_pid(&status_of(&socket), "same"), Some(same), "{mode:?}");

        dir.write(
            "pilot.json5",
            &jobs_config(
                &socket,
                &format!(
                    r#"{{ name: "same", exec: ["sleep", "1001.{tag}"] }},
    {{ name: "changed", exec: ["sleep", "2002.{tag}"] }},
    {{ name: "added", exec: ["sleep", "1004.{tag}"] }}"#
                ),
            ),
        );
        let (status, _, stderr) = subcommand(&cfg, &["-reload"]);
        assert_eq!(status, 0, "{mode:?}: {stderr}");
        let after = status_of(&socket);
        assert_eq!(
            job_pid(&after, "same"),
            Some(same),
            "{mode:?}: an unchanged job keeps running"
        );
        let restarted = wait_for_pid(&socket, "changed");
        assert_ne!(restarted, changed, "{mode:?}: a changed job is restarted");
        assert!(
            process_running(&format!("sleep 2002.{tag}")),
            "{mode:?}: with its new definition"
        );
        assert!(
            !process_running(&format!("sleep 1002.{tag}")),
            "{mode:?}: the old one is gone"
        );
        wait_for_pid(&socket, "added");
        assert!(
            !process_running(&format!("sleep 1003.{tag}")),
            "{mode:?}: a removed job is stopped"
        );
        let names: Vec<&str> = after["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["name"].as_str().unwrap())
            .collect();
        assert!(!names.contains(&"removed"), "{mode:?}: {names:?}");

        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}: {}", finished.stderr);
        assert!(!socket.exists(), "{mode:?}: the socket is removed");
    }
}

fn status_of(socket: &Path) -> serde_json::Value {
    status(socket)
}

#[test]
fn many_reloads_at_once_all_succeed() {
    let dir = Scratch::new("rapid-reloads");
    let socket = dir.path("pilot.sock");
    let cfg = dir.write(
        "pilot.json5",
        &jobs_config(&socket, r#"{ name: "app", exec: ["sleep", "1000"] }"#),
    );
    let running = Running::start(
        pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]),
        Mode::Plain,
    );
    let pid = wait_for_pid(&socket, "app");
    // Thirty: under the control socket's 32 connections. Reloads are serialised, so every
    // client holds its connection until its turn; past the limit the socket refuses by design.
    let reloads: Vec<_> = (0..30)
        .map(|_| {
            let mut cmd = pilot(Mode::Plain, ["-config", cfg.to_str().unwrap(), "-reload"]);
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for child in reloads {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            code(out.status),
            0,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (status, _, stderr) = subcommand(&cfg, &["-reload"]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(
        job_pid(&status_of(&socket), "app"),
        Some(pid),
        "nothing changed, nothing restarted"
    );
    running.signal(libc::SIGTERM);
    running.wait();
}

#[test]
fn putenv_reaches_later_children_and_survives_reloads() {
    let dir = Scratch::new("putenv");
    let socket = dir.path("pilot.sock");
    let keeper = r#"{ name: "keeper", exec: ["sleep", "1000"] }"#;
    let cfg = dir.write("pilot.json5", &jobs_config(&socket, keeper));
    let mut running = Running::start(
        pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]),
        Mode::Plain,
    );
    wait_for_pid(&socket, "keeper");
    let (status, _, stderr) = subcommand(
        &cfg,
        &["-putenv", "GREETING=hello=world", "-putenv", "GONE=x"],
    );
    assert_eq!(status, 0, "{stderr}");
    let (status, _, stderr) = subcommand(&cfg, &["-putenv", "GONE="]);
    assert_eq!(status, 0, "{stderr}");
    // A job added by a reload sees the variable (and not the one unset).
    dir.write(
        "pilot.json5",
        &jobs_config(&socket, &format!(r#"{keeper}, {{ name: "printer", exec: ["sh", "-c", "echo GREETING=$GREETING GONE=${{GONE-unset}}"] }}"#)),
    );
    let (status, _, stderr) = subcommand(&cfg, &["-reload"]);
    assert_eq!(status, 0, "{stderr}");
    running.expect_line("the printer's output", |l| {
        job_output(l, "printer") == Some("GREETING=hello=world GONE=unset")
    });
    // The config template sees it too.
    dir.write(
        "pilot.json5",
        &jobs_config(
            &socket,
            &format!(r#"{keeper}, {{ name: "templated", exec: ["echo", "{{{{ .GREETING }}}}"] }}"#),
        ),
    );
    let (status, _, stderr) = subcommand(&cfg, &["-reload"]);
    assert_eq!(status, 0, "{stderr}");
    running.expect_line("the templated job's output", |l| {
        job_output(l, "templated") == Some("hello=world")
    });
    running.signal(libc::SIGTERM);
    running.wait();
}

fn double() -> BackgroundDouble {
    BackgroundDouble::start(DoubleConfig {
        timing: DoubleConfig::fast_timing(),
        ..DoubleConfig::default()
    })
    .unwrap()
}

fn hostname() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

#[test]
fn maintenance_deregisters_and_disabling_it_registers_again() {
    let double = double();
    let dir = Scratch::new("maintenance");
    let socket = dir.path("pilot.sock");
    let cfg = dir.write(
        "pilot.json5",
        &format!(
            r#"{{ consul: "{}", control: {{ socket: "{}" }},
  jobs: [{{ name: "app", exec: ["sleep", "1000"], port: 8080, interfaces: "static:10.0.0.9",
            health: {{ exec: "true", interval: 1, ttl: 5 }} }}] }}"#,
            double.http_addr().unwrap(),
            socket.display()
        ),
    );
    let running = Running::start(
        pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]),
        Mode::Plain,
    );
    let id = format!("app-{}", hostname());
    let check = format!("service:{id}");
    wait_for(
        || {
            double
                .check(&check)
                .filter(|c| c.status == CheckStatus::Passing)
                .map(|_| ())
        },
        "registered",
    );

    let (status, _, stderr) = subcommand(&cfg, &["-maintenance", "enable"]);
    assert_eq!(status, 0, "{stderr}");
    assert!(double.service(&id).is_none(), "deregistered");
    let report = status_of(&socket);
    assert_eq!(report["maintenance"], true);
    assert_eq!(report["jobs"][0]["health"], "maintenance");
    // A second enable changes nothing.
    let (code, body) = control(&socket, "POST", "/v3/maintenance/enable", None);
    assert_eq!((code, body.trim()), (200, r#"{"updated":false}"#));
    // Checks are paused: nothing re-registers it.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        double.service(&id).is_none(),
        "still out of Consul during maintenance"
    );

    let (status, _, stderr) = subcommand(&cfg, &["-maintenance", "disable"]);
    assert_eq!(status, 0, "{stderr}");
    wait_for(
        || {
            double
                .check(&check)
                .filter(|c| c.status == CheckStatus::Passing)
                .map(|_| ())
        },
        "registered again",
    );
    assert_eq!(status_of(&socket)["maintenance"], false);
    running.signal(libc::SIGTERM);
    running.wait();
}

#[test]
fn status_reports_jobs_watches_and_consul_without_the_token() {
    let double = double();
    let dir = Scratch::new("status");
    let socket = dir.path("pilot.sock");
    let cfg = dir.write(
        "pilot.json5",
        &format!(
            r#"{{ consul: {{ address: "{}", token: "sup3r-s3cret" }}, control: {{ socket: "{}" }},
  jobs: [{{ name: "app", exec: ["sleep", "1000"] }}, {{ name: "once", exec: ["sh", "-c", "exit 3"] }}],
  watches: [{{ name: "db", interval: 5 }}] }}"#,
            double.http_addr().unwrap(),
            socket.display()
        ),
    );
    let running = Running::start(
        pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]),
        Mode::Plain,
    );
    wait_for_pid(&socket, "app");
    let report = wait_for(
        || {
            let report = status_of(&socket);
            let once_done = report["jobs"][1]["last_exit"]["code"] == 3;
            let watched = !report["watches"][0]["instances"].is_null();
            (once_done && watched).then_some(report)
        },
        "the one-shot job's exit and the watch's first answer",
    );
    assert_eq!(report["jobs"][0]["name"], "app");
    assert_eq!(report["jobs"][0]["state"], "running");
    assert_eq!(report["jobs"][1]["state"], "stopped");
    assert_eq!(report["watches"][0]["name"], "db");
    assert_eq!(report["watches"][0]["instances"], serde_json::json!([]));
    assert_eq!(report["consul"]["reachable"], true);
    assert_eq!(report["maintenance"], false);
    assert!(report["version"].is_string());
    let (_, raw) = control(&socket, "GET", "/v3/status", None);
    assert!(!raw.contains("sup3r-s3cret"), "the token leaked: {raw}");
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    let log = finished.stdout.join("\n") + &finished.stderr;
    assert!(
        !log.contains("sup3r-s3cret"),
        "the token leaked into the log"
    );
}

/// A free TCP port on the loopback interface.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (
        head.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        body.to_string(),
    )
}

#[test]
fn telemetry_serves_metrics_and_status_and_registers_its_service() {
    let double = double();
    let dir = Scratch::new("telemetry");
    let socket = dir.path("pilot.sock");
    let port = free_port();
    let cfg = dir.write(
        "pilot.json5",
        &format!(
            r#"{{ consul: "{}", control: {{ socket: "{}" }},
  jobs: [{{ name: "app", exec: ["sleep", "1000"] }}],
  telemetry: {{ port: {port}, interfaces: ["static:127.0.0.1"],
    metrics: [{{ namespace: "app", name: "hits", help: "hits", type: "counter" }}] }} }}"#,
            double.http_addr().unwrap(),
            socket.display()
        ),
    );
    let running = Running::start(
        pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]),
        Mode::Plain,
    );
    wait_for_pid(&socket, "app");
    let (status, _, stderr) = subcommand(&cfg, &["-putmetric", "app_hits=42"]);
    assert_eq!(status, 0, "{stderr}");
    let (code, metrics) = wait_for(
        || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| http_get(port, "/metrics"))
        },
        "telemetry listening",
    );
    assert_eq!(code, 200);
    for name in [
        "app_hits 42",
        "containerpilot_events",
        "containerpilot_control_http_requests",
        "process_resident_memory_bytes",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    let (code, body) = http_get(port, "/status");
    assert_eq!(code, 200);
    let compat: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(compat["Services"][0]["Name"], "containerpilot");
    // Always healthy, as in ContainerPilot (its test_telemetry checks this entry).
    assert_eq!(compat["Services"][0]["Status"], "healthy", "{body}");
    assert_eq!(compat["Watches"], serde_json::json!([]));
    // `Version` is what ContainerPilot 3.8 said there; pilot's own comes after the rest.
    assert_eq!(compat["Version"], "3.8.0", "{body}");
    assert_eq!(compat["PilotVersion"], env!("CARGO_PKG_VERSION"), "{body}");
    // The telemetry service registers at its first 5 s heartbeat, then heartbeats.
    let id = format!("containerpilot-{}", hostname());
    wait_for(
        || {
            double
                .check(&format!("service:{id}"))
                .filter(|c| c.status == CheckStatus::Passing)
                .map(|_| ())
        },
        "the containerpilot service registered",
    );
    let service = double.service(&id).unwrap();
    assert_eq!(service.port, i64::from(port));
    // ContainerPilot 3.8 tagged it `3.8.0`; pilot adds its own version as a second tag.
    assert_eq!(
        service.tags,
        [
            "3.8.0".to_string(),
            format!("pilot-{}", env!("CARGO_PKG_VERSION"))
        ]
    );
    // Maintenance takes the service out of Consul but does not change its status.
    let (status, _, stderr) = subcommand(&cfg, &["-maintenance", "enable"]);
    assert_eq!(status, 0, "{stderr}");
    let (_, body) = http_get(port, "/status");
    let compat: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(compat["Services"][0]["Status"], "healthy", "{body}");
    running.signal(libc::SIGTERM);
    running.wait();
    assert!(double.service(&id).is_none(), "deregistered at shutdown");
}

/// A config whose `app` registers a service with the agent at `consul`.
fn service_config(consul: &str, socket: &Path) -> String {
    format!(
        r#"{{ consul: "{consul}", control: {{ socket: "{}" }},
  jobs: [{{ name: "app", exec: ["sleep", "1000"], port: 8080, interfaces: "static:10.0.0.9",
            health: {{ exec: "true", interval: 1, ttl: 5 }} }}] }}"#,
        socket.display()
    )
}

fn passing(double: &BackgroundDouble, check: &str) -> Option<()> {
    double
        .check(check)
        .filter(|c| c.status == CheckStatus::Passing)
        .map(|_| ())
}

#[test]
fn a_reload_that_changes_consul_moves_unchanged_services_to_the_new_agent() {
    let (old, new) = (double(), double());
    let dir = Scratch::new("reload-consul");
    let socket = dir.path("pilot.sock");
    let cfg = dir.write(
        "pilot.json5",
        &service_config(&old.http_addr().unwrap().to_string(), &socket),
    );
    let running = Running::start(
        pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]),
        Mode::Plain,
    );
    let check = format!("service:app-{}", hostname());
    wait_for(|| passing(&old, &check), "registered with the first agent");

    dir.write(
        "pilot.json5",
        &service_config(&new.http_addr().unwrap().to_string(), &socket),
    );
    let (status, _, stderr) = subcommand(&cfg, &["-reload"]);
    assert_eq!(status, 0, "{stderr}");
    wait_for(|| passing(&new, &check), "registered with the new agent");
    assert!(
        old.service(&format!("app-{}", hostname())).is_none(),
        "deregistered from the old agent"
    );
    old.clear_requests();
    std::thread::sleep(Duration::from_millis(2500));
    let heartbeats = old
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/agent/check/"))
        .count();
    assert_eq!(heartbeats, 0, "the old agent still gets TTL updates");
    running.signal(libc::SIGTERM);
    running.wait();
}

#[test]
fn a_job_started_by_a_reload_waits_for_the_new_run_of_its_source() {
    let dir = Scratch::new("reload-replay");
    let socket = dir.path("pilot.sock");
    let jobs = |v: &str| {
        jobs_config(
            &socket,
            &format!(
                r#"{{ name: "setup", exec: ["sh", "-c", "sleep 1; echo setup-done-{v}"] }},
    {{ name: "app", exec: ["sh", "-c", "echo app-{v}; exec sleep 1000"],
      when: {{ once: "exitSuccess", source: "setup" }} }}"#
            ),
        )
    };
    let cfg = dir.write("pilot.json5", &jobs("v1"));
    let mut running = Running::start(
        pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]),
        Mode::Plain,
    );
    running.expect_line("app v1", |l| job_output(l, "app") == Some("app-v1"));

    dir.write("pilot.json5", &jobs("v2"));
    let (status, _, stderr) = subcommand(&cfg, &["-reload"]);
    assert_eq!(status, 0, "{stderr}");
    running.expect_line("app v2", |l| job_output(l, "app") == Some("app-v2"));
    let position = |text: &str| running.seen.iter().position(|l| l.ends_with(text));
    let (setup, app) = (position("setup-done-v2"), position("app-v2"));
    assert!(
        setup.is_some_and(|s| app.is_some_and(|a| s < a)),
        "app v2 started before setup v2 succeeded: {:#?}",
        running.seen
    );
    running.signal(libc::SIGTERM);
    running.wait();
}

#[test]
fn hooks_and_followers_of_a_job_changed_by_a_reload_serve_its_new_run() {
    let dir = Scratch::new("reload-hooks");
    let socket = dir.path("pilot.sock");
    let jobs = |app: &str| {
        jobs_config(
            &socket,
            &format!(
                r#"{{ name: "app", exec: {app} }},
    {{ name: "prestop", exec: ["echo", "prestop-ran"], when: {{ once: "stopping", source: "app" }} }},
    {{ name: "poststop", exec: ["echo", "poststop-ran"], when: {{ once: "stopped", source: "app" }} }},
    {{ name: "follower", exec: ["echo", "follower-ran"], when: {{ each: "exitFailed", source: "app" }} }}"#
            ),
        )
    };
    let cfg = dir.write("pilot.json5", &jobs(r#"["sleep", "1000"]"#));
    let mut running = Running::start(
        pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]),
        Mode::Plain,
    );
    wait_for_pid(&socket, "app");

    // The new app fails once after a second, then stops for good.
    dir.write("pilot.json5", &jobs(r#"["sh", "-c", "sleep 1; exit 3"]"#));
    let (status, _, stderr) = subcommand(&cfg, &["-reload"]);
    assert_eq!(status, 0, "{stderr}");
    // The old app's stop ran both hooks once.
    for hook in ["prestop", "poststop"] {
        running.expect_line("the hook for the old app", |l| {
            job_output(l, hook) == Some(&format!("{hook}-ran"))
        });
    }
    // The new app's failure and stop reach the follower and fresh hooks.
    running.expect_line("the follower, for the new app", |l| {
        job_output(l, "follower") == Some("follower-ran")
    });
    for hook in ["prestop", "poststop"] {
        running.expect_line("the hook for the new app", |l| {
            job_output(l, hook) == Some(&format!("{hook}-ran"))
        });
    }
    let finished = running.wait();
    assert!(
        finished
            .stdout
            .iter()
            .any(|l| l.ends_with(" app exited with error: exit status 3")),
        "{:#?}",
        finished.stdout
    );
    // No main process: 0 although the app failed, as ContainerPilot.
    assert_eq!(code(finished.status), 0, "{}", finished.stderr);
}

#[test]
fn a_reload_to_a_telemetry_port_in_use_is_refused_and_keeps_the_old_server() {
    let dir = Scratch::new("reload-telemetry");
    let socket = dir.path("pilot.sock");
    let on_port = |port: u16| {
        format!(
            r#"{{ consul: "127.0.0.1:1", control: {{ socket: "{}" }},
  jobs: [{{ name: "app", exec: ["sleep", "1000"] }}],
  telemetry: {{ port: {port}, interfaces: ["static:127.0.0.1"] }} }}"#,
            socket.display()
        )
    };
    let old_port = free_port();
    let cfg = dir.write("pilot.json5", &on_port(old_port));
    let running = Running::start(
        pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]),
        Mode::Plain,
    );
    wait_for_pid(&socket, "app");
    wait_for(
        || std::net::TcpStream::connect(("127.0.0.1", old_port)).ok(),
        "telemetry listening",
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    dir.write("pilot.json5", &on_port(taken_port));
    let (status, _, stderr) = subcommand(&cfg, &["-reload"]);
    assert_eq!(status, 1, "the reload is refused: {stderr}");
    assert!(stderr.contains(&taken_port.to_string()), "{stderr}");
    assert_eq!(
        http_get(old_port, "/metrics").0,
        200,
        "the old server runs on"
    );

    // A port that is free works, and the old one is let go.
    let new_port = free_port();
    dir.write("pilot.json5", &on_port(new_port));
    let (status, _, stderr) = subcommand(&cfg, &["-reload"]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(http_get(new_port, "/metrics").0, 200);
    wait_for(
        || {
            std::net::TcpStream::connect(("127.0.0.1", old_port))
                .is_err()
                .then_some(())
        },
        "the old port closed",
    );
    running.signal(libc::SIGTERM);
    running.wait();
}
