//! PPTP calls (RFC 2637 §3.2) in all four positions, run inside a [`ControlConnection`].
//!
//! | position | who asks | messages |
//! |---|---|---|
//! | [`Position::PacAnsweringOutgoing`] | a PNS (Windows, pptp-linux: voluntary tunnel) | OCRQ in, OCRP out |
//! | [`Position::PnsAnsweringIncoming`] | a PAC (an ISP's access switch: compulsory tunnel) | ICRQ in, ICRP out, ICCN in |
//! | [`Position::PnsPlacingOutgoing`] | us, as client (`pptp-agent dial`) | OCRQ out, OCRP in |
//! | [`Position::PacPlacingIncoming`] | us, as PAC towards a PNS | ICRQ out, ICRP in, ICCN out |
//!
//! Requests from the peer reserve a local Call ID at once and wait for the owner's
//! decision ([`ControlConnection::accept_call`] / [`ControlConnection::refuse_call`]);
//! a request the owner leaves unanswered for `reply_timeout` is refused. A PNS clears
//! a call with Call-Clear-Request and waits for Call-Disconnect-Notify; a PAC clears it
//! with Call-Disconnect-Notify at once. Set-Link-Info (PNS to PAC) is stored with the
//! call; WAN-Error-Notify (PAC to PNS) is counted. Both are reported as events.
//!
//! Refusals follow the RFC's result codes: a request for a role this side does not
//! take gets Do-Not-Accept; a Call ID the peer already uses for a live call gets
//! General Error / Bad-Call-ID; no free local Call ID gets General Error / No-Resource.
//! A call message that names no call of ours, or comes in a state that does not expect
//! it, is counted ([`ControlStats`](super::control::ControlStats)) and dropped: one
//! confused call must not tear down the other calls of the connection. The one case
//! the RFC's message set leaves unroutable, a Call-Disconnect-Notify for an outgoing
//! call whose reply never came, ends by the call's own timeout.

use std::time::Instant;

use thiserror::Error;

use super::call_id::CallIdPool;
use super::control::{ControlConnection, Event, Role};
use super::message::{
    BearerType, CallClearRequest, CallDisconnectNotify, DisconnectResult, FramingType,
    GeneralError, IncomingCallConnected, IncomingCallReply, IncomingCallRequest, IncomingResult,
    Message, NumberLength, OutgoingCallReply, OutgoingCallRequest, OutgoingResult, Reserved16,
    SetLinkInfo, Text, WanErrorNotify,
};

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

/// Where a call is in its machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// The peer's request waits for the owner's accept or refuse.
    WaitAnswer,
    /// Our request (OCRQ or ICRQ) waits for the peer's reply.
    WaitReply,
    /// As PNS we sent Incoming-Call-Reply and wait for Incoming-Call-Connected.
    WaitConnect,
    Established,
    /// As PNS we sent Call-Clear-Request and wait for Call-Disconnect-Notify.
    WaitDisconnect,
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
    /// [`ControlConnection::clear_call`] or a local stop completed.
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
    fn new(local_call_id: u16, position: Position, serial_number: u16) -> Self {
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

/// One call's machine state.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub(super) info: CallInfo,
    pub(super) state: CallState,
    deadline: Option<Instant>,
}

/// A call operation the current state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CallError {
    #[error("the control connection is not established")]
    NotEstablished,
    #[error("this side cannot act as {0:?} on this connection")]
    RoleNotAllowed(Role),
    #[error("no call with local Call ID {0}")]
    UnknownCall(u16),
    #[error("call {call} is in state {state:?}, which does not allow this")]
    WrongState { call: u16, state: CallState },
    #[error("every local Call ID is in use")]
    NoCallIds,
}

/// What to put in an Outgoing-Call-Request we place (as PNS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingCallParams {
    pub minimum_bps: u32,
    pub maximum_bps: u32,
    pub bearer_type: BearerType,
    pub framing_type: FramingType,
    pub phone_number: String,
    pub subaddress: String,
}

impl Default for OutgoingCallParams {
    /// What pptp-linux asks for.
    fn default() -> Self {
        Self {
            minimum_bps: 2400,
            maximum_bps: 10_000_000,
            bearer_type: BearerType::Either,
            framing_type: FramingType::Either,
            phone_number: String::new(),
            subaddress: String::new(),
        }
    }
}

