//! State-machine tests: every control-connection and call transition, valid and
//! invalid, driven in memory with a virtual clock (no sockets, no sleeping).

use std::time::{Duration, Instant};

use super::call::*;
use super::call_id::{CallIdAllocator, CallIdPool};
use super::control::*;
use super::framing::FramingError;
use super::message::*;

const SECOND: Duration = Duration::from_secs(1);

/// Everything `c` wants to send, decoded.
fn sent<P: CallIdPool>(c: &mut ControlConnection<P>) -> Vec<Message> {
    std::iter::from_fn(|| c.poll_transmit())
        .map(|b| Message::parse(&b).expect("we only send valid messages"))
        .collect()
}

/// Like [`sent`], leaving out keepalive Echo-Requests.
fn sent_no_echo<P: CallIdPool>(c: &mut ControlConnection<P>) -> Vec<Message> {
    sent(c)
        .into_iter()
        .filter(|m| !matches!(m, Message::EchoRequest(_)))
        .collect()
}

fn events<P: CallIdPool>(c: &mut ControlConnection<P>) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn feed<P: CallIdPool>(c: &mut ControlConnection<P>, m: impl Into<Message>, now: Instant) {
    c.handle_input(&m.into().to_bytes(), now);
}

/// Our client (originator) and our server (answerer) joined by an in-memory TCP.
struct Pair {
    client: ControlConnection,
    server: ControlConnection,
    client_events: Vec<Event>,
    server_events: Vec<Event>,
    now: Instant,
}

impl Pair {
    fn new(client: ControlConfig, server: ControlConfig) -> Self {
        let now = Instant::now();
        Self {
            client: ControlConnection::originate(client, now),
            server: ControlConnection::answer(server, now),
            client_events: Vec::new(),
            server_events: Vec::new(),
            now,
        }
    }

    fn established() -> Self {
        let mut p = Self::new(client_config(), ControlConfig::default());
        p.drive();
        assert!(p.client.is_established() && p.server.is_established());
        p.take_events();
        p
    }

    /// Moves bytes both ways until neither side has anything to send.
    fn drive(&mut self) {
        loop {
            let mut moved = false;
            while let Some(b) = self.client.poll_transmit() {
                self.server.handle_input(&b, self.now);
                moved = true;
            }
            while let Some(b) = self.server.poll_transmit() {
                self.client.handle_input(&b, self.now);
                moved = true;
            }
            self.client_events.extend(events(&mut self.client));
            self.server_events.extend(events(&mut self.server));
            if !moved {
                break;
            }
        }
    }

    /// Lets `d` of virtual time pass, firing timers as they fall due.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .filter(|&t| t <= end)
                .min();
            let Some(t) = next else { break };
            self.now = t.max(self.now);
            self.client.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
            self.drive();
        }
        self.now = end;
    }

    fn take_events(&mut self) -> (Vec<Event>, Vec<Event>) {
        (
            std::mem::take(&mut self.client_events),
            std::mem::take(&mut self.server_events),
        )
    }

    /// The client places an outgoing call and the server accepts it.
    fn call_up(&mut self) -> (u16, u16) {
        let client_id = self
            .client
            .place_outgoing_call(&OutgoingCallParams::default(), self.now)
            .unwrap();
        self.drive();
        let server_id = requested_id(&self.server_events);
        self.server.accept_call(server_id, self.now).unwrap();
        self.drive();
        self.take_events();
        (client_id, server_id)
    }
}

fn client_config() -> ControlConfig {
    ControlConfig {
        roles: Roles::Pns,
        host_name: "client".into(),
        ..ControlConfig::default()
    }
}

fn requested_id(events: &[Event]) -> u16 {
    events
        .iter()
        .find_map(|e| match e {
            Event::CallRequested { local_call_id, .. } => Some(*local_call_id),
            _ => None,
        })
        .expect("a CallRequested event")
}

fn sccrq(version: u16) -> StartControlConnectionRequest {
    StartControlConnectionRequest {
        protocol_version: version,
        reserved1: Reserved16,
        framing_capabilities: FramingCaps::ALL,
        bearer_capabilities: BearerCaps::ALL,
        maximum_channels: 0xffff,
        firmware_revision: 1,
        host_name: Text::new("local"),
        vendor_name: Text::new("cananian"),
    }
}

fn sccrp(version: u16, result: StartResult) -> StartControlConnectionReply {
    StartControlConnectionReply {
        protocol_version: version,
        result,
        error: GeneralError::None,
        framing_capabilities: FramingCaps::NONE,
        bearer_capabilities: BearerCaps::NONE,
        maximum_channels: 1,
        firmware_revision: 1,
        host_name: Text::new("local"),
        vendor_name: Text::new("linux"),
    }
}

fn ocrq(call_id: u16) -> OutgoingCallRequest {
    OutgoingCallRequest {
        call_id,
        call_serial_number: 0,
        minimum_bps: 2400,
        maximum_bps: 10_000_000,
        bearer_type: BearerType::Either,
        framing_type: FramingType::Either,
        packet_recv_window_size: 3,
        packet_processing_delay: 0,
        phone_number_length: NumberLength::default(),
        reserved1: Reserved16,
        phone_number: Text::default(),
        subaddress: Text::default(),
    }
}

fn icrq(call_id: u16) -> IncomingCallRequest {
    IncomingCallRequest {
        call_id,
        call_serial_number: 7,
        bearer_type: BearerType::Digital,
        physical_channel_id: 1,
        dialed_number_length: NumberLength::default(),
        dialing_number_length: NumberLength::default(),
        dialed_number: Text::default(),
        dialing_number: Text::default(),
        subaddress: Text::default(),
    }
}

fn ccrq(call_id: u16) -> CallClearRequest {
    CallClearRequest {
        call_id,
        reserved1: Reserved16,
    }
}

/// A server that has answered a scripted SCCRQ.
fn answered_server(config: ControlConfig) -> (ControlConnection, Instant) {
    let now = Instant::now();
    let mut s = ControlConnection::answer(config, now);
    feed(&mut s, sccrq(PROTOCOL_VERSION), now);
    assert!(s.is_established());
    sent(&mut s);
    events(&mut s);
    (s, now)
}

fn closed_with(evs: &[Event]) -> Option<CloseReason> {
    evs.iter().find_map(|e| match e {
        Event::Closed(r) => Some(*r),
        _ => None,
    })
}

