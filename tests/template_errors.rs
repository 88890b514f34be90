//! A template that does not parse is an error with its line, before anything is rendered, in the
//! config (`-validate`, `-template`, the daemon's start and reload) and in `-render` templates:
//! every parse error Go's text/template (and so ContainerPilot) reports, where an unclosed
//! `{{ if }}` or a stray `{{ end }}` used to cut the rest of the file off without a word.
//!
//! The exact text of every error is snapshotted (`tests/snapshots/`); `-render` through the real
//! binary is in `tests/render.rs`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use pilot::config::{LoadContext, LoadError, StaticInterfaces, load_text};

/// One config per parse error Go reports, each a job list a user could have written, with the
/// mistake on a line of its own.
const CONFIGS: &[(&str, &str)] = &[
    (
        "an unclosed if",
        "{\n  consul: \"localhost:8500\",\n  jobs: [\n    {{ if .DEBUG }}\n    { name: \"debug\", exec: \"sleep 1\" },\n    { name: \"app\", exec: \"sleep 2\" },\n  ],\n}\n",
    ),
    (
        "an unclosed with",
        "{\n  consul: \"{{ with .CONSUL }}{{ . }}:8500\",\n  jobs: [],\n}\n",
    ),
    (
        "an unclosed range",
        "{\n  jobs: [\n    {{ range $i := loop 3 }}\n    { name: \"worker-{{ $i }}\", exec: \"work\" },\n  ],\n}\n",
    ),
    (
        "an unclosed define",
        "{{ define \"job\" }}\n{ name: \"app\", exec: \"sleep 1\" }\n{ jobs: [ {{ template \"job\" }} ] }\n",
    ),
    (
        "an unclosed else",
        "{\n  consul: \"{{ if .CONSUL }}{{ .CONSUL }}{{ else }}localhost\",\n  jobs: [],\n}\n",
    ),
    (
        "a stray end",
        "{\n  jobs: [\n    { name: \"app\", exec: \"sleep 1\" },\n    {{ end }}\n    { name: \"lost\", exec: \"sleep 2\" },\n  ],\n}\n",
    ),
    (
        "an end after an else-if chain",
        "{\n  logging: { level: \"{{ if .DEBUG }}DEBUG{{ else if .QUIET }}ERROR{{ end }}{{ end }}\" },\n}\n",
    ),
    ("a stray else", "{\n  jobs: [],\n  {{ else }}\n}\n"),
    (
        "a second else",
        "{\n  consul: \"{{ if .A }}a{{ else }}b\n{{ else }}c{{ end }}\",\n}\n",
    ),
    (
        "an undefined function",
        "{\n  consul: \"localhost:8500\",\n  jobs: [\n    { name: \"app\", exec: \"{{ .APP | defalt \"app\" }}\" },\n  ],\n}\n",
    ),
    (
        "an undefined variable",
        "{\n  jobs: [\n    {{ range $i := loop 2 }}{ name: \"w{{ $i }}\", exec: \"w\" },{{ end }}\n    { name: \"last\", exec: \"w {{ $i }}\" },\n  ],\n}\n",
    ),
    (
        "an unterminated quoted string",
        "{\n  consul: \"{{ .CONSUL | default \"localhost }}:8500,\n  jobs: [],\n}\n",
    ),
    (
        "an unclosed action",
        "{\n  consul: \"localhost:8500\",\n  jobs: [],\n}\n{{ .NOTE\n",
    ),
    (
        "an unclosed comment",
        "{\n  {{/* the jobs\n  jobs: [],\n}\n",
    ),
    (
        "a bad number",
        "{\n  jobs: [ {{ range loop 1_ }}{{ end }} ],\n}\n",
    ),
    (
        "a range without a pipeline",
        "{\n  jobs: [\n    {{ range }}{ name: \"a\", exec: \"a\" }{{ end }}\n  ],\n}\n",
    ),
    (
        "a with without a pipeline",
        "{\n  consul: \"{{ with }}x{{ end }}\",\n}\n",
    ),
    (
        "an unexpected right paren",
        "{\n  consul: \"{{ default \"localhost\" .CONSUL) }}\",\n}\n",
    ),
    (
        "an unclosed left paren",
        "{\n  consul: \"{{ (default \"localhost\" .CONSUL }}\",\n}\n",
    ),
    (
        "a break outside a range",
        "{\n  jobs: [],\n  {{ break }}\n}\n",
    ),
    (
        "operands that touch",
        "{\n  consul: \"{{ printf \"%s:%d\" .HOST 8500`x` }}\",\n}\n",
    ),
    (
        "a constant inside a pipeline",
        "{\n  consul: \"{{ .CONSUL | \"localhost\" }}\",\n}\n",
    ),
];

fn ctx() -> LoadContext {
    LoadContext::new(
        BTreeMap::new(),
        "host",
        StaticInterfaces::from_pairs(&[("eth0", "192.0.2.1")]),
    )
}

fn template_error(text: &str) -> String {
    match load_text(text, Path::new("app.json5"), &ctx()) {
        Err(err @ LoadError::Template { .. }) => err.to_string(),
        Err(other) => panic!("not a template error: {other}\n{text}"),
        Ok(_) => panic!("loaded:\n{text}"),
    }
}

#[test]
fn every_parse_error_of_the_config_template_has_its_line() {
    let mut all = String::new();
    for (name, text) in CONFIGS {
        let message = template_error(text);
        assert!(
            message.starts_with(
                "could not apply template to config app.json5: parse error at line:col ["
            ),
            "{name}: {message}"
        );
        all.push_str(&format!("{name}:\n  {message}\n"));
    }
    insta::assert_snapshot!(all);
}

