//! The host route that keeps a demand-dial interface's own PPTP traffic off the
//! tunnel (KB Q177335, step 5): the route to the PPTP server is pinned, as a /32,
//! to the path the kernel uses for it before the interface's routes exist. Without
//! it, a route through the tunnel that covers the server (a default route, or the
//! server's network) would send the control connection and GRE into the tunnel
//! itself. Removed when dropped. Over rtnetlink ([`super::rtnl`]), like the TUN
//! devices' routes.

use std::net::Ipv4Addr;

use anyhow::Context as _;
use ipnet::Ipv4Net;

use super::rtnl::{RouteTo, Rtnl, interface_name};

/// A pinned host route; removed on drop.
pub struct HostRoute {
    destination: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    oif: u32,
    rtnl: Rtnl,
}

impl std::fmt::Debug for HostRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostRoute")
            .field("destination", &self.destination)
            .field("gateway", &self.gateway)
            .field("oif", &self.oif)
            .finish()
    }
}

impl HostRoute {
    /// Pins `dst` to its current path; `None` if `dst` is local.
    pub fn pin(dst: Ipv4Addr) -> anyhow::Result<Option<Self>> {
        let rtnl = Rtnl::open().context("opening a NETLINK_ROUTE socket")?;
        let (gateway, oif) = match rtnl
            .route_to(dst)
            .with_context(|| format!("no route to the PPTP server {dst}"))?
        {
            RouteTo::Local => return Ok(None),
            RouteTo::Via { gateway, oif } => (gateway, oif),
        };
        let destination = Ipv4Net::from(dst);
        rtnl.replace_route(destination, oif, gateway)
            .with_context(|| format!("pinning the host route to the PPTP server {dst}"))?;
        tracing::info!(server = %dst, gateway = ?gateway, dev = %interface_name(oif), "host route to the PPTP server");
        Ok(Some(Self {
            destination,
            gateway,
            oif,
            rtnl,
        }))
    }
}

impl Drop for HostRoute {
    fn drop(&mut self) {
        let _ = self
            .rtnl
            .delete_route(self.destination, self.oif, self.gateway);
    }
}
