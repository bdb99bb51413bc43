//! The agent's configuration file (TOML), validated into a [`Config`].
//!
//! Everything `pptp-agent serve` takes on its command line, plus what a production
//! concentrator needs (several pools, per-user dial-in permission, limits,
//! keepalive, a chap-secrets file). `pptp-agent/examples/pptp-agent.toml` documents
//! every key with its default.
//!
//! Mistakes are reported the way compilers report them, `file:line: key: message`,
//! so that an operator editing `/etc/pptp-xdp/pptp-agent.toml` goes straight to the
//! line: TOML syntax errors, unknown keys (every table is `deny_unknown_fields`) and
//! wrong types stop parsing at the first one (that is how serde works); the semantic
//! checks that follow (addresses, pools, interface names, MPPE bits, limits, ...)
//! report every problem at once. Validated fields keep their position in the file
//! through `toml::Spanned`.
//!
//! [`Config::load`] reads the file; [`Config::load_users`] then reads the secrets file
//! it names and cross-checks it with the configuration (static addresses against the
//! local address, dial-in entries against the users). [`reload`] does both for
//! SIGHUP and says which changes need a restart.

mod check;
pub mod demand_dial;
mod exposure;
pub mod limits;
mod radius;
mod rate;
mod raw;
mod settings;
pub use raw::parse_prefix;
pub use settings::{Auth, Config, Interfaces, Keepalive, Tunnel};

use std::{collections::BTreeMap, net::Ipv4Addr, path::Path};

pub use crate::diag::{Diagnostic, Diagnostics};

use crate::{
    auth::{
        chap_secrets::ChapSecrets,
        pool::UserPool,
        users::{DialIn, UserDb, Users},
    },
    ppp::{
        auth::{Method, Secret},
        ccp::MppeMode,
    },
};

/// Where the agent looks for its configuration by default.
pub const DEFAULT_PATH: &str = "/etc/pptp-xdp/pptp-agent.toml";

impl Config {
    /// The address pool for these pools and our local address, handing `users`
    /// their static addresses (one pool for the whole concentrator; clone it into
    /// each link).
    pub fn pool(&self, users: &Users) -> UserPool {
        let named = self.radius.as_ref().map(|r| r.pools.clone());
        UserPool::new(
            self.tunnel.pools.clone(),
            self.tunnel.local_ip,
            std::sync::Arc::new(users.clone()),
        )
        .with_named(named.unwrap_or_default())
    }

