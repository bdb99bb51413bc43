//! What the engine asks of the kernel, as two small traits the runtime implements
//! (over the XDP maps, TUN devices and netlink) and tests fake in memory:
//!
//! - [`Dataplane`]: the XDP maps: install a call, give it its network layer and its
//!   rate limit, remove it; the GRE sequence space shared with the BPF programs;
//!   per-session counters.
//! - [`Network`]: routes and link addresses on the devices sessions' IPv4 leaves by,
//!   and a client's own device.
//!
//! Both are synchronous: each call is a map update or one netlink request, answered
//! before it returns, so the engine can undo a session whose network layer the
//! kernel refused. The data plane says why it refuses ([`DataplaneError`]): a full
//! slot table or a taken address is the peer's lot to be refused, a map the kernel
//! will not update is ours; routes and addresses fail only the second way.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use pptp_common::{rate::RateLimit, seq::Judgement, session::SessionCounters};

use crate::ppp::link::LinkUp;

/// A call, as the data plane needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallSpec {
    /// The peer's outer address.
    pub peer_addr: Ipv4Addr,
    /// Our outer address (source of the GRE packets we send).
    pub local_addr: Ipv4Addr,
    /// The call ID we assigned (the key of GRE packets from the peer).
    pub local_call_id: u16,
    /// The call ID the peer assigned (the key of GRE packets to the peer).
    pub peer_call_id: u16,
}

/// A session's network layer, once IPCP is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The client's (inner) address.
    pub client_addr: Ipv4Addr,
    /// Largest inner packet the tunnel carries (the peer's MRU).
    pub mtu: u16,
    /// Whether XDP forwards the session's IPv4 data.
    pub fast: bool,
}

/// A session's place in the data plane's per-session arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(pub u32);

/// Why the data plane did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// Another session has this call ID of ours (the data plane looks sessions up
    /// by our call ID alone: the concentrator has one call-ID space).
    #[error("call ID {call_id} already belongs to the session in slot {}", .owner.0)]
    CallIdTaken { call_id: u16, owner: Slot },
    /// Another session has this client address.
    #[error("address {address} already belongs to the session in slot {}", .owner.0)]
    AddressTaken { address: Ipv4Addr, owner: Slot },
    /// No session is installed in this slot.
    #[error("no session in slot {}", .0.0)]
    NoSuchSlot(Slot),
    /// The session has no network layer yet.
    #[error("the session in slot {} has no network layer yet", .0.0)]
    NoNetwork(Slot),
    /// The kernel refused a map operation.
    #[error("the kernel refused a map update: {0}")]
    Kernel(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The XDP data plane.
pub trait Dataplane: Send {
    /// Installs a call whose network layer is not up yet.
    fn install(&mut self, call: CallSpec) -> Result<Slot, DataplaneError>;
    /// Gives a session its network layer (or changes it).
    fn set_network(&mut self, slot: Slot, network: NetworkSpec) -> Result<(), DataplaneError>;
    /// Sets the session's rate limit (buckets full); a zero limit lifts it.
    fn set_rate(&mut self, slot: Slot, rate: &RateLimit) -> Result<(), DataplaneError>;
    /// Removes a session from every map.
    fn remove(&mut self, slot: Slot) -> Result<(), DataplaneError>;
    /// What the programs counted for the session.
    fn counters(&self, slot: Slot) -> Option<SessionCounters>;
    /// The next GRE sequence number of a frame the agent sends on the session.
    fn take_seq(&self, slot: Slot) -> u32;
    /// The highest sequence number accepted from the peer (to acknowledge).
    fn highest_received(&self, slot: Slot) -> Option<u32>;
    /// How a received sequence number stands against the session's window (one
    /// too far ahead becomes the probe: `pptp_common::seq`).
    fn judge(&self, slot: Slot, seq: u32) -> Judgement;
    /// Moves the session's window to a packet the agent took.
    fn accept(&self, slot: Slot, seq: u32);
    /// Detaches the programs and removes what they left (the agent stops).
    fn shutdown(self: Box<Self>) -> anyhow::Result<()>;
}

/// Where a session's IPv4 meets the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// The concentrator's shared device: a route per client.
    Concentrator,
    /// Demand-dial interface `n`'s device, with its routes from the start.
    Router(usize),
    /// A client's device, created when its link comes up.
    Client,
}

/// Routes and addresses.
pub trait Network: Send {
    /// Routes `net` through `device`.
    fn add_route(&mut self, device: Device, net: Ipv4Net) -> anyhow::Result<()>;
    /// Removes a route [`add_route`](Self::add_route) made (a missing one is fine).
    fn remove_route(&mut self, device: Device, net: Ipv4Net);
    /// Puts a link's addresses on `device` (ours, the peer's as its peer).
    fn set_link_addresses(
        &mut self,
        device: Device,
        local: Ipv4Addr,
        peer: Ipv4Addr,
    ) -> anyhow::Result<()>;
    /// Takes them off again.
    fn remove_link_addresses(&mut self, device: Device, local: Ipv4Addr, peer: Ipv4Addr);
    /// A client's link is up: its device, with the link's addresses and the
    /// configured routes.
    fn client_up(&mut self, up: &LinkUp) -> anyhow::Result<()>;
    /// A client's link is down: its device goes.
    fn client_down(&mut self);
}

/// In-memory kernels for the engine's tests.
#[cfg(test)]
pub mod fake {
    use std::{
        collections::{BTreeMap, BTreeSet},
        sync::{Arc, Mutex},
    };

    use super::*;

    /// What the fake kernel holds; shared with the test that owns the engine.
    #[derive(Debug, Default)]
    pub struct Kernel {
        pub routes: BTreeSet<(String, Ipv4Net)>,
        pub addresses: BTreeSet<(String, Ipv4Addr, Ipv4Addr)>,
        pub client_device: Option<Ipv4Addr>,
        pub installed: BTreeMap<u32, (CallSpec, Option<NetworkSpec>)>,
        /// Refuse the next route (a kernel that says no).
        pub refuse_routes: bool,
    }

    fn name(device: Device) -> String {
        format!("{device:?}")
    }

    /// A [`Network`] recording into a shared [`Kernel`].
    #[derive(Clone, Default)]
    pub struct FakeNetwork(pub Arc<Mutex<Kernel>>);

    impl Network for FakeNetwork {
        fn add_route(&mut self, device: Device, net: Ipv4Net) -> anyhow::Result<()> {
            let mut k = self.0.lock().unwrap();
            anyhow::ensure!(!k.refuse_routes, "the fake kernel refuses routes");
            k.routes.insert((name(device), net));
            Ok(())
        }

        fn remove_route(&mut self, device: Device, net: Ipv4Net) {
            self.0.lock().unwrap().routes.remove(&(name(device), net));
        }

        fn set_link_addresses(
            &mut self,
            device: Device,
            local: Ipv4Addr,
            peer: Ipv4Addr,
        ) -> anyhow::Result<()> {
            let mut k = self.0.lock().unwrap();
            k.addresses.insert((name(device), local, peer));
            Ok(())
        }

        fn remove_link_addresses(&mut self, device: Device, local: Ipv4Addr, peer: Ipv4Addr) {
            let mut k = self.0.lock().unwrap();
            k.addresses.remove(&(name(device), local, peer));
        }

        fn client_up(&mut self, up: &LinkUp) -> anyhow::Result<()> {
            self.0.lock().unwrap().client_device = Some(up.local_ip);
            Ok(())
        }

        fn client_down(&mut self) {
            self.0.lock().unwrap().client_device = None;
        }
    }
}
