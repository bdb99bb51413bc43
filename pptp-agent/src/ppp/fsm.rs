//! The option-negotiation automaton of RFC 1661 §4, written once and shared by LCP,
//! CCP, IPCP and IPV6CP. What differs between them (which options to request, how to
//! judge the peer's) lives behind the [`Negotiator`] trait; this module owns the ten
//! states, the transition table of §4.1, the restart timer and the counters of §4.6.
//!
//! Beyond the RFC, three bounds make every negotiation end in bounded time whatever
//! the peer does (a peer that never answers already hits Max-Configure):
//! - Max-Failure (§4.6): after that many Configure-Naks sent in a row, the options we
//!   keep Nak-ing are Configure-Rejected instead.
//! - `max_naks_received`: a peer that Naks or Rejects us that many times in a row
//!   without ever acking is given up on ([`FinishReason::NotConverging`]).
//! - `max_requests_received`: so many Configure-Requests since `open` (a peer
//!   renegotiating in a loop) is given up on the same way.
//!
//! The automaton is sans-IO: it is fed packets and time, queues packets to send and
//! [`Notice`]s (This-Layer-Up/Down/Started/Finished) for its owner, and exposes its
//! one timer as data through [`Fsm::poll_timeout`].

use std::collections::VecDeque;

use super::queue::pop_or_release;
use std::time::{Duration, Instant};

use super::packet::{self, Opt, Packet};

/// Packet codes common to every protocol using this automaton (RFC 1661 §5).
pub mod code {
    /// Configure-Request.
    pub const CONFIGURE_REQUEST: u8 = 1;
    /// Configure-Ack.
    pub const CONFIGURE_ACK: u8 = 2;
    /// Configure-Nak.
    pub const CONFIGURE_NAK: u8 = 3;
    /// Configure-Reject.
    pub const CONFIGURE_REJECT: u8 = 4;
    /// Terminate-Request.
    pub const TERMINATE_REQUEST: u8 = 5;
    /// Terminate-Ack.
    pub const TERMINATE_ACK: u8 = 6;
    /// Code-Reject.
    pub const CODE_REJECT: u8 = 7;
}

/// The states of RFC 1661 §4.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Lower layer down, no Open.
    Initial,
    /// Open issued, lower layer down.
    Starting,
    /// Lower layer up, no Open.
    Closed,
    /// Negotiation ended (peer terminated, gave up); answers a new Configure-Request.
    Stopped,
    /// Terminate-Request sent after Close.
    Closing,
    /// Terminate-Request sent, will end in Stopped.
    Stopping,
    /// Configure-Request sent, nothing acked.
    ReqSent,
    /// Our request acked, the peer's not yet.
    AckRcvd,
    /// The peer's request acked, ours not yet.
    AckSent,
    /// Both acked: the layer is up.
    Opened,
}

/// The verdict on a peer's Configure-Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every option acceptable: Configure-Ack.
    Ack,
    /// Configure-Nak carrying these options (encoded list).
    Nak(Vec<u8>),
    /// Configure-Reject carrying these options (encoded list).
    Reject(Vec<u8>),
}

/// Collects per-option decisions on a Configure-Request into a [`Verdict`]: any
/// rejected option makes a Configure-Reject of those alone (RFC 1661 §5.4), else any
/// Nak-ed option a Configure-Nak, else a Configure-Ack.
#[derive(Debug, Default)]
pub struct Judgement {
    naks: Vec<u8>,
    rejects: Vec<u8>,
}

impl Judgement {
    /// Asks the peer to use `data` for option `kind` instead.
    pub fn nak(&mut self, kind: u8, data: &[u8]) {
        packet::push_option(&mut self.naks, kind, data);
    }

    /// Refuses the option.
    pub fn reject(&mut self, opt: &Opt<'_>) {
        opt.emit(&mut self.rejects);
    }