    /// Reads and validates `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, Diagnostics> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Diagnostic::file(path, format!("cannot read: {e}")))?;
        Self::parse(path, &text)
    }

    /// Validates `text`, read from `path` (named in messages; relative paths in the
    /// file are relative to its directory).
    pub fn parse(path: impl AsRef<Path>, text: &str) -> Result<Config, Diagnostics> {
        raw::parse(path.as_ref(), text)
    }

    /// Reads the secrets file and builds the user database, cross-checked with this
    /// configuration. Warnings (valid but probably unintended, or files holding
    /// secrets readable by group or others) go to the second value.
    pub fn load_users(&self) -> Result<(UserDb, Vec<Diagnostic>), Diagnostics> {
        let secrets = ChapSecrets::load(&self.auth.secrets)?;
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let server = self.name.as_bytes();
        let only_chap_md5 = self
            .auth
            .policy
            .methods
            .iter()
            .all(|m| *m == Method::ChapMd5);
        let mut statics: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
        for entry in secrets.for_server(server) {
            let at = |key: &str, message: String| {
                Diagnostic::new(&secrets.path, entry.line, key, message)
            };
            if let Some(addr) = entry.addresses.static_address {
                if addr == self.tunnel.local_ip {
                    errors.push(at(
                        "addresses",
                        format!("{addr} is the tunnel's local address (tunnel.local_ip)"),
                    ));
                }
                let servers = self.tunnel.dns.iter().chain(&self.tunnel.wins).flatten();
                if servers.into_iter().any(|s| *s == addr) {
                    errors.push(at(
                        "addresses",
                        format!("{addr} is a DNS or WINS server handed to clients"),
                    ));
                }
                if self
                    .listen
                    .iter()
                    .any(|l| l.ip() == std::net::IpAddr::V4(addr))
                {
                    errors.push(at(
                        "addresses",
                        format!(
                            "{addr} is an address we listen on: tunnelled traffic to it would loop"
                        ),
                    ));
                }
                if let Some(first) = statics.insert(addr, entry.line) {
                    errors.push(at(
                        "addresses",
                        format!("{addr} is already the static address on line {first}"),
                    ));
                }
            }
            if entry.addresses.is_none() {
                warnings.push(at(
                    "addresses",
                    "no address allowed (a line without addresses, or `-`): IPCP will fail; \
                     write `*` to let the pool choose"
                        .into(),
                ));
            }
            if matches!(entry.secret, Secret::NtHash(_)) && only_chap_md5 {
                errors.push(at(
                    "secret",
                    "an NT hash cannot answer CHAP-MD5, the only method in auth.methods".into(),
                ));
            }
        }
        for (user, line) in &self.auth.user_lines {
            let known = secrets
                .for_server(server)
                .any(|e| e.user() == Some(user.as_bytes()));
            if !known {
                warnings.push(Diagnostic::new(
                    &self.path,
                    *line,
                    format!("users.{}", check::quote_key(user)),
                    format!(
                        "no entry for this user in {} (server {} or *)",
                        secrets.path.display(),
                        self.name
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        warnings.extend(exposure::check(&secrets.path, "passwords or NT hashes"));
        if self.holds_secrets {
            warnings.extend(exposure::check(&self.path, "RADIUS secrets or passwords"));
        }
        Ok((
            UserDb::new(
                secrets,
                &self.name,
                self.auth.dial_in.clone(),
                self.auth.default_dial_in,
            ),
            warnings,
        ))
    }

    /// A few lines describing the configuration (for `check-config`).
    pub fn summary(&self, users: &UserDb) -> String {
        let mut out = String::new();
        let pools: Vec<String> = self.tunnel.pools.iter().map(|r| r.to_string()).collect();
        let listen: Vec<String> = self.listen.iter().map(|a| a.to_string()).collect();
        let server = self.name.as_bytes();
        let entries: Vec<_> = users.secrets().for_server(server).collect();
        let named = entries.iter().filter(|e| e.user().is_some()).count();
        let wildcard = entries.len() - named;
        let statics = users.static_addresses().count();
        let denied: Vec<&str> = self
            .auth
            .dial_in
            .iter()
            .filter(|(_, d)| **d == DialIn::Deny)
            .map(|(u, _)| u.as_str())
            .collect();
        let methods: Vec<&str> = self
            .auth
            .policy
            .methods
            .iter()
            .map(|m| check::method_name(*m))
            .collect();
        let bits: Vec<String> = self
            .mppe
            .strengths
            .iter()
            .map(|s| check::bits(*s).to_string())
            .collect();
        let iface = |v: &[String]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        out += &format!("listen: {}\n", listen.join(", "));
        out += &format!(
            "interfaces: uplink {}, lan {}, tun {}\n",
            iface(&self.interfaces.uplink),
            iface(&self.interfaces.lan),
            self.interfaces.tun
        );
        out += &format!(
            "tunnel: local {}, pool {} ({} addresses), {} static\n",
            self.tunnel.local_ip,
            pools.join(", "),
            self.tunnel.pool_size(),
            statics
        );
        out += &format!(
            "users: {named} in {}{}, dial-in default {}{}\n",
            users.secrets().path.display(),
            if wildcard > 0 {
                format!(" (+{wildcard} wildcard)")
            } else {
                String::new()
            },
            self.auth.default_dial_in.as_str(),
            if denied.is_empty() {
                String::new()
            } else {
                format!(", denied: {}", denied.join(", "))
            }
        );
        out += &format!("auth: {}\n", methods.join(", "));
        out += &format!(
            "mppe: {}{}\n",
            match self.mppe.mode {
                MppeMode::Require => "require",
                MppeMode::Prefer => "prefer",
                MppeMode::Deny => "deny",
            },
            if self.mppe.mode == MppeMode::Deny {
                String::new()
            } else {
                format!(
                    ", {} bits, {}",
                    bits.join("/"),
                    if self.mppe.allow_stateful {
                        "stateful allowed"
                    } else {
                        "stateless only"
                    }
                )
            }
        );
        if let Some(r) = &self.radius {
            let addrs = |v: &[crate::radius::client::Server]| {
                let a: Vec<String> = v.iter().map(|s| s.addr.to_string()).collect();
                if a.is_empty() {
                    "none".to_owned()
                } else {
                    a.join(", ")
                }
            };
            out += &format!(
                "radius: users from {}, auth {}, acct {}, pools {}, dynamic authorization {}\n",
                self.auth.source.as_str(),
                addrs(&r.auth_servers),
                addrs(&r.acct_servers),
                if r.pools.is_empty() {
                    "none".to_owned()
                } else {
                    r.pools.keys().cloned().collect::<Vec<_>>().join(", ")
                },
                r.dae
                    .as_ref()
                    .map_or("off".to_owned(), |d| d.listen.to_string())
            );
        }
        let opt = |v: Option<u32>| v.map_or("unlimited".to_owned(), |n| n.to_string());
        let l = &self.limits;
        out += &format!(
            "limits: {} sessions, {} per user, {} connections per source, handshake {} s\n",
            l.max_sessions,
            opt(l.sessions_per_user),
            opt(l.caps.connections_per_source),
            l.handshake_timeout.as_secs()
        );
        out += &format!(
            "unauthenticated calls: {} per connection, {} per source; {} peer entries; login back-off after {} failures, {} s\n",
            opt(l.caps.unauthenticated_calls_per_connection),
            opt(l.caps.unauthenticated_calls_per_source),
            l.peers.len(),
            opt(l.failed_logins),
            l.login_backoff.as_secs()
        );
        for dd in &self.demand_dial {
            let routes: Vec<String> = dd.routes.iter().map(|r| r.to_string()).collect();
            out += &format!(
                "demand-dial {}: {}, routes {}\n",
                dd.name,
                match &dd.server {
                    Some(server) => format!(
                        "{} to {server} as {}",
                        match dd.demand.mode {
                            crate::demand::Mode::OnDemand => "on-demand",
                            crate::demand::Mode::Persistent => "persistent",
                        },
                        dd.user
                    ),
                    None => "answer only".to_owned(),
                },
                routes.join(", ")
            );
        }
        out
    }
}

/// What a reload (SIGHUP) produced.
#[derive(Debug)]
pub struct Reload {
    /// The new configuration (apply `limits`, `keepalive`, `auth` at once).
    pub config: Config,
    /// The new user database: pass it to [`Users::replace`](crate::auth::users::Users::replace).
    pub users: UserDb,
    /// Warnings about the new files.
    pub warnings: Vec<Diagnostic>,
    /// Keys that changed but only take effect after a restart (listening
    /// addresses, interfaces, tunnel addresses, MRU, name).
    pub needs_restart: Vec<&'static str>,
}

/// Re-reads the configuration `old` came from and its secrets file, and returns the
/// new values or every error; nothing running is touched (the caller swaps the
/// users and limits in; sessions already up keep going).
pub fn reload(old: &Config) -> Result<Reload, Diagnostics> {
    let config = Config::load(&old.path)?;
    let (users, warnings) = config.load_users()?;
    let needs_restart = [
        (config.name != old.name, "name"),
        (config.listen != old.listen, "listen"),
        (config.mru != old.mru, "mru"),
        (config.interfaces != old.interfaces, "interfaces"),
        (config.tunnel != old.tunnel, "tunnel"),
        (config.auth.policy != old.auth.policy, "auth.methods"),
        (config.mppe != old.mppe, "mppe"),
        (config.keepalive != old.keepalive, "keepalive"),
        (config.dhcp != old.dhcp, "dhcp"),
        (
            config.radius != old.radius || config.auth.source != old.auth.source,
            "radius",
        ),
        (config.demand_dial != old.demand_dial, "demand_dial"),
    ]
    .into_iter()
    .filter_map(|(changed, key)| changed.then_some(key))
    .collect();
    Ok(Reload {
        config,
        users,
        warnings,
        needs_restart,
    })
}

#[cfg(test)]
mod tests;
