//! What the engine and the runtime tell each other besides packets: a call that
//! came up, what to do with a received packet, and the [`Action`]s the runtime
//! carries out.

use std::{net::Ipv4Addr, ops::Range};

use crate::{
    ppp::link::{ClaimTicket, DownReason, LinkConfig, LinkUp},
    radius::{AuthJob, acct::Record, nas::NasRecord},
};

use super::{
    kernel::{CallSpec, Device},
    table::SessionId,
};

/// The control connection (or dialer) a call belongs to, as the runtime numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerId(pub u64);

/// What a call's owner hears about its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// IPCP is open (again, after a renegotiation).
    Up(LinkUp),
    /// The call is up but its peer has sent no GRE within the wait
    /// ([`EngineConfig::gre_wait`](super::EngineConfig::gre_wait)): IP protocol 47
    /// is probably blocked on the path. A client's session then ends
    /// ([`SessionEvent::Down`] follows).
    NoGre { waited: std::time::Duration },
    /// The session ended.
    Down(DownReason),
}

/// Something the runtime must carry out.
#[derive(Debug)]
pub enum Action {
    /// Clear our call `local_call_id` on `owner`'s control connection (harmless if
    /// it is gone already). The engine's last word about the call: once per call.
    ClearCall { owner: OwnerId, local_call_id: u16 },
    /// Tell `owner` what became of its session.
    Notify { owner: OwnerId, event: SessionEvent },
    /// Ask RADIUS about a claim; answer with [`Engine::handle_verdict`].
    Authenticate {
        session: SessionId,
        ticket: ClaimTicket,
        job: AuthJob,
    },
    /// The Access-Request for `session` is moot (a newer claim, or it ended).
    CancelAuthentication { session: SessionId },
    /// Send an accounting record.
    Account { session: SessionId, record: Record },
    /// Send Accounting-On (queued by [`Engine::new`]) or Accounting-Off (by
    /// [`Engine::finish`]). The runtime waits for the answer (within the RADIUS
    /// timeouts) before it goes on: the server must clear the NAS's old sessions
    /// and leases before a new one asks for an address.
    AccountNas { record: NasRecord },
    /// Place a call for demand-dial interface `router`; answer with
    /// [`Engine::handle_dial_ended`].
    Dial { router: usize, generation: u64 },
}

/// A call that came up on a control connection.
pub struct CallUp {
    pub call: CallSpec,
    /// The PPP link to run over it.
    pub link: LinkConfig,
    pub owner: OwnerId,
    /// The demand-dial interface we placed the call for (`None`: we answered it).
    pub router: Option<usize>,
}

/// Where a session's IPv4 goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Into the kernel through this device.
    Kernel(Device),
    /// To the load generator, with the address of the session it came on.
    Probe(Ipv4Addr),
}

/// What became of a GRE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// An IPv4 packet for `target`: these bytes of the buffer handed in.
    Deliver {
        target: Target,
        packet: Range<usize>,
    },
    /// Nothing to deliver (a control frame, a drop, an answered request).
    Done,
}