/// What to put in an Incoming-Call-Request we place (as PAC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCallParams {
    pub bearer_type: BearerType,
    pub physical_channel_id: u32,
    /// DNIS: the number the user dialled.
    pub dialed_number: String,
    /// CLID: the number the user dialled from.
    pub dialing_number: String,
    pub subaddress: String,
    /// Framing announced in Incoming-Call-Connected.
    pub framing_type: FramingType,
}

impl Default for IncomingCallParams {
    fn default() -> Self {
        Self {
            bearer_type: BearerType::Digital,
            physical_channel_id: 0,
            dialed_number: String::new(),
            dialing_number: String::new(),
            subaddress: String::new(),
            framing_type: FramingType::Sync,
        }
    }
}

impl<P: CallIdPool> ControlConnection<P> {
    // ---- owner API ----

    /// A call's details.
    pub fn call(&self, local_call_id: u16) -> Option<&CallInfo> {
        self.calls.get(&local_call_id).map(|c| &c.info)
    }

    /// A call's state.
    pub fn call_state(&self, local_call_id: u16) -> Option<CallState> {
        self.calls.get(&local_call_id).map(|c| c.state)
    }

    /// Number of calls in any state.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Accepts a call the peer requested ([`Event::CallRequested`]). As PAC this
    /// answers Outgoing-Call-Reply Connected and the call is up; as PNS it answers
    /// Incoming-Call-Reply Connect and waits for Incoming-Call-Connected.
    pub fn accept_call(&mut self, local_call_id: u16, now: Instant) -> Result<(), CallError> {
        let (window, delay, speed) = (
            self.config.recv_window,
            self.config.processing_delay,
            self.config.connect_speed,
        );
        let call = self.call_in(local_call_id, &[CallState::WaitAnswer])?;
        let peer_call_id = call.info.peer_call_id.unwrap_or_default();
        match call.info.position {
            Position::PacAnsweringOutgoing => {
                call.info.connect_speed = speed;
                self.out.send(OutgoingCallReply {
                    call_id: local_call_id,
                    peer_call_id,
                    result: OutgoingResult::Connected,
                    error: GeneralError::None,
                    cause_code: 0,
                    connect_speed: speed,
                    packet_recv_window_size: window,
                    packet_processing_delay: delay,
                    physical_channel_id: 0,
                });
                self.call_up(local_call_id);
            }
            _ => {
                self.out.send(IncomingCallReply {
                    call_id: local_call_id,
                    peer_call_id,
                    result: IncomingResult::Connect,
                    error: GeneralError::None,
                    packet_recv_window_size: window,
                    packet_transmit_delay: delay,
                    reserved1: Reserved16,
                });
                self.enter(local_call_id, CallState::WaitConnect, Some(now));
            }
        }
        Ok(())
    }

    /// Refuses a call the peer requested: General Error with `error`, or Do-Not-Accept
    /// when `error` is [`GeneralError::None`].
    pub fn refuse_call(
        &mut self,
        local_call_id: u16,
        error: GeneralError,
    ) -> Result<(), CallError> {
        self.call_in(local_call_id, &[CallState::WaitAnswer])?;
        self.refuse_pending(local_call_id, error, CallEnd::RefusedLocally(error));
        Ok(())
    }

    /// Places an outgoing call as PNS (our client): sends Outgoing-Call-Request.
    pub fn place_outgoing_call(
        &mut self,
        params: &OutgoingCallParams,
        now: Instant,
    ) -> Result<u16, CallError> {
        let id = self.new_local_call(Position::PnsPlacingOutgoing)?;
        let serial = self.calls[&id].info.serial_number;
        let phone_number = Text::new(&params.phone_number);
        self.out.send(OutgoingCallRequest {
            call_id: id,
            call_serial_number: serial,
            minimum_bps: params.minimum_bps,
            maximum_bps: params.maximum_bps,
            bearer_type: params.bearer_type,
            framing_type: params.framing_type,
            packet_recv_window_size: self.config.recv_window,
            packet_processing_delay: self.config.processing_delay,
            phone_number_length: NumberLength::of(&phone_number),
            reserved1: Reserved16,
            phone_number,
            subaddress: Text::new(&params.subaddress),
        });
        if let Some(call) = self.calls.get_mut(&id) {
            call.info.bearer_type = Some(params.bearer_type);
            call.info.framing_type = Some(params.framing_type);
        }
        self.enter(id, CallState::WaitReply, Some(now));
        Ok(id)
    }

