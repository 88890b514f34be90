//! `pilot -render TEMPLATE:DEST[:COMMAND]` with the real binary, against a running pilot whose
//! watches follow the Consul double: the text for no, one and many instances, atomic replacement
//! that keeps the file's mode, COMMAND run only when DEST changed, a clear message and status 1
//! for each failure, renders serialised per directory, and the hook pattern (render on
//! `watch.<name>` `changed`) keeping a file current as instances come and go, or as KV keys
//! change.

mod common;
mod watch_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use consul_double::BackgroundDouble;
use watch_support::*;

const UPSTREAM: &str = r#"upstream hello {
{{- range service "hello" }}
  server {{ .Address }}:{{ .Port }}; # {{ .ID }}
{{- else }}
  server 127.0.0.1:1 down;
{{- end }}
}
"#;

/// A running pilot that watches `hello` (and `world` for the blue tag), with a scratch
/// directory for templates and outputs.
struct Setup {
    double: BackgroundDouble,
    running: Running,
    cfg: PathBuf,
    socket: PathBuf,
    dir: Scratch,
}

impl Setup {
    /// `jobs` may name the config file as `@CFG@` (hooks that run `pilot -config ... -render`).
    fn start(name: &str, jobs: &str) -> Setup {
        Setup::start_with_watches(name, jobs, "")
    }

    /// With `watches` besides `hello` and `world`.
    fn start_with_watches(name: &str, jobs: &str, watches: &str) -> Setup {
        let double = double();
        let dir = Scratch::new(name);
        let socket = dir.path("pilot.sock");
        let cfg = dir.path("pilot.json5");
        let cfg = dir.write(
            "pilot.json5",
            &pilot_config(
                &address(&double),
                &socket,
                &jobs.replace("@CFG@", cfg.to_str().unwrap()),
                &format!(
                    r#"{{ name: "hello", interval: 5 }}, {{ name: "world", tag: "blue", interval: 5 }}, {watches}"#
                ),
            ),
        );
        let mode = Mode::Plain;
        let running = Running::start(pilot(mode, ["-config", cfg.to_str().unwrap()]), mode);
        let setup = Setup {
            double,
            running,
            cfg,
            socket,
            dir,
        };
        wait_for_instances(&setup.socket, "hello", None, &[]);
        setup
    }

    /// `pilot -config CFG -render SPEC...`
    fn render_cmd(&self, specs: &[&str]) -> Command {
        let mut cmd = Command::new(pilot_bin());
        cmd.arg("-config").arg(&self.cfg);
        for spec in specs {
            cmd.arg("-render").arg(spec);
        }
        cmd
    }

    /// Runs `-render` and returns its exit code, stdout and stderr.
    fn render(&self, specs: &[&str]) -> (i32, String, String) {
        let (status, stdout, stderr) = run(self.render_cmd(specs));
        (code(status), stdout, stderr)
    }

    fn spec(&self, template: &Path, dest: &Path, command: Option<&str>) -> String {
        match command {
            Some(command) => format!("{}:{}:{command}", template.display(), dest.display()),
            None => format!("{}:{}", template.display(), dest.display()),
        }
    }
}

fn hello(id: &'static str, address: &'static str, port: u16) -> Inst<'static> {
    Inst::new(id, "hello", address, port)
}

