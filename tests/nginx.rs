//! The nginx pattern end to end, with a real nginx (Debian's package; `scripts/deps.sh`
//! installs it): pilot watches `backend`; a preStart job renders nginx's config with
//! `pilot -render`, nginx runs in the foreground as a job, and an onChange job re-renders the
//! config and runs `nginx -s reload` on every `watch.backend` `changed`. The backends are real
//! HTTP servers that answer their own name, registered in the Consul double with TTL checks.
//! Requests through nginx must reach exactly the passing instances as they come and go, without
//! restarting nginx.

mod common;
mod watch_support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use consul_double::{BackgroundDouble, CheckStatus};
use watch_support::*;

/// nginx, which the test needs and never installs.
fn nginx_bin() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx is not installed: scripts/deps.sh installs Debian's nginx package")
}

/// A backend process answering `name`; killed when dropped.
struct Backend {
    name: &'static str,
    port: u16,
    child: Child,
}

impl Backend {
    fn start(name: &'static str) -> Backend {
        let mut child = Command::new("python3")
            .arg(fixture("named_http.py"))
            .arg(name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a python backend");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the backend's port");
        Backend { name, port, child }
    }

    fn register(&self, double: &BackgroundDouble) {
        register(
            double,
            &Inst::new(self.name, "backend", "127.0.0.1", self.port),
        );
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops the nginx of a scratch directory, should a failing test leave it behind (pilot stops it
/// when the test gets that far; killed by a panicking test, it could not).
struct StopNginx(String);

impl Drop for StopNginx {
    fn drop(&mut self) {
        for p in processes() {
            if p.cmdline.starts_with("nginx: master process") && p.cmdline.contains(&self.0) {
                // SAFETY: kill takes plain integers.
                unsafe { libc::kill(p.pid, libc::SIGTERM) };
            }
        }
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One request through nginx: the backend's name, or the status when it is not 200.
fn get(port: u16) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    let status = answer.split_whitespace().nth(1).unwrap_or("none");
    if status != "200" {
        return Err(format!("status {status}"));
    }
    let (_, body) = answer.split_once("\r\n\r\n").unwrap_or_default();
    Ok(body.trim().to_string())
}

/// What `n` requests through nginx reached: the names, and whether any failed.
fn sample(port: u16, n: usize) -> (BTreeSet<String>, Vec<String>) {
    let mut names = BTreeSet::new();
    let mut errors = Vec::new();
    for _ in 0..n {
        match get(port) {
            Ok(name) => {
                names.insert(name);
            }
            Err(e) => errors.push(e),
        }
    }
    (names, errors)
}

/// Whether nginx (its master at `master`) is between reloads: it has its one worker
/// (`worker_processes 1`) and no other. During a reload the old worker keeps answering with the
/// old upstreams for a moment beside the new one.
fn settled(master: i32) -> bool {
    let workers: Vec<String> = processes()
        .into_iter()
        .filter(|p| p.ppid == master && p.state != 'Z')
        .map(|p| p.cmdline)
        .collect();
    workers.len() == 1 && workers[0] == "nginx: worker process"
}

/// Waits until requests through nginx reach exactly `want` (all failing with 502 when `want`
/// is empty) while no reload is under way, then checks that a second round of requests agrees.
fn expect_backends(port: u16, master: i32, want: &[&str]) {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    let rounds = 4 * want.len().max(1) + 2;
    let converged = |(names, errors): &(BTreeSet<String>, Vec<String>)| {
        if want.is_empty() {
            names.is_empty() && errors.iter().all(|e| e == "status 502")
        } else {
            *names == want && errors.is_empty()
        }
    };
    wait_for(
        || (settled(master) && converged(&sample(port, rounds)) && settled(master)).then_some(()),
        &format!("nginx to reach exactly {want:?}"),
    );
    let again = sample(port, rounds);
    assert!(
        converged(&again),
        "after converging on {want:?}, nginx reached {again:?}"
    );
}

fn template(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        r#"# rendered by pilot -render
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp-body;
  proxy_temp_path {d}/tmp-proxy;
  fastcgi_temp_path {d}/tmp-fastcgi;
  uwsgi_temp_path {d}/tmp-uwsgi;
  scgi_temp_path {d}/tmp-scgi;
  upstream backend {{
{{{{- range service "backend" }}}}
    server {{{{ .Address }}}}:{{{{ .Port }}}}; # {{{{ .ID }}}}
{{{{- else }}}}
    server 127.0.0.1:1 down; # no instance passes
{{{{- end }}}}
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://backend; }}
    location = /health {{ return 200 "ok\n"; }}
  }}
}}
"#
    )
}

#[test]
fn nginx_upstreams_follow_the_instances_as_they_come_and_go() {
    let nginx = nginx_bin();
    let double = double();
    let dir = Scratch::new("nginx");
    let _stop = StopNginx(dir.dir.display().to_string());
    let port = free_port();
    let tmpl = dir.write("nginx.conf.ctmpl", &template(&dir.dir, port));
    let conf = dir.path("nginx.conf");
    let socket = dir.path("pilot.sock");
    let cfg = dir.path("pilot.json5");
    let nginx_args = format!(
        r#""{}", "-p", "{d}", "-c", "{c}", "-e", "{d}/error.log""#,
        nginx.display(),
        d = dir.dir.display(),
        c = conf.display()
    );
    let reload = format!(
        "{} -p {d} -c {c} -e {d}/error.log -s reload",
        nginx.display(),
        d = dir.dir.display(),
        c = conf.display()
    );
    let jobs = format!(
        r#"{{ name: "preStart", exec: ["{pilot}", "-config", "{cfg}", "-render", "{t}:{c}"] }},
    {{ name: "nginx", exec: [{nginx_args}, "-g", "daemon off;"],
      when: {{ source: "preStart", once: "exitSuccess" }},
      health: {{ http: "http://127.0.0.1:{port}/health", interval: 1, ttl: 5 }} }},
    {{ name: "nginx-up", exec: "{reload}", when: {{ source: "nginx", once: "healthy" }} }},
    {{ name: "onChange-backend", exec: ["{pilot}", "-config", "{cfg}", "-render", "{t}:{c}:{reload}"],
      when: {{ source: "watch.backend", each: "changed" }} }},"#,
        pilot = pilot_bin(),
        cfg = cfg.display(),
        t = tmpl.display(),
        c = conf.display(),
    );
    std::fs::write(
        &cfg,
        pilot_config(
            &address(&double),
            &socket,
            &jobs,
            r#"{ name: "backend", interval: 5 }"#,
        ),
    )
    .unwrap();

    let a = Backend::start("a");
    let b = Backend::start("b");
    let c = Backend::start("c");
    // One instance is there before pilot starts.
    a.register(&double);
    let mode = Mode::Plain;
    let mut running = Running::start(pilot(mode, ["-config", cfg.to_str().unwrap()]), mode);
    let started = running.expect_line("nginx started", |l| l.contains(" nginx started with pid "));
    let master: i32 = started.rsplit(' ').next().unwrap().parse().unwrap();
    expect_backends(port, master, &["a"]);

    b.register(&double);
    c.register(&double);
    expect_backends(port, master, &["a", "b", "c"]);
    let text = std::fs::read_to_string(&conf).unwrap();
    for backend in [&a, &b, &c] {
        let line = format!("server 127.0.0.1:{}; # {}", backend.port, backend.name);
        assert!(text.contains(&line), "{line:?} in {text}");
    }

    deregister(&double, "a");
    expect_backends(port, master, &["b", "c"]);

    // A failing check takes an instance out although its process still answers.
    set_check(&double, "c", CheckStatus::Critical, "down for the test");
    expect_backends(port, master, &["b"]);

    deregister(&double, "b");
    expect_backends(port, master, &[]);
    assert!(
        std::fs::read_to_string(&conf)
            .unwrap()
            .contains("server 127.0.0.1:1 down; # no instance passes")
    );

    a.register(&double);
    set_check(&double, "c", CheckStatus::Passing, "back");
    expect_backends(port, master, &["a", "c"]);

    // The same nginx all along: reloaded, never restarted.
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    assert_eq!(code(finished.status), 0, "{}", finished.stderr);
    let starts = finished
        .stdout
        .iter()
        .filter(|l| l.contains(" nginx started with pid "))
        .count();
    assert_eq!(starts, 1, "nginx {master} started once");
    let reloads = finished
        .stdout
        .iter()
        .filter(|l| l.contains("and ran ") && l.contains("-s reload"))
        .count();
    assert!(reloads >= 5, "nginx was reloaded on each change: {reloads}");
    let left: Vec<String> = processes()
        .into_iter()
        .filter(|p| p.state != 'Z' && p.cmdline.contains("nginx"))
        .filter(|p| p.cmdline.contains(dir.dir.to_str().unwrap()))
        .map(|p| p.cmdline)
        .collect();
    assert!(left.is_empty(), "no nginx left: {left:?}");
}
