//! The `[radius]` section and `auth.source`, as written and validated into a
//! [`RadiusConfig`] (in its own file so that the rest of the configuration reads
//! without it).

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use serde::Deserialize;
use toml::Spanned;

use super::check::Checker;
use crate::auth::pool::AddressRange;
use crate::radius::{
    DaeConfig, RadiusConfig, UserSource,
    auth::Nas,
    client::{RequireMessageAuthenticator, Server, Timing},
};

type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRadius {
    nas_identifier: Option<S<String>>,
    nas_ip: Option<S<String>>,
    timeout: Option<S<i64>>,
    retries: Option<S<i64>>,
    dead_time: Option<S<i64>>,
    require_message_authenticator: Option<S<RawRequire>>,
    interim_interval: Option<S<i64>>,
    sockets: Option<S<i64>>,
    #[serde(default)]
    servers: Vec<S<RawServer>>,
    #[serde(default)]
    pools: BTreeMap<String, S<Vec<S<String>>>>,
    dae: Option<S<RawDae>>,
}

/// `require_message_authenticator`: `"auto"`, `true` or `false`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawRequire {
    Flag(bool),
    Word(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    auth: Option<S<String>>,
    acct: Option<S<String>>,
    secret: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDae {
    listen: S<String>,
    #[serde(default)]
    clients: Vec<S<RawDaeClient>>,
    require_message_authenticator: Option<bool>,
    event_timestamp_window: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaeClient {
    address: S<String>,
    secret: S<String>,
}

/// Defaults (the example file shows the same values).
pub mod defaults {
    /// Seconds to wait for an answer.
    pub const TIMEOUT: u64 = 3;
    /// Retransmissions per server.
    pub const RETRIES: u32 = 2;
    /// Seconds a silent server is tried last.
    pub const DEAD_TIME: u64 = 30;
    /// UDP sockets for every exchange (256 identifiers each per server).
    pub const SOCKETS: u64 = 8;
    /// Seconds Event-Timestamp of a dynamic authorization request may be off, and
    /// requests are remembered against replays.
    pub const EVENT_TIMESTAMP_WINDOW: u64 = 300;
    /// How long requests are remembered when Event-Timestamp is not required.
    pub const DUPLICATE_WINDOW: u64 = 300;
}

/// `auth.source`.
pub(super) fn source(c: &mut Checker, value: &Option<S<String>>) -> UserSource {
    match value {
        None => UserSource::File,
        Some(v) => match v.get_ref().as_str() {
            "file" => UserSource::File,
            "radius" => UserSource::Radius,
            "radius-then-file" => UserSource::RadiusThenFile,
            other => {
                c.err(
                    v.span(),
                    "auth.source",
                    format!("{other:?} is not one of \"file\", \"radius\", \"radius-then-file\""),
                );
                UserSource::File
            }
        },
    }
}

fn socket(c: &mut Checker, v: &S<String>, key: &str, default_port: u16) -> Option<SocketAddr> {
    let text = v.get_ref();
    let parsed = text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    });
    if parsed.is_none() {
        c.err(
            v.span(),
            key,
            format!("{text:?} is not ADDRESS or ADDRESS:PORT"),
        );
    }
    parsed
}

fn secret(c: &mut Checker, v: &S<String>, key: &str) -> Vec<u8> {
    if v.get_ref().is_empty() {
        c.err(v.span(), key, "empty secret");
    }
    v.get_ref().clone().into_bytes()
}

fn require(c: &mut Checker, v: &Option<S<RawRequire>>) -> RequireMessageAuthenticator {
    let Some(v) = v else {
        return RequireMessageAuthenticator::default();
    };
    match v.get_ref() {
        RawRequire::Flag(true) => RequireMessageAuthenticator::Always,
        RawRequire::Flag(false) => RequireMessageAuthenticator::Never,
        RawRequire::Word(w) if w == "auto" => RequireMessageAuthenticator::Auto,
        RawRequire::Word(w) => {
            c.err(
                v.span(),
                "radius.require_message_authenticator",
                format!("{w:?} is not one of \"auto\", true, false"),
            );
            RequireMessageAuthenticator::default()
        }
    }
}

