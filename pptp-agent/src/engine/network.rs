//! A session's network layer, once IPCP is open: its entry in the XDP maps (fast
//! unless MPPE or routes), the route to its client, the networks behind it (a
//! router's, taken over from its own older session); and their removal.

use std::{net::Ipv4Addr, time::Instant};

use ipnet::Ipv4Net;

use crate::ppp::link::LinkUp;

use super::{
    Device, Engine, Mode, SessionId,
    kernel::{self, DataplaneError},
    session::Sequencing,
};

/// Why a session's network layer did not come up.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("the session is gone")]
    Gone,
    /// Another session has the address.
    #[error("address {address} belongs to session {owner}")]
    AddressTaken { address: Ipv4Addr, owner: SessionId },
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    /// A route or an address the kernel refused.
    #[error(transparent)]
    Kernel(#[from] anyhow::Error),
}

impl Engine {
    /// The session's network layer: the XDP maps, a route to the client, the
    /// networks behind it (a router's, taken over from its own older session).
    pub(super) fn network_up(
        &mut self,
        id: SessionId,
        up: &LinkUp,
        now: Instant,
    ) -> Result<(), NetworkError> {
        let session = self.table.get(id).ok_or(NetworkError::Gone)?;
        if let Some(index) = session.router {
            // A router's link: its interface's device (with its routes) carries it;
            // the link's addresses go on the device for operators and for what the
            // box itself sends.
            return Ok(self.network.set_link_addresses(
                Device::Router(index),
                up.local_ip,
                up.peer_ip,
            )?);
        }
        match self.config.mode {
            Mode::Concentrator => {
                if let (Some(dp), Sequencing::Shared(slot)) = (&mut self.dataplane, &session.seq) {
                    dp.set_network(
                        *slot,
                        kernel::NetworkSpec {
                            client_addr: up.peer_ip,
                            mtu: up.peer_mru,
                            // XDP checks that data comes from the client's address
                            // alone: a router's session stays on the agent's path.
                            fast: up.mppe.is_none() && session.routes.is_empty(),
                        },
                    )?;
                }
                let host = Ipv4Net::from(up.peer_ip);
                self.network.add_route(Device::Concentrator, host)?;
                if let Err(owner) = self.table.set_client(id, up.peer_ip) {
                    self.network.remove_route(Device::Concentrator, host);
                    return Err(NetworkError::AddressTaken {
                        address: up.peer_ip,
                        owner,
                    });
                }
                self.attach_routes(id, now);
            }
            Mode::Client => self.network.client_up(up)?,
            Mode::Probe => {
                if let Err(owner) = self.table.set_client(id, up.local_ip) {
                    return Err(NetworkError::AddressTaken {
                        address: up.local_ip,
                        owner,
                    });
                }
            }
        }
        Ok(())
    }

    /// Routes the networks behind the session to it. A router that calls again (it
    /// restarted, its old call not yet timed out) takes its networks over from its
    /// own older session, which is hung up.
    fn attach_routes(&mut self, id: SessionId, now: Instant) {
        let Some(session) = self.table.get(id) else {
            return;
        };
        let routes = session.routes.clone();
        if routes.is_empty() {
            return;
        }
        let stale: Vec<SessionId> = session
            .user
            .as_deref()
            .map(|user| {
                self.table
                    .of_user(user)
                    .filter(|other| *other != id && !self.table.prefixes(*other).is_empty())
                    .collect()
            })
            .unwrap_or_default();
        for old in &stale {
            tracing::info!(session = %id, old = %old, "a router called again: its older session gives up its routes");
            self.detach_routes(*old);
        }
        for prefix in routes {
            if let Err(owner) = self.table.attach_prefix(id, prefix) {
                tracing::warn!(%prefix, session = %id, %owner, "route held by another session: not installed");
                continue;
            }
            if let Err(e) = self.network.add_route(Device::Concentrator, prefix) {
                tracing::error!(%prefix, error = format!("{e:#}"), "cannot install the session's route");
                continue;
            }
            tracing::info!(%prefix, session = %id, "route to the network behind the session");
        }
        for old in stale {
            self.hang_up(old, now);
        }
    }

    pub(super) fn detach_routes(&mut self, id: SessionId) {
        for prefix in self.table.detach_prefixes(id) {
            self.network.remove_route(Device::Concentrator, prefix);
        }
    }
}
