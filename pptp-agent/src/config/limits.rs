//! `[limits]` and `[[limits.peers]]`, read into the guards' [`Limits`] (what they
//! mean and their defaults: `guard/limits.rs`). SIGHUP replaces them
//! ([`LiveLimits`](crate::guard::limits::LiveLimits)).

use std::{net::Ipv4Addr, time::Duration};

use ipnet::Ipv4Net;
use serde::Deserialize;
use toml::Spanned;

use super::check::Checker;
use crate::guard::limits::{Limits, PeerCaps, PeerLimits};

type S<T> = Spanned<T>;

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