#[test]
fn renders_no_one_and_many_instances() {
    let setup = Setup::start("render-counts", "");
    let template = setup.dir.write("upstream.ctmpl", UPSTREAM);
    let dest = setup.dir.path("upstream.conf");
    let spec = setup.spec(&template, &dest, None);

    let (status, stdout, stderr) = setup.render(&[&spec]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout, format!("pilot: wrote {}\n", dest.display()));
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "upstream hello {\n  server 127.0.0.1:1 down;\n}\n"
    );

    register(&setup.double, &hello("hello-1", "10.0.0.1", 8080));
    wait_for_instances(&setup.socket, "hello", None, &["hello-1"]);
    assert_eq!(setup.render(&[&spec]).0, 0);
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "upstream hello {\n  server 10.0.0.1:8080; # hello-1\n}\n"
    );

    // Twelve more, registered out of order: the text lists them sorted by ID.
    let mut ids = vec!["hello-1".to_string()];
    for i in [7, 3, 12, 9, 2, 11, 5, 8, 4, 10, 6, 13] {
        let id: &'static str = Box::leak(format!("hello-{i:02}").into_boxed_str());
        let address: &'static str = Box::leak(format!("10.0.1.{i}").into_boxed_str());
        register(&setup.double, &hello(id, address, 8000 + i));
        ids.push(id.to_string());
    }
    ids.sort();
    let want: Vec<&str> = ids.iter().map(String::as_str).collect();
    wait_for_instances(&setup.socket, "hello", None, &want);
    assert_eq!(setup.render(&[&spec]).0, 0);
    let mut text = String::from("upstream hello {\n");
    for id in &ids {
        if id == "hello-1" {
            text.push_str("  server 10.0.0.1:8080; # hello-1\n");
        } else {
            let i: u16 = id.trim_start_matches("hello-").parse().unwrap();
            text.push_str(&format!("  server 10.0.1.{i}:{}; # {id}\n", 8000 + i));
        }
    }
    text.push_str("}\n");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), text);
}

#[test]
fn every_field_the_environment_and_the_config_functions_are_in_templates() {
    let setup = Setup::start("render-fields", "");
    register(
        &setup.double,
        &Inst::new("world-1", "world", "10.0.0.5", 9000)
            .tags(&["blue", "v2"])
            .meta(&[("zone", "eu-1")]),
    );
    // Not blue: the blue watch leaves it out.
    register(
        &setup.double,
        &Inst::new("world-2", "world", "10.0.0.6", 9000).tags(&["green"]),
    );
    wait_for_instances(&setup.socket, "world", Some("blue"), &["world-1"]);
    let template = setup.dir.write(
        "fields.ctmpl",
        r#"{{ range service "world" "blue" }}{{ .ID }} {{ .Node }} {{ .Name }} {{ .Address }}:{{ .Port }} [{{ join "," .Tags }}] {{ .Meta.zone }}{{ end }}
{{ env "SITE" }} {{ .SITE }} {{ .MISSING | default "fallback" }} {{ len (service "hello") }}
"#,
    );
    let dest = setup.dir.path("fields.txt");
    let mut cmd = setup.render_cmd(&[&setup.spec(&template, &dest, None)]);
    cmd.env("SITE", "example.org");
    let (status, _, stderr) = run(cmd);
    assert_eq!(code(status), 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "world-1 NODE world 10.0.0.5:9000 [blue,v2] eu-1\nexample.org example.org fallback 0\n"
    );
}

#[test]
fn dest_is_replaced_atomically_keeps_its_mode_and_command_runs_only_on_change() {
    let setup = Setup::start("render-command", "");
    let template = setup.dir.write("upstream.ctmpl", UPSTREAM);
    let dest = setup.dir.path("upstream.conf");
    let count = setup.dir.path("count");
    let command = format!("sh -c 'echo ran >> {}'", count.display());
    let spec = setup.spec(&template, &dest, Some(&command));
    let runs = || {
        std::fs::read_to_string(&count)
            .unwrap_or_default()
            .lines()
            .count()
    };

    let (status, stdout, stderr) = setup.render(&[&spec]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(
        stdout,
        format!("pilot: wrote {} and ran {command:?}\n", dest.display())
    );
    assert_eq!(runs(), 1);

    let (status, stdout, _) = setup.render(&[&spec]);
    assert_eq!(status, 0);
    assert_eq!(stdout, format!("pilot: {} is unchanged\n", dest.display()));
    assert_eq!(runs(), 1, "no change, no command");

    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o640)).unwrap();
    let inode = std::fs::metadata(&dest).unwrap().ino();
    register(&setup.double, &hello("hello-1", "10.0.0.1", 8080));
    wait_for_instances(&setup.socket, "hello", None, &["hello-1"]);
    assert_eq!(setup.render(&[&spec]).0, 0);
    assert_eq!(runs(), 2, "changed: the command runs");
    let meta = std::fs::metadata(&dest).unwrap();
    assert_ne!(meta.ino(), inode, "a new file renamed over the old one");
    assert_eq!(meta.permissions().mode() & 0o777, 0o640, "the mode is kept");
    assert!(
        std::fs::read_to_string(&dest)
            .unwrap()
            .contains("server 10.0.0.1:8080;")
    );
    let mut names: Vec<String> = std::fs::read_dir(&setup.dir.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "count",
            "pilot.json5",
            "pilot.sock",
            "upstream.conf",
            "upstream.ctmpl"
        ],
        "no temporary file is left"
    );
}

