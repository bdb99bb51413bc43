//! PPTP calls (RFC 2637 §3.2) in all four positions: `Calls`, the call table of one
//! [`ControlConnection`](super::control::ControlConnection), which owns it and
//! offers its operations.
//!
//! | position | who asks | messages |
//! |---|---|---|
//! | [`Position::PacAnsweringOutgoing`] | a PNS (Windows, pptp-linux: voluntary tunnel) | OCRQ in, OCRP out |
//! | [`Position::PnsAnsweringIncoming`] | a PAC (an ISP's access switch: compulsory tunnel) | ICRQ in, ICRP out, ICCN in |
//! | [`Position::PnsPlacingOutgoing`] | us, as client (`pptp-agent dial`) | OCRQ out, OCRP in |
//! | [`Position::PacPlacingIncoming`] | us, as PAC towards a PNS | ICRQ out, ICRP in, ICCN out |
//!
//! Requests from the peer reserve a local Call ID at once and wait for the owner's
//! decision (`ControlConnection::accept_call` / `refuse_call`);
//! a request the owner leaves unanswered for `reply_timeout` is refused. A PNS clears
//! a call with Call-Clear-Request and waits for Call-Disconnect-Notify; a PAC clears it
//! with Call-Disconnect-Notify at once. Set-Link-Info (PNS to PAC) is stored with the
//! call; WAN-Error-Notify (PAC to PNS) is counted. Both are reported as events.
//!
//! Refusals follow the RFC's result codes: a request for a role this side does not
//! take gets Do-Not-Accept; a Call ID the peer already uses for a live call gets
//! General Error / Bad-Call-ID; no free local Call ID gets General Error / No-Resource.
//! A call message that names no call of ours, or comes in a state that does not expect
//! it, is counted ([`ControlStats`]) and dropped: one
//! confused call must not tear down the other calls of the connection. The one case
//! the RFC's message set leaves unroutable, a Call-Disconnect-Notify for an outgoing
//! call whose reply never came, ends by the call's own timeout.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use thiserror::Error;

use super::call_id::CallIdPool;
pub use super::event::{CallEnd, CallInfo, CallRequest, LinkAccm, Position};
use super::event::{ControlConfig, ControlStats, Event, Outbox, Role, Roles};
use super::message::{
    BearerType, CallClearRequest, CallDisconnectNotify, DisconnectResult, FramingType,
    GeneralError, IncomingCallConnected, IncomingCallReply, IncomingCallRequest, IncomingResult,
    Message, NumberLength, OutgoingCallReply, OutgoingCallRequest, OutgoingResult, Reserved16,
    SetLinkInfo, Text, WanErrorNotify,
};

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

/// One call's machine state.
#[derive(Debug, Clone)]
struct Call {
    info: CallInfo,
    state: CallState,
    deadline: Option<Instant>,
}

/// The calls of one control connection.
#[derive(Debug)]
pub(super) struct Calls<P> {
    /// Our role, once a call has fixed it.
    role: Option<Role>,
    calls: HashMap<u16, Call>,
    /// Peer Call ID -> our Call ID.
    by_peer_id: HashMap<u16, u16>,
    /// Call deadlines, ordered.
    deadlines: BTreeSet<(Instant, u16)>,
    pool: P,
    next_serial: u16,
}

/// What the calls share with their control connection, lent for one operation.
pub(super) struct Cx<'a> {
    pub(super) config: &'a ControlConfig,
    pub(super) out: &'a mut Outbox,
    pub(super) stats: &'a mut ControlStats,
    /// Whether the connection can carry call messages now.
    pub(super) established: bool,
}

