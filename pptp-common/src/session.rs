//! Per-session state in the BPF maps: what the agent installs when a session's
//! network phase opens, and what the data plane keeps per session.
//!
//! Addresses are stored as the four bytes of the address in network order, exactly
//! as they appear in an IPv4 header; call IDs and MTUs in host order.
//!
//! Maps (names in [`crate::maps`]):
//! - `SESSIONS_BY_CALL`: an mmapable array of [`Session`] indexed by our call ID
//!   (all [`CALL_IDS`] of them), one cache line per session holding everything a
//!   forwarded packet reads or writes: the peer's and the client's address, the
//!   flags, the GRE sequence state and the packet and byte counters. The
//!   concentrator has one call-ID space for all its control connections
//!   (`pptp-agent/src/pptp/call_id.rs`), so our call ID alone names a session, and
//!   it is also the session's *slot*, the index of its entries in the other
//!   per-session arrays. A packet from any other source than the entry's peer, or
//!   for an empty entry, is an unknown session ([`Session::accepts`]). The agent
//!   shares the sequence state through its mmap of the array
//!   (`pptp-agent/src/dataplane/table.rs`). One record instead of four arrays: at
//!   50,000 sessions each array touched by a packet was a cache and TLB miss of its
//!   own (`docs/benchmarks.md`).
//! - `CLIENT_INDEX`: an mmapable array of [`ClientEntry`] indexed by the low 16 bits
//!   of the client address ([`client_index`]), consulted by the encapsulating
//!   programs for every packet towards a client: one line that gives the
//!   [`EncapSession`], where a hash lookup read a bucket and then an element.
//! - `SESSIONS_BY_CLIENT`: client address -> [`EncapSession`] for the clients whose
//!   index entry another client holds (addresses that agree in their low 16 bits);
//!   consulted only where the index entry says [`ClientEntry::overflow`].
//! - `SESSION_EVENTS`: a per-CPU array of [`SessionEvents`] by slot: what happens
//!   rarely (frames for the agent, drops), kept out of the record's cache line.
//! - `SESSION_POLICE`: an array of [`crate::police::SessionPolicers`] by slot, shared
//!   by every CPU (the rate limits and their buckets), read only for sessions with
//!   [`SESSION_POLICED`].

/// Session flag: the XDP path forwards this session's IPv4 data. Without it (setup,
/// MPPE, or moved to the fallback path) every frame goes to the agent.
pub const SESSION_FAST: u32 = 1;
/// Session flag of [`Session`]: the entry holds a session (an all-zero entry,
/// an empty call ID, has it clear).
pub const SESSION_INSTALLED: u32 = 2;
/// Session flag: the session has a rate limit in `SESSION_POLICE` (in either
/// direction). Without it the programs do not read that map at all.
pub const SESSION_POLICED: u32 = 4;

use crate::seq::Judgement;

/// Maximum number of sessions the maps hold (slots `0..MAX_SESSIONS`: our call IDs).
pub const MAX_SESSIONS: u32 = 65_536;

/// Entries of `SESSIONS_BY_CALL`: one per 16-bit call ID (the key field of the GRE
/// packets the peer sends us is the call ID we assigned).
pub const CALL_IDS: u32 = 65_536;