    /// Places an incoming call as PAC: sends Incoming-Call-Request.
    pub fn place_incoming_call(
        &mut self,
        params: &IncomingCallParams,
        now: Instant,
    ) -> Result<u16, CallError> {
        let id = self.new_local_call(Position::PacPlacingIncoming)?;
        let serial = self.calls[&id].info.serial_number;
        let dialed_number = Text::new(&params.dialed_number);
        let dialing_number = Text::new(&params.dialing_number);
        self.out.send(IncomingCallRequest {
            call_id: id,
            call_serial_number: serial,
            bearer_type: params.bearer_type,
            physical_channel_id: params.physical_channel_id,
            dialed_number_length: NumberLength::of(&dialed_number),
            dialing_number_length: NumberLength::of(&dialing_number),
            dialed_number,
            dialing_number,
            subaddress: Text::new(&params.subaddress),
        });
        if let Some(call) = self.calls.get_mut(&id) {
            call.info.bearer_type = Some(params.bearer_type);
            call.info.framing_type = Some(params.framing_type);
            call.info.connect_speed = self.config.connect_speed;
        }
        self.enter(id, CallState::WaitReply, Some(now));
        Ok(id)
    }

    /// Clears a call that is placed or up. As PNS: Call-Clear-Request, then the call
    /// ends when Call-Disconnect-Notify (or the timeout) comes. As PAC: Call-Disconnect-
    /// Notify (Admin Shutdown) and the call ends at once. Use
    /// [`refuse_call`](Self::refuse_call) for a request not yet answered.
    pub fn clear_call(&mut self, local_call_id: u16, now: Instant) -> Result<(), CallError> {
        use CallState::*;
        let call = self.call_in(
            local_call_id,
            &[WaitReply, WaitConnect, Established, WaitDisconnect],
        )?;
        match (call.info.position.role(), call.state) {
            (Role::Pns, WaitDisconnect) => {}
            (Role::Pns, _) => self.send_clear_request(local_call_id, now),
            (Role::Pac, _) => {
                self.send_disconnect(local_call_id, DisconnectResult::AdminShutdown);
                self.end_call(local_call_id, CallEnd::LocalClear);
            }
        }
        Ok(())
    }

    /// As PNS, sends Set-Link-Info for an established call.
    pub fn set_link_info(&mut self, local_call_id: u16, accm: LinkAccm) -> Result<(), CallError> {
        let call = self.call_in(local_call_id, &[CallState::Established])?;
        if call.info.position.role() != Role::Pns {
            return Err(CallError::RoleNotAllowed(Role::Pns));
        }
        let peer_call_id = call.info.peer_call_id.unwrap_or_default();
        self.out.send(SetLinkInfo {
            peer_call_id,
            reserved1: Reserved16,
            send_accm: accm.send_accm,
            receive_accm: accm.receive_accm,
        });
        Ok(())
    }

    /// As PAC, sends WAN-Error-Notify for an established call (`peer_call_id` of
    /// `counters` is filled in).
    pub fn notify_wan_error(
        &mut self,
        local_call_id: u16,
        mut counters: WanErrorNotify,
    ) -> Result<(), CallError> {
        let call = self.call_in(local_call_id, &[CallState::Established])?;
        if call.info.position.role() != Role::Pac {
            return Err(CallError::RoleNotAllowed(Role::Pac));
        }
        counters.peer_call_id = call.info.peer_call_id.unwrap_or_default();
        self.out.send(counters);
        Ok(())
    }

    // ---- messages from the peer ----

    pub(super) fn handle_call_message(&mut self, m: Message, now: Instant) {
        match m {
            Message::OutgoingCallRequest(rq) => {
                self.on_call_request(CallRequest::Outgoing(rq), now)
            }
            Message::IncomingCallRequest(rq) => {
                self.on_call_request(CallRequest::Incoming(rq), now)
            }
            Message::OutgoingCallReply(rp) => self.on_outgoing_reply(rp),
            Message::IncomingCallReply(rp) => self.on_incoming_reply(rp),
            Message::IncomingCallConnected(cn) => self.on_incoming_connected(cn),
            Message::CallClearRequest(rq) => self.on_clear_request(rq),
            Message::CallDisconnectNotify(n) => self.on_disconnect_notify(n),
            Message::WanErrorNotify(w) => self.on_wan_error(w),
            Message::SetLinkInfo(s) => self.on_set_link_info(s),
            _ => self.stats.unexpected_messages += 1,
        }
    }