fn call_down(evs: &[Event]) -> Vec<(u16, CallEnd)> {
    evs.iter()
        .filter_map(|e| match e {
            Event::CallDown {
                local_call_id,
                reason,
                ..
            } => Some((*local_call_id, *reason)),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- control connection

#[test]
fn handshake_between_our_client_and_server() {
    let mut p = Pair::new(client_config(), ControlConfig::default());
    p.drive();
    let (c, s) = p.take_events();
    match (&c[..], &s[..]) {
        ([Event::Established(server_info)], [Event::Established(client_info)]) => {
            assert_eq!(server_info.host_name, "pptp-xdp");
            assert_eq!(client_info.host_name, "client");
            assert_eq!(client_info.protocol_version, PROTOCOL_VERSION);
            assert_eq!(client_info.framing_capabilities, FramingCaps::ALL);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.server.peer().unwrap().vendor_name, "pptp-xdp");
}

#[test]
fn admission_refusal_closes_both_sides() {
    let server = ControlConfig {
        admission: Admission::Refuse(StartResult::NotAuthorized, GeneralError::None),
        ..ControlConfig::default()
    };
    let mut p = Pair::new(client_config(), server);
    p.drive();
    let (c, s) = p.take_events();
    assert_eq!(
        closed_with(&s),
        Some(CloseReason::NotAdmitted(
            StartResult::NotAuthorized,
            GeneralError::None
        ))
    );
    assert_eq!(
        closed_with(&c),
        Some(CloseReason::Refused(
            StartResult::NotAuthorized,
            GeneralError::None
        ))
    );
    assert!(p.client.is_closed() && p.server.is_closed());
}

#[test]
fn unsupported_version_in_request_is_refused() {
    let now = Instant::now();
    let mut s = ControlConnection::answer(ControlConfig::default(), now);
    feed(&mut s, sccrq(0x0200), now);
    match &sent(&mut s)[..] {
        [Message::StartControlConnectionReply(rp)] => {
            assert_eq!(rp.result, StartResult::VersionNotSupported);
            assert_eq!(rp.protocol_version, PROTOCOL_VERSION);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        closed_with(&events(&mut s)),
        Some(CloseReason::VersionNotSupported(0x0200))
    );
}

#[test]
fn unsupported_version_in_reply_gets_stop_protocol() {
    let now = Instant::now();
    let mut c = ControlConnection::originate(client_config(), now);
    assert!(matches!(
        &sent(&mut c)[..],
        [Message::StartControlConnectionRequest(_)]
    ));
    feed(&mut c, sccrp(0x0200, StartResult::Success), now);
    match &sent(&mut c)[..] {
        [Message::StopControlConnectionRequest(rq)] => {
            assert_eq!(rq.reason, StopReason::StopProtocol)
        }
        other => panic!("{other:?}"),
    }
    assert!(!c.is_established() && !c.is_closed());
    feed(
        &mut c,
        StopControlConnectionReply {
            result: OkResult::Ok,
            error: GeneralError::None,
            reserved1: Reserved16,
        },
        now,
    );
    assert_eq!(closed_with(&events(&mut c)), Some(CloseReason::Stopped));
}

#[test]
fn handshake_timeouts() {
    let now = Instant::now();
    let mut s = ControlConnection::answer(ControlConfig::default(), now);
    let mut c = ControlConnection::originate(client_config(), now);
    assert_eq!(s.poll_timeout(), Some(now + 60 * SECOND));
    s.handle_timeout(now + 59 * SECOND);
    assert!(!s.is_closed());
    s.handle_timeout(now + 60 * SECOND);
    c.handle_timeout(now + 60 * SECOND);
    assert_eq!(
        closed_with(&events(&mut s)),
        Some(CloseReason::HandshakeTimeout)
    );
    assert_eq!(
        closed_with(&events(&mut c)),
        Some(CloseReason::HandshakeTimeout)
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn requests_before_the_handshake_get_not_connected() {
    let now = Instant::now();
    let mut s = ControlConnection::answer(ControlConfig::default(), now);
    feed(&mut s, EchoRequest { identifier: 42 }, now);
    feed(&mut s, ocrq(5), now);
    feed(&mut s, icrq(6), now);
    match &sent(&mut s)[..] {
        [
            Message::EchoReply(e),
            Message::OutgoingCallReply(o),
            Message::IncomingCallReply(i),
        ] => {
            assert_eq!(
                (e.identifier, e.result, e.error),
                (42, OkResult::GeneralError, GeneralError::NotConnected)
            );
            assert_eq!(
                (o.peer_call_id, o.result, o.error),
                (5, OutgoingResult::GeneralError, GeneralError::NotConnected)
            );
            assert_eq!(
                (i.peer_call_id, i.result, i.error),
                (6, IncomingResult::GeneralError, GeneralError::NotConnected)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!s.is_closed());
    assert_eq!(s.stats().refused_calls, 2);
    // The handshake can still happen.
    feed(&mut s, sccrq(PROTOCOL_VERSION), now);
    assert!(s.is_established());
}

#[test]
fn other_messages_before_the_handshake_close() {
    let now = Instant::now();
    let mut s = ControlConnection::answer(ControlConfig::default(), now);
    feed(&mut s, ccrq(1), now);
    assert_eq!(
        closed_with(&events(&mut s)),
        Some(CloseReason::Unexpected(MessageType::CallClearRequest))
    );
    // A reply to a request we never sent.
    let mut s = ControlConnection::answer(ControlConfig::default(), now);
    feed(&mut s, sccrp(PROTOCOL_VERSION, StartResult::Success), now);
    assert_eq!(
        closed_with(&events(&mut s)),
        Some(CloseReason::Unexpected(
            MessageType::StartControlConnectionReply
        ))
    );
    // The originator gets a request instead of a reply.
    let mut c = ControlConnection::originate(client_config(), now);
    feed(&mut c, sccrq(PROTOCOL_VERSION), now);
    assert_eq!(
        closed_with(&events(&mut c)),
        Some(CloseReason::Unexpected(
            MessageType::StartControlConnectionRequest
        ))
    );
    // A stop before the handshake is answered.
    let mut s = ControlConnection::answer(ControlConfig::default(), now);
    feed(
        &mut s,
        StopControlConnectionRequest {
            reason: StopReason::StopLocalShutdown,
            reserved1: Reserved8,
            reserved2: Reserved16,
        },
        now,
    );
    assert!(matches!(
        &sent(&mut s)[..],
        [Message::StopControlConnectionReply(_)]
    ));
    assert_eq!(
        closed_with(&events(&mut s)),
        Some(CloseReason::PeerStopped(StopReason::StopLocalShutdown))
    );
}

#[test]
fn refused_start_reply_closes() {
    let now = Instant::now();
    let mut c = ControlConnection::originate(client_config(), now);
    sent(&mut c);
    let mut rp = sccrp(PROTOCOL_VERSION, StartResult::GeneralError);
    rp.error = GeneralError::NoResource;
    feed(&mut c, rp, now);
    assert_eq!(
        closed_with(&events(&mut c)),
        Some(CloseReason::Refused(
            StartResult::GeneralError,
            GeneralError::NoResource
        ))
    );
}

#[test]
fn invalid_start_request_is_answered_with_its_error_code() {
    let now = Instant::now();
    let mut s = ControlConnection::answer(ControlConfig::default(), now);
    let mut b = Message::from(sccrq(PROTOCOL_VERSION)).to_bytes();
    b[14] = 1; // Reserved1
    s.handle_input(&b, now);
    match &sent(&mut s)[..] {
        [Message::StartControlConnectionReply(rp)] => {
            assert_eq!(
                (rp.result, rp.error),
                (StartResult::GeneralError, GeneralError::BadValue)
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        closed_with(&events(&mut s)),
        Some(CloseReason::InvalidStart(
            ParseError::ReservedNotZero { .. }
        ))
    ));
    // An invalid reply just closes.
    let mut c = ControlConnection::originate(client_config(), now);
    sent(&mut c);
    let mut b = Message::from(sccrp(PROTOCOL_VERSION, StartResult::Success)).to_bytes();
    b[14] = 9; // result
    c.handle_input(&b, now);
    assert!(matches!(
        closed_with(&events(&mut c)),
        Some(CloseReason::InvalidStart(ParseError::BadValue { .. }))
    ));
}

#[test]
fn garbage_closes_the_connection() {
    let (mut s, now) = answered_server(ControlConfig::default());
    s.handle_input(b"\x05\x00garbage", now);
    assert_eq!(
        closed_with(&events(&mut s)),
        Some(CloseReason::Framing(FramingError::Length(0x500)))
    );
    assert!(sent(&mut s).is_empty());
    // Nothing more is accepted.
    feed(&mut s, EchoRequest { identifier: 1 }, now);
    assert!(sent(&mut s).is_empty());
}

#[test]
fn echo_request_is_answered() {
    let (mut s, now) = answered_server(ControlConfig::default());
    feed(
        &mut s,
        EchoRequest {
            identifier: 0xdead_beef,
        },
        now,
    );
    match &sent(&mut s)[..] {
        [Message::EchoReply(r)] => {
            assert_eq!(
                (r.identifier, r.result, r.error),
                (0xdead_beef, OkResult::Ok, GeneralError::None)
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.stats().echo_requests_answered, 1);
}

#[test]
fn keepalive_sends_echo_after_idle_and_closes_on_silence() {
    let config = ControlConfig {
        echo_interval: Some(30 * SECOND),
        echo_timeout: 10 * SECOND,
        ..ControlConfig::default()
    };
    let (mut s, t0) = answered_server(config);
    assert_eq!(s.poll_timeout(), Some(t0 + 30 * SECOND));
    s.handle_timeout(t0 + 30 * SECOND);
    let id = match &sent(&mut s)[..] {
        [Message::EchoRequest(rq)] => rq.identifier,
        other => panic!("{other:?}"),
    };
    // The reply keeps the connection and re-arms the idle timer.
    feed(
        &mut s,
        EchoReply {
            identifier: id,
            result: OkResult::Ok,
            error: GeneralError::None,
            reserved1: Reserved16,
        },
        t0 + 31 * SECOND,
    );
    s.handle_timeout(t0 + 45 * SECOND);
    assert!(!s.is_closed());
    assert_eq!(s.poll_timeout(), Some(t0 + 61 * SECOND));
    s.handle_timeout(t0 + 61 * SECOND);
    assert_eq!(sent(&mut s).len(), 1);
    s.handle_timeout(t0 + 71 * SECOND);
    assert_eq!(
        closed_with(&events(&mut s)),
        Some(CloseReason::KeepaliveTimeout)
    );
    assert_eq!(s.stats().echo_requests_sent, 2);
}

#[test]
fn default_keepalive_is_60_seconds_and_can_be_disabled() {
    let (s, t0) = answered_server(ControlConfig::default());
    assert_eq!(s.poll_timeout(), Some(t0 + 60 * SECOND));
    let (s, _) = answered_server(ControlConfig {
        echo_interval: None,
        ..ControlConfig::default()
    });
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn peer_activity_postpones_the_echo() {
    let (mut s, t0) = answered_server(ControlConfig::default());
    s.note_peer_activity(t0 + 50 * SECOND);
    s.handle_timeout(t0 + 60 * SECOND);
    assert!(sent(&mut s).is_empty());
    // Any message during the echo wait counts as life.
    s.handle_timeout(t0 + 110 * SECOND);
    assert_eq!(sent(&mut s).len(), 1);
    feed(&mut s, EchoRequest { identifier: 1 }, t0 + 111 * SECOND);
    s.handle_timeout(t0 + 170 * SECOND);
    assert!(!s.is_closed());
}

#[test]
fn pair_keeps_alive_for_hours() {
    let mut p = Pair::established();
    p.advance(Duration::from_secs(3 * 3600));
    assert!(p.client.is_established() && p.server.is_established());
    assert!(p.server.stats().echo_requests_sent > 100);
}

#[test]
fn orderly_stop() {
    let mut p = Pair::established();
    let (client_call, server_call) = p.call_up();
    p.server.stop(StopReason::StopLocalShutdown, p.now);
    p.drive();
    let (c, s) = p.take_events();
    // The server, as PAC, disconnected the call first.
    assert_eq!(call_down(&s), vec![(server_call, CallEnd::LocalClear)]);
    assert_eq!(
        call_down(&c),
        vec![(
            client_call,
            CallEnd::Disconnected {
                result: DisconnectResult::AdminShutdown,
                error: GeneralError::None,
                cause_code: 0
            }
        )]
    );
    assert_eq!(closed_with(&s), Some(CloseReason::Stopped));
    assert_eq!(
        closed_with(&c),
        Some(CloseReason::PeerStopped(StopReason::StopLocalShutdown))
    );
}

#[test]
fn stop_without_reply_times_out() {
    let (mut s, t0) = answered_server(ControlConfig::default());
    s.stop(StopReason::None, t0);
    assert!(matches!(
        &sent(&mut s)[..],
        [Message::StopControlConnectionRequest(_)]
    ));
    // Echo-Requests are still answered while we wait.
    feed(&mut s, EchoRequest { identifier: 3 }, t0 + SECOND);
    assert_eq!(sent(&mut s).len(), 1);
    s.handle_timeout(t0 + 60 * SECOND);
    assert_eq!(closed_with(&events(&mut s)), Some(CloseReason::StopTimeout));
    // Stop before the handshake just closes.
    let mut c = ControlConnection::originate(client_config(), t0);
    c.stop(StopReason::None, t0);
    assert_eq!(closed_with(&events(&mut c)), Some(CloseReason::Aborted));
}

#[test]
fn stop_collision_is_answered() {
    let (mut s, t0) = answered_server(ControlConfig::default());
    s.stop(StopReason::None, t0);
    sent(&mut s);
    feed(
        &mut s,
        StopControlConnectionRequest {
            reason: StopReason::None,
            reserved1: Reserved8,
            reserved2: Reserved16,
        },
        t0,
    );
    assert!(matches!(
        &sent(&mut s)[..],
        [Message::StopControlConnectionReply(_)]
    ));
    assert_eq!(
        closed_with(&events(&mut s)),
        Some(CloseReason::PeerStopped(StopReason::None))
    );
}

#[test]
fn abort_sends_nothing() {
    let now = Instant::now();
    let mut c = ControlConnection::originate(client_config(), now);
    c.abort();
    assert!(sent(&mut c).is_empty());
    assert_eq!(closed_with(&events(&mut c)), Some(CloseReason::Aborted));
}

#[test]
fn collision_winner_has_the_higher_address() {
    use std::net::Ipv4Addr;
    let low = Ipv4Addr::new(192, 33, 45, 17);
    let high = Ipv4Addr::new(192, 33, 45, 89);
    assert!(wins_collision(high, low));
    assert!(!wins_collision(low, high));
}

#[test]
fn unexpected_and_invalid_messages_when_established_are_counted() {
    let (mut s, now) = answered_server(ControlConfig::default());
    feed(&mut s, sccrq(PROTOCOL_VERSION), now);
    feed(
        &mut s,
        StopControlConnectionReply {
            result: OkResult::Ok,
            error: GeneralError::None,
            reserved1: Reserved16,
        },
        now,
    );
    assert_eq!(s.stats().unexpected_messages, 2);
    // A CDN with an undefined result: counted, nothing sent.
    let mut b = Message::from(CallDisconnectNotify {
        call_id: 1,
        result: DisconnectResult::Request,
        error: GeneralError::None,
        cause_code: 0,
        reserved1: Reserved16,
        call_statistics: Text::default(),
    })
    .to_bytes();
    b[14] = 0;
    s.handle_input(&b, now);
    assert_eq!(s.stats().invalid_messages, 1);
    assert!(sent(&mut s).is_empty());
    assert!(s.is_established());
}

#[test]
fn eof_ends_everything() {
    let mut p = Pair::established();
    let (_, server_call) = p.call_up();
    p.server.handle_eof();
    p.drive();
    let (_, s) = p.take_events();
    assert_eq!(call_down(&s), vec![(server_call, CallEnd::ControlClosed)]);
    assert_eq!(closed_with(&s), Some(CloseReason::PeerClosed));
    assert_eq!(p.server.call_count(), 0);
}

// ---------------------------------------------------------------- calls

#[test]
fn pac_answering_outgoing_call() {
    let mut p = Pair::established();
    let client_id = p
        .client
        .place_outgoing_call(&OutgoingCallParams::default(), p.now)
        .unwrap();
    assert_eq!(p.client.call_state(client_id), Some(CallState::WaitReply));
    p.drive();
    let server_id = requested_id(&p.server_events);
    match &p.server_events[..] {
        [
            Event::CallRequested {
                request: CallRequest::Outgoing(rq),
                ..
            },
        ] => assert_eq!(rq.call_id, client_id),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.server.call_state(server_id), Some(CallState::WaitAnswer));
    p.take_events();
    p.server.accept_call(server_id, p.now).unwrap();
    p.drive();
    let (c, s) = p.take_events();
    match (&c[..], &s[..]) {
        ([Event::CallUp(ci)], [Event::CallUp(si)]) => {
            assert_eq!(
                (ci.local_call_id, ci.peer_call_id),
                (client_id, Some(server_id))
            );
            assert_eq!(
                (si.local_call_id, si.peer_call_id),
                (server_id, Some(client_id))
            );
            assert_eq!(si.position, Position::PacAnsweringOutgoing);
            assert_eq!(ci.position, Position::PnsPlacingOutgoing);
            assert_eq!(ci.peer_recv_window, 64);
            assert_eq!(ci.connect_speed, 100_000_000);
            assert_eq!(si.framing_type, Some(FramingType::Either));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.server.role(), Some(Role::Pac));
    assert_eq!(p.client.role(), Some(Role::Pns));
}

#[test]
fn pac_refuses_outgoing_call() {
    let mut p = Pair::established();
    let client_id = p
        .client
        .place_outgoing_call(&OutgoingCallParams::default(), p.now)
        .unwrap();
    p.drive();
    let server_id = requested_id(&p.server_events);
    p.server
        .refuse_call(server_id, GeneralError::NoResource)
        .unwrap();
    p.drive();
    let (c, s) = p.take_events();
    assert_eq!(
        call_down(&c),
        vec![(
            client_id,
            CallEnd::OutgoingRefused {
                result: OutgoingResult::GeneralError,
                error: GeneralError::NoResource,
                cause_code: 0
            }
        )]
    );
    assert_eq!(
        call_down(&s),
        vec![(server_id, CallEnd::RefusedLocally(GeneralError::NoResource))]
    );
    // Do-Not-Accept when no error is given.
    let client_id = p
        .client
        .place_outgoing_call(&OutgoingCallParams::default(), p.now)
        .unwrap();
    p.drive();
    let server_id = requested_id(&p.server_events);
    p.server.refuse_call(server_id, GeneralError::None).unwrap();
    p.drive();
    let (c, _) = p.take_events();
    assert_eq!(
        call_down(&c),
        vec![(
            client_id,
            CallEnd::OutgoingRefused {
                result: OutgoingResult::DoNotAccept,
                error: GeneralError::None,
                cause_code: 0
            }
        )]
    );
}

#[test]
fn unanswered_request_is_refused_after_the_reply_timeout() {
    let server = ControlConfig {
        reply_timeout: 30 * SECOND,
        ..ControlConfig::default()
    };
    let mut p = Pair::new(client_config(), server);
    p.drive();
    p.take_events();
    let client_id = p
        .client
        .place_outgoing_call(&OutgoingCallParams::default(), p.now)
        .unwrap();
    p.drive();
    let server_id = requested_id(&p.server_events);
    p.take_events();
    p.advance(30 * SECOND);
    let (c, s) = p.take_events();
    assert_eq!(call_down(&s), vec![(server_id, CallEnd::Timeout)]);
    assert!(matches!(
        call_down(&c)[..],
        [(
            id,
            CallEnd::OutgoingRefused {
                error: GeneralError::NoResource,
                ..
            }
        )] if id == client_id
    ));
}

#[test]
fn pns_clears_and_pac_disconnects() {
    let mut p = Pair::established();
    let (client_id, server_id) = p.call_up();
    p.client.clear_call(client_id, p.now).unwrap();
    assert_eq!(
        p.client.call_state(client_id),
        Some(CallState::WaitDisconnect)
    );
    // Clearing again while waiting is harmless.
    p.client.clear_call(client_id, p.now).unwrap();
    p.drive();
    let (c, s) = p.take_events();
    assert_eq!(call_down(&s), vec![(server_id, CallEnd::PeerCleared)]);
    assert_eq!(
        call_down(&c),
        vec![(
            client_id,
            CallEnd::Disconnected {
                result: DisconnectResult::Request,
                error: GeneralError::None,
                cause_code: 0
            }
        )]
    );
    assert_eq!(p.client.call_count() + p.server.call_count(), 0);
}

#[test]
fn pac_clears_at_once() {
    let mut p = Pair::established();
    let (client_id, server_id) = p.call_up();
    p.server.clear_call(server_id, p.now).unwrap();
    assert_eq!(p.server.call_count(), 0);
    p.drive();
    let (c, s) = p.take_events();
    assert_eq!(call_down(&s), vec![(server_id, CallEnd::LocalClear)]);
    assert!(matches!(
        call_down(&c)[..],
        [(
            id,
            CallEnd::Disconnected {
                result: DisconnectResult::AdminShutdown,
                ..
            }
        )] if id == client_id
    ));
}

#[test]
fn pns_waiting_for_disconnect_gives_up() {
    let mut p = Pair::established();
    let (client_id, _) = p.call_up();
    p.client.clear_call(client_id, p.now).unwrap();
    sent(&mut p.client); // the CCRQ is lost
    p.advance(60 * SECOND);
    let (c, _) = p.take_events();
    assert_eq!(call_down(&c), vec![(client_id, CallEnd::Timeout)]);
}

#[test]
fn pns_placing_outgoing_without_reply_clears() {
    let now = Instant::now();
    let config = ControlConfig {
        echo_interval: None,
        ..client_config()
    };
    let mut c = ControlConnection::originate(config, now);
    feed(&mut c, sccrp(PROTOCOL_VERSION, StartResult::Success), now);
    sent(&mut c);
    let id = c
        .place_outgoing_call(&OutgoingCallParams::default(), now)
        .unwrap();
    sent(&mut c);
    c.handle_timeout(now + 60 * SECOND);
    match &sent_no_echo(&mut c)[..] {
        [Message::CallClearRequest(rq)] => assert_eq!(rq.call_id, id),
        other => panic!("{other:?}"),
    }
    c.handle_timeout(now + 120 * SECOND);
    assert!(call_down(&events(&mut c)).contains(&(id, CallEnd::Timeout)));
}

/// The compulsory tunnel: an ISP's switch (our client configured as PAC) places an
/// incoming call on our server, which answers as PNS.
fn pac_client_pair() -> Pair {
    let client = ControlConfig {
        roles: Roles::Pac,
        ..client_config()
    };
    // Keepalive off, so that the call timeouts below are the only timers.
    let server = ControlConfig {
        echo_interval: None,
        ..ControlConfig::default()
    };
    let mut p = Pair::new(client, server);
    p.drive();
    p.take_events();
    p
}

#[test]
fn pns_answering_incoming_call() {
    let mut p = pac_client_pair();
    let params = IncomingCallParams {
        dialing_number: "5551234".into(),
        dialed_number: "5550000".into(),
        ..IncomingCallParams::default()
    };
    let pac_id = p.client.place_incoming_call(&params, p.now).unwrap();
    p.drive();
    let pns_id = requested_id(&p.server_events);
    match &p.server_events[..] {
        [
            Event::CallRequested {
                request: CallRequest::Incoming(rq),
                ..
            },
        ] => {
            assert_eq!(rq.dialing_number.as_bytes(), b"5551234");
            assert_eq!(rq.dialing_number_length.get(), 7);
            assert_eq!(rq.call_id, pac_id);
        }
        other => panic!("{other:?}"),
    }
    p.take_events();
    p.server.accept_call(pns_id, p.now).unwrap();
    assert_eq!(p.server.call_state(pns_id), Some(CallState::WaitConnect));
    p.drive();
    let (c, s) = p.take_events();
    match (&c[..], &s[..]) {
        ([Event::CallUp(ci)], [Event::CallUp(si)]) => {
            assert_eq!(ci.peer_call_id, Some(pns_id));
            assert_eq!(si.peer_call_id, Some(pac_id));
            assert_eq!(si.position, Position::PnsAnsweringIncoming);
            assert_eq!(ci.position, Position::PacPlacingIncoming);
            assert_eq!(si.framing_type, Some(FramingType::Sync));
            assert_eq!(si.connect_speed, 100_000_000);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.server.role(), Some(Role::Pns));
    // The PNS clears; the PAC answers with CDN.
    p.server.clear_call(pns_id, p.now).unwrap();
    p.drive();
    let (c, s) = p.take_events();
    assert_eq!(call_down(&c), vec![(pac_id, CallEnd::PeerCleared)]);
    assert!(matches!(
        call_down(&s)[..],
        [(id, CallEnd::Disconnected { result: DisconnectResult::Request, .. })] if id == pns_id
    ));
}

/// An access switch carries many users' calls on one connection: 1,000
/// Incoming-Call-Requests at once all come up, an hour passes (keepalives on the
/// PAC's side), and clearing one call from either end leaves every other up.
#[test]
fn a_thousand_incoming_calls_on_one_connection_and_clearing_one_leaves_the_rest() {
    let mut p = Pair::new(
        ControlConfig {
            roles: Roles::Pac,
            ..client_config()
        },
        ControlConfig::default(),
    );
    p.drive();
    p.take_events();
    let pac_ids: Vec<u16> = (0..1000)
        .map(|_| {
            p.client
                .place_incoming_call(&IncomingCallParams::default(), p.now)
                .unwrap()
        })
        .collect();
    p.drive();
    let (_, requested) = p.take_events();
    let pns_ids: Vec<u16> = requested
        .iter()
        .filter_map(|e| match e {
            Event::CallRequested { local_call_id, .. } => Some(*local_call_id),
            _ => None,
        })
        .collect();
    assert_eq!(pns_ids.len(), 1000);
    for &id in &pns_ids {
        p.server.accept_call(id, p.now).unwrap();
    }
    p.drive();
    let (c, s) = p.take_events();
    let ups = |evs: &[Event]| evs.iter().filter(|e| matches!(e, Event::CallUp(_))).count();
    assert_eq!((ups(&c), ups(&s)), (1000, 1000));
    p.advance(Duration::from_secs(3600));
    let (c, s) = p.take_events();
    assert_eq!((call_down(&c), call_down(&s)), (vec![], vec![]));

    // The PAC hangs up one user; the PNS clears another.
    p.client.clear_call(pac_ids[17], p.now).unwrap();
    p.server.clear_call(pns_ids[500], p.now).unwrap();
    p.drive();
    let (c, s) = p.take_events();
    assert_eq!(
        c.iter()
            .filter(|e| matches!(e, Event::CallDown { .. }))
            .count(),
        2
    );
    assert_eq!(
        s.iter()
            .filter(|e| matches!(e, Event::CallDown { .. }))
            .count(),
        2
    );
    assert_eq!((p.client.call_count(), p.server.call_count()), (998, 998));
    let up = |c: &ControlConnection, id| c.call_state(id) == Some(CallState::Established);
    assert!(!up(&p.client, pac_ids[17]));
    let still = pac_ids.iter().filter(|&&id| up(&p.client, id)).count();
    assert_eq!(still, 998);
    assert_eq!(pns_ids.iter().filter(|&&id| up(&p.server, id)).count(), 998);
    assert!(p.client.is_established() && p.server.is_established());
}

#[test]
fn pns_refuses_incoming_call() {
    let mut p = pac_client_pair();
    let pac_id = p
        .client
        .place_incoming_call(&IncomingCallParams::default(), p.now)
        .unwrap();
    p.drive();
    let pns_id = requested_id(&p.server_events);
    p.server.refuse_call(pns_id, GeneralError::None).unwrap();
    p.drive();
    let (c, _) = p.take_events();
    assert_eq!(
        call_down(&c),
        vec![(
            pac_id,
            CallEnd::IncomingRefused {
                result: IncomingResult::DoNotAccept,
                error: GeneralError::None
            }
        )]
    );
}

#[test]
fn pns_without_incoming_call_connected_clears() {
    let mut p = pac_client_pair();
    p.client
        .place_incoming_call(&IncomingCallParams::default(), p.now)
        .unwrap();
    p.drive();
    let pns_id = requested_id(&p.server_events);
    p.server.accept_call(pns_id, p.now).unwrap();
    // The ICRP and everything after it is lost.
    sent(&mut p.server);
    p.server.handle_timeout(p.now + 60 * SECOND);
    assert!(matches!(
        &sent_no_echo(&mut p.server)[..],
        [Message::CallClearRequest(_)]
    ));
    assert_eq!(p.server.call_state(pns_id), Some(CallState::WaitDisconnect));
    p.server.handle_timeout(p.now + 120 * SECOND);
    assert!(call_down(&events(&mut p.server)).contains(&(pns_id, CallEnd::Timeout)));
}

#[test]
fn pac_placing_incoming_without_reply_disconnects() {
    let mut p = pac_client_pair();
    let pac_id = p
        .client
        .place_incoming_call(&IncomingCallParams::default(), p.now)
        .unwrap();
    sent(&mut p.client);
    p.client.handle_timeout(p.now + 60 * SECOND);
    assert!(matches!(
        &sent_no_echo(&mut p.client)[..],
        [Message::CallDisconnectNotify(n)] if n.call_id == pac_id
    ));
    assert!(call_down(&events(&mut p.client)).contains(&(pac_id, CallEnd::Timeout)));
}

#[test]
fn pac_clears_incoming_call_it_placed() {
    let mut p = pac_client_pair();
    let pac_id = p
        .client
        .place_incoming_call(&IncomingCallParams::default(), p.now)
        .unwrap();
    p.drive();
    let pns_id = requested_id(&p.server_events);
    p.server.accept_call(pns_id, p.now).unwrap();
    p.drive();
    p.take_events();
    p.client.clear_call(pac_id, p.now).unwrap();
    p.drive();
    let (_, s) = p.take_events();
    assert!(matches!(
        call_down(&s)[..],
        [(id, CallEnd::Disconnected { result: DisconnectResult::AdminShutdown, .. })] if id == pns_id
    ));
}

#[test]
fn requests_for_a_role_we_do_not_take_are_refused() {
    // A server that is PAC only gets an Incoming-Call-Request.
    let (mut s, now) = answered_server(ControlConfig {
        roles: Roles::Pac,
        ..ControlConfig::default()
    });
    feed(&mut s, icrq(9), now);
    match &sent(&mut s)[..] {
        [Message::IncomingCallReply(rp)] => {
            assert_eq!(
                (rp.peer_call_id, rp.result, rp.error),
                (9, IncomingResult::DoNotAccept, GeneralError::None)
            )
        }
        other => panic!("{other:?}"),
    }
    // A concentrator whose role the first call fixed as PAC.
    let (mut s, now) = answered_server(ControlConfig::default());
    feed(&mut s, ocrq(1), now);
    assert_eq!(s.role(), Some(Role::Pac));
    events(&mut s);
    feed(&mut s, icrq(2), now);
    assert!(matches!(
        &sent(&mut s)[..],
        [Message::IncomingCallReply(rp)] if rp.result == IncomingResult::DoNotAccept
    ));
    // A PNS-only side gets an Outgoing-Call-Request.
    let (mut s, now) = answered_server(ControlConfig {
        roles: Roles::Pns,
        ..ControlConfig::default()
    });
    feed(&mut s, ocrq(1), now);
    assert!(matches!(
        &sent(&mut s)[..],
        [Message::OutgoingCallReply(rp)] if rp.result == OutgoingResult::DoNotAccept
    ));
    assert_eq!(
        s.place_incoming_call(&IncomingCallParams::default(), now),
        Err(CallError::RoleNotAllowed(Role::Pac))
    );
}

#[test]
fn duplicate_peer_call_id_is_bad_call_id() {
    let (mut s, now) = answered_server(ControlConfig::default());
    feed(&mut s, ocrq(77), now);
    feed(&mut s, ocrq(77), now);
    match &sent(&mut s)[..] {
        [Message::OutgoingCallReply(rp)] => assert_eq!(
            (rp.peer_call_id, rp.result, rp.error),
            (77, OutgoingResult::GeneralError, GeneralError::BadCallId)
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.call_count(), 1);
}

/// A pool with no IDs left.
#[derive(Debug)]
struct Empty;
impl CallIdPool for Empty {
    fn allocate(&mut self) -> Option<u16> {
        None
    }
    fn release(&mut self, _: u16) {}
}

#[test]
fn no_free_call_id_is_no_resource() {
    let now = Instant::now();
    let mut s = ControlConnection::answer_with_pool(ControlConfig::default(), Empty, now);
    feed(&mut s, sccrq(PROTOCOL_VERSION), now);
    sent(&mut s);
    feed(&mut s, ocrq(1), now);
    assert!(matches!(
        &sent(&mut s)[..],
        [Message::OutgoingCallReply(rp)] if rp.error == GeneralError::NoResource
    ));
    assert_eq!(
        s.place_outgoing_call(&OutgoingCallParams::default(), now),
        Err(CallError::NoCallIds)
    );
}

#[test]
fn sixty_five_thousand_calls_on_one_connection() {
    let mut p = Pair::established();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..CallIdAllocator::CAPACITY {
        let id = p
            .client
            .place_outgoing_call(&OutgoingCallParams::default(), p.now)
            .unwrap();
        assert!(ids.insert(id));
        while p.client.poll_transmit().is_some() {}
    }
    assert_eq!(
        p.client
            .place_outgoing_call(&OutgoingCallParams::default(), p.now),
        Err(CallError::NoCallIds)
    );
    assert_eq!(p.client.call_count(), 65535);
}

#[test]
fn set_link_info_is_stored_and_reported() {
    let mut p = Pair::established();
    let (client_id, server_id) = p.call_up();
    let accm = LinkAccm {
        send_accm: 0xffff_ffff,
        receive_accm: 0xffff_ffff,
    };
    p.client.set_link_info(client_id, accm).unwrap();
    p.drive();
    let (_, s) = p.take_events();
    assert_eq!(
        s,
        vec![Event::LinkInfo {
            local_call_id: server_id,
            send_accm: 0xffff_ffff,
            receive_accm: 0xffff_ffff
        }]
    );
    assert_eq!(p.server.call(server_id).unwrap().link_accm, Some(accm));
    assert_eq!(p.server.stats().set_link_infos, 1);
    // Only the PNS sends it.
    assert_eq!(
        p.server.set_link_info(server_id, accm),
        Err(CallError::RoleNotAllowed(Role::Pns))
    );
    // For a call we do not have: counted.
    feed(
        &mut p.server,
        SetLinkInfo {
            peer_call_id: server_id.wrapping_add(1),
            reserved1: Reserved16,
            send_accm: 0,
            receive_accm: 0,
        },
        p.now,
    );
    assert_eq!(p.server.stats().unknown_call, 1);
}

#[test]
fn wan_error_notify_is_counted() {
    let mut p = Pair::established();
    let (client_id, server_id) = p.call_up();
    let counters = WanErrorNotify {
        peer_call_id: 0,
        reserved1: Reserved16,
        crc_errors: 1,
        framing_errors: 2,
        hardware_overruns: 3,
        buffer_overruns: 4,
        timeout_errors: 5,
        alignment_errors: 6,
    };
    p.server
        .notify_wan_error(server_id, counters.clone())
        .unwrap();
    p.server
        .notify_wan_error(server_id, counters.clone())
        .unwrap();
    p.drive();
    let (c, _) = p.take_events();
    assert_eq!(c.len(), 2);
    let info = p.client.call(client_id).unwrap();
    assert_eq!(info.wan_error_notifies, 2);
    assert_eq!(info.last_wan_error.as_ref().unwrap().alignment_errors, 6);
    assert_eq!(
        info.last_wan_error.as_ref().unwrap().peer_call_id,
        client_id
    );
    assert_eq!(p.client.stats().wan_error_notifies, 2);
    assert_eq!(
        p.client.notify_wan_error(client_id, counters),
        Err(CallError::RoleNotAllowed(Role::Pac))
    );
}

#[test]
fn stray_call_messages_are_counted() {
    let mut p = Pair::established();
    let (client_id, server_id) = p.call_up();
    // CCRQ for a call the PAC does not know.
    feed(&mut p.server, ccrq(client_id.wrapping_add(1)), p.now);
    assert_eq!(p.server.stats().unknown_call, 1);
    // A second OCRP for an established call.
    feed(
        &mut p.client,
        OutgoingCallReply {
            call_id: server_id,
            peer_call_id: client_id,
            result: OutgoingResult::Connected,
            error: GeneralError::None,
            cause_code: 0,
            connect_speed: 0,
            packet_recv_window_size: 0,
            packet_processing_delay: 0,
            physical_channel_id: 0,
        },
        p.now,
    );
    assert_eq!(p.client.stats().unexpected_messages, 1);
    // ICCN to the PAC (only a PNS receives it).
    feed(
        &mut p.server,
        IncomingCallConnected {
            peer_call_id: server_id,
            reserved1: Reserved16,
            connect_speed: 0,
            packet_recv_window_size: 0,
            packet_transmit_delay: 0,
            framing_type: FramingType::Async,
        },
        p.now,
    );
    assert_eq!(p.server.stats().unexpected_messages, 1);
    // CDN to the PAC.
    feed(
        &mut p.server,
        CallDisconnectNotify {
            call_id: client_id,
            result: DisconnectResult::Request,
            error: GeneralError::None,
            cause_code: 0,
            reserved1: Reserved16,
            call_statistics: Text::default(),
        },
        p.now,
    );
    assert_eq!(p.server.stats().unexpected_messages, 2);
    assert!(sent(&mut p.server).is_empty() && sent(&mut p.client).is_empty());
    assert_eq!(p.server.call_state(server_id), Some(CallState::Established));
}

#[test]
fn invalid_call_request_is_answered_with_its_error_code() {
    let (mut s, now) = answered_server(ControlConfig::default());
    let mut b = Message::from(ocrq(0x1234)).to_bytes();
    b[27] = 9; // bearer type
    s.handle_input(&b, now);
    match &sent(&mut s)[..] {
        [Message::OutgoingCallReply(rp)] => assert_eq!(
            (rp.peer_call_id, rp.result, rp.error),
            (0x1234, OutgoingResult::GeneralError, GeneralError::BadValue)
        ),
        other => panic!("{other:?}"),
    }
    let mut b = Message::from(icrq(0x4321)).to_bytes();
    b[16] = 1; // bearer type high byte
    s.handle_input(&b, now);
    assert!(matches!(
        &sent(&mut s)[..],
        [Message::IncomingCallReply(rp)] if rp.peer_call_id == 0x4321 && rp.error == GeneralError::BadValue
    ));
    assert_eq!(s.stats().invalid_messages, 2);
}

#[test]
fn api_misuse_is_refused() {
    let now = Instant::now();
    let mut c = ControlConnection::originate(client_config(), now);
    assert_eq!(
        c.place_outgoing_call(&OutgoingCallParams::default(), now),
        Err(CallError::NotEstablished)
    );
    let mut p = Pair::established();
    let (client_id, server_id) = p.call_up();
    assert_eq!(
        p.server.accept_call(server_id, p.now),
        Err(CallError::WrongState {
            call: server_id,
            state: CallState::Established
        })
    );
    assert_eq!(
        p.server.refuse_call(server_id, GeneralError::None),
        Err(CallError::WrongState {
            call: server_id,
            state: CallState::Established
        })
    );
    assert_eq!(
        p.client.accept_call(client_id.wrapping_add(1), p.now),
        Err(CallError::UnknownCall(client_id.wrapping_add(1)))
    );
    // A PNS-only client cannot place incoming calls.
    assert_eq!(
        p.client
            .place_incoming_call(&IncomingCallParams::default(), p.now),
        Err(CallError::RoleNotAllowed(Role::Pac))
    );
    // A request not yet answered is refused, not cleared.
    p.client
        .place_outgoing_call(&OutgoingCallParams::default(), p.now)
        .unwrap();
    p.drive();
    let pending = requested_id(&p.server_events);
    assert!(matches!(
        p.server.clear_call(pending, p.now),
        Err(CallError::WrongState { .. })
    ));
}

#[test]
fn pptp_linux_hangup_clears_then_closes() {
    // pptp-linux sends Call-Clear-Request and closes TCP without waiting.
    let (mut s, now) = answered_server(ControlConfig::default());
    feed(&mut s, ocrq(0xf054), now);
    let id = requested_id(&events(&mut s));
    s.accept_call(id, now).unwrap();
    sent(&mut s);
    events(&mut s);
    feed(&mut s, ccrq(0xf054), now);
    s.handle_eof();
    assert!(matches!(
        &sent(&mut s)[..],
        [Message::CallDisconnectNotify(n)] if n.call_id == id && n.result == DisconnectResult::Request
    ));
    let evs = events(&mut s);
    assert_eq!(call_down(&evs), vec![(id, CallEnd::PeerCleared)]);
    assert_eq!(closed_with(&evs), Some(CloseReason::PeerClosed));
}

#[test]
fn pptpd_style_call_id_zero() {
    // pptpd answers every call with Call ID 0 (one control connection per call).
    let now = Instant::now();
    let mut c = ControlConnection::originate(client_config(), now);
    feed(&mut c, sccrp(PROTOCOL_VERSION, StartResult::Success), now);
    sent(&mut c);
    let reply = |peer_call_id| OutgoingCallReply {
        call_id: 0,
        peer_call_id,
        result: OutgoingResult::Connected,
        error: GeneralError::None,
        cause_code: 0,
        connect_speed: 10_000_000,
        packet_recv_window_size: 3,
        packet_processing_delay: 0,
        physical_channel_id: 0,
    };
    let a = c
        .place_outgoing_call(&OutgoingCallParams::default(), now)
        .unwrap();
    feed(&mut c, reply(a), now);
    assert_eq!(c.call(a).unwrap().peer_call_id, Some(0));
    assert_eq!(c.call(a).unwrap().peer_recv_window, 3);
    // A second call to which the peer gives the same Call ID 0 cannot be told apart
    // from the first in a CDN: it is cleared, the first one stays.
    let b = c
        .place_outgoing_call(&OutgoingCallParams::default(), now)
        .unwrap();
    events(&mut c);
    feed(&mut c, reply(b), now);
    assert_eq!(
        call_down(&events(&mut c)),
        vec![(b, CallEnd::RefusedLocally(GeneralError::BadCallId))]
    );
    assert_eq!(c.call_state(a), Some(CallState::Established));
    // A CDN with Call ID 0 ends the first call.
    feed(
        &mut c,
        CallDisconnectNotify {
            call_id: 0,
            result: DisconnectResult::LostCarrier,
            error: GeneralError::None,
            cause_code: 0,
            reserved1: Reserved16,
            call_statistics: Text::new("bytes 1000"),
        },
        now,
    );
    assert!(matches!(
        call_down(&events(&mut c))[..],
        [(id, CallEnd::Disconnected { result: DisconnectResult::LostCarrier, .. })] if id == a
    ));
}

#[test]
fn ids_are_released_when_calls_end() {
    let now = Instant::now();
    let pool = super::call_id::SharedCallIds::new(CallIdAllocator::seeded(500));
    let mut s = ControlConnection::answer_with_pool(ControlConfig::default(), pool.clone(), now);
    feed(&mut s, sccrq(PROTOCOL_VERSION), now);
    feed(&mut s, ocrq(1), now);
    feed(&mut s, ocrq(2), now);
    assert_eq!(pool.live(), 2);
    feed(&mut s, ccrq(1), now);
    assert_eq!(pool.live(), 1);
    s.handle_eof();
    assert_eq!(pool.live(), 0);
}

#[test]
fn clear_request_before_the_answer_is_disconnected() {
    // RFC 2637 §3.2.4.1: wait_cs_ans + Call-Clear-Request -> Call-Disconnect-Notify.
    let (mut s, now) = answered_server(ControlConfig::default());
    feed(&mut s, ocrq(0x0101), now);
    let id = requested_id(&events(&mut s));
    feed(&mut s, ccrq(0x0101), now);
    assert!(matches!(
        &sent(&mut s)[..],
        [Message::CallDisconnectNotify(n)] if n.call_id == id && n.result == DisconnectResult::Request
    ));
    assert_eq!(call_down(&events(&mut s)), vec![(id, CallEnd::PeerCleared)]);
    assert_eq!(s.accept_call(id, now), Err(CallError::UnknownCall(id)));
}

#[test]
fn pns_abandons_a_call_before_the_reply() {
    let mut p = Pair::established();
    let client_id = p
        .client
        .place_outgoing_call(&OutgoingCallParams::default(), p.now)
        .unwrap();
    p.client.clear_call(client_id, p.now).unwrap();
    match &sent(&mut p.client)[..] {
        [
            Message::OutgoingCallRequest(_),
            Message::CallClearRequest(rq),
        ] => {
            assert_eq!(rq.call_id, client_id)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        p.client.call_state(client_id),
        Some(CallState::WaitDisconnect)
    );
}

#[test]
fn pac_gives_up_before_incoming_call_connected() {
    let mut p = pac_client_pair();
    let pac_id = p
        .client
        .place_incoming_call(&IncomingCallParams::default(), p.now)
        .unwrap();
    p.drive();
    let pns_id = requested_id(&p.server_events);
    p.server.accept_call(pns_id, p.now).unwrap();
    // The ICRP is still in flight when the PAC clears its call.
    p.client.clear_call(pac_id, p.now).unwrap();
    p.drive();
    let (c, s) = p.take_events();
    assert_eq!(call_down(&c), vec![(pac_id, CallEnd::LocalClear)]);
    assert!(matches!(
        call_down(&s)[..],
        [(id, CallEnd::Disconnected { result: DisconnectResult::AdminShutdown, .. })] if id == pns_id
    ));
    // The late ICRP found no call at the PAC.
    assert_eq!(p.client.stats().unknown_call, 1);
}
