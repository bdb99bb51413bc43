//! `[[demand_dial]]`: the calling router's interfaces, one table each (see
//! [`crate::demand`] and docs/calling-router.md).
//!
//! An interface is named like Windows RRAS names them: the name is also the user name
//! the router at the other end authenticates with when it calls us, which is how an
//! incoming call is told from a remote-access user and bound to the interface.

use std::{net::Ipv4Addr, path::Path, time::Duration};

use ipnet::Ipv4Net;
use serde::Deserialize;
use toml::Spanned;

use super::check::{Checker, IFNAMSIZ_MAX};
use crate::{
    demand::{DemandConfig, Mode},
    runtime::routers::DemandDialConfig,
};

type S<T> = Spanned<T>;

impl RawDemandDial {
    /// Whether the file holds this interface's password.
    pub(super) fn has_password(&self) -> bool {
        self.password.is_some()
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDemandDial {
    name: Option<S<String>>,
    device: Option<S<String>>,
    server: Option<S<String>>,
    user: Option<S<String>>,
    password: Option<S<String>>,
    password_file: Option<S<String>>,
    #[serde(default)]
    routes: Vec<S<String>>,
    mode: Option<S<String>>,
    idle_timeout: Option<S<i64>>,
    redial_initial: Option<S<i64>>,
    redial_max: Option<S<i64>>,
    queue_packets: Option<S<i64>>,
    queue_bytes: Option<S<i64>>,
}

/// Defaults.
pub mod defaults {
    /// Seconds without data before an on-demand link hangs up.
    pub const IDLE_TIMEOUT: u64 = 300;
    /// First wait after a failed call, seconds.
    pub const REDIAL_INITIAL: u64 = 1;
    /// Longest wait between calls, seconds.
    pub const REDIAL_MAX: u64 = 60;
    /// Packets waiting for the link.
    pub const QUEUE_PACKETS: usize = 64;
    /// Bytes waiting for the link.
    pub const QUEUE_BYTES: usize = 65_536;
}

/// Validates every table; `taken` holds device names already in use (the TUN).
pub(super) fn check(
    c: &mut Checker,
    dir: &Path,
    raw: &[S<RawDemandDial>],
    taken: &[String],
) -> Vec<DemandDialConfig> {
    let mut out: Vec<DemandDialConfig> = Vec::new();
    for (i, table) in raw.iter().enumerate() {
        let key = |k: &str| format!("demand_dial[{i}].{k}");
        let r = table.get_ref();
        let Some(name) = &r.name else {
            c.err(table.span(), key("name"), "missing: the interface's name");
            continue;
        };
        if name.get_ref().is_empty() || name.get_ref().chars().any(char::is_control) {
            c.err(
                name.span(),
                key("name"),
                "must be non-empty, without control characters",
            );
        }
        if out.iter().any(|d| d.name == *name.get_ref()) {
            c.err(
                name.span(),
                key("name"),
                format!("{:?} is defined twice", name.get_ref()),
            );
        }
        let device = match &r.device {
            Some(v) => c.interface(v, &key("device")),
            None if name.get_ref().len() <= IFNAMSIZ_MAX => c.interface(name, &key("device")),
            None => {
                c.err(
                    name.span(),
                    key("device"),
                    format!(
                        "missing: the name is longer than {IFNAMSIZ_MAX} bytes, give a device name"
                    ),
                );
                String::new()
            }
        };
        if taken.contains(&device) || out.iter().any(|d| d.device == device) {
            c.err(
                table.span(),
                key("device"),
                format!("{device:?} is already in use"),
            );
        }
        let mode = match r.mode.as_ref().map(|m| (m, m.get_ref().as_str())) {
            None => (r.server.is_some()).then_some(Mode::OnDemand),
            Some((_, "on-demand")) => Some(Mode::OnDemand),
            Some((_, "persistent")) => Some(Mode::Persistent),
            Some((_, "answer")) => None,
            Some((m, other)) => {
                c.err(
                    m.span(),
                    key("mode"),
                    format!("{other:?} is not one of \"on-demand\", \"persistent\", \"answer\""),
                );
                None
            }
        };
        let server = match (&r.server, mode) {
            (Some(v), Some(_)) => {
                if v.get_ref().is_empty() || v.get_ref().contains(char::is_whitespace) {
                    c.err(v.span(), key("server"), "a host name or an IPv4 address");
                }
                Some(v.get_ref().clone())
            }
            (Some(v), None) => {
                c.err(
                    v.span(),
                    key("server"),
                    "an \"answer\" interface does not call: remove server or change mode",
                );
                None
            }
            (None, Some(_)) => {
                c.err(
                    table.span(),
                    key("server"),
                    "missing: the other router's host name or address",
                );
                None
            }
            (None, None) => None,
        };
        let user = match (&r.user, server.is_some()) {
            (Some(v), _) => v.get_ref().clone(),
            (None, true) => {
                c.err(
                    table.span(),
                    key("user"),
                    "missing: the user name we dial out with",
                );
                String::new()
            }
            (None, false) => String::new(),
        };
        let password = match (&r.password, &r.password_file) {
            (Some(_), Some(f)) => {
                c.err(
                    f.span(),
                    key("password_file"),
                    "give password or password_file, not both",
                );
                String::new()
            }
            (Some(p), None) => p.get_ref().clone(),
            (None, Some(f)) => {
                let path = dir.join(f.get_ref());
                match std::fs::read_to_string(&path) {
                    Ok(text) => text.lines().next().unwrap_or_default().to_owned(),
                    Err(e) => {
                        c.err(
                            f.span(),
                            key("password_file"),
                            format!("cannot read {}: {e}", path.display()),
                        );
                        String::new()
                    }
                }
            }
            (None, None) => {
                if server.is_some() {
                    c.err(
                        table.span(),
                        key("password"),
                        "missing: password or password_file",
                    );
                }
                String::new()
            }
        };
        let mut routes: Vec<Ipv4Net> = Vec::new();
        for v in &r.routes {
            match v
                .get_ref()
                .parse::<Ipv4Net>()
                .or_else(|_| v.get_ref().parse::<Ipv4Addr>().map(Ipv4Net::from))
            {
                Ok(net) if routes.contains(&net.trunc()) => {
                    c.err(v.span(), key("routes"), format!("{net} is listed twice"))
                }
                Ok(net) => routes.push(net.trunc()),
                Err(_) => c.err(
                    v.span(),
                    key("routes"),
                    format!("{:?} is not a.b.c.d/n", v.get_ref()),
                ),
            }
        }
        if routes.is_empty() {
            c.err(
                table.span(),
                key("routes"),
                "missing: the networks behind the other router",
            );
        }
        let idle = c.int(
            &r.idle_timeout,
            &key("idle_timeout"),
            0..=86_400,
            defaults::IDLE_TIMEOUT as i64,
        ) as u64;
        let redial_initial = c.int(
            &r.redial_initial,
            &key("redial_initial"),
            1..=3600,
            defaults::REDIAL_INITIAL as i64,
        ) as u64;
        let redial_max = c.int(
            &r.redial_max,
            &key("redial_max"),
            1..=86_400,
            defaults::REDIAL_MAX as i64,
        ) as u64;
        if redial_max < redial_initial
            && let Some(v) = &r.redial_max
        {
            c.err(
                v.span(),
                key("redial_max"),
                format!("{redial_max} is below redial_initial ({redial_initial})"),
            );
        }
        let queue_packets = c.int(
            &r.queue_packets,
            &key("queue_packets"),
            0..=4096,
            defaults::QUEUE_PACKETS as i64,
        ) as usize;
        let queue_bytes = c.int(
            &r.queue_bytes,
            &key("queue_bytes"),
            0..=16 << 20,
            defaults::QUEUE_BYTES as i64,
        ) as usize;
        out.push(DemandDialConfig {
            name: name.get_ref().clone(),
            device,
            server,
            user,
            password,
            routes,
            demand: DemandConfig {
                mode: mode.unwrap_or(Mode::OnDemand),
                idle_timeout: (idle > 0).then(|| Duration::from_secs(idle)),
                queue_packets,
                queue_bytes,
                backoff_initial: Duration::from_secs(redial_initial),
                backoff_max: Duration::from_secs(redial_max),
            },
        });
    }
    out
}
