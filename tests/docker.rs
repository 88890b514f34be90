//! The examples in a real Docker engine, as users run them: the hello-world example with
//! `docker-compose up -d --build` and `docker-compose scale hello=10 world=6`, a `FROM scratch`
//! image with pilot as its init, and the pilot image that other images copy pilot from.
//!
//! There is no image registry here: `scripts/docker-images.sh` makes the base image with
//! debootstrap (once; it is cached) and the images of pilot and of the Consul double, and stages
//! the static binaries. The compose file keeps `hashicorp/consul` for users; the test adds
//! `docker-compose.double.yml`, which swaps in the Consul double. Each run is a compose project of
//! its own (`pilot-e2e-PID`), published on free loopback ports, and is removed even when the test
//! fails; what a killed run left is removed by the next one.
//!
//! Without a Docker engine the tests say they are skipped, and fail in CI (`CI` set), where the
//! engine is part of the machine. Timeouts only keep a broken build from hanging: the figures
//! (scale to passing, scale-down to nginx, `docker stop` to exit, image sizes) are measured by
//! `bench/docker.py`, not asserted.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::skip;
use common::web::{chromium_dom, element_text, get, get_json};
use serde_json::Value;

/// Patience for what builds: the base image (debootstrap), the static binaries, and the
/// example's images (apt-get install nginx and nodejs).
const BUILD_PATIENCE: Duration = Duration::from_secs(30 * 60);
/// Patience for everything else: 17 containers starting on two busy cores, a browser.
const PATIENCE: Duration = Duration::from_secs(300);
/// How long `docker stop` lets pilot shut down before SIGKILL, in these tests: generous, so that
/// a slow machine never turns an orderly stop into a kill. Docker's default is 10 s; pilot takes
/// well under a second (bench/docker.py measures it).
const STOP_PATIENCE: &str = "60";
/// Compose projects of this test are named `pilot-e2e-PID`.
const PROJECT_PREFIX: &str = "pilot-e2e-";
/// Images and containers the scratch tests make carry this label, with the test's pid.
const OWNER_LABEL: &str = "pilot-test-pid";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn example_dir() -> PathBuf {
    repo().join("examples/hello-world")
}

/// `true`, after saying so, when there is no Docker engine (or no docker-compose) to test with.
fn no_engine() -> bool {
    let answers = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !answers("docker", &["version", "--format", "{{.Server.Version}}"]) {
        skip("no Docker engine answers (`docker version` failed)");
        return true;
    }
    if !answers("docker-compose", &["version"]) {
        skip("docker-compose is missing (scripts/deps.sh installs it)");
        return true;
    }
    false
}

/// Runs `cmd` to completion; the patience only keeps a hung command from hanging the test.
fn run(cmd: &mut Command, patience: Duration) -> Output {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    let readers = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .map(|mut stream| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            bytes
        })
    });
    let deadline = Instant::now() + patience;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} did not finish within {patience:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let [stdout, stderr] = readers.map(|r| r.join().unwrap());
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Runs `cmd`, which must succeed; returns its stdout.
fn ok(cmd: &mut Command, patience: Duration) -> String {
    let out = run(cmd, patience);
    assert!(
        out.status.success(),
        "{cmd:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn docker_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    cmd
}

/// `docker ARGS`, which must succeed; its stdout, trimmed.
fn docker(args: &[&str]) -> String {
    ok(&mut docker_cmd(args), PATIENCE).trim().to_string()
}

/// `docker inspect -f FORMAT ID`.
fn inspect(id: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, id])
}