    /// The verdict.
    pub fn verdict(self) -> Verdict {
        if !self.rejects.is_empty() {
            Verdict::Reject(self.rejects)
        } else if !self.naks.is_empty() {
            Verdict::Nak(self.naks)
        } else {
            Verdict::Ack
        }
    }
}

/// What one protocol (LCP, CCP, IPCP, IPV6CP) contributes to the automaton.
pub trait Negotiator {
    /// The options of our next Configure-Request (encoded list).
    fn request(&mut self) -> Vec<u8>;
    /// Judges the peer's Configure-Request.
    fn judge(&mut self, options: &[Opt<'_>]) -> Verdict;
    /// The peer acked our last request (these are its options).
    fn acked(&mut self, options: &[Opt<'_>]);
    /// The peer Nak-ed some of our options with these values.
    fn nakked(&mut self, options: &[Opt<'_>]);
    /// The peer rejected these options of ours.
    fn rejected(&mut self, options: &[Opt<'_>]);
    /// A fresh negotiation starts: go back to the initial wishes.
    fn reset(&mut self);
    /// Whether the protocol defines this code beyond 1..=7 (it then handles it).
    fn knows_code(&self, code: u8) -> bool {
        let _ = code;
        false
    }
}

/// Layer notices for the owner (RFC 1661 §4.4 actions tlu, tld, tls, tlf).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// This-Layer-Up: negotiation finished, the layer is open.
    Up,
    /// This-Layer-Down: the layer left Opened.
    Down,
    /// This-Layer-Started: the layer needs the lower layer.
    Started,
    /// This-Layer-Finished: the layer no longer needs the lower layer.
    Finished(FinishReason),
}

/// Why the automaton finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// Closed locally (Close event).
    Closed,
    /// The peer sent Terminate-Request.
    PeerTerminated,
    /// The peer stopped answering (Max-Configure or Max-Terminate reached).
    Timeout,
    /// The peer kept refusing or renegotiating.
    NotConverging,
    /// The peer rejected a code or the protocol we cannot do without.
    Rejected,
}

/// Timer and counter settings (RFC 1661 §4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Restart timer.
    pub restart: Duration,
    /// Configure-Requests sent without reply before giving up.
    pub max_configure: u32,
    /// Terminate-Requests sent without reply before giving up.
    pub max_terminate: u32,
    /// Configure-Naks sent in a row before rejecting instead.
    pub max_failure: u32,
    /// Configure-Naks/Rejects received in a row before giving up.
    pub max_naks_received: u32,
    /// Configure-Requests received since Open before giving up.
    pub max_requests_received: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            restart: Duration::from_secs(3),
            max_configure: 10,
            max_terminate: 2,
            max_failure: 5,
            max_naks_received: 10,
            max_requests_received: 40,
        }
    }
}

/// A received packet with a protocol-specific code, for the owner to handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The code (e.g. Echo-Request).
    pub code: u8,
    /// The identifier.
    pub id: u8,
    /// The data after the header.
    pub data: &'a [u8],
}

/// One instance of the automaton.
#[derive(Debug)]
pub struct Fsm<N> {
    negotiator: N,
    state: State,
    limits: Limits,
    restart_count: u32,
    deadline: Option<Instant>,
    next_id: u8,
    request_id: u8,
    request: Vec<u8>,
    terminate_id: u8,
    naks_sent: u32,
    naks_received: u32,
    requests_received: u32,
    reason: Option<FinishReason>,
    max_len: usize,
    transmit: VecDeque<Vec<u8>>,
    notices: VecDeque<Notice>,
}

impl<N: Negotiator> Fsm<N> {
    /// A new automaton in the Initial state; `first_id` seeds the identifiers.
    pub fn new(negotiator: N, limits: Limits, first_id: u8) -> Self {
        Fsm {
            negotiator,
            state: State::Initial,
            limits,
            restart_count: 0,
            deadline: None,
            next_id: first_id,
            request_id: 0,
            request: Vec::new(),
            terminate_id: 0,
            naks_sent: 0,
            naks_received: 0,
            requests_received: 0,
            reason: None,
            max_len: usize::from(packet::DEFAULT_MRU),
            transmit: VecDeque::new(),
            notices: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the layer is Opened.
    pub fn is_opened(&self) -> bool {
        self.state == State::Opened
    }

    /// The protocol-specific half.
    pub fn negotiator(&self) -> &N {
        &self.negotiator
    }

    /// The next packet to send (protocol field not included).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        pop_or_release(&mut self.transmit)
    }

    /// The next layer notice.
    pub fn poll_notice(&mut self) -> Option<Notice> {
        pop_or_release(&mut self.notices)
    }

    /// When [`Fsm::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Caps the packets this automaton echoes back (Code-Reject) to the peer's MRU.
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    /// A fresh identifier for a packet the owner sends on this protocol.
    pub fn next_id(&mut self) -> u8 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// Queues a packet the owner built (Echo-Reply, Reset-Ack, ...).
    pub fn send(&mut self, code: u8, id: u8, data: &[u8]) {
        self.transmit.push_back(packet::encode(code, id, data));
    }

    /// Up event: the lower layer is ready.
    pub fn up(&mut self, now: Instant) {
        match self.state {
            State::Initial => self.set_state(State::Closed),
            State::Starting => {
                self.irc(false);
                self.scr(now);
                self.set_state(State::ReqSent);
            }
            _ => {}
        }
    }

    /// Down event: the lower layer went away.
    pub fn down(&mut self) {
        match self.state {
            State::Closed | State::Closing => self.set_state(State::Initial),
            State::Stopped => {
                self.tls();
                self.set_state(State::Starting);
            }
            State::Stopping | State::ReqSent | State::AckRcvd | State::AckSent => {
                self.set_state(State::Starting)
            }
            State::Opened => {
                self.notices.push_back(Notice::Down);
                self.set_state(State::Starting);
            }
            State::Initial | State::Starting => {}
        }
    }

    /// Open event: administratively allowed to negotiate.
    pub fn open(&mut self, now: Instant) {
        self.requests_received = 0;
        match self.state {
            State::Initial => {
                self.tls();
                self.set_state(State::Starting);
            }
            State::Closed => {
                self.irc(false);
                self.scr(now);
                self.set_state(State::ReqSent);
            }
            State::Closing => self.set_state(State::Stopping),
            _ => {}
        }
    }

    /// Close event: terminate the layer.
    pub fn close(&mut self, now: Instant) {
        self.close_for(now, FinishReason::Closed);
    }

    fn close_for(&mut self, now: Instant, reason: FinishReason) {
        self.reason.get_or_insert(reason);
        match self.state {
            State::Starting => {
                self.tlf();
                self.set_state(State::Initial);
            }
            State::Stopped => self.set_state(State::Closed),
            State::Stopping => self.set_state(State::Closing),
            State::ReqSent | State::AckRcvd | State::AckSent => {
                self.irc(true);
                self.str(now);
                self.set_state(State::Closing);
            }
            State::Opened => {
                self.notices.push_back(Notice::Down);
                self.irc(true);
                self.str(now);
                self.set_state(State::Closing);
            }
            State::Initial | State::Closed | State::Closing => {}
        }
    }

    /// The protocol itself was rejected by the peer (LCP Protocol-Reject): RXJ-.
    pub fn protocol_rejected(&mut self, now: Instant) {
        self.rxj_minus(now);
    }

    /// Calls the timer if it is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.deadline {
            Some(deadline) if deadline <= now => {}
            _ => return,
        }
        self.deadline = None;
        if self.restart_count > 0 {
            match self.state {
                State::Closing | State::Stopping => self.str(now),
                State::ReqSent | State::AckSent => self.scr(now),
                State::AckRcvd => {
                    self.scr(now);
                    self.set_state(State::ReqSent);
                }
                _ => {}
            }
        } else {
            match self.state {
                State::Closing => {
                    self.tlf();
                    self.set_state(State::Closed);
                }
                State::Stopping => {
                    self.tlf();
                    self.set_state(State::Stopped);
                }
                State::ReqSent | State::AckRcvd | State::AckSent => {
                    self.reason.get_or_insert(FinishReason::Timeout);
                    self.tlf();
                    self.set_state(State::Stopped);
                }
                _ => {}
            }
        }
    }

    /// Feeds a received packet (the frame's information field). Codes beyond 7 that the
    /// negotiator knows are returned for the owner; unknown ones are Code-Rejected.
    pub fn receive<'a>(&mut self, now: Instant, bytes: &'a [u8]) -> Option<Extension<'a>> {
        if matches!(self.state, State::Initial | State::Starting) {
            return None;
        }
        let Ok(pkt) = Packet::parse(bytes) else {
            return None;
        };
        match pkt.code {
            code::CONFIGURE_REQUEST => self.rcr(now, pkt),
            code::CONFIGURE_ACK => self.rca(now, pkt),
            code::CONFIGURE_NAK | code::CONFIGURE_REJECT => self.rcn(now, pkt),
            code::TERMINATE_REQUEST => self.rtr(now, pkt.id),
            code::TERMINATE_ACK => self.rta(now),
            code::CODE_REJECT => self.rxj(now, pkt.data),
            c if self.negotiator.knows_code(c) => {
                return Some(Extension {
                    code: c,
                    id: pkt.id,
                    data: pkt.data,
                });
            }
            _ => self.ruc(bytes),
        }
        None
    }

    fn rcr(&mut self, now: Instant, pkt: Packet<'_>) {
        if matches!(self.state, State::Closing | State::Stopping) {
            return;
        }
        if self.state == State::Closed {
            self.send(code::TERMINATE_ACK, pkt.id, &[]);
            return;
        }
        let Ok(options) = packet::parse_options(pkt.data) else {
            return;
        };
        self.requests_received += 1;
        if self.requests_received > self.limits.max_requests_received {
            self.close_for(now, FinishReason::NotConverging);
            return;
        }
        // Leaving Opened or restarting from Stopped begins a fresh negotiation (which
        // resets the negotiator, so it comes before judging).
        match self.state {
            State::Opened => {
                self.notices.push_back(Notice::Down);
                self.scr(now);
            }
            State::Stopped => {
                self.irc(false);
                self.scr(now);
            }
            _ => {}
        }
        let verdict = match self.negotiator.judge(&options) {
            Verdict::Nak(naks) if self.naks_sent >= self.limits.max_failure => {
                reject_instead_of_nak(&options, &naks)
            }
            v => v,
        };
        let good = verdict == Verdict::Ack;
        match verdict {
            Verdict::Ack => {
                self.naks_sent = 0;
                self.send(code::CONFIGURE_ACK, pkt.id, pkt.data);
            }
            Verdict::Nak(naks) => {
                self.naks_sent += 1;
                self.send(code::CONFIGURE_NAK, pkt.id, &naks);
            }
            Verdict::Reject(rejects) => self.send(code::CONFIGURE_REJECT, pkt.id, &rejects),
        }
        let next = match (self.state, good) {
            (State::AckRcvd, true) => {
                self.tlu();
                State::Opened
            }
            (State::AckRcvd, false) => State::AckRcvd,
            (_, true) => State::AckSent,
            (_, false) => State::ReqSent,
        };
        self.set_state(next);
    }

    fn rca(&mut self, now: Instant, pkt: Packet<'_>) {
        if pkt.id != self.request_id || pkt.data != self.request.as_slice() {
            return;
        }
        match self.state {
            State::Closed | State::Stopped => self.send(code::TERMINATE_ACK, pkt.id, &[]),
            State::ReqSent => {
                self.ack_received(pkt.data);
                self.irc(false);
                self.set_state(State::AckRcvd);
            }
            State::AckRcvd => {
                self.scr(now);
                self.set_state(State::ReqSent);
            }
            State::AckSent => {
                self.ack_received(pkt.data);
                self.irc(false);
                self.tlu();
                self.set_state(State::Opened);
            }
            State::Opened => {
                self.notices.push_back(Notice::Down);
                self.scr(now);
                self.set_state(State::ReqSent);
            }
            _ => {}
        }
    }

    fn ack_received(&mut self, data: &[u8]) {
        self.naks_received = 0;
        if let Ok(options) = packet::parse_options(data) {
            self.negotiator.acked(&options);
        }
    }

    fn rcn(&mut self, now: Instant, pkt: Packet<'_>) {
        if pkt.id != self.request_id {
            return;
        }
        let Ok(options) = packet::parse_options(pkt.data) else {
            return;
        };
        match self.state {
            State::Closed | State::Stopped => {
                self.send(code::TERMINATE_ACK, pkt.id, &[]);
                return;
            }
            State::ReqSent | State::AckRcvd | State::AckSent | State::Opened => {}
            _ => return,
        }
        self.naks_received += 1;
        if self.naks_received > self.limits.max_naks_received {
            self.close_for(now, FinishReason::NotConverging);
            return;
        }
        if pkt.code == code::CONFIGURE_NAK {
            self.negotiator.nakked(&options);
        } else {
            self.negotiator.rejected(&options);
        }
        match self.state {
            State::ReqSent | State::AckSent => {
                self.irc(false);
                self.scr(now);
            }
            State::AckRcvd => {
                self.scr(now);
                self.set_state(State::ReqSent);
            }
            _ => {
                self.notices.push_back(Notice::Down);
                self.scr(now);
                self.set_state(State::ReqSent);
            }
        }
    }

    fn rtr(&mut self, now: Instant, id: u8) {
        match self.state {
            State::ReqSent | State::AckRcvd | State::AckSent => {
                self.reason.get_or_insert(FinishReason::PeerTerminated);
                self.send(code::TERMINATE_ACK, id, &[]);
                self.set_state(State::ReqSent);
            }
            State::Opened => {
                self.reason.get_or_insert(FinishReason::PeerTerminated);
                self.notices.push_back(Notice::Down);
                self.restart_count = 0;
                self.deadline = Some(now + self.limits.restart);
                self.send(code::TERMINATE_ACK, id, &[]);
                self.set_state(State::Stopping);
            }
            _ => self.send(code::TERMINATE_ACK, id, &[]),
        }
    }

    fn rta(&mut self, now: Instant) {
        match self.state {
            State::Closing => {
                self.tlf();
                self.set_state(State::Closed);
            }
            State::Stopping => {
                self.tlf();
                self.set_state(State::Stopped);
            }
            State::AckRcvd => self.set_state(State::ReqSent),
            State::Opened => {
                self.notices.push_back(Notice::Down);
                self.scr(now);
                self.set_state(State::ReqSent);
            }
            _ => {}
        }
    }

    fn ruc(&mut self, bytes: &[u8]) {
        let id = self.next_id();
        let keep = bytes.len().min(self.max_len.saturating_sub(4));
        self.send(code::CODE_REJECT, id, &bytes[..keep]);
    }

    fn rxj(&mut self, now: Instant, data: &[u8]) {
        // Rejecting one of the codes 1..=7 means the peer cannot do this protocol.
        match data.first() {
            Some(1..=code::CODE_REJECT) => self.rxj_minus(now),
            _ => {
                if self.state == State::AckRcvd {
                    self.set_state(State::ReqSent);
                }
            }
        }
    }

    fn rxj_minus(&mut self, now: Instant) {
        self.reason.get_or_insert(FinishReason::Rejected);
        match self.state {
            State::Closed | State::Closing => {
                self.tlf();
                self.set_state(State::Closed);
            }
            State::Stopped | State::Stopping | State::ReqSent | State::AckRcvd | State::AckSent => {
                self.tlf();
                self.set_state(State::Stopped);
            }
            State::Opened => {
                self.notices.push_back(Notice::Down);
                self.irc(true);
                self.str(now);
                self.set_state(State::Stopping);
            }
            State::Initial | State::Starting => {}
        }
    }

    fn set_state(&mut self, state: State) {
        self.state = state;
        if !matches!(
            state,
            State::Closing | State::Stopping | State::ReqSent | State::AckRcvd | State::AckSent
        ) {
            self.deadline = None;
        }
    }

    fn irc(&mut self, terminate: bool) {
        self.restart_count = if terminate {
            self.limits.max_terminate
        } else {
            self.limits.max_configure
        };
    }

    fn scr(&mut self, now: Instant) {
        if !matches!(self.state, State::ReqSent | State::AckRcvd | State::AckSent) {
            self.negotiator.reset();
            self.naks_sent = 0;
            self.naks_received = 0;
        }
        self.request = self.negotiator.request();
        self.request_id = self.next_id();
        let pkt = packet::encode(code::CONFIGURE_REQUEST, self.request_id, &self.request);
        self.transmit.push_back(pkt);
        self.restart_count = self.restart_count.saturating_sub(1);
        self.deadline = Some(now + self.limits.restart);
    }

    fn str(&mut self, now: Instant) {
        self.terminate_id = self.next_id();
        let pkt = packet::encode(code::TERMINATE_REQUEST, self.terminate_id, &[]);
        self.transmit.push_back(pkt);
        self.restart_count = self.restart_count.saturating_sub(1);
        self.deadline = Some(now + self.limits.restart);
    }

    fn tlu(&mut self) {
        self.reason = None;
        self.notices.push_back(Notice::Up);
    }

    fn tls(&mut self) {
        self.reason = None;
        self.notices.push_back(Notice::Started);
    }

    fn tlf(&mut self) {
        let reason = self.reason.take().unwrap_or(FinishReason::Closed);
        self.notices.push_back(Notice::Finished(reason));
    }
}

