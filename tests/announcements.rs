//! The daemon says once where it serves: the control socket and the telemetry server each log
//! one `serving at` line (both the servers and the daemon used to log it, so it came twice).

mod common;

use common::*;

#[test]
fn each_server_is_announced_once() {
    let dir = Scratch::new("announcements");
    let socket = dir.path("pilot.sock");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.write(
        "pilot.json5",
        &format!(
            r#"{{
  consul: "127.0.0.1:1",
  control: {{ socket: "{}" }},
  telemetry: {{ port: {port}, interfaces: ["static:127.0.0.1"] }},
  jobs: [{{ name: "hold", exec: ["sleep", "100000"] }}],
}}"#,
            socket.display()
        ),
    );
    let mode = Mode::Plain;
    let mut running = Running::start(pilot(mode, ["-config", cfg.to_str().unwrap()]), mode);
    running.expect_line("the control socket", |l| l.contains("control: serving at"));
    running.expect_line("the telemetry server", |l| {
        l.contains("telemetry: serving at")
    });
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    assert_eq!(code(finished.status), 0, "{}", finished.stderr);
    for what in ["control: serving at", "telemetry: serving at"] {
        let lines: Vec<&String> = finished
            .stdout
            .iter()
            .filter(|l| l.contains(what))
            .collect();
        assert_eq!(lines.len(), 1, "{what}: {lines:#?}");
    }
}