/// A container's log (stdout and stderr, in order of arrival per stream).
fn logs(id: &str) -> String {
    let out = run(&mut docker_cmd(&["logs", id]), PATIENCE);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn poll<T>(patience: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {patience:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Makes the base image (when missing), the static binaries and the pilot and Consul-double
/// images, once per test process, with the script users run.
fn prepare() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let out = run(
            Command::new(repo().join("scripts/docker-images.sh")).current_dir(repo()),
            BUILD_PATIENCE,
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{text}");
        assert!(out.status.success(), "scripts/docker-images.sh: {text}");
    });
}

/// The pid in a name this test gave (`pilot-e2e-PID`, `pilot-scratch-test:PID`), when the process
/// that made it is gone: what it left behind is stale.
fn stale_owner(pid: &str) -> bool {
    pid.parse::<u32>()
        .is_ok_and(|pid| pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists())
}

/// Removes what runs of these tests that were killed (no `Drop` ran) left: compose projects,
/// labelled containers and images.
fn sweep_stale() {
    let lines = |args: &[&str]| -> Vec<String> {
        let out = run(&mut docker_cmd(args), PATIENCE);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let label = "{{.Label \"com.docker.compose.project\"}}";
    let mut projects: BTreeSet<String> = BTreeSet::new();
    projects.extend(lines(&[
        "ps",
        "-a",
        "--filter",
        "label=com.docker.compose.project",
        "--format",
        label,
    ]));
    projects.extend(lines(&[
        "network",
        "ls",
        "--filter",
        "label=com.docker.compose.project",
        "--format",
        label,
    ]));
    projects.extend(
        lines(&["images", "--format", "{{.Repository}}"])
            .into_iter()
            .filter_map(|r| r.rsplit_once('_').map(|(p, _)| p.to_string())),
    );
    for project in projects {
        if let Some(pid) = project.strip_prefix(PROJECT_PREFIX)
            && stale_owner(pid)
        {
            eprintln!("removing what a killed run left: compose project {project}");
            let _ = run(
                &mut Project::compose_for(
                    &project,
                    &[
                        "down",
                        "--volumes",
                        "--remove-orphans",
                        "--rmi",
                        "local",
                        "--timeout",
                        "1",
                    ],
                ),
                PATIENCE,
            );
        }
    }
    let owner_format = format!("{{{{.ID}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}");
    for line in lines(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={OWNER_LABEL}"),
        "--format",
        &owner_format,
    ]) {
        if let Some((id, pid)) = line.split_once(' ')
            && stale_owner(pid)
        {
            let _ = run(&mut docker_cmd(&["rm", "-f", id]), PATIENCE);
        }
    }
    for line in lines(&[
        "images",
        "pilot-scratch-test",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]) {
        if let Some((_, pid)) = line.split_once(':')
            && stale_owner(pid)
        {
            let _ = run(&mut docker_cmd(&["rmi", "-f", &line]), PATIENCE);
        }
    }
}

/// One run of the hello-world example: a compose project of its own, with the Consul double,
/// published on free loopback ports. Dropping it removes its containers, network, volumes and
/// the images it built.
struct Project {
    name: String,
}

/// A container of the project.
#[derive(Clone, Debug)]
struct Instance {
    id: String,
    hostname: String,
    ip: String,
}

impl Project {
    fn start() -> Project {
        sweep_stale();
        Project {
            name: format!("{PROJECT_PREFIX}{}", std::process::id()),
        }
    }

    /// `docker-compose` for `project` with the example's files, as the README runs it on a
    /// machine without a registry.
    fn compose_for(project: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(example_dir())
            .args(["-p", project])
            .args([
                "-f",
                "docker-compose.yml",
                "-f",
                "docker-compose.double.yml",
            ])
            .args(args)
            // Free ports on loopback: nothing else on the machine may hold 80 and 8500.
            .env("NGINX_PORT", "127.0.0.1:0")
            .env("CONSUL_PORT", "127.0.0.1:0");
        cmd
    }

    fn compose(&self, args: &[&str]) -> Command {
        Project::compose_for(&self.name, args)
    }

    fn ok(&self, args: &[&str], patience: Duration) -> String {
        ok(&mut self.compose(args), patience)
    }

    /// The service's running containers.
    fn instances(&self, service: &str) -> Vec<Instance> {
        self.ok(&["ps", "-q", service], PATIENCE)
            .lines()
            .filter(|id| !id.trim().is_empty())
            .filter(|id| inspect(id, "{{.State.Running}}") == "true")
            .map(|id| instance(id.trim()))
            .collect()
    }

    /// Where the service's port is published on the host.
    fn port(&self, service: &str, port: u16) -> SocketAddr {
        let out = self.ok(&["port", service, &port.to_string()], PATIENCE);
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("docker-compose port {service} {port}: {out:?}: {e}"))
    }

    /// The project's containers, networks and volumes that exist, by their labels.
    fn leftovers(&self) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let mut left = Vec::new();
        for (what, args) in [
            ("container", vec!["ps", "-a", "-q", "--filter", &filter]),
            ("network", vec!["network", "ls", "-q", "--filter", &filter]),
            ("volume", vec!["volume", "ls", "-q", "--filter", &filter]),
        ] {
            left.extend(
                docker(&args)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(|id| format!("{what} {id}")),
            );
        }
        left
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // Also after a failure: nothing of the run may stay, the images it built included.
        let _ = run(
            &mut self.compose(&[
                "down",
                "--volumes",
                "--remove-orphans",
                "--rmi",
                "local",
                "--timeout",
                "5",
            ]),
            PATIENCE,
        );
    }
}

