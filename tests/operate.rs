//! Operating one job at a time, with the real binary: its stop signal, the user it runs as, a
//! signal sent to it from outside (`pilot -signal`), and the stream of events
//! (`GET /v3/events`, `pilot -events`).

mod common;

use common::*;

/// A config with the given top-level entries, logging at DEBUG so that every event is visible.
/// Consul is not reachable; jobs without a `port` never need it.
fn config(entries: &str) -> String {
    format!("{{\n  consul: \"127.0.0.1:1\",\n  logging: {{ level: \"DEBUG\" }},\n  {entries}\n}}\n")
}

/// A job that says which of TERM, QUIT and INT reached it, and exits.
const TELLS_SIGNAL: &str = "for s in TERM QUIT INT; do trap \"echo got $s; exit 0\" $s; done; echo ready; while :; do sleep 0.05; done";

#[test]
fn a_job_is_stopped_with_its_stop_signal_and_the_others_with_sigterm() {
    for mode in modes() {
        let dir = Scratch::new("stop-signal");
        let cfg = dir.write(
            "pilot.json5",
            &config(&format!(
                r#"jobs: [
    {{ name: "quits", exec: ["sh", "-c", {script:?}], stopSignal: "SIGQUIT" }},
    {{ name: "interrupts", exec: ["sh", "-c", {script:?}], stopSignal: "int" }},
    {{ name: "terms", exec: ["sh", "-c", {script:?}] }},
  ]"#,
                script = TELLS_SIGNAL
            )),
        );
        let mut running = Running::start(
            pilot(mode, ["-config".to_string(), cfg.display().to_string()]),
            mode,
        );
        for job in ["quits", "interrupts", "terms"] {
            running.expect_line("ready", |l| job_output(l, job) == Some("ready"));
        }
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}: {}", finished.stderr);
        for (job, got) in [
            ("quits", "got QUIT"),
            ("interrupts", "got INT"),
            ("terms", "got TERM"),
        ] {
            let said: Vec<&str> = finished
                .stdout
                .iter()
                .filter_map(|l| job_output(l, job))
                .filter(|l| l.starts_with("got "))
                .collect();
            assert_eq!(said, [got], "{mode:?} {job}: {:#?}", finished.stdout);
        }
    }
}

