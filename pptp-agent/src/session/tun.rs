//! The TUN device that connects sessions handled by the agent to the kernel's IP
//! stack: on the concentrator one device (`pptp0`) whose routes lead to the clients
//! of the fallback path (MPPE) and carry what the box itself sends to any client;
//! on a client, its tunnel interface.
//!
//! Routes are set with iproute2's `ip route`, like pppd's scripts do: plain, visible
//! to operators, and one less netlink implementation to maintain.

use std::{io, net::Ipv4Addr, process::Command};

use anyhow::{Context as _, bail};
use tun_rs::{AsyncDevice, DeviceBuilder};

/// A TUN device carrying IPv4 packets (no packet-information header).
pub struct Tun {
    device: AsyncDevice,
    name: String,
}

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
            .build_async()
            .with_context(|| {
                format!("creating TUN device {name} (needs CAP_NET_ADMIN and /dev/net/tun)")
            })?;
        Ok(Self {
            device,
            name: name.to_owned(),
        })
    }

    /// Creates `name` without an address (a demand-dial interface before its link
    /// is up: routes can point at it, and the first packet is read from it).
    pub fn create_unnumbered(name: &str, mtu: u16) -> anyhow::Result<Self> {
        let device = DeviceBuilder::new()
            .name(name)
            .mtu(mtu)
            .build_async()
            .with_context(|| {
                format!("creating TUN device {name} (needs CAP_NET_ADMIN and /dev/net/tun)")
            })?;
        ip(&["link", "set", name, "up"])?;
        Ok(Self {
            device,
            name: name.to_owned(),
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
        ip(&["route", "replace", destination, "dev", &self.name])
    }

    /// Puts a point-to-point link's addresses on the device (a demand-dial
    /// interface whose link came up).
    pub fn set_link_addresses(&self, local: Ipv4Addr, peer: Ipv4Addr) -> anyhow::Result<()> {
        ip(&[
            "addr",
            "replace",
            &local.to_string(),
            "peer",
            &format!("{peer}/32"),
            "dev",
            &self.name,
        ])
    }

    /// Removes what [`set_link_addresses`](Self::set_link_addresses) put on (the
    /// link went down). Linux then drops the routes through the device if that was
    /// its last address: put back those that must stay.
    pub fn remove_link_addresses(&self, local: Ipv4Addr, peer: Ipv4Addr) {
        let _ = ip(&[
            "addr",
            "del",
            &local.to_string(),
            "peer",
            &format!("{peer}/32"),
            "dev",
            &self.name,
        ]);
    }

    /// Removes a route added with [`Tun::add_route`]; a route already gone is fine.
    pub fn remove_route(&self, destination: &str) {
        let _ = ip(&["route", "del", destination, "dev", &self.name]);
    }
}

pub(crate) fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (iproute2 is needed for routes)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
