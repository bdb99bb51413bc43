//! `[limits]`: what the concentrator, a user, a source address and a control
//! connection may hold, and how failed logins back off; `[[limits.peers]]` gives
//! configured peers (an access switch carrying many users' calls on one control
//! connection) larger figures. The same defaults apply with and without a
//! configuration file. SIGHUP replaces them ([`LiveLimits`]).

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
    time::Duration,
};

use ipnet::Ipv4Net;
use serde::Deserialize;
use toml::Spanned;

use super::raw::Checker;

type S<T> = Spanned<T>;

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    max_sessions: Option<S<i64>>,
    sessions_per_user: Option<S<i64>>,
    handshake_timeout: Option<S<i64>>,
    connections_per_source: Option<S<i64>>,
    unauthenticated_calls_per_connection: Option<S<i64>>,
    unauthenticated_calls_per_source: Option<S<i64>>,
    failed_logins: Option<S<i64>>,
    login_backoff: Option<S<i64>>,
    #[serde(default)]
    peers: Vec<S<RawPeer>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    address: S<String>,
    connections_per_source: Option<S<i64>>,
    unauthenticated_calls_per_connection: Option<S<i64>>,
    unauthenticated_calls_per_source: Option<S<i64>>,
}

/// The three caps as written in `[limits]` or a peer entry.
type RawCaps<'a> = [&'a Option<S<i64>>; 3];

/// A count where 0 means unlimited.
fn cap(c: &mut Checker, v: &Option<S<i64>>, key: &str, default: Option<u32>) -> Option<u32> {
    match v {
        None => default,
        Some(_) => Some(c.int(v, key, 0..=65535, 0) as u32).filter(|n| *n > 0),
    }
}

fn caps(
    c: &mut Checker,
    [conns, per_conn, per_source]: RawCaps,
    prefix: &str,
    default: PeerCaps,
) -> PeerCaps {
    PeerCaps {
        connections_per_source: cap(
            c,
            conns,
            &format!("{prefix}.connections_per_source"),
            default.connections_per_source,
        ),
        unauthenticated_calls_per_connection: cap(
            c,
            per_conn,
            &format!("{prefix}.unauthenticated_calls_per_connection"),
            default.unauthenticated_calls_per_connection,
        ),
        unauthenticated_calls_per_source: cap(
            c,
            per_source,
            &format!("{prefix}.unauthenticated_calls_per_source"),
            default.unauthenticated_calls_per_source,
        ),
    }
}

/// `[limits]`, every problem reported through `c`.
pub(super) fn check(c: &mut Checker, raw: &RawLimits) -> Limits {
    let d = Limits::default();
    let max_sessions = c.int(
        &raw.max_sessions,
        "limits.max_sessions",
        1..=65535,
        i64::from(d.max_sessions),
    ) as u32;
    let general = caps(
        c,
        [
            &raw.connections_per_source,
            &raw.unauthenticated_calls_per_connection,
            &raw.unauthenticated_calls_per_source,
        ],
        "limits",
        d.caps,
    );
    let mut peers: Vec<PeerLimits> = Vec::new();
    for p in &raw.peers {
        let p = p.get_ref();
        let key = "limits.peers.address";
        let text = p.address.get_ref();
        let net = text
            .parse::<Ipv4Net>()
            .or_else(|_| text.parse::<Ipv4Addr>().map(Ipv4Net::from));
        let net = match net {
            Ok(n) if n.trunc() == n => n,
            Ok(n) => {
                c.err(
                    p.address.span(),
                    key,
                    format!("{text:?} has host bits set (did you mean {}?)", n.trunc()),
                );
                continue;
            }
            Err(_) => {
                c.err(
                    p.address.span(),
                    key,
                    format!("{text:?} is not an IPv4 address or prefix"),
                );
                continue;
            }
        };
        if peers.iter().any(|q| q.net == net) {
            c.err(p.address.span(), key, format!("{net} is listed twice"));
            continue;
        }
        // Keys a peer does not give are the general ones.
        let caps = caps(
            c,
            [
                &p.connections_per_source,
                &p.unauthenticated_calls_per_connection,
                &p.unauthenticated_calls_per_source,
            ],
            "limits.peers",
            general,
        );
        peers.push(PeerLimits { net, caps });
    }
    peers.sort_by_key(|p| std::cmp::Reverse(p.net.prefix_len()));
    let failed_logins = c.int(
        &raw.failed_logins,
        "limits.failed_logins",
        0..=1000,
        d.failed_logins.map_or(0, i64::from),
    ) as u32;
    Limits {
        max_sessions,
        sessions_per_user: Some(c.int(
            &raw.sessions_per_user,
            "limits.sessions_per_user",
            0..=65535,
            0,
        ) as u32)
        .filter(|n| *n > 0),
        handshake_timeout: Duration::from_secs(c.int(
            &raw.handshake_timeout,
            "limits.handshake_timeout",
            1..=600,
            d.handshake_timeout.as_secs() as i64,
        ) as u64),
        caps: general,
        failed_logins: (failed_logins > 0).then_some(failed_logins),
        login_backoff: Duration::from_secs(c.int(
            &raw.login_backoff,
            "limits.login_backoff",
            1..=3600,
            d.login_backoff.as_secs() as i64,
        ) as u64),
        peers: peers.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The errors of a minimal configuration (3 lines) followed by `extra`.
    fn error(extra: &str) -> String {
        let text = format!(
            "[tunnel]\nlocal_ip = \"192.0.2.1\"\npools = [\"192.0.2.10-192.0.2.250\"]\n{extra}"
        );
        crate::config::Config::parse("/etc/pptp-xdp/pptp-agent.toml", &text)
            .expect_err("should fail")
            .to_string()
    }

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

    #[test]
    fn peer_limit_mistakes_are_reported_with_their_lines() {
        assert_eq!(
            error(
                "[limits]\nunauthenticated_calls_per_source = -1\n\
                 [[limits.peers]]\naddress = \"198.51.100.1/24\"\n\
                 [[limits.peers]]\naddress = \"switch.example\"\n\
                 [[limits.peers]]\naddress = \"198.51.100.7\"\n\
                 [[limits.peers]]\naddress = \"198.51.100.7/32\"\n"
            ),
            "/etc/pptp-xdp/pptp-agent.toml:5: limits.unauthenticated_calls_per_source: -1 is out of range (0 to 65535)\n\
             /etc/pptp-xdp/pptp-agent.toml:7: limits.peers.address: \"198.51.100.1/24\" has host bits set (did you mean 198.51.100.0/24?)\n\
             /etc/pptp-xdp/pptp-agent.toml:9: limits.peers.address: \"switch.example\" is not an IPv4 address or prefix\n\
             /etc/pptp-xdp/pptp-agent.toml:13: limits.peers.address: 198.51.100.7/32 is listed twice"
        );
        assert_eq!(
            error("[[limits.peers]]\naddress = \"198.51.100.7\"\nmax_sessions = 3\n"),
            "/etc/pptp-xdp/pptp-agent.toml:6: limits.peers[0].max_sessions: unknown field `max_sessions`, expected one of `address`, `connections_per_source`, `unauthenticated_calls_per_connection`, `unauthenticated_calls_per_source`"
        );
    }
}
