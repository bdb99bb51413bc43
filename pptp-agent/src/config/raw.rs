//! The file as written (every field optional, positions kept) and its validation
//! into [`Config`].

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    ops::Range,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use toml::Spanned;

use super::{
    Auth, Config, IFNAMSIZ_MAX, Interfaces, Keepalive, Tunnel,
    diag::{Diagnostic, Diagnostics, line_of},
};
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

pub(super) struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
    errors: Vec<Diagnostic>,
}

impl Checker<'_> {
    pub(super) fn err(
        &mut self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.errors.push(Diagnostic::new(
            self.path,
            line_of(self.text, span.start),
            key,
            message,
        ));
    }

    fn missing(&mut self, key: &str, message: &str) {
        self.errors.push(Diagnostic::new(
            self.path,
            0,
            key,
            format!("missing: {message}"),
        ));
    }

    /// An integer in `range`, or the default.
    pub(super) fn int(
        &mut self,
        value: &Option<S<i64>>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
    ) -> i64 {
        match value {
            None => default,
            Some(v) if range.contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                self.err(
                    v.span(),
                    key,
                    format!(
                        "{} is out of range ({} to {})",
                        v.get_ref(),
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        }
    }

    pub(super) fn ipv4(&mut self, value: &S<String>, key: &str) -> Option<Ipv4Addr> {
        match value.get_ref().parse::<Ipv4Addr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    value.span(),
                    key,
                    format!("{:?} is not an IPv4 address", value.get_ref()),
                );
                None
            }
        }
    }

    pub(super) fn interface(&mut self, value: &S<String>, key: &str) -> String {
        let name = value.get_ref();
        if name.is_empty() {
            self.err(value.span(), key, "empty interface name");
        } else if name.len() > IFNAMSIZ_MAX {
            self.err(
                value.span(),
                key,
                format!(
                    "{name:?} is longer than {IFNAMSIZ_MAX} bytes (Linux's limit for interface names)"
                ),
            );
        } else if name == "."
            || name == ".."
            || name.contains(['/', ':'])
            || name.contains(char::is_whitespace)
        {
            self.err(
                value.span(),
                key,
                format!("{name:?} is not a valid interface name"),
            );
        }
        name.clone()
    }

    /// A pool range that overlaps none of `taken`, holds no `local_ip` and only
    /// addresses clients can use.
    pub(super) fn range(
        &mut self,
        v: &S<String>,
        key: &str,
        taken: &[AddressRange],
        local_ip: Option<Ipv4Addr>,
    ) -> Option<AddressRange> {
        let range = match parse_range(v.get_ref()) {
            Ok(r) => r,
            Err(m) => {
                self.err(v.span(), key, m);
                return None;
            }
        };
        let problem = if let Some(other) = taken.iter().find(|p| p.overlaps(&range)) {
            format!("{range} overlaps {other}")
        } else if let Some(l) = local_ip.filter(|l| range.contains(*l)) {
            format!("{range} contains the local address {l} (tunnel.local_ip)")
        } else if !unicast(range.first) || !unicast(range.last) {
            format!("{range} includes addresses clients cannot use")
        } else {
            return Some(range);
        };
        self.err(v.span(), key, problem);
        None
    }

    fn servers(&mut self, value: &Option<S<Vec<S<String>>>>, key: &str) -> [Option<Ipv4Addr>; 2] {
        let Some(list) = value else {
            return [None, None];
        };
        if list.get_ref().len() > 2 {
            self.err(
                list.span(),
                key,
                format!(
                    "{} servers given; clients accept at most two (primary, secondary)",
                    list.get_ref().len()
                ),
            );
        }
        let addrs: Vec<Option<Ipv4Addr>> =
            list.get_ref().iter().map(|v| self.ipv4(v, key)).collect();
        [
            addrs.first().copied().flatten(),
            addrs.get(1).copied().flatten(),
        ]
    }
}

fn unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
}

/// Parses a pool: `FIRST-LAST`, `ADDR/N` (without its network and broadcast
/// addresses when N < 31) or one address.
fn parse_range(s: &str) -> Result<AddressRange, String> {
    let bad = |what: &str| format!("{s:?}: {what}; write FIRST-LAST, ADDR/N or one address");
    let ip = |t: &str| {
        t.trim()
            .parse::<Ipv4Addr>()
            .map_err(|_| bad("not an address"))
    };
    if let Some((a, b)) = s.split_once('-') {
        let (first, last) = (ip(a)?, ip(b)?);
        if first > last {
            return Err(format!("{s:?} is empty ({first} comes after {last})"));
        }
        Ok(AddressRange { first, last })
    } else if let Some((a, n)) = s.split_once('/') {
        let base = u32::from(ip(a)?);
        let n: u32 = n
            .parse()
            .ok()
            .filter(|n| *n <= 32)
            .ok_or_else(|| bad("the prefix length must be 0 to 32"))?;
        let mask = if n == 0 { 0 } else { u32::MAX << (32 - n) };
        if base & !mask != 0 {
            return Err(format!(
                "{s:?} has host bits set (did you mean {}/{n}?)",
                Ipv4Addr::from(base & mask)
            ));
        }
        let (first, last) = (base, base | !mask);
        let (first, last) = if n < 31 {
            (first + 1, last - 1)
        } else {
            (first, last)
        };
        Ok(AddressRange {
            first: Ipv4Addr::from(first),
            last: Ipv4Addr::from(last),
        })
    } else {
        let a = ip(s)?;
        Ok(AddressRange { first: a, last: a })
    }
}

pub(super) fn method_name(m: Method) -> &'static str {
    match m {
        Method::MsChapV2 => "mschapv2",
        Method::MsChapV1 => "mschap",
        Method::ChapMd5 => "chap",
        Method::Pap => "pap",
    }
}

pub(super) fn bits(s: KeyStrength) -> u32 {
    match s {
        KeyStrength::Bits40 => 40,
        KeyStrength::Bits56 => 56,
        KeyStrength::Bits128 => 128,
    }
}

/// A user name as it appears in a dotted key: bare if TOML allows it, else quoted.
pub(super) fn quote_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
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
    let mut dial_in_map = BTreeMap::new();
    let mut user_lines = BTreeMap::new();
    for (user, settings) in &raw.users {
        let key = format!("users.{}", quote_key(user));
        if user.is_empty() {
            c.err(settings.span(), "users", "empty user name");
            continue;
        }
        user_lines.insert(user.clone(), line_of(text, settings.span().start));
        let d = match &settings.get_ref().dial_in {
            None => {
                c.err(
                    settings.span(),
                    key,
                    "missing: dial_in = \"allow\" or \"deny\"",
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
