//! The PPTP control connection (RFC 2637 §3.1) as a sans-IO state machine.
//!
//! One [`ControlConnection`] runs one TCP control connection, on either side: we
//! [`originate`](ControlConnection::originate) it (send Start-Control-Connection-Request)
//! or [`answer`](ControlConnection::answer) it (wait for one). It takes bytes, end of
//! stream and time ([`handle_input`](ControlConnection::handle_input),
//! [`handle_eof`](ControlConnection::handle_eof),
//! [`handle_timeout`](ControlConnection::handle_timeout)) and gives back bytes to send
//! ([`poll_transmit`](ControlConnection::poll_transmit)), [`Event`]s
//! ([`poll_event`](ControlConnection::poll_event)) and the next deadline
//! ([`poll_timeout`](ControlConnection::poll_timeout)). It opens no socket and reads no
//! clock, so tests drive two of them against each other with a virtual clock.
//!
//! What it does, and where it departs from a literal reading of the RFC:
//! - Handshake: protocol version 1.0 only (anything else is answered with result 5 or,
//!   as originator, with Stop-Control-Connection-Request reason Stop-Protocol); the
//!   peer's framing and bearer capabilities, host and vendor are reported in
//!   [`PeerInfo`]. An [`Admission`] policy lets the concentrator refuse a connection
//!   with the RFC's result codes (not authorized, general error/no resource).
//! - Before the handshake completes, call requests and Echo-Requests are answered with
//!   General Error / Not-Connected (RFC 2637 §2.16); anything else closes.
//! - Keepalive: after `echo_interval` without hearing from the peer we send an
//!   Echo-Request; if nothing arrives within `echo_timeout` the connection closes. Any
//!   message from the peer (and [`note_peer_activity`](ControlConnection::note_peer_activity),
//!   which the agent calls on GRE traffic) counts as life, so a busy peer is never
//!   dropped for a late Echo-Reply.
//! - Every reply the RFC waits for has a deadline (`reply_timeout`, 60 s by default).
//!   A missing Start-Control-Connection-Reply or Stop-Control-Connection-Reply closes
//!   the connection; a call whose reply is missing is cleared on its own (see
//!   [`call`](super::call)) instead of tearing down every other call on the connection.
//! - A garbled stream ([`FramingError`](super::framing::FramingError)) closes the
//!   connection at once. A well-framed but invalid message is answered with the
//!   RFC's General Error and the matching error code where a reply exists (call
//!   requests, Start-Control-Connection-Request); otherwise it is counted in
//!   [`ControlStats`] and dropped.
//!
//! The call state machines (four positions) live in [`call`](super::call); the
//! connection owns them and lends them its outbox, counters and settings for each
//! operation. What it reports and is set up with is in `event.rs` (re-exported here).

use std::time::Instant;

use super::call::{
    CallEnd, CallError, CallInfo, CallState, Calls, Cx, IncomingCallParams, LinkAccm,
    OutgoingCallParams,
};
use super::call_id::{CallIdAllocator, CallIdPool};
use super::event::Outbox;
pub use super::event::{
    Admission, CloseReason, ControlConfig, ControlStats, Event, PeerInfo, Role, Roles,
};
use super::framing::{Deframer, Frame, InvalidMessage};
use super::message::{
    EchoReply, EchoRequest, GeneralError, Message, MessageType, OkResult, PROTOCOL_VERSION,
    Reserved8, Reserved16, StartControlConnectionReply, StartControlConnectionRequest, StartResult,
    StopControlConnectionReply, StopControlConnectionRequest, StopReason, Text, WanErrorNotify,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// We answered TCP and wait for Start-Control-Connection-Request.
    WaitRequest,
    /// We sent Start-Control-Connection-Request and wait for the reply.
    WaitReply,
    Established,
    /// We sent Stop-Control-Connection-Request and wait for the reply.
    WaitStopReply,
    Closed,
}

/// The connection's own timers; call deadlines are kept with the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Handshake or Stop reply deadline.
    Reply = 0,
    /// When to send the next Echo-Request.
    Idle = 1,
    /// When to give up on a silent peer.
    Echo = 2,
}

/// One PPTP control connection, either side, both roles.
#[derive(Debug)]
pub struct ControlConnection<P: CallIdPool = CallIdAllocator> {
    config: ControlConfig,
    state: State,
    deframer: Deframer,
    timers: [Option<Instant>; 3],
    echo_identifier: u32,
    peer: Option<PeerInfo>,
    calls: Calls<P>,
    out: Outbox,
    stats: ControlStats,
}

