//! Names of the maps and programs in the BPF object, shared so that the agent never
//! spells them differently from the BPF side.

/// Per-CPU array of [`crate::counters::Counter`] indexed by
/// [`crate::counters::GlobalCounter`].
pub const GLOBAL_COUNTERS: &str = "GLOBAL_COUNTERS";

/// The XDP program attached to the uplink.
pub const PROG_UPLINK: &str = "pptp_uplink";
