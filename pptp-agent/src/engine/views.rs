//! What operators see of the engine: sessions and interfaces as views, the agent
//! path's counters (an enum with stable names, like the data plane's
//! `GlobalCounter`), what the engine holds now, and which sessions a kill names.

use std::net::Ipv4Addr;

use serde::{Serialize, Serializer, ser::SerializeMap};

use super::table::SessionId;

/// Which sessions a kill hangs up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The session with this id ([`SessionInfo::id`]).
    Id(SessionId),
    /// Every session of this user.
    User(String),
    /// Every session.
    All,
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// PPP is negotiating.
    Starting,
    /// IPCP is open: traffic flows.
    Up,
}

/// Which path carries a session's IPv4 data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataPath {
    /// Forwarded by the XDP programs.
    Xdp,
    /// Through the agent (MPPE, no XDP, or still negotiating).
    Agent,
}

/// One session, as operators see it (`pptp-agent sessions`, the API, metrics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// Unique for the life of the agent.
    pub id: SessionId,
    /// The authenticated user name (ours, on a client).
    pub user: Option<String>,
    /// The peer's outer address.
    pub peer: Ipv4Addr,
    pub local_call_id: u16,
    pub peer_call_id: u16,
    /// The client's tunnel address (the peer's on a server, ours on a client).
    pub client: Option<Ipv4Addr>,
    pub state: SessionState,
    pub path: DataPath,
    /// e.g. "128-bit stateless".
    pub mppe: Option<String>,
    /// The demand-dial interface the session is bound to (a router's link).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    pub uptime_secs: u64,
    /// IPv4 packets and bytes received from the peer (both paths added up).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// IPv4 packets and bytes sent to the peer (both paths added up).
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// The rate limit in force, as Mikrotik-Rate-Limit writes it ("10M/20M");
    /// none: unlimited.
    pub rate: Option<String>,
    /// IPv4 packets the rate limit dropped, from and to the client (both paths).
    pub policed_rx: u64,
    pub policed_tx: u64,
}

/// One demand-dial interface, as operators see it (`pptp-agent interfaces`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceInfo {
    pub name: String,
    pub device: String,
    pub state: crate::demand::State,
    /// The session bound to it ([`SessionInfo::id`]).
    pub session: Option<SessionId>,
    /// Packets and bytes waiting for the link.
    pub queued_packets: usize,
    pub queued_bytes: usize,
    #[serde(flatten)]
    pub stats: crate::demand::DemandStats,
}

/// What the engine holds now: each bounded by the sessions (and their pending
/// RADIUS exchanges), never by the traffic.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EngineLoad {
    /// Session timers pending (at most one per session).
    pub timers: usize,
    /// Access-Requests waiting for a RADIUS verdict.
    pub authentications: usize,
    /// Accounting requests in flight.
    pub accounting: usize,
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident = $text:literal $(, event $metric:literal $help:literal)?;)*) => {
        /// A counter of the agent's path: a dropped packet's reason, or (events) something else worth counting.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum AgentCounter { $($(#[$doc])* $name,)* }

        impl AgentCounter {
            /// Every counter, in a stable order.
            pub const ALL: &[AgentCounter] = &[$(AgentCounter::$name,)*];

            /// Stable name used in `stats`, JSON and metrics.
            pub const fn name(self) -> &'static str {
                match self { $(AgentCounter::$name => $text,)* }
            }

            /// For counters that are not drops: the Prometheus counter and what it counts.
            pub const fn event(self) -> Option<(&'static str, &'static str)> {
                match self { $(AgentCounter::$name => counters!(@event $($metric $help)?),)* }
            }
        }
    };
    (@event) => { None };
    (@event $metric:literal $help:literal) => { Some(($metric, $help)) };
}