/// Runs a pilot subcommand (`-signal`...) against the config at `cfg`.
fn subcommand(cfg: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["-config", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    let (status, stdout, stderr) = run(pilot(Mode::Plain, all));
    (code(status), stdout, stderr)
}

fn with_socket(socket: &std::path::Path, entries: &str) -> String {
    config(&format!(
        "control: {{ socket: \"{}\" }},\n  {entries}",
        socket.display()
    ))
}

#[test]
fn signal_reaches_one_jobs_group_and_names_what_it_cannot_signal() {
    let dir = Scratch::new("signal-job");
    let socket = dir.path("pilot.sock");
    let cfg = dir.write(
        "pilot.json5",
        &with_socket(
            &socket,
            r#"jobs: [
    { name: "app", exec: ["sh", "-c", "trap 'echo got HUP' HUP; echo ready; while :; do sleep 0.05; done"] },
    { name: "other", exec: ["sh", "-c", "trap 'echo other got HUP' HUP; echo ready; while :; do sleep 0.05; done"] },
    { name: "restarter", restarts: "unlimited", exec: ["sh", "-c", "echo ready; exec sleep 1000"] },
    { name: "done", exec: "true" },
    { name: "twin", exec: ["sh", "-c", "trap 'echo twin got HUP' HUP; echo ready; while :; do sleep 0.05; done"] },
    { name: "twin", exec: ["sh", "-c", "trap 'echo twin got HUP' HUP; echo ready; while :; do sleep 0.05; done"] },
  ]"#,
        ),
    );
    let mut running = Running::start(
        pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]),
        Mode::Plain,
    );
    for job in ["app", "other", "restarter", "twin", "twin"] {
        running.expect_line("ready", |l| job_output(l, job) == Some("ready"));
    }
    running.expect_line("done exited", |l| l.contains("event: {Stopped done}"));

    let (status, _, stderr) = subcommand(&cfg, &["-signal", "app=HUP"]);
    assert_eq!(status, 0, "{stderr}");
    running.expect_line("app got HUP", |l| job_output(l, "app") == Some("got HUP"));
    // Two jobs of one name both run, and both get it.
    let (status, _, stderr) = subcommand(&cfg, &["-signal", "twin=HUP"]);
    assert_eq!(status, 0, "{stderr}");
    for _ in 0..2 {
        running.expect_line("twin got HUP", |l| {
            job_output(l, "twin") == Some("twin got HUP")
        });
    }

    // Several at once, by name or number; a TERM to a job that restarts runs it again.
    let (status, _, stderr) = subcommand(
        &cfg,
        &["-signal", "other=sighup", "-signal", "restarter=15"],
    );
    assert_eq!(status, 0, "{stderr}");
    running.expect_line("other got HUP", |l| {
        job_output(l, "other") == Some("other got HUP")
    });
    running.expect_line("restarter ran again", |l| {
        job_output(l, "restarter") == Some("ready")
    });

    for (arg, message) in [
        ("nope=HUP", "no job named \"nope\""),
        (
            "done=HUP",
            "job \"done\" is not running: no process to send SIGHUP to",
        ),
        ("app=BOGUS", "\"BOGUS\" is not a signal"),
    ] {
        let (status, _, stderr) = subcommand(&cfg, &["-signal", arg]);
        assert_eq!(status, 1, "{arg}: {stderr}");
        assert!(stderr.contains(message), "{arg}: {stderr}");
    }
    let (status, _, stderr) = subcommand(&cfg, &["-signal", "app"]);
    assert_eq!(status, 2, "{stderr}");
    let (code404, _) = control(
        &socket,
        "POST",
        "/v3/signal",
        Some(r#"{"job":"nope","signal":"HUP"}"#),
    );
    let (code409, _) = control(
        &socket,
        "POST",
        "/v3/signal",
        Some(r#"{"job":"done","signal":"HUP"}"#),
    );
    assert_eq!((code404, code409), (404, 409));

    // Nothing else got a HUP.
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    let hups: Vec<&str> = finished
        .stdout
        .iter()
        .filter(|l| l.ends_with("got HUP"))
        .map(String::as_str)
        .collect();
    assert_eq!(hups.len(), 4, "{hups:#?}");
}

#[test]
fn events_stream_every_event_as_a_json_line_until_pilot_stops() {
    let dir = Scratch::new("events");
    let socket = dir.path("pilot.sock");
    let cfg = dir.write(
        "pilot.json5",
        &with_socket(
            &socket,
            r#"jobs: [
    { name: "app", exec: ["sh", "-c", "echo ready; exec sleep 1000"] },
    { name: "hook", exec: "true", when: { source: "app", once: "stopping" } },
  ]"#,
        ),
    );
    let mut running = Running::start(
        pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]),
        Mode::Plain,
    );
    running.expect_line("ready", |l| job_output(l, "app") == Some("ready"));
    let mut stream = Running::start(
        pilot(Mode::Plain, ["-config", cfg.to_str().unwrap(), "-events"]),
        Mode::Plain,
    );
    // The stream is open once the first event after connecting comes through.
    let first = wait_for(
        || {
            // A SIGUSR2 to pilot publishes `Signal SIGUSR2`.
            running.signal(libc::SIGUSR2);
            std::thread::sleep(std::time::Duration::from_millis(50));
            stream.drain().first().cloned()
        },
        "the first streamed event",
    );
    let event: serde_json::Value = serde_json::from_str(&first).expect(&first);
    assert_eq!(event["code"], "Signal", "{first}");
    assert_eq!(event["source"], "SIGUSR2", "{first}");
    assert!(
        event["time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "{first}"
    );
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    assert_eq!(code(finished.status), 0, "{}", finished.stderr);
    let streamed = stream.wait();
    assert_eq!(code(streamed.status), 0, "{}", streamed.stderr);
    let seen: Vec<(String, String)> = streamed
        .stdout
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect(l);
            (
                v["code"].as_str().unwrap().to_string(),
                v["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("Shutdown", "global"),
        ("Stopping", "app"),
        ("Stopped", "hook"),
        ("Stopped", "app"),
    ] {
        assert!(
            seen.iter().any(|(c, s)| (c.as_str(), s.as_str()) == want),
            "{want:?} not in {seen:#?}"
        );
    }
}

#[test]
fn a_stream_client_that_never_reads_is_dropped_and_the_others_lose_nothing() {
    use std::io::{Read, Write};

    let dir = Scratch::new("events-stalled");
    let socket = dir.path("pilot.sock");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    // Enough counters that a few requests publish many thousands of events.
    let metrics: Vec<String> = (0..500)
        .map(|i| format!("{{ namespace: \"t\", name: \"m{i}\", help: \"m\", type: \"counter\" }}"))
        .chain(["{ namespace: \"t\", name: \"last\", help: \"m\", type: \"gauge\" }".to_string()])
        .collect();
    let cfg = dir.write(
        "pilot.json5",
        &with_socket(
            &socket,
            &format!(
                "jobs: [{{ name: \"app\", exec: [\"sh\", \"-c\", \"echo ready; exec sleep 1000\"] }}],\n  \
                 telemetry: {{ port: {port}, interfaces: [\"static:127.0.0.1\"], metrics: [{}] }}",
                metrics.join(",\n")
            ),
        ),
    );
    let mut running = Running::start(
        pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]),
        Mode::Plain,
    );
    running.expect_line("ready", |l| job_output(l, "app") == Some("ready"));
    wait_for(|| socket.exists().then_some(()), "the control socket");

    // A client that asks for the stream and never reads a byte of it.
    let mut stalled = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    stalled
        .write_all(b"GET /v3/events HTTP/1.1\r\nHost: control\r\n\r\n")
        .unwrap();
    // And one that reads.
    let mut reader = Running::start(
        pilot(Mode::Plain, ["-config", cfg.to_str().unwrap(), "-events"]),
        Mode::Plain,
    );
    wait_for(
        || {
            running.signal(libc::SIGUSR2);
            std::thread::sleep(std::time::Duration::from_millis(50));
            (!reader.drain().is_empty()).then_some(())
        },
        "the reading client's stream",
    );

    let all: String = (0..500)
        .map(|i| format!("\"t_m{i}\":1"))
        .collect::<Vec<_>>()
        .join(",");
    let body = format!("{{{all}}}");
    let mut rounds = 0;
    // Until the stalled client is dropped: its socket, pilot's buffers and its queue of 1024
    // events fill up first, however fast the machine is.
    while !running
        .drain()
        .iter()
        .any(|l| l.contains("events: a subscriber fell 1024 events behind and was dropped"))
    {
        let (status, answer) = control(&socket, "POST", "/v3/metric", Some(&body));
        assert_eq!(status, 200, "{answer}");
        rounds += 1;
        // The reading client keeps up: the next round waits for it.
        reader.expect_line("the round's last event", |l| {
            l.contains("\"source\":\"t_m499|1\"")
        });
        assert!(rounds < 400, "the stalled client was never dropped");
    }
    let (status, _) = control(&socket, "POST", "/v3/metric", Some(r#"{"t_last": 7}"#));
    assert_eq!(status, 200);

    // The stalled connection is closed: reading it now ends, after what was in flight.
    stalled
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut sink = Vec::new();
    stalled
        .read_to_end(&mut sink)
        .expect("the stalled client's connection is closed");
    assert!(sink.starts_with(b"HTTP/1.1 200 OK"));

    // The reader got every event, in order, up to the last one.
    reader.expect_line("the last metric event", |l| {
        l.contains("\"source\":\"t_last|7\"")
    });
    let metric_events = reader
        .drain()
        .iter()
        .filter(|l| l.contains("\"code\":\"Metric\"") && l.contains("t_m"))
        .count();
    assert_eq!(metric_events, 500 * rounds);
    // And pilot goes on: it still answers and stops cleanly.
    assert_eq!(control(&socket, "GET", "/v3/ping", None).0, 200);
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    assert_eq!(code(finished.status), 0, "{}", finished.stderr);
    assert_eq!(code(reader.wait().status), 0);
}

#[test]
fn a_job_and_its_check_run_as_their_user_with_its_groups_and_home() {
    if skip_unless_root("changing a child's user") {
        return;
    }
    let dir = Scratch::new("run-as");
    let says = "echo \"$(id -u) $(id -g) $(id -G) $HOME ${USER:-unset}\"";
    let cfg = dir.write(
        "pilot.json5",
        &config(&format!(
            r#"jobs: [
    {{ name: "nobody", exec: ["sh", "-c", {says:?}], user: "nobody" }},
    {{ name: "numbers", exec: ["sh", "-c", {says:?}], user: "4242", group: "4343" }},
    {{ name: "checked", exec: ["sleep", "1000"], user: "nobody",
      health: {{ exec: ["sh", "-c", "echo check is $(id -u)"], interval: 1, ttl: 5 }} }},
    {{ name: "root", exec: ["sh", "-c", {says:?}] }},
  ]"#
        )),
    );
    for mode in modes() {
        let mut running = Running::start(pilot(mode, ["-config", cfg.to_str().unwrap()]), mode);
        let said = |running: &mut Running, job: &str| {
            let line = running.expect_line(job, |l| job_output(l, job).is_some());
            job_output(&line, job).unwrap().to_string()
        };
        assert_eq!(
            said(&mut running, "nobody"),
            "65534 65534 65534 /nonexistent nobody",
            "{mode:?}"
        );
        assert_eq!(
            said(&mut running, "numbers"),
            "4242 4343 4343 / unset",
            "{mode:?}"
        );
        let root = said(&mut running, "root");
        assert!(root.starts_with("0 0 "), "{mode:?}: {root}");
        running.expect_line("the check's output", |l| l.contains("check is 65534"));
        // pilot itself is still root: it can still stop what runs as another user.
        running.signal(libc::SIGTERM);
        let finished = running.wait();
        assert_eq!(code(finished.status), 0, "{mode:?}: {}", finished.stderr);
    }
}

