//! The XDP data plane as the agent sees it: load the embedded programs with their
//! maps pinned, attach them (uplink: decapsulation; LAN: encapsulation), and
//! install, switch and remove sessions.
//!
//! A call is installed as soon as it is up ([`XdpDataplane::install`]): the record
//! of its call ID (ours) in `SESSIONS_BY_CALL`, which is also its slot in the other
//! per-session arrays, so that the uplink
//! program keeps its GRE sequence numbers from the first packet and hands its PPP
//! negotiation to the agent. When IPCP opens, [`XdpDataplane::set_network`] gives it
//! its client address (and `SESSIONS_BY_CLIENT` for the LAN program) and, unless the
//! session uses MPPE, the fast flag: from then on XDP forwards its IPv4 data.
//! [`XdpDataplane::set_rate`] writes its rate limit into `SESSION_POLICE` (and the
//! policed flag, without which the programs skip that map).
//!
//! `SESSIONS_BY_CALL` is an array indexed by our call ID, so one call ID is one
//! session whatever its peer: the concentrator draws every call's ID from one
//! allocator (`pptp-agent/src/pptp/call_id.rs`, shared by all control connections
//! and the demand-dial calls), and [`XdpDataplane::install`] refuses a call ID that
//! is installed already ([`DataplaneError::CallIdTaken`]) rather than overwrite
//! another peer's session. An entry only ever goes from empty to a session and back
//! (removal zeroes it), never from one peer's session to another's. The records are
//! written through the agent's mmap of the array ([`SessionTable`]).
//!
//! Restart: the maps are pinned, so a new agent finds what a crashed one left. It
//! cannot own those sessions (their control connections died with the old
//! process), so [`XdpDataplane::load`] flushes them: nothing stale keeps forwarding.

use std::{collections::BTreeMap, net::Ipv4Addr};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, MapInfo, MapType, PerCpuArray, PerCpuValues},
    programs::{SchedClassifier, TcAttachType, Xdp, XdpMode, tc},
};
use pptp_common::{
    maps,
    police::{Policer, SessionPolicers},
    rate::RateLimit,
    session::{
        Config, EncapSession, NextHop, SESSION_FAST, SESSION_POLICED, Session, SessionCounters,
        SessionEvents,
    },
};

use super::{
    BPF_OBJECT, bpffs::PinDir, clients::Clients, counters::GlobalCounters, table::SessionTable,
};
use crate::engine::kernel::{CallSpec, Dataplane, DataplaneError, NetworkSpec, Slot};

/// Everything installed for one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionSpec {
    pub call: CallSpec,
    pub network: Option<NetworkSpec>,
    /// It has a rate limit in either direction ([`SESSION_POLICED`]).
    pub policed: bool,
}

/// Options of the data plane.
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpOptions {
    /// Drop enhanced GRE for unknown sessions instead of passing it to the kernel.
    pub drop_unknown: bool,
}

/// The loaded programs and their maps.
pub struct XdpDataplane {
    ebpf: Ebpf,
    pins: PinDir,
    /// `CLIENT_INDEX` and `SESSIONS_BY_CLIENT` (emptied at load).
    by_client: Clients,
    events: PerCpuArray<MapData, SessionEvents>,
    police: Array<MapData, SessionPolicers>,
    /// `CAPTURE_SESSION`: cleared at load and when the captured session goes.
    capture: Array<MapData, u32>,
    table: SessionTable,
    /// The installed sessions by slot (our call ID).
    installed: BTreeMap<Slot, SessionSpec>,
    /// The installed sessions by client address.
    clients: BTreeMap<Ipv4Addr, Slot>,
    attached: Vec<String>,
}

