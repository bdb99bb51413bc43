//! Names of the maps and programs in the BPF object, shared so that the agent never
//! spells them differently from the BPF side.

/// Per-CPU array of [`crate::counters::Counter`] indexed by
/// [`crate::counters::GlobalCounter`].
pub const GLOBAL_COUNTERS: &str = "GLOBAL_COUNTERS";
/// Mmapable array of [`crate::session::Session`] indexed by our call ID
/// ([`crate::session::CALL_IDS`] entries), which is also the session's slot.
pub const SESSIONS_BY_CALL: &str = "SESSIONS_BY_CALL";
/// Mmapable array of [`crate::session::ClientEntry`] by
/// [`crate::session::client_index`] of the client address.
pub const CLIENT_INDEX: &str = "CLIENT_INDEX";
/// Hash of client address (`[u8; 4]`) -> [`crate::session::EncapSession`], for the
/// clients whose `CLIENT_INDEX` entry another client holds.
pub const SESSIONS_BY_CLIENT: &str = "SESSIONS_BY_CLIENT";
/// Per-CPU array of [`crate::session::SessionEvents`] by session slot.
pub const SESSION_EVENTS: &str = "SESSION_EVENTS";
/// Maps of earlier layouts, whose pins an agent removes at load: the sequence
/// state and the per-CPU counters now live in `SESSIONS_BY_CALL`.
pub const OLD_MAPS: [&str; 2] = ["SESSION_SEQ", "SESSION_COUNTERS"];
/// Array of [`crate::police::SessionPolicers`] by session slot (not per CPU: one
/// bucket per session and direction, see [`crate::police`]).
pub const SESSION_POLICE: &str = "SESSION_POLICE";
/// Ring buffer of [`crate::capture::Record`]s: one session's packets while a
/// capture runs.
pub const CAPTURE: &str = "CAPTURE";
/// Array of one `u32`: the captured session's slot plus one, or 0.
pub const CAPTURE_SESSION: &str = "CAPTURE_SESSION";
/// Array of one [`crate::session::Config`].
pub const CONFIG: &str = "CONFIG";
/// LRU hash of destination address (`[u8; 4]`) -> [`crate::session::NextHop`].
pub const NEXT_HOPS: &str = "NEXT_HOPS";

/// XDP on the uplink: classification and GRE decapsulation.
pub const PROG_UPLINK: &str = "pptp_uplink";
/// XDP on the LAN link: GRE encapsulation of forwarded traffic to clients.
pub const PROG_LAN: &str = "pptp_lan";
/// TC egress on the session device: GRE encapsulation of what the box sends to clients.
pub const PROG_EGRESS: &str = "pptp_egress";