#[test]
fn several_targets_in_one_run() {
    let setup = Setup::start("render-several", "");
    register(&setup.double, &hello("hello-1", "10.0.0.1", 8080));
    wait_for_instances(&setup.socket, "hello", None, &["hello-1"]);
    let a = setup.dir.write(
        "a.ctmpl",
        "{{ range service \"hello\" }}{{ .ID }}{{ end }}\n",
    );
    let b = setup.dir.write(
        "b.ctmpl",
        "{{ range service \"hello\" }}{{ .Address }}{{ end }}\n",
    );
    let (status, stdout, stderr) = setup.render(&[
        &setup.spec(&a, &setup.dir.path("a.txt"), None),
        &setup.spec(&b, &setup.dir.path("b.txt"), Some("true")),
    ]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert_eq!(
        std::fs::read_to_string(setup.dir.path("a.txt")).unwrap(),
        "hello-1\n"
    );
    assert_eq!(
        std::fs::read_to_string(setup.dir.path("b.txt")).unwrap(),
        "10.0.0.1\n"
    );
}

/// Every template is parsed before any is rendered: a broken second template stops the first
/// one from being written (and its command from running), and both broken ones are reported.
#[test]
fn a_broken_template_among_several_writes_nothing() {
    let setup = Setup::start("render-several-broken", "");
    let good = setup.dir.write(
        "good.ctmpl",
        "{{ range service \"hello\" }}{{ .ID }}{{ end }}\n",
    );
    let unclosed = setup.dir.write("unclosed.ctmpl", "a\n{{ if .HOME }} b\n");
    let stray = setup.dir.write("stray.ctmpl", "a\n{{ end }}\n");
    let marker = setup.dir.path("command-ran");
    let command = format!("touch {}", marker.display());
    let first = setup.dir.path("first.txt");
    let (status, stdout, stderr) = setup.render(&[
        &setup.spec(&good, &first, Some(&command)),
        &setup.spec(&unclosed, &setup.dir.path("second.txt"), None),
        &setup.spec(&stray, &setup.dir.path("third.txt"), None),
    ]);
    assert_eq!(status, 1, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("unclosed.ctmpl: template: parse error at line:col [3:1]: unexpected EOF"),
        "{stderr}"
    );
    assert!(
        stderr.contains("stray.ctmpl: template: parse error at line:col [2:4]: unexpected {{end}}"),
        "{stderr}"
    );
    assert!(!first.exists(), "the first DEST is not written");
    assert!(!marker.exists(), "no command ran");
}

#[test]
fn each_failure_exits_1_with_a_clear_message() {
    let setup = Setup::start("render-failures", "");
    let dest = setup.dir.path("out.txt");
    let check = |spec: String, want: &str| {
        let (status, _, stderr) = setup.render(&[&spec]);
        assert_eq!(status, 1, "{spec}: {stderr}");
        assert!(stderr.contains(want), "{spec}: {stderr:?} lacks {want:?}");
    };

    let unknown = setup
        .dir
        .write("unknown.ctmpl", "{{ range service \"nope\" }}{{ end }}");
    check(
        setup.spec(&unknown, &dest, None),
        "service \"nope\": no watch follows it (watches: hello, world (tag blue))",
    );
    let broken = setup
        .dir
        .write("broken.ctmpl", "{{ range service \"hello\" }");
    check(
        setup.spec(&broken, &dest, None),
        "template: parse error at line:col [1:26]: bad character U+007D '}'",
    );
    // A template that does not parse fails before anything is rendered or written, with its
    // line, where an unclosed block used to render what came before it.
    let marker = setup.dir.path("command-ran");
    let command = format!("touch {}", marker.display());
    let unclosed = setup.dir.write(
        "unclosed.ctmpl",
        "upstream hello {\n{{- range service \"hello\" }}\n  server {{ .Address }};\n}\n",
    );
    check(
        setup.spec(&unclosed, &dest, Some(&command)),
        "template: parse error at line:col [5:1]: unexpected EOF: {{range}} at line 2 has no {{end}}",
    );
    let stray = setup.dir.write("stray.ctmpl", "a\n{{ end }}\nb\n");
    check(
        setup.spec(&stray, &dest, Some(&command)),
        "template: parse error at line:col [2:4]: unexpected {{end}}",
    );
    let undefined = setup
        .dir
        .write("undefined.ctmpl", "{{ servce \"hello\" }}\n");
    check(
        setup.spec(&undefined, &dest, Some(&command)),
        "template: parse error at line:col [1:4]: function \"servce\" not defined",
    );
    assert!(!marker.exists(), "no command ran");
    check(
        setup.spec(&setup.dir.path("missing.ctmpl"), &dest, None),
        "cannot read the template",
    );
    assert!(!dest.exists(), "nothing written by the failures so far");

    let good = setup.dir.write("good.ctmpl", "ok\n");
    let nowhere = setup.dir.path("no-such-dir/out.txt");
    check(
        setup.spec(&good, &nowhere, None),
        &format!("cannot write {}", nowhere.display()),
    );

    check(
        setup.spec(&good, &dest, Some("sh -c 'exit 3'")),
        "but \"sh -c 'exit 3'\" failed: exit status 3",
    );
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "ok\n",
        "DEST is written before its command runs"
    );
    check(
        setup.spec(&unclosed, &dest, None),
        "unexpected EOF: {{range}} at line 2 has no {{end}}",
    );
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "ok\n",
        "a template that does not parse leaves DEST as it was"
    );
    check(
        setup.spec(
            &good,
            &setup.dir.path("other.txt"),
            Some("no-such-program-x"),
        ),
        "did not start",
    );

    // No pilot on the socket.
    let alone = setup.dir.write(
        "alone.json5",
        &format!(
            "{{ consul: \"127.0.0.1:1\", control: {{ socket: \"{}\" }} }}",
            setup.dir.path("nobody.sock").display()
        ),
    );
    let (status, _, stderr) = run({
        let mut cmd = Command::new(pilot_bin());
        cmd.arg("-config")
            .arg(&alone)
            .arg("-render")
            .arg(setup.spec(&good, &dest, None));
        cmd
    });
    assert_eq!(code(status), 1, "{stderr}");
    assert!(
        stderr.contains("cannot reach pilot's control socket"),
        "{stderr}"
    );

    // A usage error is status 2.
    let (status, _, stderr) = setup.render(&["just-a-template"]);
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stderr.contains("expected TEMPLATE:DEST[:COMMAND]"),
        "{stderr}"
    );
}