impl XdpDataplane {
    /// Loads the programs (maps pinned in `pins`), flushes sessions a previous
    /// agent left behind and writes the configuration.
    pub fn load(pins: PinDir, options: XdpOptions) -> anyhow::Result<Self> {
        pins.prepare()?;
        unpin_old_layout(&pins)?;
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pins.path())
            .load(BPF_OBJECT)
            .context("loading the BPF object (needs root or CAP_BPF + CAP_NET_ADMIN)")?;
        for name in [maps::PROG_UPLINK, maps::PROG_LAN] {
            let program: &mut Xdp = ebpf
                .program_mut(name)
                .with_context(|| format!("the BPF object has no program {name}"))?
                .try_into()?;
            program
                .load()
                .with_context(|| format!("the kernel rejected the program {name}"))?;
        }
        let egress: &mut SchedClassifier = ebpf
            .program_mut(maps::PROG_EGRESS)
            .with_context(|| format!("the BPF object has no program {}", maps::PROG_EGRESS))?
            .try_into()?;
        egress
            .load()
            .with_context(|| format!("the kernel rejected the program {}", maps::PROG_EGRESS))?;
        let mut config: Array<MapData, Config> = Array::try_from(take(&mut ebpf, maps::CONFIG)?)?;
        config.set(
            0,
            Config {
                drop_unknown: options.drop_unknown.into(),
                _pad: 0,
            },
            0,
        )?;
        let aya::maps::Map::Array(records) = take(&mut ebpf, maps::SESSIONS_BY_CALL)? else {
            bail!("{} is not an array", maps::SESSIONS_BY_CALL);
        };
        // The mapping keeps the map alive; the fd may close.
        let table = SessionTable::map(&records)?;
        let aya::maps::Map::Array(index) = take(&mut ebpf, maps::CLIENT_INDEX)? else {
            bail!("{} is not an array", maps::CLIENT_INDEX);
        };
        let by_client = Clients::new(
            &index,
            HashMap::try_from(take(&mut ebpf, maps::SESSIONS_BY_CLIENT)?)?,
        )?;
        let mut dataplane = Self {
            by_client,
            events: PerCpuArray::try_from(take(&mut ebpf, maps::SESSION_EVENTS)?)?,
            police: Array::try_from(take(&mut ebpf, maps::SESSION_POLICE)?)?,
            capture: Array::try_from(take(&mut ebpf, maps::CAPTURE_SESSION)?)?,
            table,
            ebpf,
            pins,
            installed: BTreeMap::new(),
            clients: BTreeMap::new(),
            attached: Vec::new(),
        };
        // A capture a killed `pptp-agent capture` left armed.
        dataplane.capture.set(0, 0, 0)?;
        let stale = dataplane.flush_stale()?;
        if stale > 0 {
            tracing::warn!(
                stale,
                "flushed sessions left in the pinned maps by a previous agent"
            );
        }
        Ok(dataplane)
    }

    fn flush_stale(&mut self) -> anyhow::Result<usize> {
        let stale: Vec<u32> = self.table.installed().map(|(slot, _)| slot).collect();
        for &slot in &stale {
            self.table.clear(slot);
        }
        let mut hops: HashMap<&mut MapData, [u8; 4], NextHop> =
            HashMap::try_from(self.ebpf.map_mut(maps::NEXT_HOPS).context("no NEXT_HOPS")?)?;
        let cached: Vec<[u8; 4]> = hops.keys().collect::<Result<_, _>>()?;
        for key in &cached {
            hops.remove(key)?;
        }
        Ok(stale.len())
    }

    /// Attaches the decapsulating program to the uplink.
    pub fn attach_uplink(&mut self, interface: &str) -> anyhow::Result<()> {
        self.attach(maps::PROG_UPLINK, interface)
    }

    /// Attaches the encapsulating program to a LAN link.
    pub fn attach_lan(&mut self, interface: &str) -> anyhow::Result<()> {
        self.attach(maps::PROG_LAN, interface)
    }

    /// Attaches the encapsulating TC program to the egress of the session device
    /// (the TUN device the kernel routes clients' addresses to).
    pub fn attach_session_device(&mut self, interface: &str) -> anyhow::Result<()> {
        // The clsact qdisc may exist already (another program, an earlier run).
        let _ = tc::qdisc_add_clsact(interface);
        let program: &mut SchedClassifier = self
            .ebpf
            .program_mut(maps::PROG_EGRESS)
            .context(maps::PROG_EGRESS)?
            .try_into()?;
        program
            .attach(interface, TcAttachType::Egress)
            .with_context(|| format!("attaching TC egress program to {interface}"))?;
        tracing::info!(%interface, program = maps::PROG_EGRESS, "TC program attached");
        self.attached.push(interface.to_owned());
        Ok(())
    }

    fn attach(&mut self, program: &str, interface: &str) -> anyhow::Result<()> {
        let xdp: &mut Xdp = self
            .ebpf
            .program_mut(program)
            .context(program.to_owned())?
            .try_into()?;
        xdp.attach(interface, XdpMode::default())
            .with_context(|| format!("attaching XDP program {program} to {interface}"))?;
        tracing::info!(%interface, program, "XDP program attached");
        self.attached.push(interface.to_owned());
        Ok(())
    }

    /// Installs a call whose network layer is not up yet; returns its slot, which
    /// is our call ID (one record per call ID: every slot exists, none runs out).
    pub fn install(&mut self, call: CallSpec) -> Result<Slot, DataplaneError> {
        let slot = Slot(u32::from(call.local_call_id));
        if self.installed.contains_key(&slot) {
            return Err(DataplaneError::CallIdTaken {
                call_id: call.local_call_id,
                owner: slot,
            });
        }
        let spec = SessionSpec {
            call,
            network: None,
            policed: false,
        };
        // A slot's earlier session may have had a limit: none until it is set.
        self.zero_events(slot)?;
        self.write_rate(slot, &RateLimit::default(), SessionPolicers::default())?;
        self.table
            .install(slot.0, call.peer_addr.octets(), [0; 4], flags(&spec));
        self.installed.insert(slot, spec);
        Ok(slot)
    }

    fn zero_events(&mut self, slot: Slot) -> Result<(), DataplaneError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| kernel(e))?;
        let zero = PerCpuValues::try_from(vec![SessionEvents::default(); cpus]).map_err(kernel)?;
        self.events.set(slot.0, zero, 0).map_err(kernel)
    }

    /// Writes a session's rate limit into `SESSION_POLICE` with the buckets
    /// `state` (a program charging the bucket between the read and this write loses
    /// that charge: a packet or so).
    fn write_rate(
        &mut self,
        slot: Slot,
        rate: &RateLimit,
        state: SessionPolicers,
    ) -> Result<(), DataplaneError> {
        let value = SessionPolicers {
            rx: Policer {
                limit: rate.rx.limit(),
                state: state.rx.state,
            },
            tx: Policer {
                limit: rate.tx.limit(),
                state: state.tx.state,
            },
        };
        self.police.set(slot.0, value, 0).map_err(kernel)
    }

    /// Sets an installed session's rate limit; its buckets stay as they are (a
    /// CoA neither fills nor empties them). The policed flag is set after the limit
    /// is written and cleared before it is removed.
    pub fn set_rate(&mut self, slot: Slot, rate: &RateLimit) -> Result<(), DataplaneError> {
        let mut spec = *self
            .installed
            .get(&slot)
            .ok_or(DataplaneError::NoSuchSlot(slot))?;
        spec.policed = rate.rx.limit().is_set() || rate.tx.limit().is_set();
        if !spec.policed {
            self.write_flags(slot, &spec)?;
        }
        let state = self.police.get(&slot.0, 0).map_err(kernel)?;
        self.write_rate(slot, rate, state)?;
        if spec.policed {
            self.write_flags(slot, &spec)?;
        }
        self.installed.insert(slot, spec);
        Ok(())
    }

    /// Writes the flags of `spec` into the session's record and, once it has a
    /// network layer, its client entry (`CLIENT_INDEX` or `SESSIONS_BY_CLIENT`).
    fn write_flags(&mut self, slot: Slot, spec: &SessionSpec) -> Result<(), DataplaneError> {
        if let Some(network) = spec.network {
            self.by_client
                .set(network.client_addr, encap_entry(slot, spec, &network))?;
        }
        self.write_call(slot, spec);
        Ok(())
    }

    /// Gives a session its network layer (or changes it, e.g. the fast flag).
    pub fn set_network(&mut self, slot: Slot, network: NetworkSpec) -> Result<(), DataplaneError> {
        let mut spec = *self
            .installed
            .get(&slot)
            .ok_or(DataplaneError::NoSuchSlot(slot))?;
        if let Some(&owner) = self
            .clients
            .get(&network.client_addr)
            .filter(|&&owner| owner != slot)
        {
            return Err(DataplaneError::AddressTaken {
                address: network.client_addr,
                owner,
            });
        }
        if let Some(old) = spec
            .network
            .filter(|old| old.client_addr != network.client_addr)
        {
            self.by_client.remove(old.client_addr)?;
            self.clients.remove(&old.client_addr);
        }
        spec.network = Some(network);
        self.write_flags(slot, &spec)?;
        if let Some(old) = self
            .installed
            .insert(slot, spec)
            .and_then(|old| old.network)
        {
            self.clients.remove(&old.client_addr);
        }
        self.clients.insert(network.client_addr, slot);
        Ok(())
    }

    /// Writes the identity fields of the session's record (the sequence state and
    /// the counters the programs keep in it stay).
    fn write_call(&self, slot: Slot, spec: &SessionSpec) {
        let client = spec.network.map_or([0; 4], |n| n.client_addr.octets());
        self.table
            .set_identity(slot.0, spec.call.peer_addr.octets(), client, flags(spec));
    }

    /// Moves a session between the XDP path (`fast`) and the agent.
    pub fn set_fast(&mut self, slot: Slot, fast: bool) -> Result<(), DataplaneError> {
        let spec = self
            .installed
            .get(&slot)
            .ok_or(DataplaneError::NoSuchSlot(slot))?;
        let network = spec.network.ok_or(DataplaneError::NoNetwork(slot))?;
        self.set_network(slot, NetworkSpec { fast, ..network })
    }

    /// Removes a session from every map and frees its slot.
    pub fn remove(&mut self, slot: Slot) -> Result<(), DataplaneError> {
        let spec = self
            .installed
            .remove(&slot)
            .ok_or(DataplaneError::NoSuchSlot(slot))?;
        self.table.clear(slot.0);
        let by_client = match spec.network {
            Some(n) => {
                self.clients.remove(&n.client_addr);
                self.by_client.remove(n.client_addr)
            }
            None => Ok(()),
        };
        // A capture of this session ends with it (the slot's next session is
        // another's).
        let capture = match self.capture.get(&0, 0) {
            Ok(captured) if captured == slot.0 + 1 => self.capture.set(0, 0, 0),
            _ => Ok(()),
        };
        by_client?;
        capture.map_err(kernel)
    }

    /// The installed sessions.
    pub fn sessions(&self) -> impl Iterator<Item = (Slot, &SessionSpec)> {
        self.installed.iter().map(|(slot, spec)| (*slot, spec))
    }

    /// The session records, with the shared sequence spaces (for frames the agent
    /// sends on a session).
    pub fn table(&self) -> &SessionTable {
        &self.table
    }

    /// Counters of one session: its record's, and its events summed over CPUs.
    pub fn session_counters(&self, slot: Slot) -> anyhow::Result<SessionCounters> {
        let mut events = SessionEvents::default();
        self.events
            .get(&slot.0, 0)?
            .iter()
            .for_each(|c| events.add(c));
        Ok(SessionCounters::new(&self.table.get(slot.0), &events))
    }

    /// The global counters.
    pub fn global_counters(&self) -> anyhow::Result<GlobalCounters> {
        let map = self
            .ebpf
            .map(maps::GLOBAL_COUNTERS)
            .context("no GLOBAL_COUNTERS")?;
        GlobalCounters::read(map)
    }

    /// Detaches the programs, empties the maps and removes the pins: nothing is
    /// left behind.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        let slots: Vec<Slot> = self.installed.keys().copied().collect();
        for slot in slots {
            self.remove(slot)?;
        }
        let Self {
            ebpf,
            pins,
            attached,
            ..
        } = self;
        drop(ebpf);
        pins.remove()?;
        tracing::info!(interfaces = ?attached, "XDP programs detached, pins removed");
        Ok(())
    }
}