    fn on_call_request(&mut self, request: CallRequest, now: Instant) {
        let (position, peer_call_id) = match &request {
            CallRequest::Outgoing(rq) => (Position::PacAnsweringOutgoing, rq.call_id),
            CallRequest::Incoming(rq) => (Position::PnsAnsweringIncoming, rq.call_id),
        };
        let refuse = |c: &mut Self, error| match position {
            Position::PacAnsweringOutgoing => c.refuse_outgoing(peer_call_id, error),
            _ => c.refuse_incoming(peer_call_id, error),
        };
        if !self.roles_allow(position.role()) {
            return refuse(self, GeneralError::None);
        }
        if self.by_peer_id.contains_key(&peer_call_id) {
            return refuse(self, GeneralError::BadCallId);
        }
        let Ok(id) = self.new_local_call(position) else {
            return refuse(self, GeneralError::NoResource);
        };
        if let Some(call) = self.calls.get_mut(&id) {
            let info = &mut call.info;
            info.peer_call_id = Some(peer_call_id);
            info.serial_number = match &request {
                CallRequest::Outgoing(rq) => {
                    info.peer_recv_window = rq.packet_recv_window_size;
                    info.peer_delay = rq.packet_processing_delay;
                    info.bearer_type = Some(rq.bearer_type);
                    info.framing_type = Some(rq.framing_type);
                    rq.call_serial_number
                }
                CallRequest::Incoming(rq) => {
                    info.bearer_type = Some(rq.bearer_type);
                    rq.call_serial_number
                }
            };
        }
        self.by_peer_id.insert(peer_call_id, id);
        self.enter(id, CallState::WaitAnswer, Some(now));
        self.out.emit(Event::CallRequested {
            local_call_id: id,
            request,
        });
    }

    fn on_outgoing_reply(&mut self, rp: OutgoingCallReply) {
        let Some(id) = self.expect(
            rp.peer_call_id,
            Position::PnsPlacingOutgoing,
            CallState::WaitReply,
        ) else {
            return;
        };
        if rp.result != OutgoingResult::Connected {
            return self.end_call(
                id,
                CallEnd::OutgoingRefused {
                    result: rp.result,
                    error: rp.error,
                    cause_code: rp.cause_code,
                },
            );
        }
        if !self.adopt_peer_id(id, rp.call_id) {
            return;
        }
        if let Some(call) = self.calls.get_mut(&id) {
            call.info.peer_recv_window = rp.packet_recv_window_size;
            call.info.peer_delay = rp.packet_processing_delay;
            call.info.connect_speed = rp.connect_speed;
        }
        self.call_up(id);
    }

