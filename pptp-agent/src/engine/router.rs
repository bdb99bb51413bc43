//! A demand-dial interface as the engine keeps it: its configuration and machine,
//! the session its traffic goes to, and the call that is to replace it (the
//! supervisor that moves them is `super::routers`).

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use ipnet::Ipv4Net;

use crate::demand::DemandDial;

use super::table::SessionId;

/// How long a router call replaced by another (two calls for one interface) still
/// takes what the peer sends on it.
pub const LINGER: Duration = Duration::from_secs(1);

/// A demand-dial interface, as configured.
pub struct RouterConfig {
    /// The name a calling router authenticates with to be bound here.
    pub name: String,
    /// Its device's name (for operators).
    pub device: String,
    /// Networks behind the peer router (packets from them are not spoofed).
    pub routes: Vec<Ipv4Net>,
    pub demand: DemandDial,
}

/// A demand-dial interface at run time.
pub struct Router {
    pub config: RouterConfig,
    /// The session its traffic goes to.
    pub session: Option<SessionId>,
    /// A call that won over `session` and takes its place once its link is up.
    pub next: Option<SessionId>,
    /// Calls placed so far (tells a late dial's end from the current one's).
    pub generation: u64,
}

impl Router {
    pub fn new(config: RouterConfig, _now: Instant) -> Self {
        Self {
            config,
            session: None,
            next: None,
            generation: 0,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.config.demand.poll_timeout()
    }

    /// Whether `src` lies in the networks behind the peer router.
    pub fn covers(&self, src: Ipv4Addr) -> bool {
        self.config.routes.iter().any(|net| net.contains(&src))
    }

    pub fn on_inbound(&mut self, now: Instant) {
        self.config.demand.on_inbound(now);
    }
}