impl Dataplane for XdpDataplane {
    fn install(&mut self, call: CallSpec) -> Result<Slot, DataplaneError> {
        XdpDataplane::install(self, call)
    }

    fn set_network(&mut self, slot: Slot, network: NetworkSpec) -> Result<(), DataplaneError> {
        XdpDataplane::set_network(self, slot, network)
    }

    fn remove(&mut self, slot: Slot) -> Result<(), DataplaneError> {
        XdpDataplane::remove(self, slot)
    }

    fn set_rate(&mut self, slot: Slot, rate: &RateLimit) -> Result<(), DataplaneError> {
        XdpDataplane::set_rate(self, slot, rate)
    }

    fn counters(&self, slot: Slot) -> Option<SessionCounters> {
        self.session_counters(slot).ok()
    }

    fn take_seq(&self, slot: Slot) -> u32 {
        self.table.take_seq(slot.0)
    }

    fn highest_received(&self, slot: Slot) -> Option<u32> {
        self.table.highest_received(slot.0)
    }

    fn judge(&self, slot: Slot, seq: u32) -> pptp_common::seq::Judgement {
        self.table.judge(slot.0, seq)
    }

    fn accept(&self, slot: Slot, seq: u32) {
        self.table.accept(slot.0, seq);
    }

    fn shutdown(self: Box<Self>) -> anyhow::Result<()> {
        XdpDataplane::shutdown(*self)
    }
}