#[test]
fn a_user_the_container_does_not_know_is_a_config_error_with_its_line() {
    let dir = Scratch::new("run-as-unknown");
    let cfg = dir.write(
        "pilot.json5",
        "{\n  consul: \"127.0.0.1:1\",\n  jobs: [{ name: \"app\", exec: \"true\",\n    user: \"no-such-user-here\" }]\n}\n",
    );
    let (status, _, stderr) = run(pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]));
    assert_eq!(code(status), 2, "{stderr}");
    assert!(
        stderr
            .contains("jobs[0] \"app\": user \"no-such-user-here\" is not in /etc/passwd (line 4)"),
        "{stderr}"
    );
}

#[test]
fn stream_clients_that_left_during_a_quiet_spell_give_their_place_back() {
    use std::io::{Read, Write};

    let dir = Scratch::new("events-left");
    let socket = dir.path("pilot.sock");
    let cfg = dir.write(
        "pilot.json5",
        &with_socket(
            &socket,
            r#"jobs: [{ name: "app", exec: ["sleep", "1000"] }]"#,
        ),
    );
    let _running = Running::start(
        pilot(Mode::Plain, ["-config", cfg.to_str().unwrap()]),
        Mode::Plain,
    );
    wait_for(|| socket.exists().then_some(()), "the control socket");
    let open = || {
        let mut client = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        client
            .write_all(b"GET /v3/events HTTP/1.1\r\nHost: control\r\n\r\n")
            .unwrap();
        let mut head = [0u8; 12];
        client.read_exact(&mut head).unwrap();
        (client, String::from_utf8_lossy(&head).into_owned())
    };
    // As many clients as may stream at once, then they all leave while nothing happens.
    let clients: Vec<_> = (0..8).map(|_| open()).collect();
    assert!(clients.iter().all(|(_, head)| head == "HTTP/1.1 200"));
    assert_eq!(
        open().1,
        "HTTP/1.1 503",
        "a ninth is refused while they stream"
    );
    drop(clients);
    // Their places come back without any event: the stream's keep-alive finds them gone.
    wait_for(
        || (open().1 == "HTTP/1.1 200").then_some(()),
        "a stream once the others left",
    );
}