/// Max-Failure reached: reject the requested options we would have Nak-ed.
fn reject_instead_of_nak(options: &[Opt<'_>], naks: &[u8]) -> Verdict {
    let nakked: Vec<u8> = packet::parse_options(naks)
        .map(|list| list.iter().map(|o| o.kind).collect())
        .unwrap_or_default();
    let mut rejects = Vec::new();
    for opt in options.iter().filter(|o| nakked.contains(&o.kind)) {
        opt.emit(&mut rejects);
    }
    if rejects.is_empty() {
        Verdict::Ack
    } else {
        Verdict::Reject(rejects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wants option 1 = [want]; accepts the peer's option 1 only if it equals `accept`.
    #[derive(Debug)]
    struct Toy {
        want: u8,
        accept: u8,
        asked: u8,
    }

    impl Negotiator for Toy {
        fn request(&mut self) -> Vec<u8> {
            let mut v = Vec::new();
            packet::push_option(&mut v, 1, &[self.asked]);
            v
        }
        fn judge(&mut self, options: &[Opt<'_>]) -> Verdict {
            match options.iter().find(|o| o.kind == 1) {
                Some(o) if o.data != [self.accept] => {
                    let mut v = Vec::new();
                    packet::push_option(&mut v, 1, &[self.accept]);
                    Verdict::Nak(v)
                }
                _ => Verdict::Ack,
            }
        }
        fn acked(&mut self, _: &[Opt<'_>]) {}
        fn nakked(&mut self, options: &[Opt<'_>]) {
            if let Some(o) = options.first() {
                self.asked = o.data.first().copied().unwrap_or(0);
            }
        }
        fn rejected(&mut self, _: &[Opt<'_>]) {}
        fn reset(&mut self) {
            self.asked = self.want;
        }
    }

    fn toy(want: u8, accept: u8) -> Fsm<Toy> {
        Fsm::new(
            Toy {
                want,
                accept,
                asked: want,
            },
            Limits::default(),
            1,
        )
    }

    /// Shuttles packets between two automata until both are quiet.
    fn exchange(a: &mut Fsm<Toy>, b: &mut Fsm<Toy>, now: Instant) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(p) = a.poll_transmit() {
                b.receive(now, &p);
                moved = true;
            }
            while let Some(p) = b.poll_transmit() {
                a.receive(now, &p);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    fn notices(f: &mut Fsm<Toy>) -> Vec<Notice> {
        std::iter::from_fn(|| f.poll_notice()).collect()
    }

    #[test]
    fn two_automata_open_after_a_nak() {
        let now = Instant::now();
        let (mut a, mut b) = (toy(5, 7), toy(9, 5));
        for f in [&mut a, &mut b] {
            f.open(now);
            f.up(now);
        }
        exchange(&mut a, &mut b, now);
        assert!(a.is_opened() && b.is_opened());
        assert_eq!(notices(&mut a), [Notice::Started, Notice::Up]);
        assert_eq!(b.negotiator().asked, 7);
        a.close(now);
        exchange(&mut a, &mut b, now);
        assert_eq!(a.state(), State::Closed);
        assert_eq!(b.state(), State::Stopping);
        assert_eq!(
            notices(&mut a),
            [Notice::Down, Notice::Finished(FinishReason::Closed)]
        );
        b.handle_timeout(now + Duration::from_secs(3));
        assert_eq!(b.state(), State::Stopped);
        assert_eq!(
            notices(&mut b),
            [
                Notice::Started,
                Notice::Up,
                Notice::Down,
                Notice::Finished(FinishReason::PeerTerminated)
            ]
        );
    }

    #[test]
    fn silent_peer_times_out_after_max_configure() {
        let mut now = Instant::now();
        let mut a = toy(1, 1);
        a.open(now);
        a.up(now);
        let mut sent = 0;
        while let Some(deadline) = a.poll_timeout() {
            while a.poll_transmit().is_some() {
                sent += 1;
            }
            now = deadline;
            a.handle_timeout(now);
        }
        assert_eq!(sent, 10);
        assert_eq!(a.state(), State::Stopped);
        assert_eq!(
            notices(&mut a),
            [Notice::Started, Notice::Finished(FinishReason::Timeout)]
        );
    }

    #[test]
    fn endless_nak_is_bounded() {
        // Two automata that can never agree: each Naks the other's value forever.
        let now = Instant::now();
        let (mut a, mut b) = (toy(1, 2), toy(1, 2));
        for f in [&mut a, &mut b] {
            f.open(now);
            f.up(now);
        }
        exchange(&mut a, &mut b, now);
        // After Max-Failure Naks both reject; the toy then has nothing to Nak and acks.
        assert!(a.is_opened() && b.is_opened());
    }

    #[test]
    fn unknown_code_is_code_rejected() {
        let now = Instant::now();
        let mut a = toy(1, 1);
        a.up(now);
        a.receive(now, &[42, 9, 0, 4]);
        assert_eq!(
            a.poll_transmit().unwrap(),
            [code::CODE_REJECT, 1, 0, 8, 42, 9, 0, 4]
        );
    }

    #[test]
    fn closed_answers_with_terminate_ack() {
        let now = Instant::now();
        let mut a = toy(1, 1);
        a.up(now);
        a.receive(now, &[1, 3, 0, 4]);
        assert_eq!(a.poll_transmit().unwrap(), [code::TERMINATE_ACK, 3, 0, 4]);
    }
}
