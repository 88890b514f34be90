//! `consul-double`: the Consul test double as a standalone process, for the end-to-end demo and
//! tests that run pilot as a real binary. Prints one `listening on <url>` line per listener once
//! ready and serves until SIGTERM or SIGINT. See the crate README for flags and the control API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use consul_double::{
    AclConfig, Config, ConsulDouble, ConsulVersion, Listen, PeerServer, TlsIdentity, TokenRights,
};

const USAGE: &str = "usage: consul-double [flags]

  --listen ADDR                 API listener: host:port or unix:///path (repeatable; default 127.0.0.1:8500)
  --tls-listen ADDR             HTTPS listener host:port (needs --tls-cert/--tls-key or --tls-generate)
  --tls-cert FILE               PEM certificate chain for --tls-listen
  --tls-key FILE                PEM private key for --tls-listen
  --tls-generate DIR            write a test CA (ca.pem) and server pair (server.pem, server-key.pem) to DIR and use them
  --control-listen ADDR         separate control-API listener that stays up while the API is down
  --no-control-api              do not serve /_double/ on the API listeners
  --node NAME                   node name (default NODE)
  --node-address ADDR           node address (default 127.0.0.1; the leader is ADDR:8300)
  --peer NAME@ADDR              another server of the cluster, in the catalog with its serfHealth (repeatable)
  --datacenter DC               datacenter (default dc1)
  --version 1.8.4|1.8.5|1.0.8   Consul version to emulate (default 1.8.4)
  --unknown-id-404              answer unknown check/service IDs like Consul 1.11+ (404)
  --acl-token TOKEN             enable ACLs; TOKEN may write (repeatable)
  --acl-read-token TOKEN        enable ACLs; TOKEN may only read (repeatable)
  --default-wait DUR            blocking wait when none is given (default 5m)
  --max-wait DUR                cap on blocking waits (default 10m)
  --no-jitter                   no random jitter on waits and deferred output syncs
  --compact-json                compact JSON answers, as a server (non-dev) agent gives (?pretty still indents)
  --dcsa-floor DUR              minimum DeregisterCriticalServiceAfter (default 1m)
  --reap-interval DUR           how often the reaper runs (default 30s)
  --check-update-interval DUR   output-only check changes sync after half of this (default 5m; 0s syncs at once)
  --rpc-hold-timeout DUR        how long requests wait for a leader while there is none (default 7s)
  --help                        this text";

fn parse_listen(raw: &str) -> Result<Listen, String> {
    if let Some(path) = raw.strip_prefix("unix://") {
        return Ok(Listen::Unix(PathBuf::from(path)));
    }
    let addr = raw.strip_prefix("http://").unwrap_or(raw);
    addr.parse::<SocketAddr>()
        .map(Listen::Tcp)
        .map_err(|e| format!("invalid --listen {raw:?}: {e}"))
}

fn parse_duration(flag: &str, raw: &str) -> Result<Duration, String> {
    consul_double::duration::parse_positive(raw).map_err(|e| format!("invalid {flag} {raw:?}: {e}"))
}

struct Options {
    config: Config,
}