/// While another render holds DEST's directory, a render waits, and then fetches the snapshot
/// as it is after the wait: the file it writes is never older than one already there.
#[test]
fn renders_into_one_directory_take_turns_and_fetch_after_waiting() {
    use nix::fcntl::{Flock, FlockArg};

    let setup = Setup::start("render-lock", "");
    let template = setup.dir.write("upstream.ctmpl", UPSTREAM);
    let out = setup.dir.path("out");
    std::fs::create_dir(&out).unwrap();
    let dest = out.join("upstream.conf");
    let held = Flock::lock(std::fs::File::open(&out).unwrap(), FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let mut child = setup
        .render_cmd(&[&setup.spec(&template, &dest, None)])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    quiet_for(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "the render waits");
    assert!(!dest.exists());
    register(&setup.double, &hello("hello-1", "10.0.0.1", 8080));
    wait_for_instances(&setup.socket, "hello", None, &["hello-1"]);
    drop(held);
    let status = wait_for(|| child.try_wait().unwrap(), "the render to finish");
    assert!(status.success());
    assert!(
        std::fs::read_to_string(&dest)
            .unwrap()
            .contains("server 10.0.0.1:8080;"),
        "rendered from the snapshot after the wait"
    );
}

/// The hook pattern: render once before the app starts, then on every `changed` of the watch.
#[test]
fn a_hook_on_changed_keeps_dest_following_the_instances() {
    let dir = Scratch::new("render-hook-files");
    let template = dir.write("upstream.ctmpl", UPSTREAM);
    let dest = dir.path("upstream.conf");
    let log = dir.path("reloads");
    let spec = format!(
        "{}:{}:sh -c 'echo reload >> {}'",
        template.display(),
        dest.display(),
        log.display()
    );
    let jobs = format!(
        r#"{{ name: "preStart", exec: ["{pilot}", "-config", "@CFG@", "-render", "{t}:{d}"] }},
    {{ name: "onChange", exec: ["{pilot}", "-config", "@CFG@", "-render", "{spec}"],
      when: {{ source: "watch.hello", each: "changed" }} }},"#,
        pilot = pilot_bin(),
        t = template.display(),
        d = dest.display(),
    );
    let setup = Setup::start("render-hook", &jobs);
    let wait_text = |servers: &[&str]| {
        let mut want = String::from("upstream hello {\n");
        if servers.is_empty() {
            want.push_str("  server 127.0.0.1:1 down;\n");
        }
        for s in servers {
            want.push_str(&format!("  {s}\n"));
        }
        want.push_str("}\n");
        wait_for(
            || (std::fs::read_to_string(&dest).ok()? == want).then_some(()),
            &format!("{} to read {want:?}", dest.display()),
        );
    };
    wait_text(&[]);

    register(&setup.double, &hello("hello-1", "10.0.0.1", 8080));
    wait_text(&["server 10.0.0.1:8080; # hello-1"]);
    register(&setup.double, &hello("hello-2", "10.0.0.2", 8080));
    wait_text(&[
        "server 10.0.0.1:8080; # hello-1",
        "server 10.0.0.2:8080; # hello-2",
    ]);
    deregister(&setup.double, "hello-1");
    wait_text(&["server 10.0.0.2:8080; # hello-2"]);
    deregister(&setup.double, "hello-2");
    wait_text(&[]);

    // One reload per change of the file (four), none for the pre-start render.
    wait_for(
        || {
            let n = std::fs::read_to_string(&log).ok()?.lines().count();
            (n == 4).then_some(())
        },
        "four reloads",
    );
    let Setup { running, .. } = setup;
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    assert_eq!(code(finished.status), 0, "{}", finished.stderr);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        4,
        "no extra reloads"
    );
    drop(dir);
}