impl Cx<'_> {
    /// Answers an Outgoing-Call-Request we will not take with General Error `error`
    /// (or Do-Not-Accept when `error` is None).
    pub(super) fn refuse_outgoing(&mut self, peer_call_id: u16, error: GeneralError) {
        self.stats.refused_calls += 1;
        let result = match error {
            GeneralError::None => OutgoingResult::DoNotAccept,
            _ => OutgoingResult::GeneralError,
        };
        self.out.send(OutgoingCallReply {
            call_id: 0,
            peer_call_id,
            result,
            error,
            cause_code: 0,
            connect_speed: 0,
            packet_recv_window_size: 0,
            packet_processing_delay: 0,
            physical_channel_id: 0,
        });
    }

    /// Answers an Incoming-Call-Request we will not take with General Error `error`
    /// (or Do-Not-Accept when `error` is None).
    pub(super) fn refuse_incoming(&mut self, peer_call_id: u16, error: GeneralError) {
        self.stats.refused_calls += 1;
        let result = match error {
            GeneralError::None => IncomingResult::DoNotAccept,
            _ => IncomingResult::GeneralError,
        };
        self.out.send(IncomingCallReply {
            call_id: 0,
            peer_call_id,
            result,
            error,
            packet_recv_window_size: 0,
            packet_transmit_delay: 0,
            reserved1: Reserved16,
        });
    }
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

impl<P: CallIdPool> Calls<P> {
    /// An empty table taking local Call IDs from `pool`.
    pub(super) fn new(pool: P) -> Self {
        Self {
            role: None,
            calls: HashMap::new(),
            by_peer_id: HashMap::new(),
            deadlines: BTreeSet::new(),
            pool,
            next_serial: 0,
        }
    }

    /// Our role on the connection, once fixed by a call.
    pub(super) fn role(&self) -> Option<Role> {
        self.role
    }