impl ControlConnection<CallIdAllocator> {
    /// We opened the TCP connection: sends Start-Control-Connection-Request.
    pub fn originate(config: ControlConfig, now: Instant) -> Self {
        Self::originate_with_pool(config, CallIdAllocator::new(), now)
    }

    /// We accepted the TCP connection: waits for Start-Control-Connection-Request.
    pub fn answer(config: ControlConfig, now: Instant) -> Self {
        Self::answer_with_pool(config, CallIdAllocator::new(), now)
    }
}

impl<P: CallIdPool> ControlConnection<P> {
    fn new(config: ControlConfig, pool: P, state: State, now: Instant) -> Self {
        let mut c = Self {
            state,
            deframer: Deframer::new(),
            timers: [None; 3],
            echo_identifier: 0,
            peer: None,
            calls: Calls::new(pool),
            out: Outbox::default(),
            stats: ControlStats::default(),
            config,
        };
        c.set_timer(Timer::Reply, Some(now + c.config.reply_timeout));
        c
    }

    /// Like [`ControlConnection::originate`], taking local Call IDs from `pool`.
    pub fn originate_with_pool(config: ControlConfig, pool: P, now: Instant) -> Self {
        let mut c = Self::new(config, pool, State::WaitReply, now);
        let request = StartControlConnectionRequest {
            protocol_version: PROTOCOL_VERSION,
            reserved1: Reserved16,
            framing_capabilities: c.config.framing_capabilities,
            bearer_capabilities: c.config.bearer_capabilities,
            maximum_channels: c.config.maximum_channels,
            firmware_revision: c.config.firmware_revision,
            host_name: Text::new(&c.config.host_name),
            vendor_name: Text::new(&c.config.vendor_name),
        };
        c.out.send(request);
        c
    }

    /// Like [`ControlConnection::answer`], taking local Call IDs from `pool`.
    pub fn answer_with_pool(config: ControlConfig, pool: P, now: Instant) -> Self {
        Self::new(config, pool, State::WaitRequest, now)
    }

    // ---- outputs ----