fn flags(spec: &SessionSpec) -> u32 {
    let fast = match spec.network {
        Some(n) if n.fast => SESSION_FAST,
        _ => 0,
    };
    fast | if spec.policed { SESSION_POLICED } else { 0 }
}

/// The `SESSIONS_BY_CLIENT` value of session `slot` with network layer `network`.
fn encap_entry(slot: Slot, spec: &SessionSpec, network: &NetworkSpec) -> EncapSession {
    EncapSession {
        peer_addr: spec.call.peer_addr.octets(),
        local_addr: spec.call.local_addr.octets(),
        peer_call_id: spec.call.peer_call_id,
        mtu: network.mtu,
        slot: slot.0,
        flags: flags(spec),
        _pad: 0,
    }
}

/// A map operation the kernel refused.
fn kernel(e: impl std::error::Error + Send + Sync + 'static) -> DataplaneError {
    DataplaneError::Kernel(Box::new(e))
}

/// Removes the pins of an older agent's session maps: a `SESSIONS_BY_CALL` that is
/// not an array of [`Session`] records (the hash keyed by (peer address, call ID)
/// from before the array, or the 16-byte entries from before the records), and the
/// maps whose contents moved into the records (`maps::OLD_MAPS`). Their sessions
/// could not be kept anyway ([`XdpDataplane::load`] flushes what a previous agent
/// left); without this, the loader would reuse the pinned map and the kernel refuse
/// the programs.
fn unpin_old_layout(pins: &PinDir) -> anyhow::Result<()> {
    for name in maps::OLD_MAPS {
        let path = pins.object(name);
        if path.exists() {
            tracing::warn!(path = %path.display(), "removing the pin of an older agent's map");
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    let path = pins.object(maps::SESSIONS_BY_CALL);
    if !path.exists() {
        return Ok(());
    }
    let info = MapInfo::from_pin(&path).with_context(|| format!("reading {}", path.display()))?;
    let map_type = info
        .map_type()
        .with_context(|| format!("reading {}", path.display()))?;
    if map_type != MapType::Array || info.value_size() as usize != size_of::<Session>() {
        tracing::warn!(path = %path.display(), ?map_type, value_size = info.value_size(), "removing the pin of an older agent's session map");
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

fn take(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<aya::maps::Map> {
    ebpf.take_map(name)
        .with_context(|| format!("the BPF object has no map {name}"))
}
