//! What the concentrator, a user, a source address and a control connection may hold,
//! and how failed logins back off; configured peers (an access switch carrying many
//! users' calls on one control connection) get larger figures. `config` builds
//! [`Limits`] from `[limits]` (the same defaults apply without a file); SIGHUP puts
//! new ones in force through [`LiveLimits`].

use std::{net::IpAddr, sync::Arc, time::Duration};

use ipnet::Ipv4Net;

/// Defaults (the example file shows the same values).
pub mod defaults {
    /// Sessions in all.
    pub const MAX_SESSIONS: u32 = 1000;
    /// Control connections per source address (0: unlimited).
    pub const CONNECTIONS_PER_SOURCE: u32 = 10;
    /// Seconds from TCP connect to authenticated.
    pub const HANDSHAKE_TIMEOUT: u64 = 30;
    /// Calls waiting for authentication on one control connection (a Windows or
    /// pptp-linux client places one).
    pub const UNAUTHENTICATED_CALLS_PER_CONNECTION: u32 = 4;
    /// Calls waiting for authentication from one source address (clients behind
    /// one NAT setting up at once).
    pub const UNAUTHENTICATED_CALLS_PER_SOURCE: u32 = 16;
    /// Failed logins (per source address, per user name) that start a back-off.
    pub const FAILED_LOGINS: u32 = 5;
    /// Seconds of the first back-off (and of the window failures are counted in).
    pub const LOGIN_BACKOFF: u64 = 60;
}

/// How many times the back-off doubles at most (60 s grows to 16 min).
pub const LOGIN_BACKOFF_DOUBLINGS: u32 = 4;

/// `[limits]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Sessions in all.
    pub max_sessions: u32,
    /// Sessions of one user; `None`: unlimited.
    pub sessions_per_user: Option<u32>,
    /// Time a control connection has, from its TCP connect, to bring its first
    /// session up; a connection without one by then is stopped.
    pub handshake_timeout: Duration,
    /// What a source address and its connections may hold (unless a peer entry
    /// says otherwise).
    pub caps: PeerCaps,
    /// Failed logins within `login_backoff` that back a source address or a user
    /// name off; `None`: no back-off.
    pub failed_logins: Option<u32>,
    /// The first back-off; it doubles while failures go on.
    pub login_backoff: Duration,
    /// Configured peers, most specific prefix first.
    pub peers: Arc<[PeerLimits]>,
}

/// What one source address and each of its control connections may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCaps {
    /// Control connections from the address; `None`: unlimited.
    pub connections_per_source: Option<u32>,
    /// Calls accepted and not yet authenticated, per control connection.
    pub unauthenticated_calls_per_connection: Option<u32>,
    /// The same, over all the address's connections.
    pub unauthenticated_calls_per_source: Option<u32>,
}

/// A `[[limits.peers]]` entry: the caps of the addresses in `net`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLimits {
    pub net: Ipv4Net,
    pub caps: PeerCaps,
}

impl Limits {
    /// The caps of source address `source`: those of the most specific
    /// `[[limits.peers]]` entry holding it, or the general ones.
    pub fn for_peer(&self, source: IpAddr) -> PeerCaps {
        let IpAddr::V4(v4) = source else {
            return self.caps;
        };
        self.peers
            .iter()
            .find(|p| p.net.contains(&v4))
            .map_or(self.caps, |p| p.caps)
    }
}

impl Default for Limits {
    /// The defaults of the configuration file (also those of `serve` without one).
    fn default() -> Self {
        Limits {
            max_sessions: defaults::MAX_SESSIONS,
            sessions_per_user: None,
            handshake_timeout: Duration::from_secs(defaults::HANDSHAKE_TIMEOUT),
            caps: PeerCaps {
                connections_per_source: Some(defaults::CONNECTIONS_PER_SOURCE),
                unauthenticated_calls_per_connection: Some(
                    defaults::UNAUTHENTICATED_CALLS_PER_CONNECTION,
                ),
                unauthenticated_calls_per_source: Some(defaults::UNAUTHENTICATED_CALLS_PER_SOURCE),
            },
            failed_logins: Some(defaults::FAILED_LOGINS),
            login_backoff: Duration::from_secs(defaults::LOGIN_BACKOFF),
            peers: Arc::new([]),
        }
    }
}

/// The limits in force, shared by the control side and the hub; SIGHUP replaces
/// them and the next check sees the new values (sessions already up stay).
#[derive(Debug, Clone, Default)]
pub struct LiveLimits(Arc<std::sync::RwLock<Limits>>);

impl LiveLimits {
    /// Shares `limits`.
    pub fn new(limits: Limits) -> Self {
        Self(Arc::new(std::sync::RwLock::new(limits)))
    }

    /// The limits now.
    pub fn get(&self) -> Limits {
        self.0.read().expect("limits lock").clone()
    }

    /// Puts `limits` in force.
    pub fn replace(&self, limits: Limits) {
        *self.0.write().expect("limits lock") = limits;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_peer_entry_wins() {
        let caps = |n: u32| PeerCaps {
            connections_per_source: Some(n),
            unauthenticated_calls_per_connection: Some(n),
            unauthenticated_calls_per_source: Some(n),
        };
        let limits = Limits {
            peers: vec![
                PeerLimits {
                    net: "198.51.100.7/32".parse().unwrap(),
                    caps: caps(7),
                },
                PeerLimits {
                    net: "198.51.100.0/24".parse().unwrap(),
                    caps: caps(24),
                },
            ]
            .into(),
            ..Limits::default()
        };
        assert_eq!(limits.for_peer(IpAddr::from([198, 51, 100, 7])), caps(7));
        assert_eq!(limits.for_peer(IpAddr::from([198, 51, 100, 8])), caps(24));
        assert_eq!(
            limits.for_peer(IpAddr::from([203, 0, 113, 1])),
            Limits::default().caps
        );
    }
}