/// Entry of `SESSIONS_BY_CALL` at our call ID: one 64-byte cache line with what
/// decapsulation needs, the sequence space encapsulation shares with it, and the
/// counters of forwarded packets.
///
/// The agent writes the first three fields (the session's identity); the programs
/// and the agent share the sequence fields: the BPF programs and the agent both send
/// on fast-path sessions, so `tx_next` is only ever advanced with an atomic
/// fetch-and-add; the receive fields are written by whoever accepts a packet
/// ([`crate::seq`]: the window moves only for accepted packets). The counters are
/// moved by atomic adds (decapsulation and encapsulation of one session may run on
/// two CPUs at once).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Session {
    /// The peer's outer address: the only outer source accepted for this call ID.
    pub peer_addr: [u8; 4],
    /// The address assigned to the client by IPCP: the only inner source accepted.
    pub client_addr: [u8; 4],
    /// `SESSION_*` flags; [`SESSION_INSTALLED`] in every entry that holds a session.
    pub flags: u32,
    /// Non-zero once a sequenced packet has been accepted.
    pub rx_valid: u16,
    /// Non-zero while `rx_probe` holds a probe.
    pub rx_probe_valid: u16,
    /// Packets sent to the peer so far; its low 32 bits are the sequence number of
    /// the next one.
    pub tx_next: u64,
    /// Highest sequence number accepted from the peer (valid if `rx_valid != 0`).
    pub rx_highest: u32,
    /// The last packet too far ahead to accept at once (valid if
    /// `rx_probe_valid != 0`), see [`crate::seq`].
    pub rx_probe: u32,
    /// IPv4 packets decapsulated and forwarded, and their inner bytes.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// IPv4 packets encapsulated towards the peer, and their inner bytes.
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl Session {
    /// Whether GRE from outer source `src` belongs to this entry's session: the
    /// entry holds one and `src` is its peer. Anything else (an empty call ID, or a
    /// call ID of another peer's session) is an unknown session.
    #[inline(always)]
    pub fn accepts(&self, src: [u8; 4]) -> bool {
        self.flags & SESSION_INSTALLED != 0 && self.peer_addr == src
    }

    /// The GRE sequence number of the next packet sent.
    pub const fn next_seq(&self) -> u32 {
        self.tx_next as u32
    }

    /// How a received `seq` stands against the window.
    #[inline(always)]
    pub fn judge(&self, seq: u32) -> Judgement {
        let highest = if self.rx_valid != 0 {
            Some(self.rx_highest)
        } else {
            None
        };
        let probe = if self.rx_probe_valid != 0 {
            Some(self.rx_probe)
        } else {
            None
        };
        crate::seq::judge(highest, probe, seq)
    }

    /// Records an accepted packet: the window moves to `seq`, the probe is spent.
    #[inline(always)]
    pub fn accept(&mut self, seq: u32) {
        self.rx_highest = seq;
        self.rx_valid = 1;
        self.rx_probe_valid = 0;
    }

    /// Remembers a packet judged [`Judgement::TooFar`].
    #[inline(always)]
    pub fn set_probe(&mut self, seq: u32) {
        self.rx_probe = seq;
        self.rx_probe_valid = 1;
    }
}

/// Value of `SESSIONS_BY_CLIENT`: what encapsulation needs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncapSession {
    /// The peer's outer address (destination of the GRE packets).
    pub peer_addr: [u8; 4],
    /// Our outer address (source of the GRE packets).
    pub local_addr: [u8; 4],
    /// The call ID the peer assigned: the key field of GRE packets we send.
    pub peer_call_id: u16,
    /// Largest inner IPv4 packet the tunnel carries (the peer's MRU); larger ones
    /// go to the slow path, TCP MSS is clamped to `mtu - 40`.
    pub mtu: u16,
    /// The session's slot (our call ID): its [`Session`] in `SESSIONS_BY_CALL`.
    pub slot: u32,
    /// `SESSION_*` flags.
    pub flags: u32,
    pub _pad: u32,
}

/// The entry of `CLIENT_INDEX` for client address `addr`: its low 16 bits.
#[inline(always)]
pub fn client_index(addr: [u8; 4]) -> u32 {
    u32::from(u16::from_be_bytes([addr[2], addr[3]]))
}

/// Entries of `CLIENT_INDEX` (every 16-bit value).
pub const CLIENT_INDEX_ENTRIES: u32 = 65_536;

/// Entry of `CLIENT_INDEX`: the client that holds it and its session. It holds one
/// when `session.flags` has [`SESSION_INSTALLED`] (written last by the agent).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientEntry {
    /// The client address this entry is for.
    pub client_addr: [u8; 4],
    /// Non-zero: clients with this index are also in `SESSIONS_BY_CLIENT`.
    pub overflow: u32,
    pub session: EncapSession,
}

impl ClientEntry {
    /// The session of client `addr` if this entry holds it.
    #[inline(always)]
    pub fn session_of(&self, addr: [u8; 4]) -> Option<&EncapSession> {
        (self.session.flags & SESSION_INSTALLED != 0 && self.client_addr == addr)
            .then_some(&self.session)
    }
}

/// What happens rarely to a session, counted per CPU in `SESSION_EVENTS` (the
/// per-packet counters are in its [`Session`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionEvents {
    /// Frames handed to the agent (PPP control, MPPE, setup, slow path).
    pub to_agent: u64,
    /// Packets dropped because their inner source was not the client's address.
    pub drop_spoofed: u64,
    /// Packets dropped as duplicate, older than the highest sequence accepted, or
    /// too far ahead of it ([`crate::seq`]).
    pub drop_old_seq: u64,
    /// Packets too big for the tunnel, sent to the slow path.
    pub too_big: u64,
    /// Packets from the client dropped by its rate limit (`pptp_common::police`).
    pub drop_policed_rx: u64,
    /// Packets to the client dropped by its rate limit.
    pub drop_policed_tx: u64,
}

