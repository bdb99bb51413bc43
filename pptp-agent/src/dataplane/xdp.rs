//! The XDP data plane as the agent sees it: load the embedded programs with their
//! maps pinned, attach them (uplink: decapsulation; LAN: encapsulation), and
//! install, switch and remove sessions.
//!
//! A session is installed when its network phase opens: `SESSIONS_BY_CALL` (for the
//! uplink), `SESSIONS_BY_CLIENT` (for the LAN) and a slot in the per-session arrays.
//! Without `fast` the programs hand all of the session's traffic to the agent
//! (MPPE, or moved to the fallback path), but still keep its sequence numbers.
//!
//! Restart: the maps are pinned, so a new agent finds what a crashed one left. It
//! cannot own those sessions (their control connections died with the old
//! process), so [`XdpDataplane::load`] flushes them: nothing stale keeps forwarding.

use std::{collections::BTreeMap, net::Ipv4Addr};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuValues},
    programs::{Xdp, XdpMode},
};
use pptp_common::{
    maps,
    session::{
        CallKey, Config, DecapSession, EncapSession, MAX_SESSIONS, NextHop, SESSION_FAST,
        SessionCounters,
    },
};

use super::{BPF_OBJECT, bpffs::PinDir, counters::GlobalCounters, seq::SeqSpace};

/// What the data plane needs to know about one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionSpec {
    /// The peer's outer address.
    pub peer_addr: Ipv4Addr,
    /// Our outer address (source of the GRE packets we send).
    pub local_addr: Ipv4Addr,
    /// The call ID we assigned (the key of GRE packets from the peer).
    pub local_call_id: u16,
    /// The call ID the peer assigned (the key of GRE packets to the peer).
    pub peer_call_id: u16,
    /// The client's (inner) address.
    pub client_addr: Ipv4Addr,
    /// Largest inner packet the tunnel carries (the peer's MRU).
    pub mtu: u16,
    /// Whether XDP forwards the session's IPv4 data.
    pub fast: bool,
}

/// A session's place in the per-session arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(pub u32);

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
    by_call: HashMap<MapData, CallKey, DecapSession>,
    by_client: HashMap<MapData, [u8; 4], EncapSession>,
    session_counters: PerCpuArray<MapData, SessionCounters>,
    seq: SeqSpace,
    installed: BTreeMap<Slot, SessionSpec>,
    free: Vec<u32>,
    attached: Vec<String>,
}

impl XdpDataplane {
    /// Loads the programs (maps pinned in `pins`), flushes sessions a previous
    /// agent left behind and writes the configuration.
    pub fn load(pins: PinDir, options: XdpOptions) -> anyhow::Result<Self> {
        pins.prepare()?;
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
        let mut config: Array<MapData, Config> = Array::try_from(take(&mut ebpf, maps::CONFIG)?)?;
        config.set(
            0,
            Config {
                drop_unknown: options.drop_unknown.into(),
                _pad: 0,
            },
            0,
        )?;
        let aya::maps::Map::Array(seq_map) = take(&mut ebpf, maps::SESSION_SEQ)? else {
            bail!("{} is not an array", maps::SESSION_SEQ);
        };
        // The mapping keeps the map alive; the fd may close.
        let seq = SeqSpace::map(&seq_map)?;
        let mut dataplane = Self {
            by_call: HashMap::try_from(take(&mut ebpf, maps::SESSIONS_BY_CALL)?)?,
            by_client: HashMap::try_from(take(&mut ebpf, maps::SESSIONS_BY_CLIENT)?)?,
            session_counters: PerCpuArray::try_from(take(&mut ebpf, maps::SESSION_COUNTERS)?)?,
            seq,
            ebpf,
            pins,
            installed: BTreeMap::new(),
            free: (0..MAX_SESSIONS).rev().collect(),
            attached: Vec::new(),
        };
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
        let calls: Vec<CallKey> = self.by_call.keys().collect::<Result<_, _>>()?;
        let clients: Vec<[u8; 4]> = self.by_client.keys().collect::<Result<_, _>>()?;
        for key in &calls {
            self.by_call.remove(key)?;
        }
        for key in &clients {
            self.by_client.remove(key)?;
        }
        let mut hops: HashMap<&mut MapData, [u8; 4], NextHop> =
            HashMap::try_from(self.ebpf.map_mut(maps::NEXT_HOPS).context("no NEXT_HOPS")?)?;
        let cached: Vec<[u8; 4]> = hops.keys().collect::<Result<_, _>>()?;
        for key in &cached {
            hops.remove(key)?;
        }
        Ok(calls.len().max(clients.len()))
    }

