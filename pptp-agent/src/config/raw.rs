//! The file as written (every field optional, positions kept) and its validation
//! into [`Config`].

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use toml::Spanned;

use super::{
    check::{Checker, quote_key, unicast},
    settings::{Auth, Config, Interfaces, Keepalive, Tunnel},
};
use crate::diag::{Diagnostic, Diagnostics, line_of};
use crate::{
    auth::{pool::AddressRange, users::DialIn},
    dhcp::{ConfigError, DhcpInformConfig, StaticRoute},
    mppe::KeyStrength,
    ppp::{
        auth::{Method, Policy},
        ccp::{MppeMode, MppePolicy},
    },
};

type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: Option<S<String>>,
    listen: Option<S<Vec<S<String>>>>,
    mru: Option<S<i64>>,
    #[serde(default)]
    interfaces: RawInterfaces,
    #[serde(default)]
    tunnel: RawTunnel,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    mppe: RawMppe,
    #[serde(default)]
    limits: super::limits::RawLimits,
    #[serde(default)]
    keepalive: RawKeepalive,
    #[serde(default)]
    dhcp: RawDhcp,
    #[serde(default)]
    users: BTreeMap<String, S<RawUser>>,
    radius: Option<S<super::radius::RawRadius>>,
    #[serde(default)]
    demand_dial: Vec<S<super::demand_dial::RawDemandDial>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawInterfaces {
    #[serde(default)]
    uplink: Vec<S<String>>,
    #[serde(default)]
    lan: Vec<S<String>>,
    tun: Option<S<String>>,
    drop_unknown: Option<bool>,
    bpffs: Option<S<String>>,
    instance: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTunnel {
    local_ip: Option<S<String>>,
    pools: Option<S<Vec<S<String>>>>,
    dns: Option<S<Vec<S<String>>>>,
    wins: Option<S<Vec<S<String>>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    methods: Option<S<Vec<S<String>>>>,
    secrets: Option<S<String>>,
    dial_in: Option<S<String>>,
    source: Option<S<String>>,
    rate: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMppe {
    policy: Option<S<String>>,
    bits: Option<S<Vec<S<i64>>>>,
    #[serde(default)]
    stateful: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKeepalive {
    lcp_echo_interval: Option<S<i64>>,
    lcp_echo_failures: Option<S<i64>>,
    control_echo_interval: Option<S<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDhcp {
    domain: Option<S<String>>,
    #[serde(default)]
    routes: Vec<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUser {
    dial_in: Option<S<String>>,
    rate: Option<S<String>>,
}

/// Defaults (the example file shows the same values).
pub mod defaults {
    /// CHAP name.
    pub const NAME: &str = "pptp-xdp";
    /// Control connections.
    pub const LISTEN: &str = "0.0.0.0:1723";
    /// MRU.
    pub const MRU: u16 = 1400;
    /// TUN device.
    pub const TUN: &str = "pptp0";
    /// Drop GRE of unknown sessions in XDP (every call is installed before its first
    /// GRE packet can arrive).
    pub const DROP_UNKNOWN: bool = true;
    /// chap-secrets.
    pub const SECRETS: &str = "/etc/ppp/chap-secrets";
    /// LCP echo interval, seconds.
    pub const LCP_ECHO_INTERVAL: u64 = 30;
    /// LCP echo failures.
    pub const LCP_ECHO_FAILURES: u32 = 3;
    /// Control-connection echo interval, seconds.
    pub const CONTROL_ECHO_INTERVAL: u64 = 60;
}

fn dial_in(c: &mut Checker, v: &S<String>, key: &str) -> DialIn {
    match v.get_ref().as_str() {
        "allow" => DialIn::Allow,
        "deny" => DialIn::Deny,
        other => {
            c.err(
                v.span(),
                key,
                format!("{other:?} is not one of \"allow\", \"deny\""),
            );
            DialIn::Allow
        }
    }
}

/// Turns a serde error into `file:line: key: message`.
fn deserialize_error(
    path: &Path,
    text: &str,
    e: serde_path_to_error::Error<toml::de::Error>,
) -> Diagnostic {
    // Spanned<T> shows up in serde paths as a private field: leave it out.
    let key = e
        .path()
        .to_string()
        .replace(".$__serde_spanned_private_value", "")
        .replace("$__serde_spanned_private_value.", "");
    let inner = e.inner();
    let line = inner.span().map_or(0, |s| line_of(text, s.start));
    let message = inner.message().trim().to_owned();
    let key = (key != "." && !key.is_empty()).then_some(key);
    Diagnostic {
        path: path.to_owned(),
        line,
        key,
        message,
    }
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
    let raw: RawConfig = {
        let de = toml::Deserializer::parse(text).map_err(|e| {
            let line = e.span().map_or(0, |s| line_of(text, s.start));
            Diagnostic {
                path: path.to_owned(),
                line,
                key: None,
                message: format!("TOML syntax: {}", e.message().trim()),
            }
        })?;
        serde_path_to_error::deserialize(de).map_err(|e| deserialize_error(path, text, e))?
    };
    let mut c = Checker {
        path,
        text,
        errors: Vec::new(),
    };
    let dir = path.parent().unwrap_or(Path::new("/"));

    // Top level.
    let name = match &raw.name {
        None => defaults::NAME.to_owned(),
        Some(n) => {
            if n.get_ref().is_empty() || n.get_ref().chars().any(char::is_control) {
                c.err(
                    n.span(),
                    "name",
                    "must be non-empty, without control characters",
                );
            }
            n.get_ref().clone()
        }
    };
    let mut listen = Vec::new();
    match &raw.listen {
        None => listen.push(defaults::LISTEN.parse().expect("default listen address")),
        Some(list) => {
            if list.get_ref().is_empty() {
                c.err(
                    list.span(),
                    "listen",
                    "empty: the agent would accept no connection",
                );
            }
            for v in list.get_ref() {
                match v.get_ref().parse::<SocketAddr>() {
                    Ok(SocketAddr::V6(_)) => c.err(
                        v.span(),
                        "listen",
                        format!("{}: PPTP carries GRE over IPv4 only", v.get_ref()),
                    ),
                    Ok(a) if listen.contains(&a) => {
                        c.err(v.span(), "listen", format!("{a} is listed twice"))
                    }
                    Ok(a) => listen.push(a),
                    Err(_) => c.err(
                        v.span(),
                        "listen",
                        format!(
                            "{:?} is not ADDRESS:PORT (e.g. \"0.0.0.0:1723\")",
                            v.get_ref()
                        ),
                    ),
                }
            }
        }
    }
    let mru = c.int(&raw.mru, "mru", 576..=1500, i64::from(defaults::MRU)) as u16;

    // [interfaces]
    let ri = &raw.interfaces;
    let mut seen: Vec<String> = Vec::new();
    let mut ifaces = |c: &mut Checker, list: &[S<String>], key: &str| -> Vec<String> {
        let mut out = Vec::new();
        for v in list {
            let name = c.interface(v, key);
            if seen.contains(&name) {
                c.err(
                    v.span(),
                    key,
                    format!("{name:?} is listed twice (uplink and lan)"),
                );
            } else {
                seen.push(name.clone());
                out.push(name);
            }
        }
        out
    };
    let uplink = ifaces(&mut c, &ri.uplink, "interfaces.uplink");
    let lan = ifaces(&mut c, &ri.lan, "interfaces.lan");
    let tun = match &ri.tun {
        None => defaults::TUN.to_owned(),
        Some(v) => c.interface(v, "interfaces.tun"),
    };
    let bpffs = match &ri.bpffs {
        None => PathBuf::from(crate::dataplane::bpffs::DEFAULT_ROOT),
        Some(v) => {
            if !v.get_ref().starts_with('/') {
                c.err(v.span(), "interfaces.bpffs", "must be an absolute path");
            }
            PathBuf::from(v.get_ref())
        }
    };
    let instance = match &ri.instance {
        None => crate::dataplane::bpffs::DEFAULT_INSTANCE.to_owned(),
        Some(v) => {
            let s = v.get_ref();
            if s.is_empty() || s.contains('/') || s.starts_with('.') {
                c.err(
                    v.span(),
                    "interfaces.instance",
                    format!("{s:?}: use a plain directory name"),
                );
            }
            s.clone()
        }
    };

    // [tunnel]
    let rt = &raw.tunnel;
    let local_ip = match &rt.local_ip {
        None => {
            c.missing(
                "tunnel.local_ip",
                "our address inside the tunnels, e.g. local_ip = \"192.0.2.1\"",
            );
            None
        }
        Some(v) => match c.ipv4(v, "tunnel.local_ip") {
            Some(a) if !unicast(a) => {
                c.err(
                    v.span(),
                    "tunnel.local_ip",
                    format!("{a} is not a unicast address"),
                );
                None
            }
            other => other,
        },
    };
    let mut pools: Vec<AddressRange> = Vec::new();
    match &rt.pools {
        None => c.missing(
            "tunnel.pools",
            "client addresses, e.g. pools = [\"192.0.2.10-192.0.2.250\"]",
        ),
        Some(list) => {
            if list.get_ref().is_empty() {
                c.err(
                    list.span(),
                    "tunnel.pools",
                    "empty: clients would get no address",
                );
            }
            for v in list.get_ref() {
                if let Some(range) = c.range(v, "tunnel.pools", &pools, local_ip) {
                    pools.push(range);
                }
            }
        }
    }
    let dns = c.servers(&rt.dns, "tunnel.dns");
    let wins = c.servers(&rt.wins, "tunnel.wins");

    // [auth]
    let ra = &raw.auth;
    let mut methods = Vec::new();
    match &ra.methods {
        None => methods.push(Method::MsChapV2),
        Some(list) => {
            if list.get_ref().is_empty() {
                c.err(
                    list.span(),
                    "auth.methods",
                    "empty: every client would be let in without authentication",
                );
            }
            for v in list.get_ref() {
                let m = match v.get_ref().as_str() {
                    "mschapv2" => Method::MsChapV2,
                    "mschap" => Method::MsChapV1,
                    "chap" => Method::ChapMd5,
                    "pap" => Method::Pap,
                    other => {
                        c.err(
                            v.span(),
                            "auth.methods",
                            format!(
                                "{other:?} is not one of \"mschapv2\", \"mschap\", \"chap\", \"pap\""
                            ),
                        );
                        continue;
                    }
                };
                if methods.contains(&m) {
                    c.err(
                        v.span(),
                        "auth.methods",
                        format!("{:?} is listed twice", v.get_ref()),
                    );
                } else {
                    methods.push(m);
                }
            }
        }
    }
    let secrets = match &ra.secrets {
        None => PathBuf::from(defaults::SECRETS),
        Some(v) => {
            if v.get_ref().is_empty() {
                c.err(v.span(), "auth.secrets", "empty path");
            }
            dir.join(v.get_ref())
        }
    };
    let default_dial_in = match &ra.dial_in {
        None => DialIn::Allow,
        Some(v) => dial_in(&mut c, v, "auth.dial_in"),
    };
    let default_rate = super::rate::check(&mut c, &ra.rate, "auth.rate");
    let mut rates = BTreeMap::new();
    let mut dial_in_map = BTreeMap::new();
    let mut user_lines = BTreeMap::new();
    for (user, settings) in &raw.users {
        let key = format!("users.{}", quote_key(user));
        if user.is_empty() {
            c.err(settings.span(), "users", "empty user name");
            continue;
        }
        user_lines.insert(user.clone(), line_of(text, settings.span().start));
        let entry = settings.get_ref();
        if entry.rate.is_some() {
            let rate = super::rate::check(&mut c, &entry.rate, &format!("{key}.rate"));
            rates.insert(user.clone(), rate);
        }
        let d = match &entry.dial_in {
            None if entry.rate.is_some() => continue,
            None => {
                c.err(
                    settings.span(),
                    key,
                    "missing: dial_in = \"allow\" or \"deny\" (or a rate)",
                );
                continue;
            }
            Some(v) => dial_in(&mut c, v, &format!("{key}.dial_in")),
        };
        dial_in_map.insert(user.clone(), d);
    }

    let source = super::radius::source(&mut c, &ra.source);
    let radius = super::radius::check(
        &mut c,
        raw.radius.as_ref(),
        (source, ra.source.as_ref().map(|s| s.span())),
        &name,
        (&pools, local_ip),
    );

    // [mppe]
    let rm = &raw.mppe;
    let mode = match &rm.policy {
        None => MppeMode::Deny,
        Some(v) => match v.get_ref().as_str() {
            "require" => MppeMode::Require,
            "prefer" => MppeMode::Prefer,
            "deny" => MppeMode::Deny,
            other => {
                c.err(
                    v.span(),
                    "mppe.policy",
                    format!("{other:?} is not one of \"require\", \"prefer\", \"deny\""),
                );
                MppeMode::Deny
            }
        },
    };
    let mut strengths = Vec::new();
    match &rm.bits {
        None => strengths.push(KeyStrength::Bits128),
        Some(list) => {
            if list.get_ref().is_empty() && mode != MppeMode::Deny {
                c.err(
                    list.span(),
                    "mppe.bits",
                    "empty: no key length to negotiate",
                );
            }
            for v in list.get_ref() {
                let s = match v.get_ref() {
                    40 => KeyStrength::Bits40,
                    56 => KeyStrength::Bits56,
                    128 => KeyStrength::Bits128,
                    other => {
                        c.err(
                            v.span(),
                            "mppe.bits",
                            format!("{other} is not one of 40, 56, 128"),
                        );
                        continue;
                    }
                };
                if strengths.contains(&s) {
                    c.err(
                        v.span(),
                        "mppe.bits",
                        format!("{} is listed twice", v.get_ref()),
                    );
                } else {
                    strengths.push(s);
                }
            }
        }
    }
    if mode == MppeMode::Require && !methods.iter().any(|m| m.has_mppe_keys()) {
        let span = rm.policy.as_ref().map_or(0..0, |p| p.span());
        c.err(
            span,
            "mppe.policy",
            "\"require\" needs \"mschapv2\" or \"mschap\" in auth.methods (MPPE keys come from MS-CHAP)",
        );
    }

    let limits = super::limits::check(&mut c, &raw.limits);

    // [keepalive]
    let rk = &raw.keepalive;
    let lcp_echo_interval = c.int(
        &rk.lcp_echo_interval,
        "keepalive.lcp_echo_interval",
        0..=3600,
        defaults::LCP_ECHO_INTERVAL as i64,
    ) as u64;
    let lcp_echo_failures = c.int(
        &rk.lcp_echo_failures,
        "keepalive.lcp_echo_failures",
        1..=100,
        i64::from(defaults::LCP_ECHO_FAILURES),
    ) as u32;
    let control_echo_interval = c.int(
        &rk.control_echo_interval,
        "keepalive.control_echo_interval",
        0..=3600,
        defaults::CONTROL_ECHO_INTERVAL as i64,
    ) as u64;

    let dhcp = local_ip.map(|server| dhcp_inform(&mut c, &raw.dhcp, server, dns));
    // [[demand_dial]]
    let demand_dial =
        super::demand_dial::check(&mut c, dir, &raw.demand_dial, &seen_with_tun(&seen, &tun));

    if !c.errors.is_empty() {
        c.errors.sort_by_key(|d| d.line);
        return Err(Diagnostics(c.errors));
    }
    let secs = |n: u64| (n > 0).then(|| Duration::from_secs(n));
    Ok(Config {
        path: path.to_owned(),
        name,
        listen,
        mru,
        interfaces: Interfaces {
            uplink,
            lan,
            tun,
            drop_unknown: ri.drop_unknown.unwrap_or(defaults::DROP_UNKNOWN),
            bpffs,
            instance,
        },
        tunnel: Tunnel {
            local_ip: local_ip.expect("checked"),
            pools,
            dns,
            wins,
        },
        auth: Auth {
            policy: Policy::new(&methods),
            secrets,
            default_dial_in,
            dial_in: dial_in_map,
            default_rate,
            rates,
            user_lines,
            source,
        },
        radius,
        mppe: MppePolicy {
            mode,
            strengths,
            allow_stateful: rm.stateful,
            request_stateful: rm.stateful,
        },
        limits,
        keepalive: Keepalive {
            lcp_echo_interval: secs(lcp_echo_interval),
            lcp_echo_failures,
            control_echo_interval: secs(control_echo_interval),
        },
        dhcp: dhcp.expect("checked with local_ip"),
        demand_dial,
        holds_secrets: raw.radius.is_some()
            || raw.demand_dial.iter().any(|d| d.get_ref().has_password()),
    })
}

/// Interface names already used by `[interfaces]`.
fn seen_with_tun(seen: &[String], tun: &str) -> Vec<String> {
    let mut all = seen.to_vec();
    all.push(tun.to_owned());
    all
}

/// `[dhcp]`: what DHCPINFORM answers carry, checked as the responder will check it,
/// each problem reported at the key that causes it.
fn dhcp_inform(
    c: &mut Checker,
    raw: &RawDhcp,
    server: Ipv4Addr,
    dns: [Option<Ipv4Addr>; 2],
) -> DhcpInformConfig {
    let mut routes = Vec::new();
    let mut route_spans = Vec::new();
    for v in &raw.routes {
        match parse_prefix(v.get_ref()) {
            Ok((prefix, len)) => {
                routes.push(StaticRoute {
                    prefix,
                    len,
                    gateway: server,
                });
                route_spans.push(v.span());
            }
            Err(m) => c.err(v.span(), "dhcp.routes", m),
        }
    }
    let config = DhcpInformConfig {
        server,
        domain: raw.domain.as_ref().map(|d| d.get_ref().clone()),
        routes,
        dns: dns.into_iter().flatten().collect(),
        subnet_mask: None,
    };
    if let Err(e) = config.validate() {
        let route_span = |prefix: Ipv4Addr, len: u8| {
            config
                .routes
                .iter()
                .position(|r| (r.prefix, r.len) == (prefix, len))
                .map(|i| route_spans[i].clone())
        };
        let (key, span) = match &e {
            ConfigError::BadDomain(_) => ("dhcp.domain", raw.domain.as_ref().map(|d| d.span())),
            ConfigError::PrefixTooLong { prefix, len }
            | ConfigError::HostBitsSet { prefix, len, .. }
            | ConfigError::DuplicateRoute { prefix, len } => {
                ("dhcp.routes", route_span(*prefix, *len))
            }
            _ => (
                "dhcp",
                raw.domain
                    .as_ref()
                    .map(|d| d.span())
                    .or(raw.routes.first().map(|r| r.span())),
            ),
        };
        c.err(span.unwrap_or(0..0), key, e.to_string());
    }
    config
}

/// `a.b.c.d/n`.
pub fn parse_prefix(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a prefix (a.b.c.d/n)"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("{len:?} is not a prefix length"))?;
    Ok((addr, len))
}
