//! Global data-plane counters: one slot per traffic class or drop reason, per CPU.
//!
//! The uplink program adds every frame it sees to exactly one class, so the classes
//! sum to the number of frames the program ran on. `pptp-agent stats` sums the per-CPU
//! slots and prints them by [`GlobalCounter::name`].

/// A packets/bytes pair, the value type of the per-CPU counter maps.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

impl Counter {
    /// Adds another counter into this one (used to sum per-CPU values).
    pub fn add(&mut self, other: &Counter) {
        self.packets = self.packets.wrapping_add(other.packets);
        self.bytes = self.bytes.wrapping_add(other.bytes);
    }
}

#[cfg(feature = "user")]
// SAFETY: `Counter` is `repr(C)`, has no padding and every bit pattern is valid.
unsafe impl aya::Pod for Counter {}

/// Index of a slot in the global counter map.
///
/// The first six are traffic classes: the uplink program puts every frame it sees
/// in exactly one of them, so they sum to the frames it ran on. The rest count
/// outcomes of the data plane (a frame can have a class and an outcome).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobalCounter {
    /// TCP with source or destination port 1723: the PPTP control channel.
    PptpControl = 0,
    /// Enhanced GRE (version 1, protocol PPP): PPTP data.
    GreEnhanced = 1,
    /// GRE of another version (not PPTP; passed to the kernel).
    GreOther = 2,
    /// Any other IPv4 traffic, including non-first fragments.
    OtherIpv4 = 3,
    /// Frames that are not IPv4 (ARP, IPv6, VLAN-tagged ...).
    NonIpv4 = 4,
    /// IPv4 frames too short for the headers they announce, enhanced GRE with bits
    /// RFC 2637 forbids, or a PPP/IPv4 payload that does not fit its GRE packet; dropped.
    Malformed = 5,
    /// Outcome: IPv4 packets decapsulated and forwarded by XDP.
    Decapsulated = 6,
    /// Outcome: IPv4 packets encapsulated and sent to a peer by the data plane.
    Encapsulated = 7,
    /// Outcome: frames of known sessions handed to the agent (PPP control, MPPE,
    /// sessions in setup or on the fallback path).
    ToAgent = 8,
    /// Outcome: enhanced GRE for no installed session (dropped or passed, per config).
    UnknownSession = 9,
    /// Outcome: inner source address not the session's; dropped.
    SpoofedSource = 10,
    /// Outcome: GRE sequence number duplicate or older than the highest accepted; dropped.
    OldSequence = 11,
    /// Outcome: GRE acknowledgment without payload; consumed.
    AckOnly = 12,
    /// Outcome: fragmented outer IPv4 carrying GRE; passed to the kernel to reassemble.
    OuterFragment = 13,
    /// Outcome: no next hop known (route or neighbour missing, TTL expiring); passed
    /// to the kernel, which routes it or answers with ICMP.
    NoNextHop = 14,
    /// Outcome: packet larger than the session's MTU; sent to the slow path (the
    /// kernel fragments or answers fragmentation-needed).
    TooBig = 15,
    /// Outcome: TCP SYNs whose MSS option was lowered to fit the tunnel.
    MssClamped = 16,
    /// Outcome: GRE sequence number too far ahead of the highest accepted
    /// ([`crate::seq::MAX_SEQ_JUMP`]) and not following an earlier such packet; dropped.
    SequenceJump = 17,
    /// Outcome: IPv4 packets over their session's rate limit; dropped.
    Policed = 18,
}

impl GlobalCounter {
    /// Every counter, in map-index order.
    pub const ALL: [GlobalCounter; 19] = [
        GlobalCounter::PptpControl,
        GlobalCounter::GreEnhanced,
        GlobalCounter::GreOther,
        GlobalCounter::OtherIpv4,
        GlobalCounter::NonIpv4,
        GlobalCounter::Malformed,
        GlobalCounter::Decapsulated,
        GlobalCounter::Encapsulated,
        GlobalCounter::ToAgent,
        GlobalCounter::UnknownSession,
        GlobalCounter::SpoofedSource,
        GlobalCounter::OldSequence,
        GlobalCounter::AckOnly,
        GlobalCounter::OuterFragment,
        GlobalCounter::NoNextHop,
        GlobalCounter::TooBig,
        GlobalCounter::MssClamped,
        GlobalCounter::SequenceJump,
        GlobalCounter::Policed,
    ];

    /// Number of slots in the global counter map.
    pub const COUNT: u32 = Self::ALL.len() as u32;

    /// Stable name used in `stats` output, JSON and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            GlobalCounter::PptpControl => "pptp_control",
            GlobalCounter::GreEnhanced => "gre_enhanced",
            GlobalCounter::GreOther => "gre_other",
            GlobalCounter::OtherIpv4 => "other_ipv4",
            GlobalCounter::NonIpv4 => "non_ipv4",
            GlobalCounter::Malformed => "malformed",
            GlobalCounter::Decapsulated => "decapsulated",
            GlobalCounter::Encapsulated => "encapsulated",
            GlobalCounter::ToAgent => "to_agent",
            GlobalCounter::UnknownSession => "unknown_session",
            GlobalCounter::SpoofedSource => "spoofed_source",
            GlobalCounter::OldSequence => "old_sequence",
            GlobalCounter::AckOnly => "ack_only",
            GlobalCounter::OuterFragment => "outer_fragment",
            GlobalCounter::NoNextHop => "no_next_hop",
            GlobalCounter::TooBig => "too_big",
            GlobalCounter::MssClamped => "mss_clamped",
            GlobalCounter::SequenceJump => "sequence_jump",
            GlobalCounter::Policed => "policed",
        }
    }

    /// Map index of this counter.
    pub const fn index(self) -> u32 {
        self as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_with_unique_names() {
        for (i, c) in GlobalCounter::ALL.iter().enumerate() {
            assert_eq!(c.index() as usize, i);
            assert!(GlobalCounter::ALL[..i].iter().all(|o| o.name() != c.name()));
        }
    }
}