    /// Attaches the decapsulating program to the uplink.
    pub fn attach_uplink(&mut self, interface: &str) -> anyhow::Result<()> {
        self.attach(maps::PROG_UPLINK, interface)
    }

    /// Attaches the encapsulating program to a LAN link.
    pub fn attach_lan(&mut self, interface: &str) -> anyhow::Result<()> {
        self.attach(maps::PROG_LAN, interface)
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

    /// Installs a session; returns its slot.
    pub fn install(&mut self, spec: SessionSpec) -> anyhow::Result<Slot> {
        if self
            .installed
            .values()
            .any(|s| s.client_addr == spec.client_addr)
        {
            bail!(
                "address {} already belongs to an installed session",
                spec.client_addr
            );
        }
        let slot = Slot(self.free.pop().context("all session slots are in use")?);
        self.seq.reset(slot.0);
        let zero = PerCpuValues::try_from(vec![
            SessionCounters::default();
            aya::util::nr_cpus().map_err(|(_, e)| e)?
        ])?;
        self.session_counters.set(slot.0, zero, 0)?;
        self.write(slot, &spec)
            .inspect_err(|_| self.free.push(slot.0))?;
        self.installed.insert(slot, spec);
        Ok(slot)
    }

    fn write(&mut self, slot: Slot, spec: &SessionSpec) -> anyhow::Result<()> {
        let flags = if spec.fast { SESSION_FAST } else { 0 };
        let key = CallKey::new(spec.peer_addr.octets(), spec.local_call_id);
        self.by_call.insert(
            key,
            DecapSession {
                client_addr: spec.client_addr.octets(),
                slot: slot.0,
                flags,
            },
            0,
        )?;
        let encap = EncapSession {
            peer_addr: spec.peer_addr.octets(),
            local_addr: spec.local_addr.octets(),
            peer_call_id: spec.peer_call_id,
            mtu: spec.mtu,
            slot: slot.0,
            flags,
            _pad: 0,
        };
        if let Err(e) = self.by_client.insert(spec.client_addr.octets(), encap, 0) {
            let _ = self.by_call.remove(&key);
            return Err(e.into());
        }
        Ok(())
    }

    /// Moves a session between the XDP path (`fast`) and the agent.
    pub fn set_fast(&mut self, slot: Slot, fast: bool) -> anyhow::Result<()> {
        let mut spec = *self.installed.get(&slot).context("no such session")?;
        spec.fast = fast;
        self.write(slot, &spec)?;
        self.installed.insert(slot, spec);
        Ok(())
    }

    /// Removes a session from every map and frees its slot.
    pub fn remove(&mut self, slot: Slot) -> anyhow::Result<()> {
        let spec = self.installed.remove(&slot).context("no such session")?;
        let by_call = self
            .by_call
            .remove(&CallKey::new(spec.peer_addr.octets(), spec.local_call_id));
        let by_client = self.by_client.remove(&spec.client_addr.octets());
        self.free.push(slot.0);
        by_call?;
        by_client?;
        Ok(())
    }

    /// The installed sessions.
    pub fn sessions(&self) -> impl Iterator<Item = (Slot, &SessionSpec)> {
        self.installed.iter().map(|(slot, spec)| (*slot, spec))
    }

    /// The shared sequence space (for frames the agent sends on a session).
    pub fn seq(&self) -> &SeqSpace {
        &self.seq
    }

    /// Counters of one session, summed over CPUs.
    pub fn session_counters(&self, slot: Slot) -> anyhow::Result<SessionCounters> {
        let mut sum = SessionCounters::default();
        self.session_counters
            .get(&slot.0, 0)?
            .iter()
            .for_each(|c| sum.add(c));
        Ok(sum)
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

fn take(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<aya::maps::Map> {
    ebpf.take_map(name)
        .with_context(|| format!("the BPF object has no map {name}"))
}