const KV_TEMPLATE: &str = r#"{{ with key "app/config.json" | parseJSON }}port={{ .port }}{{ end }}
{{ range tree "app/flags/" }}{{ .Key }}={{ .Value }}
{{ end }}raw={{ keyOrDefault "app/flags/raw" "none" }}
"#;

/// A file rendered from a key and a prefix as they change; values that are not UTF-8 render
/// replaced, and a key no watch follows is an error that names the watch to add.
#[test]
fn kv_watches_render_keys_and_trees() {
    let setup = Setup::start_with_watches(
        "render-kv",
        "",
        r#"{ name: "appcfg", key: "app/config.json", interval: 5 },
           { name: "flags", prefix: "app/flags/", interval: 5 }"#,
    );
    let template = setup.dir.write("app.ctmpl", KV_TEMPLATE);
    let dest = setup.dir.path("app.conf");
    let spec = setup.spec(&template, &dest, None);

    setup.double.put_kv("app/config.json", br#"{"port": 8080}"#);
    setup.double.put_kv("app/flags/a", b"on");
    setup.double.put_kv("app/flags/team/b", b"off");
    wait_for(
        || {
            let (status, _, _) = setup.render(&[&spec]);
            let text = std::fs::read_to_string(&dest).ok()?;
            (status == 0 && text.contains("team/b=off")).then_some(text)
        },
        "the keys to render",
    );
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "port=8080\na=on\nteam/b=off\nraw=none\n"
    );

    setup.double.put_kv("app/flags/raw", b"\xff-bytes");
    let text = wait_for(
        || {
            let (status, _, _) = setup.render(&[&spec]);
            let text = std::fs::read_to_string(&dest).ok()?;
            (status == 0 && text.contains("bytes")).then_some(text)
        },
        "the bytes to render",
    );
    assert!(text.ends_with("raw=\u{fffd}-bytes\n"), "{text:?}");

    let other = setup.dir.write("other.ctmpl", r#"{{ key "db/password" }}"#);
    let (status, _, stderr) = setup.render(&[&setup.spec(&other, &setup.dir.path("o"), None)]);
    assert_eq!(status, 1);
    assert!(
        stderr.contains(r#"key "db/password": no watch follows it; add { name: "password", key: "db/password", interval: 10 } to watches"#),
        "{stderr}"
    );
}
