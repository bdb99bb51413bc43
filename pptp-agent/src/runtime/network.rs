//! The engine's [`Network`] on this host: routes and link addresses on the TUN
//! devices over rtnetlink ([`Tun`]), and a client's own device, made when its link
//! comes up and shared with the hub's loop, which reads it.

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use ipnet::Ipv4Net;

use crate::{
    engine::{Device, Network},
    ppp::link::LinkUp,
};

use super::tun::Tun;

/// A client's device: made when its link is up, with these routes.
pub struct ClientDevice {
    pub name: String,
    pub routes: Vec<String>,
    /// The device while the link is up (the hub reads it).
    pub current: Arc<Mutex<Option<Arc<Tun>>>>,
}

/// Routes and addresses on this host's devices.
pub struct TunNetwork {
    pub concentrator: Option<Arc<Tun>>,
    pub routers: Vec<Arc<Tun>>,
    pub client: Option<ClientDevice>,
}

impl TunNetwork {
    fn tun(&self, device: Device) -> anyhow::Result<Arc<Tun>> {
        let tun = match device {
            Device::Concentrator => self.concentrator.clone(),
            Device::Router(index) => self.routers.get(index).cloned(),
            Device::Client => self.client.as_ref().and_then(|c| {
                c.current
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            }),
        };
        tun.with_context(|| format!("no device for {device:?}"))
    }
}

impl Network for TunNetwork {
    fn add_route(&mut self, device: Device, net: Ipv4Net) -> anyhow::Result<()> {
        self.tun(device)?.add_route(&net.to_string())
    }

    fn remove_route(&mut self, device: Device, net: Ipv4Net) {
        if let Ok(tun) = self.tun(device) {
            tun.remove_route(&net.to_string());
        }
    }

    fn set_link_addresses(
        &mut self,
        device: Device,
        local: std::net::Ipv4Addr,
        peer: std::net::Ipv4Addr,
    ) -> anyhow::Result<()> {
        self.tun(device)?.set_link_addresses(local, peer)
    }

    fn remove_link_addresses(
        &mut self,
        device: Device,
        local: std::net::Ipv4Addr,
        peer: std::net::Ipv4Addr,
    ) {
        if let Ok(tun) = self.tun(device) {
            tun.remove_link_addresses(local, peer);
        }
    }

    fn client_up(&mut self, up: &LinkUp) -> anyhow::Result<()> {
        let client = self.client.as_ref().context("not a client")?;
        let tun = Tun::create(&client.name, up.local_ip, Some(up.peer_ip), up.peer_mru)?;
        for route in &client.routes {
            tun.add_route(route)?;
        }
        *client
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(tun));
        Ok(())
    }

    fn client_down(&mut self) {
        if let Some(client) = &self.client {
            client
                .current
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
        }
    }
}