    /// The next message to write to the TCP connection, encoded.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let next = self.out.transmit.pop_front();
        if next.is_none() {
            // Drained: give the queue's buffer back. A connection exchanges a
            // message a minute once its calls are up, and tens of thousands of
            // connections would otherwise each keep room for four messages.
            self.out.transmit.shrink_to_fit();
        }
        next.map(|m| m.to_bytes())
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        let next = self.out.events.pop_front();
        if next.is_none() {
            self.out.events.shrink_to_fit();
        }
        next
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = self.timers.iter().flatten().min().copied();
        let call = self.calls.next_deadline();
        own.into_iter().chain(call).min()
    }

    /// Whether the connection is over (the transmit queue may still hold a last message).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether the handshake has completed and no stop is under way.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// The peer's Start-Control-Connection details, once received.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// Our role on this connection, once fixed by a call.
    pub fn role(&self) -> Option<Role> {
        self.calls.role()
    }

    pub fn stats(&self) -> &ControlStats {
        &self.stats
    }

    // ---- inputs ----

    /// Bytes read from the TCP connection.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.deframer.push(bytes);
        loop {
            match self.deframer.next_frame() {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    self.heard_from_peer(now);
                    match frame {
                        Frame::Message(m) => self.handle_message(m, now),
                        Frame::Invalid(bad) => self.handle_invalid(bad),
                    }
                }
                Err(e) => {
                    self.close(CloseReason::Framing(e));
                    break;
                }
            }
            if self.state == State::Closed {
                break;
            }
        }
    }

    /// The peer closed its side of the TCP connection.
    pub fn handle_eof(&mut self) {
        if self.state != State::Closed {
            self.close(CloseReason::PeerClosed);
        }
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer_due(Timer::Reply, now) {
            self.set_timer(Timer::Reply, None);
            match self.state {
                State::WaitRequest | State::WaitReply => self.close(CloseReason::HandshakeTimeout),
                State::WaitStopReply => self.close(CloseReason::StopTimeout),
                State::Established | State::Closed => {}
            }
        }
        if self.timer_due(Timer::Echo, now) {
            self.close(CloseReason::KeepaliveTimeout);
        }
        if self.timer_due(Timer::Idle, now) {
            self.set_timer(Timer::Idle, None);
            self.echo_identifier = self.echo_identifier.wrapping_add(1);
            self.out.send(EchoRequest {
                identifier: self.echo_identifier,
            });
            self.stats.echo_requests_sent += 1;
            self.set_timer(Timer::Echo, Some(now + self.config.echo_timeout));
        }
        if self.state != State::Closed {
            let (calls, mut cx) = self.split();
            calls.handle_timeout(&mut cx, now);
        }
    }

    /// Evidence that the peer is alive (GRE traffic of one of its calls): postpones
    /// the next Echo-Request.
    pub fn note_peer_activity(&mut self, now: Instant) {
        if self.state == State::Established {
            self.heard_from_peer(now);
        }
    }

    /// Starts an orderly shutdown: as PAC, a Call-Disconnect-Notify (Admin Shutdown)
    /// for every call; then Stop-Control-Connection-Request with `reason`. Before the
    /// handshake completes this simply closes.
    pub fn stop(&mut self, reason: StopReason, now: Instant) {
        match self.state {
            State::Established => {
                let (calls, mut cx) = self.split();
                calls.drop_all_calls(&mut cx, CallEnd::LocalClear, true);
                self.out.send(StopControlConnectionRequest {
                    reason,
                    reserved1: Reserved8,
                    reserved2: Reserved16,
                });
                self.state = State::WaitStopReply;
                self.set_timer(Timer::Idle, None);
                self.set_timer(Timer::Echo, None);
                self.set_timer(Timer::Reply, Some(now + self.config.reply_timeout));
            }
            State::WaitRequest | State::WaitReply => self.close(CloseReason::Aborted),
            State::WaitStopReply | State::Closed => {}
        }
    }

    /// Ends the connection at once, sending nothing more (e.g. the loser of a
    /// Start-Control-Connection collision closes the connection it opened, §3.1.3).
    pub fn abort(&mut self) {
        if self.state != State::Closed {
            self.out.transmit.clear();
            self.close(CloseReason::Aborted);
        }
    }

    // ---- internals ----

    fn set_timer(&mut self, t: Timer, at: Option<Instant>) {
        self.timers[t as usize] = at;
    }

    fn timer_due(&self, t: Timer, now: Instant) -> bool {
        self.timers[t as usize].is_some_and(|at| at <= now)
    }

    fn heard_from_peer(&mut self, now: Instant) {
        if self.state == State::Established {
            self.set_timer(Timer::Echo, None);
            self.set_timer(Timer::Idle, self.config.echo_interval.map(|i| now + i));
        }
    }

    fn close(&mut self, reason: CloseReason) {
        let (calls, mut cx) = self.split();
        calls.drop_all_calls(&mut cx, CallEnd::ControlClosed, false);
        self.state = State::Closed;
        self.timers = [None; 3];
        self.out.emit(Event::Closed(reason));
    }

    fn establish(&mut self, peer: PeerInfo, now: Instant) {
        self.state = State::Established;
        self.set_timer(Timer::Reply, None);
        self.peer = Some(peer.clone());
        self.out.emit(Event::Established(peer));
        self.heard_from_peer(now);
    }

    fn handle_message(&mut self, m: Message, now: Instant) {
        match (self.state, m) {
            (State::WaitRequest, Message::StartControlConnectionRequest(rq)) => {
                self.answer_start(rq, now)
            }
            (State::WaitReply, Message::StartControlConnectionReply(rp)) => {
                self.handle_start_reply(rp, now)
            }
            (
                State::Established | State::WaitStopReply,
                Message::StopControlConnectionRequest(rq),
            ) => {
                self.out.send(StopControlConnectionReply {
                    result: OkResult::Ok,
                    error: GeneralError::None,
                    reserved1: Reserved16,
                });
                self.close(CloseReason::PeerStopped(rq.reason));
            }
            (State::WaitStopReply, Message::StopControlConnectionReply(_)) => {
                self.close(CloseReason::Stopped)
            }
            (State::Established | State::WaitStopReply, Message::EchoRequest(rq)) => {
                self.stats.echo_requests_answered += 1;
                self.out.send(echo_reply(rq.identifier, GeneralError::None));
            }
            (State::Established | State::WaitStopReply, Message::EchoReply(_)) => {}
            (State::Established, m) if is_call_message(m.message_type()) => {
                let (calls, mut cx) = self.split();
                calls.handle_call_message(&mut cx, m, now)
            }
            (State::WaitRequest | State::WaitReply, m) => self.before_established(m),
            (_, _) => self.stats.unexpected_messages += 1,
        }
    }

    /// A message other than the expected Start-Control-Connection one, before the
    /// handshake: requests get Not-Connected, anything else ends the connection.
    fn before_established(&mut self, m: Message) {
        match m {
            Message::EchoRequest(rq) => {
                self.out
                    .send(echo_reply(rq.identifier, GeneralError::NotConnected));
            }
            Message::OutgoingCallRequest(rq) => self
                .split()
                .1
                .refuse_outgoing(rq.call_id, GeneralError::NotConnected),
            Message::IncomingCallRequest(rq) => self
                .split()
                .1
                .refuse_incoming(rq.call_id, GeneralError::NotConnected),
            Message::StopControlConnectionRequest(rq) => {
                self.out.send(StopControlConnectionReply {
                    result: OkResult::Ok,
                    error: GeneralError::None,
                    reserved1: Reserved16,
                });
                self.close(CloseReason::PeerStopped(rq.reason));
            }
            other => self.close(CloseReason::Unexpected(other.message_type())),
        }
    }

    fn handle_invalid(&mut self, bad: InvalidMessage) {
        self.stats.invalid_messages += 1;
        let error = bad.error.general_error();
        match bad.kind {
            MessageType::StartControlConnectionRequest if self.state == State::WaitRequest => {
                self.out
                    .send(self.start_reply(StartResult::GeneralError, error));
                self.close(CloseReason::InvalidStart(bad.error));
            }
            MessageType::StartControlConnectionReply if self.state == State::WaitReply => {
                self.close(CloseReason::InvalidStart(bad.error))
            }
            MessageType::OutgoingCallRequest => {
                self.split().1.refuse_outgoing(bad.call_id(), error)
            }
            MessageType::IncomingCallRequest => {
                self.split().1.refuse_incoming(bad.call_id(), error)
            }
            _ => {}
        }
    }

    fn start_reply(&self, result: StartResult, error: GeneralError) -> StartControlConnectionReply {
        StartControlConnectionReply {
            protocol_version: PROTOCOL_VERSION,
            result,
            error,
            framing_capabilities: self.config.framing_capabilities,
            bearer_capabilities: self.config.bearer_capabilities,
            maximum_channels: self.config.maximum_channels,
            firmware_revision: self.config.firmware_revision,
            host_name: Text::new(&self.config.host_name),
            vendor_name: Text::new(&self.config.vendor_name),
        }
    }

    fn answer_start(&mut self, rq: StartControlConnectionRequest, now: Instant) {
        if rq.protocol_version != PROTOCOL_VERSION {
            self.out
                .send(self.start_reply(StartResult::VersionNotSupported, GeneralError::None));
            return self.close(CloseReason::VersionNotSupported(rq.protocol_version));
        }
        if let Admission::Refuse(result, error) = self.config.admission {
            self.out.send(self.start_reply(result, error));
            return self.close(CloseReason::NotAdmitted(result, error));
        }
        self.out
            .send(self.start_reply(StartResult::Success, GeneralError::None));
        self.establish(
            PeerInfo {
                protocol_version: rq.protocol_version,
                framing_capabilities: rq.framing_capabilities,
                bearer_capabilities: rq.bearer_capabilities,
                maximum_channels: rq.maximum_channels,
                firmware_revision: rq.firmware_revision,
                host_name: rq.host_name.to_string_lossy(),
                vendor_name: rq.vendor_name.to_string_lossy(),
            },
            now,
        );
    }

    fn handle_start_reply(&mut self, rp: StartControlConnectionReply, now: Instant) {
        if rp.result != StartResult::Success {
            return self.close(CloseReason::Refused(rp.result, rp.error));
        }
        if rp.protocol_version != PROTOCOL_VERSION {
            // RFC 2637 §3.1.1: an unsupported version in the reply gets a Stop.
            self.peer = None;
            self.out.send(StopControlConnectionRequest {
                reason: StopReason::StopProtocol,
                reserved1: Reserved8,
                reserved2: Reserved16,
            });
            self.state = State::WaitStopReply;
            self.set_timer(Timer::Reply, Some(now + self.config.reply_timeout));
            return;
        }
        self.establish(
            PeerInfo {
                protocol_version: rp.protocol_version,
                framing_capabilities: rp.framing_capabilities,
                bearer_capabilities: rp.bearer_capabilities,
                maximum_channels: rp.maximum_channels,
                firmware_revision: rp.firmware_revision,
                host_name: rp.host_name.to_string_lossy(),
                vendor_name: rp.vendor_name.to_string_lossy(),
            },
            now,
        );
    }

    /// The calls, and what they borrow from the connection for one operation.
    fn split(&mut self) -> (&mut Calls<P>, Cx<'_>) {
        let cx = Cx {
            config: &self.config,
            out: &mut self.out,
            stats: &mut self.stats,
            established: self.state == State::Established,
        };
        (&mut self.calls, cx)
    }

    // ---- calls (the machines are in `call.rs`) ----

    /// A call's details.
    pub fn call(&self, local_call_id: u16) -> Option<&CallInfo> {
        self.calls.call(local_call_id)
    }

    /// A call's state.
    pub fn call_state(&self, local_call_id: u16) -> Option<CallState> {
        self.calls.call_state(local_call_id)
    }

    /// Number of calls in any state.
    pub fn call_count(&self) -> usize {
        self.calls.call_count()
    }

    /// Accepts a call the peer requested ([`Event::CallRequested`]). As PAC this
    /// answers Outgoing-Call-Reply Connected and the call is up; as PNS it answers
    /// Incoming-Call-Reply Connect and waits for Incoming-Call-Connected.
    pub fn accept_call(&mut self, local_call_id: u16, now: Instant) -> Result<(), CallError> {
        let (calls, mut cx) = self.split();
        calls.accept_call(&mut cx, local_call_id, now)
    }

    /// Refuses a call the peer requested: General Error with `error`, or Do-Not-Accept
    /// when `error` is [`GeneralError::None`].
    pub fn refuse_call(
        &mut self,
        local_call_id: u16,
        error: GeneralError,
    ) -> Result<(), CallError> {
        let (calls, mut cx) = self.split();
        calls.refuse_call(&mut cx, local_call_id, error)
    }

    /// Places an outgoing call as PNS (our client): sends Outgoing-Call-Request.
    pub fn place_outgoing_call(
        &mut self,
        params: &OutgoingCallParams,
        now: Instant,
    ) -> Result<u16, CallError> {
        let (calls, mut cx) = self.split();
        calls.place_outgoing_call(&mut cx, params, now)
    }

    /// Places an incoming call as PAC: sends Incoming-Call-Request.
    pub fn place_incoming_call(
        &mut self,
        params: &IncomingCallParams,
        now: Instant,
    ) -> Result<u16, CallError> {
        let (calls, mut cx) = self.split();
        calls.place_incoming_call(&mut cx, params, now)
    }

    /// Clears a call that is placed or up. As PNS: Call-Clear-Request, then the call
    /// ends when Call-Disconnect-Notify (or the timeout) comes. As PAC: Call-Disconnect-
    /// Notify (Admin Shutdown) and the call ends at once. Use
    /// [`refuse_call`](Self::refuse_call) for a request not yet answered.
    pub fn clear_call(&mut self, local_call_id: u16, now: Instant) -> Result<(), CallError> {
        let (calls, mut cx) = self.split();
        calls.clear_call(&mut cx, local_call_id, now)
    }

    /// As PNS, sends Set-Link-Info for an established call.
    pub fn set_link_info(&mut self, local_call_id: u16, accm: LinkAccm) -> Result<(), CallError> {
        let (calls, mut cx) = self.split();
        calls.set_link_info(&mut cx, local_call_id, accm)
    }

    /// As PAC, sends WAN-Error-Notify for an established call (`peer_call_id` of
    /// `counters` is filled in).
    pub fn notify_wan_error(
        &mut self,
        local_call_id: u16,
        counters: WanErrorNotify,
    ) -> Result<(), CallError> {
        let (calls, mut cx) = self.split();
        calls.notify_wan_error(&mut cx, local_call_id, counters)
    }
}

fn echo_reply(identifier: u32, error: GeneralError) -> EchoReply {
    EchoReply {
        identifier,
        result: match error {
            GeneralError::None => OkResult::Ok,
            _ => OkResult::GeneralError,
        },
        error,
        reserved1: Reserved16,
    }
}

fn is_call_message(t: MessageType) -> bool {
    !matches!(
        t,
        MessageType::StartControlConnectionRequest
            | MessageType::StartControlConnectionReply
            | MessageType::StopControlConnectionRequest
            | MessageType::StopControlConnectionReply
            | MessageType::EchoRequest
            | MessageType::EchoReply
    )
}

/// The winner of a Start-Control-Connection collision (RFC 2637 §3.1.3): the peer with
/// the higher IPv4 address, compared as 32-bit unsigned numbers. The loser aborts the
/// connection it opened and answers on the other one.
pub fn wins_collision(local: std::net::Ipv4Addr, peer: std::net::Ipv4Addr) -> bool {
    u32::from(local) > u32::from(peer)
}
