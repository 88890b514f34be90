//! Who leads the cluster, as the server the double plays sees it, and what that means for the
//! `X-Consul-Knownleader` and `X-Consul-Lastcontact` of its answers.
//!
//! Consul's `setQueryMeta` reports `true`/0 on the leader; on a follower it reports whether Raft
//! knows a leader and the time since the follower last heard from one. Default and `?consistent`
//! reads on a follower are forwarded to the leader and come back with the leader's `true`/0;
//! only `?stale` reads are answered from the follower's own replica with its own values
//! (transcript 14). Without a leader nothing can be forwarded: those reads, and writes, wait for
//! `rpc_hold_timeout` and fail (see `blocking::await_leader`).

use std::time::Duration;

use tokio::time::Instant;

/// Who leads, as a test sees it ([`ConsulDouble::leadership`](crate::ConsulDouble::leadership)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// The double is the leader (a dev agent; the default).
    Leader,
    /// Another server leads; the double is a follower that last heard from it `last_contact`
    /// ago, which is what its `?stale` answers report.
    Follower {
        /// The leader's `address:port`, as `/v1/status/leader` shows it.
        leader: String,
        /// What `?stale` answers report as `X-Consul-Lastcontact`.
        last_contact: Duration,
    },
    /// No leader: `last_contact` is the time since the double last heard from one, which grows.
    NoLeader {
        /// What a `?stale` answer would report now.
        last_contact: Duration,
    },
}

/// The leadership state kept under the state lock.
#[derive(Debug, Clone)]
pub(crate) enum LeaderState {
    Us,
    Peer {
        leader: String,
        last_contact: Duration,
    },
    None {
        /// When the double last heard from a leader.
        contact_at: Instant,
    },
}

/// The leader and contact headers of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadMeta {
    pub(crate) known_leader: bool,
    pub(crate) last_contact: Duration,
}

impl ReadMeta {
    /// What the leader itself answers.
    pub(crate) const LEADER: ReadMeta = ReadMeta {
        known_leader: true,
        last_contact: Duration::ZERO,
    };
}

impl LeaderState {
    pub(crate) fn has_leader(&self) -> bool {
        !matches!(self, LeaderState::None { .. })
    }

    /// The headers of a read answered now: `stale` reads by the double itself, the others by the
    /// leader (only asked while there is one).
    pub(crate) fn read_meta(&self, stale: bool) -> ReadMeta {
        match self {
            _ if !stale => ReadMeta::LEADER,
            LeaderState::Us => ReadMeta::LEADER,
            LeaderState::Peer { last_contact, .. } => ReadMeta {
                known_leader: true,
                last_contact: *last_contact,
            },
            LeaderState::None { contact_at } => ReadMeta {
                known_leader: false,
                last_contact: contact_at.elapsed(),
            },
        }
    }

    /// The state after losing the leader now; the contact clock keeps running from the last
    /// contact a follower had.
    pub(crate) fn lost(&self) -> LeaderState {
        match self {
            LeaderState::None { contact_at } => LeaderState::None {
                contact_at: *contact_at,
            },
            LeaderState::Peer { last_contact, .. } => LeaderState::None {
                contact_at: Instant::now()
                    .checked_sub(*last_contact)
                    .unwrap_or_else(Instant::now),
            },
            LeaderState::Us => LeaderState::None {
                contact_at: Instant::now(),
            },
        }
    }

    /// `/v1/status/leader`: the leader's Raft address, or `""`.
    pub(crate) fn leader_addr(&self, own_address: &str) -> String {
        match self {
            LeaderState::Us => format!("{own_address}:8300"),
            LeaderState::Peer { leader, .. } => leader.clone(),
            LeaderState::None { .. } => String::new(),
        }
    }

    pub(crate) fn public(&self) -> Leadership {
        match self {
            LeaderState::Us => Leadership::Leader,
            LeaderState::Peer {
                leader,
                last_contact,
            } => Leadership::Follower {
                leader: leader.clone(),
                last_contact: *last_contact,
            },
            LeaderState::None { contact_at } => Leadership::NoLeader {
                last_contact: contact_at.elapsed(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stale_reads_report_the_time_since_the_last_contact() {
        let follower = LeaderState::Peer {
            leader: "10.0.0.1:8300".into(),
            last_contact: Duration::from_millis(20),
        };
        assert_eq!(follower.read_meta(false), ReadMeta::LEADER, "forwarded");
        assert_eq!(
            follower.read_meta(true).last_contact,
            Duration::from_millis(20)
        );
        let lost = follower.lost();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(
            lost.read_meta(true),
            ReadMeta {
                known_leader: false,
                last_contact: Duration::from_millis(3020)
            }
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        let again = lost.lost();
        assert_eq!(
            again.read_meta(true).last_contact,
            Duration::from_millis(4020),
            "losing it again changes nothing"
        );
        assert_eq!(again.leader_addr("127.0.0.1"), "");
        assert_eq!(LeaderState::Us.leader_addr("127.0.0.1"), "127.0.0.1:8300");
    }
}