fn instance(id: &str) -> Instance {
    let shown = inspect(
        id,
        "{{.Config.Hostname}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    );
    let (hostname, ip) = shown
        .split_once(' ')
        .unwrap_or_else(|| panic!("docker inspect {id}: {shown:?}"));
    Instance {
        id: id.to_string(),
        hostname: hostname.to_string(),
        ip: ip.to_string(),
    }
}

/// The passing instances of a service in Consul: (service ID, address:port).
fn passing(consul: SocketAddr, service: &str) -> Option<BTreeSet<(String, String)>> {
    let answer = get(consul, &format!("/v1/health/service/{service}?passing")).ok()?;
    if answer.status != 200 {
        return None;
    }
    let entries: Value = serde_json::from_str(&answer.body).ok()?;
    Some(
        entries
            .as_array()?
            .iter()
            .map(|e| {
                let s = &e["Service"];
                (
                    s["ID"].as_str().unwrap_or_default().to_string(),
                    format!(
                        "{}:{}",
                        s["Address"].as_str().unwrap_or_default(),
                        s["Port"]
                    ),
                )
            })
            .collect(),
    )
}

/// What Consul should list for these instances of `service` on `port`.
fn registrations(service: &str, port: u16, instances: &[Instance]) -> BTreeSet<(String, String)> {
    instances
        .iter()
        .map(|i| {
            (
                format!("{service}-{}", i.hostname),
                format!("{}:{port}", i.ip),
            )
        })
        .collect()
}

/// The IDs of the services registered with the agent, by service name.
fn agent_services(consul: SocketAddr) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, s) in get_json(consul, "/v1/agent/services")
        .as_object()
        .expect("/v1/agent/services is an object")
    {
        by_name
            .entry(s["Service"].as_str().unwrap_or_default().to_string())
            .or_default()
            .insert(id.clone());
    }
    by_name
}

/// Requests the Consul double received: (method, path, body).
fn consul_requests(consul: SocketAddr) -> Vec<(String, String, String)> {
    get_json(consul, "/_double/requests")
        .as_array()
        .expect("/_double/requests is an array")
        .iter()
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (field("method"), field("path"), field("body"))
        })
        .collect()
}

/// How many times the service ID was registered.
fn registrations_of(consul: SocketAddr, id: &str) -> usize {
    consul_requests(consul)
        .iter()
        .filter(|(m, p, body)| {
            m == "PUT"
                && p.starts_with("/v1/agent/service/register")
                && serde_json::from_str::<Value>(body).is_ok_and(|b| b["ID"] == id)
        })
        .count()
}

/// nginx's upstreams as its `/upstreams` page lists them: `{"hello": {ip:port, ...}, ...}`.
fn upstreams(nginx: SocketAddr) -> Option<BTreeMap<String, BTreeSet<String>>> {
    let answer = get(nginx, "/upstreams").ok()?;
    if answer.status != 200 {
        return None;
    }
    Some(
        answer
            .body
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let name = words.next()?.to_string();
                Some((name, words.map(str::to_string).collect()))
            })
            .collect(),
    )
}

fn addresses(port: u16, instances: &[Instance]) -> BTreeSet<String> {
    instances
        .iter()
        .map(|i| format!("{}:{port}", i.ip))
        .collect()
}