/// `[radius]`, checked against `source`; `None` when there is no section.
pub(super) fn check(
    c: &mut Checker,
    raw: Option<&S<RawRadius>>,
    source: (UserSource, Option<std::ops::Range<usize>>),
    name: &str,
    (tunnel_pools, local_ip): (&[AddressRange], Option<Ipv4Addr>),
) -> Option<RadiusConfig> {
    let Some(raw) = raw else {
        if source.0 != UserSource::File {
            c.err(
                source.1.unwrap_or(0..0),
                "auth.source",
                "RADIUS named but there is no [radius] section with servers",
            );
        }
        return None;
    };
    let span = raw.span();
    let r = raw.get_ref();
    let secs = |c: &mut Checker, v: &Option<S<i64>>, key: &str, range, default: u64| {
        Duration::from_secs(c.int(v, key, range, default as i64) as u64)
    };
    let timing = Timing {
        timeout: secs(c, &r.timeout, "radius.timeout", 1..=60, defaults::TIMEOUT),
        retries: c.int(
            &r.retries,
            "radius.retries",
            0..=10,
            i64::from(defaults::RETRIES),
        ) as u32,
        dead_time: secs(
            c,
            &r.dead_time,
            "radius.dead_time",
            0..=3600,
            defaults::DEAD_TIME,
        ),
        require_message_authenticator: require(c, &r.require_message_authenticator),
    };
    let interim = secs(
        c,
        &r.interim_interval,
        "radius.interim_interval",
        0..=86400,
        0,
    );
    let sockets = c.int(
        &r.sockets,
        "radius.sockets",
        1..=64,
        defaults::SOCKETS as i64,
    ) as usize;
    let nas_ip = r.nas_ip.as_ref().and_then(|v| c.ipv4(v, "radius.nas_ip"));
    let nas = Nas {
        identifier: Some(
            r.nas_identifier
                .as_ref()
                .map_or_else(|| name.to_owned(), |v| v.get_ref().clone()),
        ),
        ip: nas_ip,
    };
    let (mut auth_servers, mut acct_servers) = (Vec::new(), Vec::new());
    for s in &r.servers {
        let s = s.get_ref();
        let secret = secret(c, &s.secret, "radius.servers.secret");
        if let Some(a) = s
            .auth
            .as_ref()
            .and_then(|v| socket(c, v, "radius.servers.auth", 1812))
        {
            auth_servers.push(Server {
                addr: a,
                secret: secret.clone(),
            });
        }
        if let Some(a) = s
            .acct
            .as_ref()
            .and_then(|v| socket(c, v, "radius.servers.acct", 1813))
        {
            acct_servers.push(Server { addr: a, secret });
        }
    }
    // (A server whose `auth` was written but is wrong has its own error.)
    if source.0 != UserSource::File && !r.servers.iter().any(|s| s.get_ref().auth.is_some()) {
        c.err(
            span.clone(),
            "radius.servers",
            "auth.source names RADIUS but no server has an `auth` address",
        );
    }
    if source.0 == UserSource::File && !r.servers.iter().any(|s| s.get_ref().acct.is_some()) {
        c.err(
            span,
            "radius.servers",
            "no server has an `acct` address and auth.source is \"file\": the section does nothing",
        );
    }
    let dae = r.dae.as_ref().and_then(|d| {
        let d = d.get_ref();
        let listen = socket(c, &d.listen, "radius.dae.listen", 3799)?;
        let clients = d
            .clients
            .iter()
            .filter_map(|cl| {
                let cl = cl.get_ref();
                let ip = match cl.address.get_ref().parse::<IpAddr>() {
                    Ok(ip) => ip,
                    Err(_) => {
                        c.err(
                            cl.address.span(),
                            "radius.dae.clients.address",
                            format!("{:?} is not an IP address", cl.address.get_ref()),
                        );
                        return None;
                    }
                };
                Some((ip, secret(c, &cl.secret, "radius.dae.clients.secret")))
            })
            .collect::<Vec<_>>();
        if clients.is_empty() {
            c.err(
                d.listen.span(),
                "radius.dae.clients",
                "no client may send requests: add clients = [{ address = ..., secret = ... }]",
            );
        }
        let window = c.int(
            &d.event_timestamp_window,
            "radius.dae.event_timestamp_window",
            0..=86400,
            defaults::EVENT_TIMESTAMP_WINDOW as i64,
        ) as u64;
        Some(DaeConfig {
            listen,
            clients,
            require_message_authenticator: d.require_message_authenticator.unwrap_or(true),
            require_event_timestamp: window > 0,
            window: Duration::from_secs(if window > 0 {
                window
            } else {
                defaults::DUPLICATE_WINDOW
            }),
        })
    });
    let mut taken = tunnel_pools.to_vec();
    let mut pools = BTreeMap::new();
    for (pool, list) in &r.pools {
        let key = format!("radius.pools.{}", super::check::quote_key(pool));
        if list.get_ref().is_empty() {
            c.err(
                list.span(),
                &key,
                "empty: a user sent here would get no address",
            );
        }
        let mut ranges = Vec::new();
        for v in list.get_ref() {
            if let Some(range) = c.range(v, &key, &taken, local_ip) {
                taken.push(range);
                ranges.push(range);
            }
        }
        pools.insert(pool.clone(), ranges);
    }
    Some(RadiusConfig {
        auth_servers,
        acct_servers,
        timing,
        sockets,
        nas,
        interim: (!interim.is_zero()).then_some(interim),
        dae,
        pools,
    })
}
