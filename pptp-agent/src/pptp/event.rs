//! What a control connection and its calls report to their owner ([`Event`] and what
//! it carries), are set up with ([`ControlConfig`]) and count ([`ControlStats`]):
//! shared by the connection (`control.rs`) and the call machines (`call.rs`), which
//! both write to one `Outbox`. `control.rs` and `call.rs` re-export these types.

use std::collections::VecDeque;
use std::time::Duration;

use super::framing::FramingError;
use super::message::{
    BearerCaps, BearerType, DisconnectResult, FramingCaps, FramingType, GeneralError,
    IncomingCallRequest, IncomingResult, Message, MessageType, OutgoingCallRequest, OutgoingResult,
    ParseError, StartResult, StopReason, WanErrorNotify,
};

/// What we are towards the peer of a control connection (RFC 2637 §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// PPTP Access Concentrator: answers Outgoing-Call-Requests, places incoming calls.
    Pac,
    /// PPTP Network Server: places outgoing calls, answers Incoming-Call-Requests.
    Pns,
}

/// Which roles this side may take. A concentrator takes either: the first call
/// message on the connection fixes the role for the rest of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roles {
    Pac,
    Pns,
    Either,
}

impl Roles {
    pub(super) fn allows(self, role: Role) -> bool {
        matches!(
            (self, role),
            (Roles::Either, _) | (Roles::Pac, Role::Pac) | (Roles::Pns, Role::Pns)
        )
    }
}

/// Whether to accept a Start-Control-Connection-Request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Accept,
    /// Answer with this result (not [`StartResult::Success`]) and error, then close.
    Refuse(StartResult, GeneralError),
}

/// Settings of one control connection.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    pub roles: Roles,
    pub host_name: String,
    pub vendor_name: String,
    pub firmware_revision: u16,
    pub framing_capabilities: FramingCaps,
    pub bearer_capabilities: BearerCaps,
    pub maximum_channels: u16,
    /// Idle time before we send an Echo-Request; `None` disables keepalive.
    pub echo_interval: Option<Duration>,
    /// How long to wait for any sign of life after an Echo-Request.
    pub echo_timeout: Duration,
    /// How long to wait for a reply the protocol expects.
    pub reply_timeout: Duration,
    pub admission: Admission,
    /// Our Packet Recv Window Size, announced in call replies and requests.
    pub recv_window: u16,
    /// Our Packet Processing Delay, in 1/10 s.
    pub processing_delay: u16,
    /// Connect speed we report as PAC, in bits per second.
    pub connect_speed: u32,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            roles: Roles::Either,
            host_name: "pptp-xdp".into(),
            vendor_name: "pptp-xdp".into(),
            firmware_revision: 1,
            framing_capabilities: FramingCaps::ALL,
            bearer_capabilities: BearerCaps::ALL,
            maximum_channels: u16::MAX,
            echo_interval: Some(Duration::from_secs(60)),
            echo_timeout: Duration::from_secs(60),
            reply_timeout: Duration::from_secs(60),
            admission: Admission::Accept,
            recv_window: 64,
            processing_delay: 0,
            connect_speed: 100_000_000,
        }
    }
}

/// What the peer said about itself in its Start-Control-Connection message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub protocol_version: u16,
    pub framing_capabilities: FramingCaps,
    pub bearer_capabilities: BearerCaps,
    pub maximum_channels: u16,
    pub firmware_revision: u16,
    pub host_name: String,
    pub vendor_name: String,
}

/// Why a control connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The byte stream could not be framed.
    Framing(FramingError),
    /// A Start-Control-Connection message was malformed.
    InvalidStart(ParseError),
    /// A message arrived that the handshake does not allow.
    Unexpected(MessageType),
    /// The peer speaks a protocol version other than 1.0.
    VersionNotSupported(u16),
    /// The peer refused our Start-Control-Connection-Request.
    Refused(StartResult, GeneralError),
    /// We refused the peer's Start-Control-Connection-Request.
    NotAdmitted(StartResult, GeneralError),
    /// The peer sent Stop-Control-Connection-Request.
    PeerStopped(StopReason),
    /// Our Stop-Control-Connection-Request was answered.
    Stopped,
    /// The peer closed TCP.
    PeerClosed,
    /// No Start-Control-Connection message in time.
    HandshakeTimeout,
    /// No Stop-Control-Connection-Reply in time.
    StopTimeout,
    /// No sign of life after an Echo-Request.
    KeepaliveTimeout,
    /// `ControlConnection::abort` was called.
    Aborted,
}

