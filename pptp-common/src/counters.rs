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
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobalCounter {
    /// TCP with source or destination port 1723: the PPTP control channel.
    PptpControl = 0,
    /// Enhanced GRE (version 1, protocol PPP): PPTP data.
    GreEnhanced = 1,
    /// GRE of another version or protocol (not PPTP; passed to the kernel).
    GreOther = 2,
    /// Any other IPv4 traffic, including non-first fragments.
    OtherIpv4 = 3,
    /// Frames that are not IPv4 (ARP, IPv6, VLAN-tagged ...).
    NonIpv4 = 4,
    /// IPv4 frames too short for the headers they announce, or enhanced GRE with
    /// bits RFC 2637 forbids; dropped.
    Malformed = 5,
}

impl GlobalCounter {
    /// Every counter, in map-index order.
    pub const ALL: [GlobalCounter; 6] = [
        GlobalCounter::PptpControl,
        GlobalCounter::GreEnhanced,
        GlobalCounter::GreOther,
        GlobalCounter::OtherIpv4,
        GlobalCounter::NonIpv4,
        GlobalCounter::Malformed,
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
        }
    }

    /// Map index of this counter.
    pub const fn index(self) -> u32 {
        self as u32
    }
}