    fn on_incoming_reply(&mut self, rp: IncomingCallReply) {
        let Some(id) = self.expect(
            rp.peer_call_id,
            Position::PacPlacingIncoming,
            CallState::WaitReply,
        ) else {
            return;
        };
        if rp.result != IncomingResult::Connect {
            return self.end_call(
                id,
                CallEnd::IncomingRefused {
                    result: rp.result,
                    error: rp.error,
                },
            );
        }
        if !self.adopt_peer_id(id, rp.call_id) {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.info.peer_recv_window = rp.packet_recv_window_size;
        call.info.peer_delay = rp.packet_transmit_delay;
        let connected = IncomingCallConnected {
            peer_call_id: rp.call_id,
            reserved1: Reserved16,
            connect_speed: call.info.connect_speed,
            packet_recv_window_size: self.config.recv_window,
            packet_transmit_delay: self.config.processing_delay,
            framing_type: call.info.framing_type.unwrap_or(FramingType::Sync),
        };
        self.out.send(connected);
        self.call_up(id);
    }

    fn on_incoming_connected(&mut self, cn: IncomingCallConnected) {
        let Some(id) = self.expect(
            cn.peer_call_id,
            Position::PnsAnsweringIncoming,
            CallState::WaitConnect,
        ) else {
            return;
        };
        if let Some(call) = self.calls.get_mut(&id) {
            call.info.connect_speed = cn.connect_speed;
            call.info.peer_recv_window = cn.packet_recv_window_size;
            call.info.peer_delay = cn.packet_transmit_delay;
            call.info.framing_type = Some(cn.framing_type);
        }
        self.call_up(id);
    }

    fn on_clear_request(&mut self, rq: CallClearRequest) {
        let Some(&id) = self.by_peer_id.get(&rq.call_id) else {
            self.stats.unknown_call += 1;
            return;
        };
        let call = &self.calls[&id];
        if call.info.position.role() != Role::Pac {
            self.stats.unexpected_messages += 1;
            return;
        }
        self.send_disconnect(id, DisconnectResult::Request);
        self.end_call(id, CallEnd::PeerCleared);
    }

    fn on_disconnect_notify(&mut self, n: CallDisconnectNotify) {
        let Some(&id) = self.by_peer_id.get(&n.call_id) else {
            self.stats.unknown_call += 1;
            return;
        };
        if self.calls[&id].info.position.role() != Role::Pns {
            self.stats.unexpected_messages += 1;
            return;
        }
        self.end_call(
            id,
            CallEnd::Disconnected {
                result: n.result,
                error: n.error,
                cause_code: n.cause_code,
            },
        );
    }

    fn on_wan_error(&mut self, w: WanErrorNotify) {
        let Some(call) = self.call_for(w.peer_call_id, Role::Pns) else {
            return;
        };
        call.info.wan_error_notifies = call.info.wan_error_notifies.saturating_add(1);
        call.info.last_wan_error = Some(w.clone());
        self.stats.wan_error_notifies += 1;
        self.out.emit(Event::WanError {
            local_call_id: w.peer_call_id,
            counters: w,
        });
    }

    fn on_set_link_info(&mut self, s: SetLinkInfo) {
        let Some(call) = self.call_for(s.peer_call_id, Role::Pac) else {
            return;
        };
        let accm = LinkAccm {
            send_accm: s.send_accm,
            receive_accm: s.receive_accm,
        };
        call.info.link_accm = Some(accm);
        self.stats.set_link_infos += 1;
        self.out.emit(Event::LinkInfo {
            local_call_id: s.peer_call_id,
            send_accm: accm.send_accm,
            receive_accm: accm.receive_accm,
        });
    }

    /// A call deadline passed.
    pub(super) fn call_timeout(&mut self, id: u16, now: Instant) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.deadline = None;
        match (call.info.position.role(), call.state) {
            (_, CallState::WaitAnswer) => {
                self.refuse_pending(id, GeneralError::NoResource, CallEnd::Timeout)
            }
            (Role::Pns, CallState::WaitReply | CallState::WaitConnect) => {
                self.send_clear_request(id, now)
            }
            (Role::Pac, CallState::WaitReply) => {
                self.send_disconnect(id, DisconnectResult::AdminShutdown);
                self.end_call(id, CallEnd::Timeout);
            }
            _ => self.end_call(id, CallEnd::Timeout),
        }
    }

