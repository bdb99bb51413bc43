//! Demand-dial interfaces from the configuration, ready for the engine and the hub:
//! each calling interface gets the host route to its server ([`HostRoute`]), then
//! its TUN device with its routes, then its [`DemandDial`] machine; answer-only
//! interfaces become per-user routes (`EngineConfig::user_routes`), installed
//! toward the calling router's session while it is up. [`dialer`] places the calls.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, ToSocketAddrs as _},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use ipnet::Ipv4Net;
use tokio::sync::mpsc;

use super::{
    client::{CallKind, CallTarget, PPTP_PORT, place_call},
    host_route::HostRoute,
    hub::{Dialer, HubCommand},
    tun::Tun,
};
use crate::{
    demand::{DemandConfig, DemandDial},
    engine::RouterConfig,
    ppp::{
        auth::{Credentials, Policy},
        ccp::MppePolicy,
        link::{ClientConfig, EchoConfig},
    },
    pptp::{call_id::SharedCallIds, control::ControlConfig},
};

/// One demand-dial interface (`[[demand_dial]]`, validated by `config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemandDialConfig {
    /// The interface's name, matched against the user name of incoming calls.
    pub name: String,
    /// Its TUN device.
    pub device: String,
    /// Where to call (host name or address); `None`: answer only.
    pub server: Option<String>,
    /// Dial-out credentials.
    pub user: String,
    pub password: String,
    /// Networks behind the other router.
    pub routes: Vec<Ipv4Net>,
    /// When to dial and hang up.
    pub demand: DemandConfig,
}

impl DemandDialConfig {
    /// Whether we ever call (otherwise the interface only answers).
    pub fn dials(&self) -> bool {
        self.server.is_some()
    }
}

/// What every dial-out link shares (from the concentrator's settings).
pub struct LinkDefaults {
    pub auth: Policy,
    pub mppe: MppePolicy,
    pub mru: u16,
    pub echo: Option<EchoConfig>,
    pub control: ControlConfig,
}

/// The interfaces, set up.
pub struct Routers {
    /// For `EngineConfig::routers`.
    pub configs: Vec<RouterConfig>,
    /// Their devices, in the same order (the hub reads them).
    pub devices: Vec<std::sync::Arc<Tun>>,
    /// For `EngineConfig::user_routes`: answer-only interfaces.
    pub user_routes: HashMap<String, Vec<Ipv4Net>>,
    /// One per entry of `configs`.
    pub targets: Vec<CallTarget>,
    /// Kept until the routers stop.
    pub host_routes: Vec<HostRoute>,
}

/// Sets up `configs`. Fails on the first interface that cannot be created (the
/// devices and routes made so far go away with the returned error's drop).
pub fn set_up(configs: &[DemandDialConfig], defaults: &LinkDefaults) -> anyhow::Result<Routers> {
    let mut routers = Routers {
        configs: Vec::new(),
        devices: Vec::new(),
        user_routes: HashMap::new(),
        targets: Vec::new(),
        host_routes: Vec::new(),
    };
    let now = Instant::now();
    for config in configs {
        let Some(server) = &config.server else {
            routers
                .user_routes
                .insert(config.name.clone(), config.routes.clone());
            continue;
        };
        let address = resolve_now(server)?;
        if let Some(route) = HostRoute::pin(address)
            .with_context(|| format!("demand-dial interface {}", config.name))?
        {
            routers.host_routes.push(route);
        }
        let tun = Tun::create_unnumbered(&config.device, defaults.mru)?;
        for route in &config.routes {
            tun.add_route(&route.to_string())?;
        }
        tracing::info!(interface = %config.name, device = %config.device, %server, routes = ?config.routes, mode = ?config.demand.mode, "demand-dial interface ready");
        routers.configs.push(RouterConfig {
            name: config.name.clone(),
            device: config.device.clone(),
            routes: config.routes.clone(),
            demand: DemandDial::new(config.demand.clone(), now),
        });
        routers.devices.push(std::sync::Arc::new(tun));
        routers.targets.push(CallTarget {
            server: server.clone(),
            kind: CallKind::Outgoing,
            control: defaults.control.clone(),
            connect_timeout: Duration::from_secs(10),
            client: ClientConfig {
                credentials: Credentials {
                    user: config.user.clone().into_bytes(),
                    password: config.password.clone().into_bytes(),
                },
                auth: defaults.auth.clone(),
                request_dns: false,
            },
            mru: defaults.mru,
            mppe: defaults.mppe.clone(),
            echo: defaults.echo,
        });
    }
    Ok(routers)
}

/// Places calls for the hub: one task per call, which reports its end.
/// Their Call IDs come from `call_ids`, the pool of the calls the concentrator
/// answers: GRE names a session by (peer address, Call ID), and the other router
/// may call us while we call it.
pub fn dialer(
    targets: Vec<CallTarget>,
    hub: mpsc::Sender<HubCommand>,
    call_ids: SharedCallIds,
) -> Dialer {
    Box::new(move |index, generation| {
        let Some(target) = targets.get(index).cloned() else {
            return;
        };
        let hub = hub.clone();
        let call_ids = call_ids.clone();
        tokio::spawn(async move {
            if let Err(e) = place_call(&target, hub.clone(), Some(index), None, call_ids).await {
                tracing::warn!(server = %target.server, error = format!("{e:#}"), "demand-dial call failed");
            }
            let _ = hub.send(HubCommand::DialEnded { index, generation }).await;
        });
    })
}

/// The server's address at start-up (for its host route).
fn resolve_now(server: &str) -> anyhow::Result<Ipv4Addr> {
    if let Ok(addr) = server.parse() {
        return Ok(addr);
    }
    (server, PPTP_PORT)
        .to_socket_addrs()
        .with_context(|| format!("resolving {server}"))?
        .find_map(|a| match a {
            std::net::SocketAddr::V4(a) => Some(*a.ip()),
            std::net::SocketAddr::V6(_) => None,
        })
        .with_context(|| format!("{server} has no IPv4 address"))
}
