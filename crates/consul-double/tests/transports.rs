//! The API over a unix socket and over HTTPS with a generated test CA.

mod common;

use std::sync::Arc;

use common::{Target, get, put};
use consul_double::{Config, ConsulDouble, Listen, generate_localhost_pki};

#[tokio::test]
async fn unix_socket_serves_the_api() {
    let sock = common::socket_path("transport");
    let double = ConsulDouble::start(Config {
        listen: vec![Listen::Unix(sock.clone())],
        ..Config::default()
    })
    .await
    .unwrap();
    assert_eq!(double.url(), format!("unix://{}", sock.display()));
    let t = Target::Unix(sock.clone());
    assert_eq!(
        put(&t, "/v1/agent/service/register", r#"{"Name":"u"}"#)
            .await
            .status,
        200
    );
    assert_eq!(
        get(&t, "/v1/catalog/service/u").await.json()[0]["ServiceName"],
        "u"
    );
    double.go_down().await;
    assert!(
        common::send(&t, "GET", "/v1/status/leader", &[], None)
            .await
            .is_err()
    );
    double.come_up().await.unwrap();
    assert_eq!(get(&t, "/v1/status/leader").await.status, 200);
    drop(double);
    assert!(!sock.exists(), "socket file removed on drop");
}

#[tokio::test]
async fn https_with_a_generated_ca() {
    let pki = generate_localhost_pki().unwrap();
    let cfg = Config {
        listen: vec![Listen::Tls(([127, 0, 0, 1], 0).into(), pki.server.clone())],
        ..Config::default()
    };
    let double = ConsulDouble::start(cfg).await.unwrap();
    let addr = match &double.addrs()[0] {
        consul_double::BoundAddr::Tls(a) => *a,
        other => panic!("{other:?}"),
    };
    assert_eq!(double.url(), format!("https://{addr}"));
    let t = Target::Tls(addr, Arc::new(pki.client_config().unwrap()));
    assert_eq!(get(&t, "/v1/status/leader").await.json(), "127.0.0.1:8300");

    // A client that does not trust the test CA is refused.
    let other = generate_localhost_pki().unwrap();
    let untrusted = Target::Tls(addr, Arc::new(other.client_config().unwrap()));
    assert!(
        common::send(&untrusted, "GET", "/v1/status/leader", &[], None)
            .await
            .is_err()
    );

    let dir = std::env::temp_dir().join(format!("consul-double-pki-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = pki.write_to(&dir).unwrap();
    assert!(
        std::fs::read_to_string(files.ca_cert)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn several_listeners_share_one_state() {
    let sock = common::socket_path("multi");
    let cfg = Config {
        listen: vec![
            Listen::Tcp(([127, 0, 0, 1], 0).into()),
            Listen::Unix(sock.clone()),
        ],
        ..Config::default()
    };
    let double = ConsulDouble::start(cfg).await.unwrap();
    put(&Target::Tcp(double.http_addr().unwrap()), "/v1/kv/k", "v").await;
    assert_eq!(get(&Target::Unix(sock), "/v1/kv/k?raw").await.text(), "v");
}

#[test]
fn background_double_serves_plain_blocking_code() {
    use std::io::{Read, Write};
    let double = consul_double::BackgroundDouble::start(Config::default()).unwrap();
    double
        .register_service_json(r#"{"Name":"bg","Check":{"TTL":"1m"}}"#, false)
        .unwrap();
    let fetch = |path: &str| -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(double.http_addr().unwrap())?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    };
    let reply = fetch("/v1/agent/checks").unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.contains("\"service:bg\""), "{reply}");
    double.go_down();
    assert!(fetch("/v1/agent/checks").is_err());
    double.come_up().unwrap();
    assert!(
        fetch("/v1/status/leader")
            .unwrap()
            .contains("127.0.0.1:8300")
    );
}
