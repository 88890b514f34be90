//! Check runners: the checks the agent executes itself. Only TCP checks run (a connect, as
//! Consul's `CheckTCP` does); HTTP, gRPC, alias and Docker checks are stored and shown but keep
//! their initial status, and script checks are refused as on a dev agent.

use std::sync::Weak;
use std::time::Duration;

use crate::state::StateCell;
use crate::state::types::CheckStatus;

/// Runs a TCP check every `interval` until aborted, after an initial stagger.
pub(crate) async fn run_tcp(
    cell: Weak<StateCell>,
    check_id: String,
    generation: u64,
    addr: String,
    interval: Duration,
    timeout: Duration,
    initial: Duration,
) {
    tokio::time::sleep(initial).await;
    loop {
        let (status, output) = probe_tcp(&addr, timeout).await;
        match cell.upgrade() {
            Some(cell) => cell.with(|st| st.runner_result(&check_id, generation, status, output)),
            None => return,
        }
        tokio::time::sleep(interval).await;
    }
}

/// One TCP probe with Go-style output texts.
pub(crate) async fn probe_tcp(addr: &str, timeout: Duration) -> (CheckStatus, String) {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => (CheckStatus::Passing, format!("TCP connect {addr}: Success")),
        Ok(Err(e)) => (CheckStatus::Critical, go_dial_error(addr, &e)),
        Err(_) => (
            CheckStatus::Critical,
            format!("dial tcp {addr}: i/o timeout"),
        ),
    }
}

fn go_dial_error(addr: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("dial tcp {addr}: connect: connection refused")
        }
        std::io::ErrorKind::InvalidInput => {
            format!("dial tcp: address {addr}: missing port in address")
        }
        _ => format!("dial tcp {addr}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_probe_reports_success_and_refusal() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (status, output) = probe_tcp(&addr, Duration::from_secs(1)).await;
        assert_eq!(status, CheckStatus::Passing);
        assert_eq!(output, format!("TCP connect {addr}: Success"));
        drop(listener);
        let (status, output) = probe_tcp(&addr, Duration::from_secs(1)).await;
        assert_eq!(status, CheckStatus::Critical);
        assert_eq!(
            output,
            format!("dial tcp {addr}: connect: connection refused")
        );
    }
}
