//! The TUN device that connects sessions handled by the agent to the kernel's IP
//! stack: on the concentrator one device (`pptp0`) whose routes lead to the clients
//! of the fallback path (MPPE) and carry what the box itself sends to any client;
//! on a client, its tunnel interface.
//!
//! Routes and addresses are set over rtnetlink ([`super::rtnl`]): the hub changes
//! them on every session up and down and must not wait for a subprocess. They are the
//! same routes `ip route` would write, so operators see them with `ip route`.

use std::{io, net::Ipv4Addr};

use anyhow::Context as _;
use tun_rs::{AsyncDevice, DeviceBuilder};

use super::rtnl::{Rtnl, parse_destination};

/// A TUN device carrying IPv4 packets (no packet-information header).
pub struct Tun {
    device: AsyncDevice,
    name: String,
    index: u32,
    rtnl: Rtnl,
}

/// Packets the kernel may queue for the agent on a device (500 by default): the
/// answers to thousands of sessions' packets sent in one burst arrive while the
/// agent is still writing the burst, and what overflows is dropped (the device's
/// TX drops; the load generator's echo round lost 13,704 of 17,136 replies with
/// 5,000 sessions on the agent's path at 500).
const TX_QUEUE_LEN: u32 = 10_000;

impl Tun {
    /// Creates `name` with `address` (and `peer` for a point-to-point client link).
    pub fn create(
        name: &str,
        address: Ipv4Addr,
        peer: Option<Ipv4Addr>,
        mtu: u16,
    ) -> anyhow::Result<Self> {
        let device = DeviceBuilder::new()
            .name(name)
            .ipv4(address, 32u8, peer)
            .mtu(mtu)
            .tx_queue_len(TX_QUEUE_LEN)
            .build_async()
            .with_context(|| {
                format!("creating TUN device {name} (needs CAP_NET_ADMIN and /dev/net/tun)")
            })?;
        Self::wrap(device, name)
    }

    /// Creates `name` without an address (a demand-dial interface before its link
    /// is up: routes can point at it, and the first packet is read from it). The
    /// builder brings it up.
    pub fn create_unnumbered(name: &str, mtu: u16) -> anyhow::Result<Self> {
        let device = DeviceBuilder::new()
            .name(name)
            .mtu(mtu)
            .tx_queue_len(TX_QUEUE_LEN)
            .enable(true)
            .build_async()
            .with_context(|| {
                format!("creating TUN device {name} (needs CAP_NET_ADMIN and /dev/net/tun)")
            })?;
        Self::wrap(device, name)
    }

    fn wrap(device: AsyncDevice, name: &str) -> anyhow::Result<Self> {
        let index = device
            .if_index()
            .with_context(|| format!("the index of TUN device {name}"))?;
        let rtnl = Rtnl::open().context("opening a NETLINK_ROUTE socket")?;
        Ok(Self {
            device,
            name: name.to_owned(),
            index,
            rtnl,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Receives one IPv4 packet.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.device.recv(buf).await
    }

    /// Sends one IPv4 packet into the kernel.
    pub async fn send(&self, packet: &[u8]) -> io::Result<usize> {
        self.device.send(packet).await
    }

    /// Routes `destination` (an address or `a.b.c.d/n`) through this device.
    pub fn add_route(&self, destination: &str) -> anyhow::Result<()> {
        self.rtnl
            .replace_route(parse_destination(destination)?, self.index, None)
            .with_context(|| format!("route {destination} dev {}", self.name))
    }

    /// Puts a point-to-point link's addresses on the device (a demand-dial
    /// interface whose link came up).
    pub fn set_link_addresses(&self, local: Ipv4Addr, peer: Ipv4Addr) -> anyhow::Result<()> {
        self.rtnl
            .replace_peer_address(self.index, local, peer)
            .with_context(|| format!("address {local} peer {peer}/32 dev {}", self.name))
    }

    /// Removes what [`set_link_addresses`](Self::set_link_addresses) put on (the
    /// link went down). Linux then drops the routes through the device if that was
    /// its last address: put back those that must stay.
    pub fn remove_link_addresses(&self, local: Ipv4Addr, peer: Ipv4Addr) {
        let _ = self.rtnl.delete_peer_address(self.index, local, peer);
    }

    /// Removes a route added with [`Tun::add_route`]; a route already gone is fine.
    pub fn remove_route(&self, destination: &str) {
        if let Ok(dst) = parse_destination(destination) {
            let _ = self.rtnl.delete_route(dst, self.index, None);
        }
    }
}