    /// Ends every call: on a stop (`notify`) a PAC first sends Call-Disconnect-Notify
    /// (Admin Shutdown) for calls the peer knows of.
    pub(super) fn drop_all_calls(&mut self, end: CallEnd, notify: bool) {
        let mut ids: Vec<u16> = self.calls.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let call = &self.calls[&id];
            if notify
                && call.info.position.role() == Role::Pac
                && matches!(call.state, CallState::Established | CallState::WaitReply)
            {
                self.send_disconnect(id, DisconnectResult::AdminShutdown);
            }
            self.end_call(id, end);
        }
    }

    // ---- helpers ----

    fn call_in(&mut self, id: u16, states: &[CallState]) -> Result<&mut Call, CallError> {
        if !self.can_call() {
            return Err(CallError::NotEstablished);
        }
        let call = self.calls.get_mut(&id).ok_or(CallError::UnknownCall(id))?;
        if !states.contains(&call.state) {
            return Err(CallError::WrongState {
                call: id,
                state: call.state,
            });
        }
        Ok(call)
    }

    fn new_local_call(&mut self, position: Position) -> Result<u16, CallError> {
        if !self.can_call() {
            return Err(CallError::NotEstablished);
        }
        if !self.roles_allow(position.role()) {
            return Err(CallError::RoleNotAllowed(position.role()));
        }
        // A pool shared with other connections may hand out an ID live here only if
        // misused; skip such IDs rather than corrupt a live call.
        let id = loop {
            let id = self.pool.allocate().ok_or(CallError::NoCallIds)?;
            if !self.calls.contains_key(&id) {
                break id;
            }
        };
        self.role = Some(position.role());
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        self.calls.insert(
            id,
            Call {
                info: CallInfo::new(id, position, serial),
                state: CallState::WaitAnswer,
                deadline: None,
            },
        );
        Ok(id)
    }

    /// The call a reply names by our Call ID, if it is in the position and state that
    /// expects the reply; counts the drop otherwise.
    fn expect(&mut self, local: u16, position: Position, state: CallState) -> Option<u16> {
        match self.calls.get(&local) {
            None => {
                self.stats.unknown_call += 1;
                None
            }
            Some(c) if c.info.position == position && c.state == state => Some(local),
            Some(_) => {
                self.stats.unexpected_messages += 1;
                None
            }
        }
    }

    /// The established-or-later call named by our Call ID whose role is `role`.
    fn call_for(&mut self, local: u16, role: Role) -> Option<&mut Call> {
        match self.calls.get(&local) {
            None => {
                self.stats.unknown_call += 1;
                None
            }
            Some(c) if c.info.position.role() == role && c.state == CallState::Established => {
                self.calls.get_mut(&local)
            }
            Some(_) => {
                self.stats.unexpected_messages += 1;
                None
            }
        }
    }

    /// Records the peer's Call ID from its reply; a Call ID the peer already uses for
    /// another live call makes the reply unusable and the call is cleared.
    fn adopt_peer_id(&mut self, id: u16, peer_call_id: u16) -> bool {
        if self.by_peer_id.contains_key(&peer_call_id) {
            self.stats.unexpected_messages += 1;
            let role = self.calls[&id].info.position.role();
            if role == Role::Pac {
                self.send_disconnect(id, DisconnectResult::GeneralError);
            }
            self.end_call(id, CallEnd::RefusedLocally(GeneralError::BadCallId));
            return false;
        }
        self.by_peer_id.insert(peer_call_id, id);
        if let Some(call) = self.calls.get_mut(&id) {
            call.info.peer_call_id = Some(peer_call_id);
        }
        true
    }

    fn refuse_pending(&mut self, id: u16, error: GeneralError, end: CallEnd) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let peer_call_id = call.info.peer_call_id.unwrap_or_default();
        match call.info.position {
            Position::PacAnsweringOutgoing => self.refuse_outgoing(peer_call_id, error),
            _ => self.refuse_incoming(peer_call_id, error),
        }
        self.end_call(id, end);
    }

    fn send_clear_request(&mut self, id: u16, now: Instant) {
        self.out.send(CallClearRequest {
            call_id: id,
            reserved1: Reserved16,
        });
        self.enter(id, CallState::WaitDisconnect, Some(now));
    }

    fn send_disconnect(&mut self, id: u16, result: DisconnectResult) {
        let error = match result {
            DisconnectResult::GeneralError => GeneralError::BadCallId,
            _ => GeneralError::None,
        };
        self.out.send(CallDisconnectNotify {
            call_id: id,
            result,
            error,
            cause_code: 0,
            reserved1: Reserved16,
            call_statistics: Text::default(),
        });
    }

    /// Moves a call to `state`; with `since`, the state has a reply deadline.
    fn enter(&mut self, id: u16, state: CallState, since: Option<Instant>) {
        let timeout = self.config.reply_timeout;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(old) = call.deadline.take() {
            self.call_deadlines.remove(&(old, id));
        }
        call.state = state;
        call.deadline = since.map(|t| t + timeout);
        if let Some(at) = call.deadline {
            self.call_deadlines.insert((at, id));
        }
    }

    fn call_up(&mut self, id: u16) {
        self.enter(id, CallState::Established, None);
        if let Some(call) = self.calls.get(&id) {
            self.out.emit(Event::CallUp(call.info.clone()));
        }
    }

    fn end_call(&mut self, id: u16, reason: CallEnd) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        if let Some(at) = call.deadline {
            self.call_deadlines.remove(&(at, id));
        }
        if let Some(peer) = call.info.peer_call_id {
            if self.by_peer_id.get(&peer) == Some(&id) {
                self.by_peer_id.remove(&peer);
            }
        }
        self.pool.release(id);
        self.out.emit(Event::CallDown {
            local_call_id: id,
            peer_call_id: call.info.peer_call_id,
            reason,
        });
    }
}
