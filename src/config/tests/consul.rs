//! `consul`: its forms, the environment, the token and TLS.

use super::*;

// consul

fn consul(text: &str, env: &[(&str, &str)]) -> Consul {
    match load_with(&format!("{{consul: {text}}}"), &ctx_with(env)) {
        Ok(config) => config.consul,
        Err(e) => panic!("{text}: {e:?}"),
    }
}

#[test]
fn consul_string_forms() {
    let cases: &[(&str, Scheme, &str)] = &[
        ("'localhost:8500'", Scheme::Http, "localhost:8500"),
        ("'http://consul:8500'", Scheme::Http, "consul:8500"),
        ("'https://consul:8501'", Scheme::Https, "consul:8501"),
        (
            "'unix:///var/run/consul.sock'",
            Scheme::Unix,
            "/var/run/consul.sock",
        ),
        ("'HTTPS://consul:8501'", Scheme::Https, "consul:8501"),
        ("''", Scheme::Http, "127.0.0.1:8500"),
        ("{}", Scheme::Http, "127.0.0.1:8500"),
        ("{address: 'a:1'}", Scheme::Http, "a:1"),
        ("{address: 'a:1', scheme: 'https'}", Scheme::Https, "a:1"),
        (
            "{address: 'https://a:1', scheme: 'http'}",
            Scheme::Https,
            "a:1",
        ),
        ("{Address: 'a:1', SCHEME: 'HTTPS'}", Scheme::Https, "a:1"),
    ];
    for (text, scheme, address) in cases {
        let c = consul(text, &[]);
        assert_eq!(
            (c.scheme, c.address.as_str()),
            (*scheme, *address),
            "{text}"
        );
    }
}

#[test]
fn consul_environment() {
    let c = consul("''", &[("CONSUL_HTTP_ADDR", "https://agent:8501")]);
    assert_eq!(
        (c.scheme, c.address.as_str()),
        (Scheme::Https, "agent:8501")
    );
    let c = consul("'x:1'", &[("CONSUL_HTTP_ADDR", "agent:8500")]);
    assert_eq!(c.address, "x:1", "the config's address wins");
    // CONSUL_HTTP_SSL picks https for the object form without a scheme only.
    let c = consul("{address: 'a:1'}", &[("CONSUL_HTTP_SSL", "true")]);
    assert_eq!(c.scheme, Scheme::Https);
    let c = consul("'a:1'", &[("CONSUL_HTTP_SSL", "true")]);
    assert_eq!(c.scheme, Scheme::Http);
    let c = consul(
        "{address: 'a:1', scheme: 'http'}",
        &[("CONSUL_HTTP_SSL", "1")],
    );
    assert_eq!(c.scheme, Scheme::Http);

    let c = consul(
        "{tls: {cafile: 'ca', capath: 'cp', clientcert: 'cc', clientkey: 'ck', servername: 'sn', verify: false}}",
        &[],
    );
    assert_eq!(
        c.tls,
        Tls {
            ca_file: Some("ca".into()),
            ca_path: Some("cp".into()),
            client_cert: Some("cc".into()),
            client_key: Some("ck".into()),
            server_name: Some("sn".into()),
            verify: false,
        }
    );
    let c = consul(
        "{tls: {cafile: 'ca', verify: false}}",
        &[
            ("CONSUL_CACERT", "/env/ca"),
            ("CONSUL_CAPATH", "/env/cp"),
            ("CONSUL_CLIENT_CERT", "/env/cc"),
            ("CONSUL_CLIENT_KEY", "/env/ck"),
            ("CONSUL_TLS_SERVER_NAME", "env-sn"),
            ("CONSUL_HTTP_SSL_VERIFY", "TRUE"),
        ],
    );
    assert_eq!(
        c.tls,
        Tls {
            ca_file: Some("/env/ca".into()),
            ca_path: Some("/env/cp".into()),
            client_cert: Some("/env/cc".into()),
            client_key: Some("/env/ck".into()),
            server_name: Some("env-sn".into()),
            verify: true,
        }
    );
    assert!(!consul("''", &[("CONSUL_HTTP_SSL_VERIFY", "0")]).tls.verify);
    assert!(
        consul("''", &[("CONSUL_HTTP_SSL_VERIFY", "maybe")])
            .tls
            .verify
    );
    assert!(
        consul("''", &[]).tls.verify,
        "verification is on by default"
    );
}

#[test]
fn consul_tls_server_name_drops_a_port() {
    let name = |text: &str, env: &[(&str, &str)]| consul(text, env).tls.server_name;
    let env_name = |v: &str| name("''", &[("CONSUL_TLS_SERVER_NAME", v)]);
    assert_eq!(env_name("consul.local:8501"), Some("consul.local".into()));
    assert_eq!(env_name("consul.local"), Some("consul.local".into()));
    assert_eq!(env_name("[::1]:8501"), Some("::1".into()));
    assert_eq!(env_name("[fe80::1]"), Some("fe80::1".into()));
    assert_eq!(env_name("fe80::1"), Some("fe80::1".into()));
    assert_eq!(
        name("{tls: {servername: 'consul.local:8501'}}", &[]),
        Some("consul.local".into())
    );
}