impl SessionEvents {
    /// Adds another set into this one (used to sum per-CPU values).
    pub fn add(&mut self, o: &SessionEvents) {
        self.to_agent += o.to_agent;
        self.drop_spoofed += o.drop_spoofed;
        self.drop_old_seq += o.drop_old_seq;
        self.too_big += o.too_big;
        self.drop_policed_rx += o.drop_policed_rx;
        self.drop_policed_tx += o.drop_policed_tx;
    }
}

/// A session's counters as the agent reports them: the [`Session`]'s packet
/// counters and its [`SessionEvents`] summed over CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct SessionCounters {
    /// IPv4 packets decapsulated and forwarded, and their inner bytes.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// IPv4 packets encapsulated towards the peer, and their inner bytes.
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames handed to the agent (PPP control, MPPE, setup, slow path).
    pub to_agent: u64,
    /// Packets dropped because their inner source was not the client's address.
    pub drop_spoofed: u64,
    /// Packets dropped as duplicate, older than the highest sequence accepted, or
    /// too far ahead of it ([`crate::seq`]).
    pub drop_old_seq: u64,
    /// Packets too big for the tunnel, sent to the slow path.
    pub too_big: u64,
    /// Packets from the client dropped by its rate limit (`pptp_common::police`).
    pub drop_policed_rx: u64,
    /// Packets to the client dropped by its rate limit.
    pub drop_policed_tx: u64,
}

impl SessionCounters {
    /// The counters of `session` with `events` (summed over CPUs).
    pub fn new(session: &Session, events: &SessionEvents) -> Self {
        Self {
            rx_packets: session.rx_packets,
            rx_bytes: session.rx_bytes,
            tx_packets: session.tx_packets,
            tx_bytes: session.tx_bytes,
            to_agent: events.to_agent,
            drop_spoofed: events.drop_spoofed,
            drop_old_seq: events.drop_old_seq,
            too_big: events.too_big,
            drop_policed_rx: events.drop_policed_rx,
            drop_policed_tx: events.drop_policed_tx,
        }
    }
}

/// A cached next hop: where packets to one destination leave, learnt from
/// `bpf_fib_lookup` and kept for [`NEXT_HOP_TTL_JIFFIES`] (the agent may flush it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextHop {
    pub ifindex: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    /// `bpf_jiffies64()` after which the entry must be looked up again.
    pub expires: u64,
}

/// How long a cached next hop is trusted before the FIB is asked again, in jiffies:
/// about a second at the usual HZ of 250 (a quarter second at 1000, 2.5 s at 100).
/// Jiffies, not nanoseconds: `bpf_ktime_get_ns` cost 25-30 ns per packet, a tenth
/// of a decapsulation (measured by `cargo xtask bench`).
pub const NEXT_HOP_TTL_JIFFIES: u64 = 256;

/// Data-plane configuration (`CONFIG`, an array of one).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Non-zero: enhanced GRE for no known session is dropped (counted). Zero: it is
    /// passed to the kernel (and so to the agent's raw socket).
    pub drop_unknown: u32,
    pub _pad: u32,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are repr(C), padded explicitly, valid for any bits.
    unsafe impl aya::Pod for Session {}
    unsafe impl aya::Pod for EncapSession {}
    unsafe impl aya::Pod for ClientEntry {}
    unsafe impl aya::Pod for SessionEvents {}
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for NextHop {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_implicit_padding() {
        // One cache line, so that a packet touches one line of the session's.
        assert_eq!(size_of::<Session>(), 64);
        assert_eq!(core::mem::align_of::<Session>(), 64);
        assert_eq!(size_of::<EncapSession>(), 24);
        assert_eq!(size_of::<ClientEntry>(), 32);
        assert_eq!(size_of::<SessionEvents>(), 48);
        assert_eq!(size_of::<Config>(), 8);
        assert_eq!(size_of::<NextHop>(), 24);
    }

    #[test]
    fn an_entry_accepts_only_its_installed_peer() {
        let peer = [198, 51, 100, 10];
        let entry = Session {
            peer_addr: peer,
            client_addr: [192, 0, 2, 7],
            flags: SESSION_INSTALLED | SESSION_FAST,
            ..Default::default()
        };
        assert!(entry.accepts(peer));
        assert!(!entry.accepts([198, 51, 100, 11]));
        // An empty entry accepts nobody, not even the all-zero source.
        assert!(!Session::default().accepts([0; 4]));
        let emptied = Session {
            flags: SESSION_FAST,
            ..entry
        };
        assert!(!emptied.accepts(peer));
    }
}