/// Something the owner of the connection must know or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed.
    Established(PeerInfo),
    /// The peer asks for a call; answer with [`accept_call`](super::control::ControlConnection::accept_call)
    /// or [`refuse_call`](super::control::ControlConnection::refuse_call). `local_call_id` is already reserved.
    CallRequested {
        local_call_id: u16,
        request: CallRequest,
    },
    /// A call is up: GRE may flow, keyed by `info.local_call_id` inbound and
    /// `info.peer_call_id` outbound.
    CallUp(CallInfo),
    /// A call ended (or never came up); its local Call ID is released.
    CallDown {
        local_call_id: u16,
        peer_call_id: Option<u16>,
        reason: CallEnd,
    },
    /// The PNS sent Set-Link-Info for a call (stored in its [`CallInfo`]).
    LinkInfo {
        local_call_id: u16,
        send_accm: u32,
        receive_accm: u32,
    },
    /// The PAC sent WAN-Error-Notify for a call (counted in its [`CallInfo`]).
    WanError {
        local_call_id: u16,
        counters: WanErrorNotify,
    },
    /// The connection is over: send what is left in the transmit queue, then close TCP.
    Closed(CloseReason),
}

/// Counted drops and notable messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControlStats {
    /// Well-framed messages with an invalid body.
    pub invalid_messages: u64,
    /// Valid messages that the current state does not allow.
    pub unexpected_messages: u64,
    /// Call messages naming no call of ours.
    pub unknown_call: u64,
    /// Calls we refused (by policy, lack of IDs, role or Not-Connected).
    pub refused_calls: u64,
    pub echo_requests_sent: u64,
    pub echo_requests_answered: u64,
    pub wan_error_notifies: u64,
    pub set_link_infos: u64,
}

/// Which of the four call machines a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// We are the PAC; the PNS sent Outgoing-Call-Request.
    PacAnsweringOutgoing,
    /// We are the PNS; the PAC sent Incoming-Call-Request.
    PnsAnsweringIncoming,
    /// We are the PNS and sent Outgoing-Call-Request.
    PnsPlacingOutgoing,
    /// We are the PAC and sent Incoming-Call-Request.
    PacPlacingIncoming,
}

impl Position {
    /// Our role in this call.
    pub fn role(self) -> Role {
        match self {
            Self::PacAnsweringOutgoing | Self::PacPlacingIncoming => Role::Pac,
            Self::PnsAnsweringIncoming | Self::PnsPlacingOutgoing => Role::Pns,
        }
    }
}

/// A call request from the peer, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallRequest {
    Outgoing(OutgoingCallRequest),
    Incoming(IncomingCallRequest),
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// We refused the peer's request with this error (None: Do-Not-Accept).
    RefusedLocally(GeneralError),
    /// The PAC answered our Outgoing-Call-Request with a failure.
    OutgoingRefused {
        result: OutgoingResult,
        error: GeneralError,
        cause_code: u16,
    },
    /// The PNS answered our Incoming-Call-Request with a failure.
    IncomingRefused {
        result: IncomingResult,
        error: GeneralError,
    },
    /// The PNS sent Call-Clear-Request; we answered Call-Disconnect-Notify.
    PeerCleared,
    /// The PAC sent Call-Disconnect-Notify.
    Disconnected {
        result: DisconnectResult,
        error: GeneralError,
        cause_code: u16,
    },
    /// [`clear_call`](super::control::ControlConnection::clear_call) or a local stop completed.
    LocalClear,
    /// A message the call waited for did not come in time.
    Timeout,
    /// The control connection ended.
    ControlClosed,
}

/// The ACCMs of a Set-Link-Info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkAccm {
    pub send_accm: u32,
    pub receive_accm: u32,
}

/// Everything known about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// Our Call ID: the key of GRE packets the peer sends us.
    pub local_call_id: u16,
    /// The peer's Call ID: the key of GRE packets we send. Known once the peer has
    /// sent its request or reply.
    pub peer_call_id: Option<u16>,
    pub position: Position,
    pub serial_number: u16,
    /// The peer's Packet Recv Window Size (pptpd echoes ours).
    pub peer_recv_window: u16,
    /// The peer's Packet Processing (or Transmit) Delay, in 1/10 s.
    pub peer_delay: u16,
    /// Connect speed, as the PAC reported it.
    pub connect_speed: u32,
    pub bearer_type: Option<BearerType>,
    pub framing_type: Option<FramingType>,
    /// The last Set-Link-Info.
    pub link_accm: Option<LinkAccm>,
    /// WAN-Error-Notify messages received.
    pub wan_error_notifies: u32,
    /// The counters of the last one.
    pub last_wan_error: Option<WanErrorNotify>,
}

impl CallInfo {
    pub(super) fn new(local_call_id: u16, position: Position, serial_number: u16) -> Self {
        Self {
            local_call_id,
            peer_call_id: None,
            position,
            serial_number,
            peer_recv_window: 0,
            peer_delay: 0,
            connect_speed: 0,
            bearer_type: None,
            framing_type: None,
            link_accm: None,
            wan_error_notifies: 0,
            last_wan_error: None,
        }
    }
}

/// Messages to send and events to report, in order.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    pub(super) transmit: VecDeque<Message>,
    pub(super) events: VecDeque<Event>,
}

impl Outbox {
    pub(super) fn send(&mut self, m: impl Into<Message>) {
        self.transmit.push_back(m.into());
    }
    pub(super) fn emit(&mut self, e: Event) {
        self.events.push_back(e);
    }
}