    /// The earliest call deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(t, _)| t)
    }

    /// Runs every call deadline due at `now`.
    pub(super) fn handle_timeout(&mut self, cx: &mut Cx<'_>, now: Instant) {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, id));
            self.call_timeout(cx, id, now);
        }
    }

    /// Whether this side may act as `role` on this connection.
    fn roles_allow(&self, roles: Roles, role: Role) -> bool {
        match self.role {
            Some(fixed) => fixed == role,
            None => roles.allows(role),
        }
    }

    /// A call's details.
    pub(super) fn call(&self, local_call_id: u16) -> Option<&CallInfo> {
        self.calls.get(&local_call_id).map(|c| &c.info)
    }

    /// A call's state.
    pub(super) fn call_state(&self, local_call_id: u16) -> Option<CallState> {
        self.calls.get(&local_call_id).map(|c| c.state)
    }

    /// Number of calls in any state.
    pub(super) fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Accepts a call the peer requested ([`Event::CallRequested`]). As PAC this
    /// answers Outgoing-Call-Reply Connected and the call is up; as PNS it answers
    /// Incoming-Call-Reply Connect and waits for Incoming-Call-Connected.
    pub(super) fn accept_call(
        &mut self,
        cx: &mut Cx<'_>,
        local_call_id: u16,
        now: Instant,
    ) -> Result<(), CallError> {
        let (window, delay, speed) = (
            cx.config.recv_window,
            cx.config.processing_delay,
            cx.config.connect_speed,
        );
        let call = self.call_in(cx, local_call_id, &[CallState::WaitAnswer])?;
        let peer_call_id = call.info.peer_call_id.unwrap_or_default();
        match call.info.position {
            Position::PacAnsweringOutgoing => {
                call.info.connect_speed = speed;
                cx.out.send(OutgoingCallReply {
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
                self.call_up(cx, local_call_id);
            }
            _ => {
                cx.out.send(IncomingCallReply {
                    call_id: local_call_id,
                    peer_call_id,
                    result: IncomingResult::Connect,
                    error: GeneralError::None,
                    packet_recv_window_size: window,
                    packet_transmit_delay: delay,
                    reserved1: Reserved16,
                });
                self.enter(cx, local_call_id, CallState::WaitConnect, Some(now));
            }
        }
        Ok(())
    }

    /// Refuses a call the peer requested: General Error with `error`, or Do-Not-Accept
    /// when `error` is [`GeneralError::None`].
    pub(super) fn refuse_call(
        &mut self,
        cx: &mut Cx<'_>,
        local_call_id: u16,
        error: GeneralError,
    ) -> Result<(), CallError> {
        self.call_in(cx, local_call_id, &[CallState::WaitAnswer])?;
        self.refuse_pending(cx, local_call_id, error, CallEnd::RefusedLocally(error));
        Ok(())
    }

    /// Places an outgoing call as PNS (our client): sends Outgoing-Call-Request.
    pub(super) fn place_outgoing_call(
        &mut self,
        cx: &mut Cx<'_>,
        params: &OutgoingCallParams,
        now: Instant,
    ) -> Result<u16, CallError> {
        let id = self.new_local_call(cx, Position::PnsPlacingOutgoing)?;
        let serial = self.calls[&id].info.serial_number;
        let phone_number = Text::new(&params.phone_number);
        cx.out.send(OutgoingCallRequest {
            call_id: id,
            call_serial_number: serial,
            minimum_bps: params.minimum_bps,
            maximum_bps: params.maximum_bps,
            bearer_type: params.bearer_type,
            framing_type: params.framing_type,
            packet_recv_window_size: cx.config.recv_window,
            packet_processing_delay: cx.config.processing_delay,
            phone_number_length: NumberLength::of(&phone_number),
            reserved1: Reserved16,
            phone_number,
            subaddress: Text::new(&params.subaddress),
        });
        if let Some(call) = self.calls.get_mut(&id) {
            call.info.bearer_type = Some(params.bearer_type);
            call.info.framing_type = Some(params.framing_type);
        }
        self.enter(cx, id, CallState::WaitReply, Some(now));
        Ok(id)
    }

    /// Places an incoming call as PAC: sends Incoming-Call-Request.
    pub(super) fn place_incoming_call(
        &mut self,
        cx: &mut Cx<'_>,
        params: &IncomingCallParams,
        now: Instant,
    ) -> Result<u16, CallError> {
        let id = self.new_local_call(cx, Position::PacPlacingIncoming)?;
        let serial = self.calls[&id].info.serial_number;
        let dialed_number = Text::new(&params.dialed_number);
        let dialing_number = Text::new(&params.dialing_number);
        cx.out.send(IncomingCallRequest {
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
            call.info.connect_speed = cx.config.connect_speed;
        }
        self.enter(cx, id, CallState::WaitReply, Some(now));
        Ok(id)
    }

    /// Clears a call that is placed or up. As PNS: Call-Clear-Request, then the call
    /// ends when Call-Disconnect-Notify (or the timeout) comes. As PAC: Call-Disconnect-
    /// Notify (Admin Shutdown) and the call ends at once. Use
    /// [`refuse_call`](Self::refuse_call) for a request not yet answered.
    pub(super) fn clear_call(
        &mut self,
        cx: &mut Cx<'_>,
        local_call_id: u16,
        now: Instant,
    ) -> Result<(), CallError> {
        use CallState::*;
        let call = self.call_in(
            cx,
            local_call_id,
            &[WaitReply, WaitConnect, Established, WaitDisconnect],
        )?;
        match (call.info.position.role(), call.state) {
            (Role::Pns, WaitDisconnect) => {}
            (Role::Pns, _) => self.send_clear_request(cx, local_call_id, now),
            (Role::Pac, _) => {
                self.send_disconnect(cx, local_call_id, DisconnectResult::AdminShutdown);
                self.end_call(cx, local_call_id, CallEnd::LocalClear);
            }
        }
        Ok(())
    }

    /// As PNS, sends Set-Link-Info for an established call.
    pub(super) fn set_link_info(
        &mut self,
        cx: &mut Cx<'_>,
        local_call_id: u16,
        accm: LinkAccm,
    ) -> Result<(), CallError> {
        let call = self.call_in(cx, local_call_id, &[CallState::Established])?;
        if call.info.position.role() != Role::Pns {
            return Err(CallError::RoleNotAllowed(Role::Pns));
        }
        let peer_call_id = call.info.peer_call_id.unwrap_or_default();
        cx.out.send(SetLinkInfo {
            peer_call_id,
            reserved1: Reserved16,
            send_accm: accm.send_accm,
            receive_accm: accm.receive_accm,
        });
        Ok(())
    }

    /// As PAC, sends WAN-Error-Notify for an established call (`peer_call_id` of
    /// `counters` is filled in).
    pub(super) fn notify_wan_error(
        &mut self,
        cx: &mut Cx<'_>,
        local_call_id: u16,
        mut counters: WanErrorNotify,
    ) -> Result<(), CallError> {
        let call = self.call_in(cx, local_call_id, &[CallState::Established])?;
        if call.info.position.role() != Role::Pac {
            return Err(CallError::RoleNotAllowed(Role::Pac));
        }
        counters.peer_call_id = call.info.peer_call_id.unwrap_or_default();
        cx.out.send(counters);
        Ok(())
    }

    // ---- messages from the peer ----

    pub(super) fn handle_call_message(&mut self, cx: &mut Cx<'_>, m: Message, now: Instant) {
        match m {
            Message::OutgoingCallRequest(rq) => {
                self.on_call_request(cx, CallRequest::Outgoing(rq), now)
            }
            Message::IncomingCallRequest(rq) => {
                self.on_call_request(cx, CallRequest::Incoming(rq), now)
            }
            Message::OutgoingCallReply(rp) => self.on_outgoing_reply(cx, rp),
            Message::IncomingCallReply(rp) => self.on_incoming_reply(cx, rp),
            Message::IncomingCallConnected(cn) => self.on_incoming_connected(cx, cn),
            Message::CallClearRequest(rq) => self.on_clear_request(cx, rq),
            Message::CallDisconnectNotify(n) => self.on_disconnect_notify(cx, n),
            Message::WanErrorNotify(w) => self.on_wan_error(cx, w),
            Message::SetLinkInfo(s) => self.on_set_link_info(cx, s),
            _ => cx.stats.unexpected_messages += 1,
        }
    }

    fn on_call_request(&mut self, cx: &mut Cx<'_>, request: CallRequest, now: Instant) {
        let (position, peer_call_id) = match &request {
            CallRequest::Outgoing(rq) => (Position::PacAnsweringOutgoing, rq.call_id),
            CallRequest::Incoming(rq) => (Position::PnsAnsweringIncoming, rq.call_id),
        };
        let refuse = |cx: &mut Cx<'_>, error| match position {
            Position::PacAnsweringOutgoing => cx.refuse_outgoing(peer_call_id, error),
            _ => cx.refuse_incoming(peer_call_id, error),
        };
        if !self.roles_allow(cx.config.roles, position.role()) {
            return refuse(cx, GeneralError::None);
        }
        if self.by_peer_id.contains_key(&peer_call_id) {
            return refuse(cx, GeneralError::BadCallId);
        }
        let Ok(id) = self.new_local_call(cx, position) else {
            return refuse(cx, GeneralError::NoResource);
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
        self.enter(cx, id, CallState::WaitAnswer, Some(now));
        cx.out.emit(Event::CallRequested {
            local_call_id: id,
            request,
        });
    }

    fn on_outgoing_reply(&mut self, cx: &mut Cx<'_>, rp: OutgoingCallReply) {
        let Some(id) = self.expect(
            cx,
            rp.peer_call_id,
            Position::PnsPlacingOutgoing,
            CallState::WaitReply,
        ) else {
            return;
        };
        if rp.result != OutgoingResult::Connected {
            return self.end_call(
                cx,
                id,
                CallEnd::OutgoingRefused {
                    result: rp.result,
                    error: rp.error,
                    cause_code: rp.cause_code,
                },
            );
        }
        if !self.adopt_peer_id(cx, id, rp.call_id) {
            return;
        }
        if let Some(call) = self.calls.get_mut(&id) {
            call.info.peer_recv_window = rp.packet_recv_window_size;
            call.info.peer_delay = rp.packet_processing_delay;
            call.info.connect_speed = rp.connect_speed;
        }
        self.call_up(cx, id);
    }

    fn on_incoming_reply(&mut self, cx: &mut Cx<'_>, rp: IncomingCallReply) {
        let Some(id) = self.expect(
            cx,
            rp.peer_call_id,
            Position::PacPlacingIncoming,
            CallState::WaitReply,
        ) else {
            return;
        };
        if rp.result != IncomingResult::Connect {
            return self.end_call(
                cx,
                id,
                CallEnd::IncomingRefused {
                    result: rp.result,
                    error: rp.error,
                },
            );
        }
        if !self.adopt_peer_id(cx, id, rp.call_id) {
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
            packet_recv_window_size: cx.config.recv_window,
            packet_transmit_delay: cx.config.processing_delay,
            framing_type: call.info.framing_type.unwrap_or(FramingType::Sync),
        };
        cx.out.send(connected);
        self.call_up(cx, id);
    }

    fn on_incoming_connected(&mut self, cx: &mut Cx<'_>, cn: IncomingCallConnected) {
        let Some(id) = self.expect(
            cx,
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
        self.call_up(cx, id);
    }

    fn on_clear_request(&mut self, cx: &mut Cx<'_>, rq: CallClearRequest) {
        let Some(&id) = self.by_peer_id.get(&rq.call_id) else {
            cx.stats.unknown_call += 1;
            return;
        };
        let call = &self.calls[&id];
        if call.info.position.role() != Role::Pac {
            cx.stats.unexpected_messages += 1;
            return;
        }
        self.send_disconnect(cx, id, DisconnectResult::Request);
        self.end_call(cx, id, CallEnd::PeerCleared);
    }

    fn on_disconnect_notify(&mut self, cx: &mut Cx<'_>, n: CallDisconnectNotify) {
        let Some(&id) = self.by_peer_id.get(&n.call_id) else {
            cx.stats.unknown_call += 1;
            return;
        };
        if self.calls[&id].info.position.role() != Role::Pns {
            cx.stats.unexpected_messages += 1;
            return;
        }
        self.end_call(
            cx,
            id,
            CallEnd::Disconnected {
                result: n.result,
                error: n.error,
                cause_code: n.cause_code,
            },
        );
    }

    fn on_wan_error(&mut self, cx: &mut Cx<'_>, w: WanErrorNotify) {
        let Some(call) = self.call_for(cx, w.peer_call_id, Role::Pns) else {
            return;
        };
        call.info.wan_error_notifies = call.info.wan_error_notifies.saturating_add(1);
        call.info.last_wan_error = Some(w.clone());
        cx.stats.wan_error_notifies += 1;
        cx.out.emit(Event::WanError {
            local_call_id: w.peer_call_id,
            counters: w,
        });
    }

    fn on_set_link_info(&mut self, cx: &mut Cx<'_>, s: SetLinkInfo) {
        let Some(call) = self.call_for(cx, s.peer_call_id, Role::Pac) else {
            return;
        };
        let accm = LinkAccm {
            send_accm: s.send_accm,
            receive_accm: s.receive_accm,
        };
        call.info.link_accm = Some(accm);
        cx.stats.set_link_infos += 1;
        cx.out.emit(Event::LinkInfo {
            local_call_id: s.peer_call_id,
            send_accm: accm.send_accm,
            receive_accm: accm.receive_accm,
        });
    }

    /// A call deadline passed.
    fn call_timeout(&mut self, cx: &mut Cx<'_>, id: u16, now: Instant) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.deadline = None;
        match (call.info.position.role(), call.state) {
            (_, CallState::WaitAnswer) => {
                self.refuse_pending(cx, id, GeneralError::NoResource, CallEnd::Timeout)
            }
            (Role::Pns, CallState::WaitReply | CallState::WaitConnect) => {
                self.send_clear_request(cx, id, now)
            }
            (Role::Pac, CallState::WaitReply) => {
                self.send_disconnect(cx, id, DisconnectResult::AdminShutdown);
                self.end_call(cx, id, CallEnd::Timeout);
            }
            _ => self.end_call(cx, id, CallEnd::Timeout),
        }
    }

    /// Ends every call: on a stop (`notify`) a PAC first sends Call-Disconnect-Notify
    /// (Admin Shutdown) for calls the peer knows of.
    pub(super) fn drop_all_calls(&mut self, cx: &mut Cx<'_>, end: CallEnd, notify: bool) {
        let mut ids: Vec<u16> = self.calls.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let call = &self.calls[&id];
            if notify
                && call.info.position.role() == Role::Pac
                && matches!(call.state, CallState::Established | CallState::WaitReply)
            {
                self.send_disconnect(cx, id, DisconnectResult::AdminShutdown);
            }
            self.end_call(cx, id, end);
        }
    }

    // ---- helpers ----

    fn call_in(
        &mut self,
        cx: &mut Cx<'_>,
        id: u16,
        states: &[CallState],
    ) -> Result<&mut Call, CallError> {
        if !cx.established {
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

    fn new_local_call(&mut self, cx: &mut Cx<'_>, position: Position) -> Result<u16, CallError> {
        if !cx.established {
            return Err(CallError::NotEstablished);
        }
        if !self.roles_allow(cx.config.roles, position.role()) {
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
    fn expect(
        &mut self,
        cx: &mut Cx<'_>,
        local: u16,
        position: Position,
        state: CallState,
    ) -> Option<u16> {
        match self.calls.get(&local) {
            None => {
                cx.stats.unknown_call += 1;
                None
            }
            Some(c) if c.info.position == position && c.state == state => Some(local),
            Some(_) => {
                cx.stats.unexpected_messages += 1;
                None
            }
        }
    }

    /// The established-or-later call named by our Call ID whose role is `role`.
    fn call_for(&mut self, cx: &mut Cx<'_>, local: u16, role: Role) -> Option<&mut Call> {
        match self.calls.get(&local) {
            None => {
                cx.stats.unknown_call += 1;
                None
            }
            Some(c) if c.info.position.role() == role && c.state == CallState::Established => {
                self.calls.get_mut(&local)
            }
            Some(_) => {
                cx.stats.unexpected_messages += 1;
                None
            }
        }
    }

    /// Records the peer's Call ID from its reply; a Call ID the peer already uses for
    /// another live call makes the reply unusable and the call is cleared.
    fn adopt_peer_id(&mut self, cx: &mut Cx<'_>, id: u16, peer_call_id: u16) -> bool {
        if self.by_peer_id.contains_key(&peer_call_id) {
            cx.stats.unexpected_messages += 1;
            let role = self.calls[&id].info.position.role();
            if role == Role::Pac {
                self.send_disconnect(cx, id, DisconnectResult::GeneralError);
            }
            self.end_call(cx, id, CallEnd::RefusedLocally(GeneralError::BadCallId));
            return false;
        }
        self.by_peer_id.insert(peer_call_id, id);
        if let Some(call) = self.calls.get_mut(&id) {
            call.info.peer_call_id = Some(peer_call_id);
        }
        true
    }

    fn refuse_pending(&mut self, cx: &mut Cx<'_>, id: u16, error: GeneralError, end: CallEnd) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let peer_call_id = call.info.peer_call_id.unwrap_or_default();
        match call.info.position {
            Position::PacAnsweringOutgoing => cx.refuse_outgoing(peer_call_id, error),
            _ => cx.refuse_incoming(peer_call_id, error),
        }
        self.end_call(cx, id, end);
    }

    fn send_clear_request(&mut self, cx: &mut Cx<'_>, id: u16, now: Instant) {
        cx.out.send(CallClearRequest {
            call_id: id,
            reserved1: Reserved16,
        });
        self.enter(cx, id, CallState::WaitDisconnect, Some(now));
    }

    fn send_disconnect(&mut self, cx: &mut Cx<'_>, id: u16, result: DisconnectResult) {
        let error = match result {
            DisconnectResult::GeneralError => GeneralError::BadCallId,
            _ => GeneralError::None,
        };
        cx.out.send(CallDisconnectNotify {
            call_id: id,
            result,
            error,
            cause_code: 0,
            reserved1: Reserved16,
            call_statistics: Text::default(),
        });
    }

    /// Moves a call to `state`; with `since`, the state has a reply deadline.
    fn enter(&mut self, cx: &mut Cx<'_>, id: u16, state: CallState, since: Option<Instant>) {
        let timeout = cx.config.reply_timeout;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(old) = call.deadline.take() {
            self.deadlines.remove(&(old, id));
        }
        call.state = state;
        call.deadline = since.map(|t| t + timeout);
        if let Some(at) = call.deadline {
            self.deadlines.insert((at, id));
        }
    }

    fn call_up(&mut self, cx: &mut Cx<'_>, id: u16) {
        self.enter(cx, id, CallState::Established, None);
        if let Some(call) = self.calls.get(&id) {
            cx.out.emit(Event::CallUp(call.info.clone()));
        }
    }

    fn end_call(&mut self, cx: &mut Cx<'_>, id: u16, reason: CallEnd) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        if let Some(at) = call.deadline {
            self.deadlines.remove(&(at, id));
        }
        if let Some(peer) = call.info.peer_call_id {
            if self.by_peer_id.get(&peer) == Some(&id) {
                self.by_peer_id.remove(&peer);
            }
        }
        self.pool.release(id);
        cx.out.emit(Event::CallDown {
            local_call_id: id,
            peer_call_id: call.info.peer_call_id,
            reason,
        });
    }
}