#[test]
fn consul_token_precedence() {
    let token =
        |text: &str, env: &[(&str, &str)]| consul(text, env).token.map(|t| t.expose().to_string());
    assert_eq!(token("{token: 'cfg'}", &[]), Some("cfg".into()));
    assert_eq!(token("{token: ''}", &[]), None);
    assert_eq!(
        token("{token: 'cfg'}", &[("CONSUL_HTTP_TOKEN", "env")]),
        Some("env".into())
    );
    assert_eq!(
        token("'c'", &[("CONSUL_HTTP_TOKEN", "env")]),
        Some("env".into())
    );
    let dir = std::env::temp_dir().join(format!("pilot-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "from-file\n").unwrap();
    let file_env = [("CONSUL_HTTP_TOKEN_FILE", file.to_str().unwrap())];
    assert_eq!(token("{token: 'cfg'}", &file_env), Some("from-file".into()));
    assert_eq!(
        token(
            "{token: 'cfg'}",
            &[file_env[0], ("CONSUL_HTTP_TOKEN", "env")]
        ),
        Some("from-file".into()),
        "the file wins over CONSUL_HTTP_TOKEN, as in Consul's client"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let problems = load_with(
        "{consul: 'c'}",
        &ctx_with(&[("CONSUL_HTTP_TOKEN_FILE", "/nonexistent/token")]),
    )
    .unwrap_err();
    assert_eq!(
        problems,
        [
            "CONSUL_HTTP_TOKEN_FILE \"/nonexistent/token\": cannot read it: no such file or directory"
        ]
    );
}

#[test]
fn the_token_never_appears_in_errors_or_debug_output() {
    let secret = "s3cr3t-t0k3n";
    let config = load_with(
        &format!("{{consul: {{token: '{secret}'}}}}"),
        &ctx_with(&[]),
    )
    .unwrap();
    let debug = format!("{config:?} {:?}", config.consul);
    assert!(!debug.contains(secret), "{debug}");
    assert!(debug.contains("<redacted>"));

    // A token of the wrong type is reported without its value.
    let problems = errors("{consul: {token: 123456789}}");
    assert_eq!(
        problems,
        ["consul.token must be a string, got a number (line 1)"]
    );

    // A syntax error on or after the token's line does not quote it.
    let text = format!("{{\n  consul: {{\n    token: '{secret}'\n    address: 'x'\n  }}\n}}");
    let err = load_text(&text, Path::new("t.json5"), &ctx()).unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("after object key:value pair"), "{shown}");
    assert!(!shown.contains(secret), "{shown}");
    // ... nor when the template put CONSUL_HTTP_TOKEN there.
    let text = "{\n consul: {address: '{{ .CONSUL_HTTP_TOKEN }}' x}\n}";
    let err = load_text(
        text,
        Path::new("t.json5"),
        &ctx_with(&[("CONSUL_HTTP_TOKEN", secret)]),
    )
    .unwrap_err();
    assert!(!err.to_string().contains(secret), "{err}");
    // The context never does either.
    assert!(!format!("{:?}", ctx_with(&[("CONSUL_HTTP_TOKEN", secret)])).contains(secret));
}

#[test]
fn consul_errors() {
    assert_eq!(
        error("{consul: 8500}"),
        "consul must be a string or an object, got 8500 (line 1)"
    );
    assert_eq!(
        error("{consul: 'ftp://x:1'}"),
        "consul address \"ftp://x:1\" has an unknown scheme \"ftp\" (http, https or unix) (line 1)"
    );
    assert_eq!(
        error("{consul: {scheme: 'gopher'}}"),
        "consul.scheme must be http or https, got \"gopher\" (line 1)"
    );
    assert_eq!(
        error("{consul: {adress: 'x'}}"),
        "unknown key \"consul.adress\" (did you mean \"consul.address\"?) (line 1)"
    );
    assert_eq!(
        error("{consul: {tls: {verify: 'maybe'}}}"),
        "consul.tls.verify must be true or false, got \"maybe\" (line 1)"
    );
    assert_eq!(
        error("{consul: {tls: {cert: 'x'}}}"),
        "unknown key \"consul.tls.cert\" (line 1)"
    );
    assert_eq!(
        error("{consul: 'a b'}"),
        "consul address \"a b\" contains blanks (line 1)"
    );
    assert_eq!(
        error("{consul: 'unix://'}"),
        "consul has an empty address (line 1)"
    );
}