/// Asks nginx for `path` until every one of `hostnames` has answered (X-Served-By), and no more
/// than 20 times each; returns who answered. The body must be `body` every time.
fn answered_by(
    nginx: SocketAddr,
    path: &str,
    body: &str,
    hostnames: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..hostnames.len() * 20 {
        let answer = get(nginx, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
        assert_eq!(answer.body, body, "GET {path}");
        let by = answer
            .headers
            .get("x-served-by")
            .cloned()
            .unwrap_or_else(|| panic!("GET {path}: no X-Served-By header"));
        seen.insert(by);
        if seen.is_superset(hostnames) {
            break;
        }
    }
    seen
}

/// The host's view of a container's PID 1: its pid here.
fn host_pid(id: &str) -> i32 {
    inspect(id, "{{.State.Pid}}").parse().unwrap()
}

fn exe_name(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default()
}

/// The real uid of a process, from /proc.
fn uid(pid: i32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Follows Consul's catalog with blocking queries until Consul goes away; returns the services of
/// its last answer. `started` says when the first answer is in.
fn follow_catalog(consul: SocketAddr, started: mpsc::Sender<()>) -> BTreeSet<String> {
    let mut index = String::from("0");
    let mut last = BTreeSet::new();
    loop {
        // Shorter than `get`'s read timeout: a wait that ends with no change is an answer.
        let Ok(answer) = get(
            consul,
            &format!("/v1/catalog/services?index={index}&wait=20s"),
        ) else {
            return last;
        };
        if answer.status != 200 {
            return last;
        }
        let Ok(services) = serde_json::from_str::<Value>(&answer.body) else {
            return last;
        };
        last = services
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        index = answer
            .headers
            .get("x-consul-index")
            .cloned()
            .unwrap_or_default();
        let _ = started.send(());
    }
}

#[test]
fn the_hello_world_example_scales_in_docker_and_leaves_nothing() {
    if no_engine() {
        return;
    }
    let started = Instant::now();
    prepare();
    let project = Project::start();

    // 1. Up, as users start it (the images built from the example's Dockerfiles), then scaled.
    project.ok(&["up", "-d", "--build"], BUILD_PATIENCE);
    eprintln!("up after {:.0?}", started.elapsed());
    let consul = project.port("consul", 8500);
    let nginx = project.port("nginx", 80);
    project.ok(&["scale", "hello=10", "world=6"], PATIENCE);
    let hello = project.instances("hello");
    let world = project.instances("world");
    assert_eq!((hello.len(), world.len()), (10, 6), "running instances");

    // 2. Every instance passes in Consul, under its container's host name, at its address on the
    //    compose network.
    let want_hello = registrations("hello", 3001, &hello);
    let want_world = registrations("world", 3002, &world);
    poll(PATIENCE, "hello x10 and world x6 passing in Consul", || {
        (passing(consul, "hello")? == want_hello && passing(consul, "world")? == want_world)
            .then_some(())
    });
    eprintln!("16 instances passing after {:.0?}", started.elapsed());

    // pilot is each container's PID 1. The world image is the careful operator's: its USER is
    // not root, its root file system is read-only, and /run (the control socket's) is a tmpfs.
    for inst in hello.iter().chain(&world) {
        let pid = host_pid(&inst.id);
        assert_eq!(exe_name(pid), "pilot", "{}: PID 1 is pilot", inst.hostname);
    }
    for inst in &world {
        let pid = host_pid(&inst.id);
        assert_eq!(
            uid(pid),
            Some(10001),
            "world {}: pilot's uid",
            inst.hostname
        );
        let children = common::children_of(pid);
        assert!(
            !children.is_empty(),
            "world {}: pilot's children",
            inst.hostname
        );
        for child in children {
            assert_eq!(
                uid(child),
                Some(10001),
                "world {}: node's uid",
                inst.hostname
            );
        }
        assert_eq!(inspect(&inst.id, "{{.HostConfig.ReadonlyRootfs}}"), "true");
        let write = run(
            &mut docker_cmd(&["exec", &inst.id, "touch", "/etc/written"]),
            PATIENCE,
        );
        assert!(
            !write.status.success(),
            "world {}: the root file system is writable",
            inst.hostname
        );
    }
    let w = &world[0];
    assert_eq!(
        docker(&[
            "exec",
            &w.id,
            "pilot",
            "-ping",
            "-config",
            "/etc/pilot.json5"
        ]),
        "ok",
        "the control socket answers on the read-only world instance"
    );

    // 3. nginx, through its published port, follows Consul: every instance is an upstream and
    //    answers in turn.
    poll(
        PATIENCE,
        "nginx's upstreams to list hello x10 and world x6",
        || {
            let ups = upstreams(nginx)?;
            (ups.get("hello")? == &addresses(3001, &hello)
                && ups.get("world")? == &addresses(3002, &world))
                .then_some(())
        },
    );
    let hello_hosts: BTreeSet<String> = hello.iter().map(|i| i.hostname.clone()).collect();
    let world_hosts: BTreeSet<String> = world.iter().map(|i| i.hostname.clone()).collect();
    assert_eq!(
        answered_by(nginx, "/hello", "Hello", &hello_hosts),
        hello_hosts
    );
    assert_eq!(
        answered_by(nginx, "/world", "World", &world_hosts),
        world_hosts
    );

    // The page, as a browser shows it once its JavaScript asked both services.
    let dom = chromium_dom(&format!("http://{nginx}/"), PATIENCE);
    assert_eq!(
        element_text(&dom, "greeting").as_deref(),
        Some("Hello World"),
        "the page's greeting; DOM: {dom}"
    );
    let served = element_text(&dom, "served").unwrap_or_default();
    let (by_hello, by_world) = served
        .strip_prefix("served by ")
        .and_then(|s| s.split_once(" and "))
        .unwrap_or_else(|| panic!("the page names who served it: {served:?}"));
    assert!(
        hello_hosts.contains(by_hello) && world_hosts.contains(by_world),
        "{served:?}"
    );

    // 4. scale hello=3: the stopped instances deregistered themselves on the way out, so Consul
    //    lists the 3 left as soon as `scale` returns (no TTL lapsed), and nginx follows.
    // `--timeout` is patience: a pilot that took longer than Docker's 10 s would be SIGKILLed
    // and never deregister; pilot takes well under a second (bench/docker.py).
    project.ok(&["scale", "--timeout", STOP_PATIENCE, "hello=3"], PATIENCE);
    let kept = project.instances("hello");
    assert_eq!(kept.len(), 3);
    let kept_ids: BTreeSet<String> = kept
        .iter()
        .map(|i| format!("hello-{}", i.hostname))
        .collect();
    assert_eq!(
        agent_services(consul)
            .get("hello")
            .cloned()
            .unwrap_or_default(),
        kept_ids,
        "Consul's hello services right after scale hello=3"
    );
    let requests = consul_requests(consul);
    for gone in hello.iter().filter(|i| !kept.iter().any(|k| k.id == i.id)) {
        let path = format!("/v1/agent/service/deregister/hello-{}", gone.hostname);
        assert!(
            requests
                .iter()
                .any(|(m, p, _)| m == "PUT" && p.starts_with(&path)),
            "hello {} deregistered itself",
            gone.hostname
        );
    }
    poll(
        PATIENCE,
        "nginx's upstreams to list the 3 hello instances left",
        || (upstreams(nginx)?.get("hello")? == &addresses(3001, &kept)).then_some(()),
    );
    let kept_hosts: BTreeSet<String> = kept.iter().map(|i| i.hostname.clone()).collect();
    let mut after = BTreeSet::new();
    for _ in 0..12 {
        let answer = get(nginx, "/hello").unwrap();
        assert_eq!(answer.status, 200);
        after.insert(
            answer
                .headers
                .get("x-served-by")
                .cloned()
                .unwrap_or_default(),
        );
    }
    assert_eq!(
        after, kept_hosts,
        "/hello is answered by the 3 instances left"
    );

    // 5. docker stop: SIGTERM to pilot, which deregisters, stops node and exits with node's
    //    status (the main job's; node exits 0 on SIGTERM): 0, not 137 (SIGKILL).
    let stopped = &world[1];
    docker(&["stop", "--time", STOP_PATIENCE, &stopped.id]);
    assert_eq!(
        inspect(&stopped.id, "{{.State.ExitCode}}"),
        "0",
        "docker stop's exit status"
    );
    assert!(logs(&stopped.id).contains("shutting down (SIGTERM)"));
    assert!(
        !agent_services(consul)["world"].contains(&format!("world-{}", stopped.hostname)),
        "the stopped world instance left Consul"
    );

    // 6. docker kill --signal HUP reaches pilot, whose render-on-sighup job runs.
    let front = project.instances("nginx").remove(0);
    assert!(!logs(&front.id).contains("render-on-sighup"));
    docker(&["kill", "--signal", "HUP", &front.id]);
    poll(PATIENCE, "the SIGHUP job's output in nginx's log", || {
        logs(&front.id)
            .lines()
            .any(|l| l.contains("render-on-sighup") && l.contains("pilot: /etc/nginx/nginx.conf"))
            .then_some(())
    });

    // 7. docker restart after a SIGKILL: the killed pilot left its control socket in /run; the
    //    new one replaces it and registers again.
    let victim = &kept[0];
    let id = format!("hello-{}", victim.hostname);
    docker(&["kill", &victim.id]);
    assert_eq!(inspect(&victim.id, "{{.State.ExitCode}}"), "137");
    let diff = docker(&["diff", &victim.id]);
    assert!(
        diff.lines().any(|l| l == "A /run/containerpilot.socket"),
        "the killed pilot's socket file is left: {diff}"
    );
    let registered = registrations_of(consul, &id);
    docker(&["restart", "--time", STOP_PATIENCE, &victim.id]);
    let victim = instance(&victim.id);
    poll(
        PATIENCE,
        "the restarted hello instance to pass in Consul again",
        || {
            (registrations_of(consul, &id) > registered
                && passing(consul, "hello")?.contains(&(id.clone(), format!("{}:3001", victim.ip))))
            .then_some(())
        },
    );
    assert_eq!(
        docker(&[
            "exec",
            &victim.id,
            "pilot",
            "-ping",
            "-config",
            "/etc/pilot.json5"
        ]),
        "ok"
    );
    // And a plain restart of the read-only, non-root world instance: it leaves Consul on stop
    // and comes back.
    let again = &world[2];
    let id = format!("world-{}", again.hostname);
    let registered = registrations_of(consul, &id);
    docker(&["restart", "--time", STOP_PATIENCE, &again.id]);
    let again = instance(&again.id);
    poll(
        PATIENCE,
        "the restarted world instance to pass in Consul again",
        || {
            (registrations_of(consul, &id) > registered
                && passing(consul, "world")?.contains(&(id.clone(), format!("{}:3002", again.ip))))
            .then_some(())
        },
    );

    // 8. docker-compose down: every service leaves Consul before Consul stops (followed with
    //    blocking queries until it is gone), and no container, network or volume is left.
    let (tx, first) = mpsc::channel();
    let follower = thread::spawn(move || follow_catalog(consul, tx));
    first
        .recv_timeout(PATIENCE)
        .expect("Consul's catalog answers");
    project.ok(&["down", "--timeout", STOP_PATIENCE], PATIENCE);
    let last = follower.join().unwrap();
    assert!(
        last.iter().all(|s| s == "consul"),
        "services in Consul's last answer before it stopped: {last:?}"
    );
    assert_eq!(
        project.leftovers(),
        Vec::<String>::new(),
        "left after docker-compose down"
    );
    eprintln!("the whole test took {:.0?}", started.elapsed());
}

/// A scratch test's image and containers: removed on drop, by the label and tag they carry.
struct Owned {
    image: String,
}

impl Owned {
    fn new() -> Owned {
        sweep_stale();
        Owned {
            image: format!("pilot-scratch-test:{}", std::process::id()),
        }
    }

    fn label(&self) -> String {
        format!("{OWNER_LABEL}={}", std::process::id())
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let filter = format!("label={}", self.label());
        let out = run(
            &mut docker_cmd(&["ps", "-a", "-q", "--filter", &filter]),
            PATIENCE,
        );
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = run(&mut docker_cmd(&["rm", "-f", id]), PATIENCE);
        }
        let _ = run(&mut docker_cmd(&["rmi", "-f", &self.image]), PATIENCE);
    }
}

/// The files of an image, as a container of it shows them, less those Docker itself puts in
/// every container (mount points and its marker).
fn image_files(image: &str, label: &str) -> BTreeSet<String> {
    let id = docker(&["create", "--label", label, image]);
    let out = ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("docker export {id} | tar -t")),
        PATIENCE,
    );
    docker(&["rm", &id]);
    let docker_own = [
        ".dockerenv",
        "dev/console",
        "etc/hostname",
        "etc/hosts",
        "etc/mtab",
        "etc/resolv.conf",
    ];
    out.lines()
        .filter(|l| !l.ends_with('/') && !docker_own.contains(l))
        .map(str::to_string)
        .collect()
}