fn parse_args(args: Vec<String>) -> Result<Option<Options>, String> {
    let mut config = Config {
        control_api: true,
        ..Config::default()
    };
    let mut tls_listen: Vec<SocketAddr> = Vec::new();
    let (mut tls_cert, mut tls_key, mut tls_generate) = (None, None, None);
    let mut acl = AclConfig::default();
    let mut acl_on = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--listen" => config.listen.push(parse_listen(&value("--listen")?)?),
            "--tls-listen" => {
                let v = value("--tls-listen")?;
                tls_listen.push(
                    v.parse()
                        .map_err(|e| format!("invalid --tls-listen {v:?}: {e}"))?,
                );
            }
            "--tls-cert" => tls_cert = Some(PathBuf::from(value("--tls-cert")?)),
            "--tls-key" => tls_key = Some(PathBuf::from(value("--tls-key")?)),
            "--tls-generate" => tls_generate = Some(PathBuf::from(value("--tls-generate")?)),
            "--control-listen" => {
                config.control_listen = Some(parse_listen(&value("--control-listen")?)?)
            }
            "--no-control-api" => config.control_api = false,
            "--node" => config.node_name = value("--node")?,
            "--node-address" => config.node_address = value("--node-address")?,
            "--peer" => {
                let v = value("--peer")?;
                let (name, address) = v
                    .split_once('@')
                    .filter(|(n, a)| !n.is_empty() && !a.is_empty())
                    .ok_or_else(|| format!("invalid --peer {v:?}, want NAME@ADDRESS"))?;
                let n = config.peers.len() + 1;
                config.peers.push(PeerServer {
                    node_name: name.to_string(),
                    node_id: format!("00000000-0000-0000-0001-{n:012x}"),
                    address: address.to_string(),
                });
            }
            "--datacenter" => config.datacenter = value("--datacenter")?,
            "--version" => {
                let v = value("--version")?;
                config.version = ConsulVersion::parse(&v).ok_or_else(|| {
                    format!("unsupported --version {v:?}, want 1.8.4, 1.8.5 or 1.0.8")
                })?;
            }
            "--unknown-id-404" => config.unknown_id_404 = true,
            "--acl-token" => {
                acl_on = true;
                acl.tokens.insert(value("--acl-token")?, TokenRights::Write);
            }
            "--acl-read-token" => {
                acl_on = true;
                acl.tokens
                    .insert(value("--acl-read-token")?, TokenRights::Read);
            }
            "--default-wait" => {
                config.timing.default_wait =
                    parse_duration("--default-wait", &value("--default-wait")?)?
            }
            "--max-wait" => {
                config.timing.max_wait = parse_duration("--max-wait", &value("--max-wait")?)?
            }
            "--no-jitter" => config.timing.jitter = false,
            "--compact-json" => config.compact_json = true,
            "--dcsa-floor" => {
                config.timing.dcsa_floor = parse_duration("--dcsa-floor", &value("--dcsa-floor")?)?
            }
            "--reap-interval" => {
                let d = parse_duration("--reap-interval", &value("--reap-interval")?)?;
                if d.is_zero() {
                    return Err("--reap-interval must be positive".into());
                }
                config.timing.reap_interval = d;
            }
            "--check-update-interval" => {
                config.timing.check_update_interval = parse_duration(
                    "--check-update-interval",
                    &value("--check-update-interval")?,
                )?;
            }
            "--rpc-hold-timeout" => {
                config.timing.rpc_hold_timeout =
                    parse_duration("--rpc-hold-timeout", &value("--rpc-hold-timeout")?)?
            }
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    if acl_on {
        config.acl = Some(acl);
    }
    if !tls_listen.is_empty() {
        let identity =
            match (tls_generate, tls_cert, tls_key) {
                (Some(dir), None, None) => {
                    let pki = consul_double::generate_localhost_pki().map_err(|e| e.to_string())?;
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                    pki.write_to(&dir).map_err(|e| e.to_string())?;
                    pki.server
                }
                (None, Some(cert), Some(key)) => TlsIdentity {
                    cert_pem: std::fs::read_to_string(&cert)
                        .map_err(|e| format!("reading {}: {e}", cert.display()))?,
                    key_pem: std::fs::read_to_string(&key)
                        .map_err(|e| format!("reading {}: {e}", key.display()))?,
                },
                _ => return Err(
                    "--tls-listen needs either --tls-generate DIR or both --tls-cert and --tls-key"
                        .into(),
                ),
            };
        for addr in tls_listen {
            config.listen.push(Listen::Tls(addr, identity.clone()));
        }
    }
    if config.listen.is_empty() {
        config
            .listen
            .push(Listen::Tcp(([127, 0, 0, 1], 8500).into()));
    }
    Ok(Some(Options { config }))
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("consul-double: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("consul-double: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let double = match ConsulDouble::start(options.config).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("consul-double: {e}");
                return ExitCode::from(1);
            }
        };
        for addr in double.addrs() {
            println!("consul-double: listening on {}", addr.url());
        }
        for addr in double.control_addrs() {
            println!("consul-double: control api on {}", addr.url());
        }
        println!(
            "consul-double: ready (Consul {}, node {})",
            double.config().version.as_str(),
            double.config().node_name
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let (Ok(mut term), Ok(mut int)) = (
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()),
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()),
        ) else {
            eprintln!("consul-double: cannot install signal handlers");
            return ExitCode::from(1);
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        double.shutdown();
        println!("consul-double: stopped");
        ExitCode::SUCCESS
    })
}