/// The example: everything after an unclosed `{{ if }}` used to disappear, and what was
/// left (here, an empty job list) loaded.
#[test]
fn nothing_after_a_broken_block_is_silently_dropped() {
    let text = "{\n  consul: \"localhost:8500\",\n  jobs: [\n    {{ if .DEBUG }}{ name: \"debug\", exec: \"sleep 1\" },\n    { name: \"app\", exec: \"sleep 2\" },\n  ],\n}\n";
    assert_eq!(
        template_error(text),
        "could not apply template to config app.json5: parse error at line:col [8:1]: unexpected EOF: {{if}} at line 4 has no {{end}}"
    );
    let fixed = text.replace("sleep 1\" },", "sleep 1\" },{{ end }}");
    let config = load_text(&fixed, Path::new("app.json5"), &ctx()).unwrap();
    let names: Vec<&str> = config.jobs.iter().map(|j| j.name.as_str()).collect();
    assert!(names.contains(&"app"), "{names:?}");
}

/// `-render` templates go through the same parser, with `service` among the functions.
#[test]
fn every_parse_error_of_a_render_template_has_its_line() {
    let templates: &[(&str, &str)] = &[
        (
            "an unclosed range",
            "upstream app {\n{{- range service \"app\" }}\n  server {{ .Address }}:{{ .Port }};\n}\n",
        ),
        (
            "a stray end",
            "upstream app {\n{{- range service \"app\" }}\n  server {{ .Address }}:{{ .Port }};\n{{- end }}\n{{- end }}\n}\n",
        ),
        (
            "an undefined function",
            "upstream app {\n{{- range servce \"app\" }}\n  server {{ .Address }};\n{{- end }}\n}\n",
        ),
        (
            "an unexpected else",
            "upstream app {\n  server 127.0.0.1:1;\n{{ else }}\n}\n",
        ),
        (
            "a missing brace",
            "upstream app {\n{{- range service \"app\" }\n  server {{ .Address }};\n{{- end }}\n}\n",
        ),
    ];
    let mut all = String::new();
    for (name, text) in templates {
        let err = match pilot::render::render(text, &[], &BTreeMap::new()) {
            Err(err) => err.to_string(),
            Ok(out) => panic!("{name}: rendered {out:?}"),
        };
        assert!(
            err.starts_with("parse error at line:col ["),
            "{name}: {err}"
        );
        all.push_str(&format!("{name}:\n  {err}\n"));
    }
    insta::assert_snapshot!(all);
}

// The real binary.

fn run_pilot(args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(pilot_bin());
    cmd.args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    let (status, stdout, stderr) = run(cmd);
    (code(status), stdout, stderr)
}

#[test]
fn validate_template_and_start_exit_2_with_the_line() {
    let dir = Scratch::new("template-errors-cli");
    let config = dir.write("app.json5", CONFIGS[0].1);
    let path = config.to_str().unwrap();
    let want = format!(
        "pilot: could not apply template to config {path}: parse error at line:col [9:1]: unexpected EOF: {{{{if}}}} at line 4 has no {{{{end}}}}\n"
    );
    for args in [
        vec!["-validate", "-config", path],
        vec!["-template", "-config", path],
        vec!["-config", path],
    ] {
        let (status, stdout, stderr) = run_pilot(&args);
        assert_eq!(status, 2, "{args:?}: {stderr}");
        assert_eq!(stderr, want, "{args:?}");
        assert!(stdout.is_empty(), "{args:?}: nothing rendered: {stdout:?}");
    }

    let config = dir.write("undefined.json5", CONFIGS[9].1);
    let (status, _, stderr) = run_pilot(&["-validate", "-config", config.to_str().unwrap()]);
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stderr.ends_with(": parse error at line:col [4:37]: function \"defalt\" not defined\n"),
        "{stderr}"
    );
}

/// A reload whose template does not parse is refused with the line, and the jobs run on.
#[test]
fn a_reload_with_a_broken_template_is_refused_with_the_line() {
    let dir = Scratch::new("template-errors-reload");
    let socket = dir.path("pilot.sock");
    let good = format!(
        "{{ consul: \"127.0.0.1:1\", control: {{ socket: \"{}\" }}, jobs: [{{ name: \"app\", exec: [\"sleep\", \"1013.{}\"] }}] }}\n",
        socket.display(),
        std::process::id()
    );
    let cfg = dir.write("pilot.json5", &good);
    let mode = Mode::Plain;
    let _running = Running::start(pilot(mode, ["-config", cfg.to_str().unwrap()]), mode);
    let pid = wait_for(|| job_pid(&try_status(&socket)?, "app"), "job app running");

    // The daemon reloads its own file; this one only says where its socket is.
    let reach = dir.write(
        "reach.json5",
        &format!("{{ control: {{ socket: \"{}\" }} }}", socket.display()),
    );
    dir.write(
        "pilot.json5",
        &good.replace("jobs: [", "jobs: [\n{{ range loop 2 }}"),
    );
    let (exit, _, stderr) = run_pilot(&["-config", reach.to_str().unwrap(), "-reload"]);
    assert_eq!(exit, 1, "{stderr}");
    assert!(
        stderr.contains(
            "reload failed, the running config is kept: could not apply template to config"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "parse error at line:col [3:1]: unexpected EOF: {{range}} at line 2 has no {{end}}"
        ),
        "{stderr}"
    );
    assert_eq!(
        job_pid(&status(&socket), "app"),
        Some(pid),
        "the job runs on"
    );
}