/// Waits for a line of the container's log that contains `needle`, and returns it.
fn log_line(id: &str, needle: &str) -> String {
    poll(PATIENCE, &format!("{needle:?} in the log of {id}"), || {
        logs(id)
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_string)
    })
}

#[test]
fn a_scratch_image_holding_only_pilot_and_a_static_program_runs_it_as_init() {
    if no_engine() {
        return;
    }
    prepare();
    let owned = Owned::new();
    let label = owned.label();
    // examples/scratch: FROM scratch, pilot copied from the pilot image, app.c built static;
    // ENTRYPOINT ["pilot", "--", "/app"].
    docker(&[
        "build",
        "--quiet",
        "--label",
        &label,
        "-t",
        &owned.image,
        repo().join("examples/scratch").to_str().unwrap(),
    ]);
    assert_eq!(
        image_files(&owned.image, &label),
        BTreeSet::from(["app".to_string(), "usr/local/bin/pilot".to_string()]),
        "the image holds pilot and the program, nothing else"
    );

    // As a careful operator runs it: a user that is not root, a read-only root file system.
    let id = docker(&[
        "run",
        "-d",
        "--label",
        &label,
        "--user",
        "65534:65534",
        "--read-only",
        &owned.image,
    ]);
    let started = log_line(&id, "app: pid");
    assert!(
        started.ends_with("parent 1, uid 65534"),
        "the program is pilot's child, as the given user: {started}"
    );
    log_line(&id, "app: ready");
    assert_eq!(exe_name(host_pid(&id)), "pilot", "PID 1 is pilot");
    // Signals sent to the container reach the program, forwarded by pilot (pid 1).
    for signal in ["USR1", "HUP"] {
        docker(&["kill", "--signal", signal, &id]);
        log_line(&id, &format!("app: got SIG{signal} from pid 1"));
    }
    // docker stop: SIGTERM, forwarded; the program exits 0 and so does pilot.
    docker(&["stop", "--time", STOP_PATIENCE, &id]);
    log_line(&id, "app: got SIGTERM from pid 1");
    assert_eq!(inspect(&id, "{{.State.ExitCode}}"), "0");

    // The program's exit status is the container's, a signal death as 128+N.
    let status = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--label", &label, &owned.image];
        all.extend_from_slice(args);
        run(&mut docker_cmd(&all), PATIENCE).status.code()
    };
    assert_eq!(status(&["exit", "3"]), Some(3));
    assert_eq!(status(&["kill", "10"]), Some(128 + 10), "killed by SIGUSR1");
    let missing = run(
        &mut docker_cmd(&[
            "run",
            "--rm",
            "--label",
            &label,
            "--entrypoint",
            "pilot",
            &owned.image,
            "--",
            "/nonexistent",
        ]),
        PATIENCE,
    );
    assert_eq!(missing.status.code(), Some(127), "a missing program");

    // Orphans re-parented to PID 1 are reaped: the program waits until every one of its 100
    // orphaned grandchildren is gone, which only a reap makes them.
    let id = docker(&[
        "run",
        "-d",
        "--label",
        &label,
        &owned.image,
        "orphans",
        "100",
    ]);
    log_line(&id, "app: 100 orphans reaped by the init");
    log_line(&id, "app: ready");
    docker(&["stop", "--time", STOP_PATIENCE, &id]);
    assert_eq!(inspect(&id, "{{.State.ExitCode}}"), "0");
}

#[test]
fn the_pilot_image_holds_only_the_static_binary() {
    if no_engine() {
        return;
    }
    prepare();
    let owned = Owned::new();
    let label = owned.label();
    assert_eq!(
        image_files("pilot:latest", &label),
        BTreeSet::from(["usr/local/bin/pilot".to_string()])
    );
    let version = docker(&["run", "--rm", "--label", &label, "pilot:latest", "-version"]);
    assert!(
        version.starts_with(&format!("Version: {}\n", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    // The binary is the static release build that scripts/docker-images.sh staged.
    let built = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target"))
        .join("x86_64-unknown-linux-musl/release/pilot");
    let id = docker(&["create", "--label", &label, "pilot:latest"]);
    let copy = common::Scratch::new("pilot-image");
    docker(&[
        "cp",
        &format!("{id}:/usr/local/bin/pilot"),
        copy.path("pilot").to_str().unwrap(),
    ]);
    docker(&["rm", &id]);
    assert!(
        std::fs::read(copy.path("pilot")).unwrap() == std::fs::read(&built).unwrap(),
        "the image's pilot is {}",
        built.display()
    );
}