counters! {
    /// GRE packets that do not parse.
    MalformedGre = "malformed_gre";
    /// GRE for no session of ours.
    UnknownSession = "unknown_session";
    /// GRE sequence numbers already seen or older than the highest accepted.
    OldSequence = "old_sequence";
    /// GRE sequence numbers too far ahead of the window (`pptp_common::seq`).
    SequenceJump = "sequence_jump";
    /// IPv4 frames whose payload is not an IPv4 packet (IPv6 or garbage).
    MalformedIp = "malformed_ip";
    /// IPv4 from a session with a source that is not its own.
    SpoofedSource = "spoofed_source";
    /// IPv4 from the kernel for an address no session has.
    NoSessionForDestination = "no_session_for_destination";
    /// Packets that could not be built or sent.
    SendErrors = "send_errors";
    /// MPPE packets refused (out of window, awaiting a flush, malformed, rekey budget).
    MppeRefused = "mppe_refused";
    /// Stateful MPPE losses that made us send a CCP Reset-Request.
    MppeResetsSent = "mppe_resets_sent", event "pptp_mppe_reset_requests_total" "CCP Reset-Requests sent (stateful MPPE lost sync)";
    /// DHCPINFORMs answered for clients.
    DhcpInformsAnswered = "dhcp_informs_answered", event "pptp_dhcp_informs_answered_total" "DHCPINFORMs answered for clients";
    /// Unreadable DHCP requests dropped.
    DhcpMalformed = "dhcp_malformed";
    /// IPv4 packets over their session's rate limit on the agent's path.
    Policed = "policed";
    /// Logins refused: wrong credentials, unknown user, dial-in denied, RADIUS reject.
    AuthFailures = "auth_failures", event "pptp_auth_failures_total" "Logins refused (credentials, unknown user, dial-in denied, RADIUS reject)";
    /// Calls whose peer sent no GRE within the wait (IP protocol 47 blocked?).
    CallsWithoutGre = "calls_without_gre", event "pptp_calls_without_gre_total" "Calls whose peer sent no GRE within the wait (IP protocol 47 blocked on the path?)";
    /// Packets a capture of an agent-path session could not keep (its reader fell
    /// behind); the packets themselves went on.
    CaptureDropped = "capture_dropped", event "pptp_capture_dropped_total" "Packets a capture (pptp-agent capture) could not keep; the packets went on";
}

impl AgentCounter {
    /// Whether the counter counts dropped packets.
    pub fn is_drop(self) -> bool {
        self.event().is_none()
    }

    /// The counter named `name` in `stats` output.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }
}

/// The agent path's counters; serialized as a map from name to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentStats([u64; AgentCounter::ALL.len()]);

impl Default for AgentStats {
    fn default() -> Self {
        Self([0; AgentCounter::ALL.len()])
    }
}

impl AgentStats {
    pub fn add(&mut self, counter: AgentCounter) {
        self.0[counter as usize] += 1;
    }

    pub fn get(&self, counter: AgentCounter) -> u64 {
        self.0[counter as usize]
    }

    /// Every counter with its count.
    pub fn iter(&self) -> impl Iterator<Item = (AgentCounter, u64)> + '_ {
        AgentCounter::ALL.iter().map(|c| (*c, self.get(*c)))
    }
}

impl Serialize for AgentStats {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(AgentCounter::ALL.len()))?;
        for (counter, n) in self.iter() {
            map.serialize_entry(counter.name(), &n)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_have_stable_unique_names_in_index_order() {
        for (i, c) in AgentCounter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
            assert_eq!(AgentCounter::named(c.name()), Some(*c));
        }
        assert!(AgentCounter::SpoofedSource.is_drop());
        assert!(!AgentCounter::AuthFailures.is_drop());
        let mut stats = AgentStats::default();
        stats.add(AgentCounter::SpoofedSource);
        let json = serde_json::to_value(stats).unwrap();
        assert_eq!(json["spoofed_source"], 1);
        assert_eq!(json["auth_failures"], 0);
    }
}
