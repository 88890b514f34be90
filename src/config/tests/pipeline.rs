//! Templates and parse errors through the pipeline, the control socket alone, the config path and read errors.

use std::path::PathBuf;

use super::*;

// templates and parse errors through the pipeline

#[test]
fn templates_render_before_parsing() {
    let config = load_with(
        r#"{
            consul: "{{ .CONSUL | default "consul" }}:8500",
            jobs: [
                {{ range $i := loop (env "WORKERS") }}
                { name: "worker-{{ $i }}", exec: ["work", "{{ $i }}"] },
                {{ end }}
                { name: "app", exec: "{{ .APP_CMD }}", port: {{ .PORT }},
                  tags: [ {{ range $i, $t := .TAGS | split "," }}{{ if $i }}, {{ end }}"{{ $t }}"{{ end }} ],
                  health: { exec: "check", interval: 5, ttl: 10 } },
            ]
        }"#,
        &ctx_with(&[
            ("WORKERS", "2"),
            ("APP_CMD", "node server.js --opt=a=b"),
            ("PORT", "8080"),
            ("TAGS", "web, blue"),
        ]),
    )
    .unwrap();
    assert_eq!(config.consul.address, "consul:8500");
    let names: Vec<&str> = config.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["worker-0", "worker-1", "app"]);
    assert_eq!(config.jobs[1].exec, exec(&["work", "1"]));
    let app = &config.jobs[2];
    assert_eq!(app.exec, exec(&["node", "server.js", "--opt=a=b"]));
    let service = app.service.as_ref().unwrap();
    assert_eq!(service.port, 8080);
    assert_eq!(service.tags, ["web", " blue"]);
}

#[test]
fn an_unquoted_missing_variable_is_a_parse_error() {
    let err = load_text(
        "{\"test\": {{ .NO_SUCH_KEY }}, \"consul\": \"c\"}",
        Path::new("t.json5"),
        &ctx(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not parse config t.json5: parse error at line:col [1:10]: invalid character ',' looking for beginning of value\n    1: {\"test\": , \"consul\": \"c\"}\n----------------^"
    );
    let err = load_text("{{ .X", Path::new("t.json5"), &ctx()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not apply template to config t.json5: template: config:1:6: unclosed action"
    );
}

#[test]
fn control_socket_reads_only_the_socket() {
    let dir = std::env::temp_dir().join(format!("pilot-control-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    // Invalid in every other way, but the socket is readable.
    let path = write(
        "a.json5",
        "{control: {socket: '/run/{{ .NAME }}.sock'}, jobs: 'nonsense', bogus: 1}",
    );
    assert_eq!(
        control_socket(&path, &ctx_with(&[("NAME", "p")])).unwrap(),
        PathBuf::from("/run/p.sock")
    );
    let path = write("b.json5", "{}");
    assert_eq!(
        control_socket(&path, &ctx()).unwrap(),
        PathBuf::from("/var/run/containerpilot.socket")
    );
    let path = write("c.json5", "{control: {socket: []}}");
    assert_eq!(
        control_socket(&path, &ctx()).unwrap_err().to_string(),
        format!(
            "invalid config {} (1 problem):\ncontrol.socket must be a string, got an array (line 1)",
            path.display()
        )
    );
    let path = write("d.json5", "{control: ");
    assert!(matches!(
        control_socket(&path, &ctx()),
        Err(LoadError::Parse { .. })
    ));
    assert!(matches!(
        control_socket(&dir.join("missing.json5"), &ctx()),
        Err(LoadError::Read { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_path_precedence() {
    let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let all = env(&[("PILOT_CONFIG", "/p.json5"), ("CONTAINERPILOT", "/c.json5")]);
    assert_eq!(
        resolve_path(Some("/f.json5"), &all),
        Some("/f.json5".into())
    );
    assert_eq!(resolve_path(None, &all), Some("/p.json5".into()));
    assert_eq!(resolve_path(Some(""), &all), Some("/p.json5".into()));
    let only_cp = env(&[("PILOT_CONFIG", ""), ("CONTAINERPILOT", "/c.json5")]);
    assert_eq!(resolve_path(None, &only_cp), Some("/c.json5".into()));
    assert_eq!(resolve_path(None, &env(&[])), None);
}

#[test]
fn read_errors() {
    let err = load(Path::new("/xxxx"), &ctx()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not read config file /xxxx: no such file or directory"
    );
    let dir = std::env::temp_dir().join(format!("pilot-read-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("binary.json5");
    std::fs::write(&path, b"{consul: '\xff'}").unwrap();
    assert_eq!(
        load(&path, &ctx()).unwrap_err().to_string(),
        format!(
            "could not read config file {}: it is not UTF-8 text (invalid byte at offset 10)",
            path.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
