//! The configuration once validated: what `raw` builds from the file and the rest of
//! the agent reads.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use crate::{
    auth::{pool::AddressRange, users::DialIn},
    guard::limits::Limits,
    ppp::{auth::Policy, ccp::MppePolicy},
    runtime::routers::DemandDialConfig,
};

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// Our CHAP name, also the server column matched in chap-secrets.
    pub name: String,
    /// Addresses to accept control connections on.
    pub listen: Vec<SocketAddr>,
    /// The MRU we ask for.
    pub mru: u16,
    /// Interfaces and the data plane.
    pub interfaces: Interfaces,
    /// Addresses inside the tunnels.
    pub tunnel: Tunnel,
    /// Authentication.
    pub auth: Auth,
    /// MPPE.
    pub mppe: MppePolicy,
    /// Limits.
    pub limits: Limits,
    /// Keepalive.
    pub keepalive: Keepalive,
    /// What DHCPINFORM answers carry (`[dhcp]`; server and DNS from `[tunnel]`).
    pub dhcp: crate::dhcp::DhcpInformConfig,
    /// RADIUS servers, accounting and dynamic authorization (`[radius]`).
    pub radius: Option<crate::radius::RadiusConfig>,
    /// Demand-dial interfaces (`[[demand_dial]]`).
    pub demand_dial: Vec<DemandDialConfig>,
    /// The file itself holds secrets (RADIUS, demand-dial passwords).
    pub holds_secrets: bool,
}

/// `[interfaces]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interfaces {
    /// Interfaces facing the clients (XDP decapsulation); empty: agent path only.
    pub uplink: Vec<String>,
    /// Interfaces facing the LAN (XDP encapsulation).
    pub lan: Vec<String>,
    /// TUN device for sessions on the agent's path.
    pub tun: String,
    /// Drop GRE of unknown sessions in XDP.
    pub drop_unknown: bool,
    /// bpffs mount point.
    pub bpffs: PathBuf,
    /// Directory of this agent's pins under `bpffs`.
    pub instance: String,
}

/// `[tunnel]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    /// Our address inside the tunnels.
    pub local_ip: Ipv4Addr,
    /// Client address ranges.
    pub pools: Vec<AddressRange>,
    /// DNS servers (primary, secondary).
    pub dns: [Option<Ipv4Addr>; 2],
    /// WINS (NBNS) servers (primary, secondary).
    pub wins: [Option<Ipv4Addr>; 2],
}

impl Tunnel {
    /// Addresses in the pools.
    pub fn pool_size(&self) -> u64 {
        self.pools.iter().map(AddressRange::size).sum()
    }
}

/// `[auth]` and `[users]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Methods, most preferred first.
    pub policy: Policy,
    /// The chap-secrets file (absolute).
    pub secrets: PathBuf,
    /// Dial-in permission of users not listed in `users`.
    pub default_dial_in: DialIn,
    /// Per-user dial-in permission.
    pub dial_in: BTreeMap<String, DialIn>,
    /// Rate limit of users without one of their own (`[auth] rate`); zero: none.
    pub default_rate: pptp_common::rate::RateLimit,
    /// Per-user rate limits (`[users.NAME] rate`). RADIUS's Mikrotik-Rate-Limit
    /// overrides both.
    pub rates: BTreeMap<String, pptp_common::rate::RateLimit>,
    /// Lines of the `[users.NAME]` tables, for messages about them.
    pub(super) user_lines: BTreeMap<String, usize>,
    /// Who judges users: the secrets file, RADIUS, or RADIUS then the file.
    pub source: crate::radius::UserSource,
}

/// `[keepalive]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before an LCP Echo-Request; `None`: no LCP echo.
    pub lcp_echo_interval: Option<Duration>,
    /// Unanswered LCP Echo-Requests before the link is declared dead.
    pub lcp_echo_failures: u32,
    /// Idle time before a control-connection Echo-Request; `None`: none.
    pub control_echo_interval: Option<Duration>,
}

impl Keepalive {
    /// The link's LCP echo settings (`LinkConfig::echo`).
    pub fn lcp_echo(&self) -> Option<crate::ppp::link::EchoConfig> {
        self.lcp_echo_interval
            .map(|interval| crate::ppp::link::EchoConfig {
                interval,
                max_failures: self.lcp_echo_failures,
            })
    }
}
