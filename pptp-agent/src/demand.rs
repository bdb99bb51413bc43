//! A demand-dial interface's life, sans-IO: when to dial, when to hang up, what to do
//! with packets while the link is not up.
//!
//! The interface exists (a TUN device with its routes) before any call. The hub hands
//! this machine every packet the kernel routes into the device
//! ([`on_outbound`](DemandDial::on_outbound)) and tells it when data arrives from the
//! peer ([`on_inbound`](DemandDial::on_inbound)) and when the link comes up or goes
//! down; the machine answers with a [`Verdict`] per packet, [`Action`]s (dial, hang up)
//! and a deadline, like the protocol machines in [`crate::pptp`] and [`crate::ppp`].
//!
//! - The first packet while idle starts a call and waits in a queue bounded in
//!   packets and bytes; what does not fit is dropped and counted. The queue is handed
//!   back, oldest first, when the link is up.
//! - `on-demand`: after `idle_timeout` without data in either direction, hang up;
//!   a packet sent meanwhile waits and dials again once the link is down.
//! - `persistent`: dial at once, never hang up for idleness, redial when the link
//!   goes down.
//! - A call that fails before the link is up is retried after an exponential back-off
//!   (`backoff_initial` doubling up to `backoff_max`); persistent interfaces always
//!   retry, on-demand ones only if packets are waiting. A link that was up resets it.
//! - Two-way initiation: both routers may call each other at the same moment. Each
//!   side binds at most one call to the interface; [`keep_new_call`] decides, the same
//!   way on both sides, which of two calls survives.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use std::net::Ipv4Addr;

use serde::Serialize;

/// When the interface dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// When traffic needs the link; hang up when idle.
    OnDemand,
    /// Always: dial at start and whenever the link is lost.
    Persistent,
}

/// Settings of one demand-dial interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemandConfig {
    pub mode: Mode,
    /// Hang up after this long without data (on-demand only); `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Packets waiting for the link, at most.
    pub queue_packets: usize,
    /// Bytes waiting for the link, at most.
    pub queue_bytes: usize,
    /// First wait after a failed call.
    pub backoff_initial: Duration,
    /// Longest wait between calls.
    pub backoff_max: Duration,
}

impl Default for DemandConfig {
    fn default() -> Self {
        Self {
            mode: Mode::OnDemand,
            idle_timeout: Some(Duration::from_secs(300)),
            queue_packets: 64,
            queue_bytes: 64 * 1024,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// Where the interface is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// No link, nothing to send.
    Idle,
    /// A call is being placed.
    Dialing,
    /// The link carries data.
    Up,
    /// We asked the link to hang up; it is not down yet.
    HangingUp,
    /// A call failed; waiting before the next.
    Backoff,
}

/// What the owner must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Place a call.
    Dial,
    /// Hang the link up (it has been idle).
    HangUp,
}

/// What became of a packet routed into the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it on the link now.
    Send,
    /// Kept until the link is up.
    Queued,
    /// The queue is full: dropped (counted).
    Dropped,
}

/// Counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DemandStats {
    /// Calls asked for.
    pub dials: u64,
    /// Calls that failed before the link was up.
    pub dial_failures: u64,
    /// Packets that waited for the link.
    pub queued: u64,
    /// Packets dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Hang-ups for idleness.
    pub idle_hangups: u64,
}

/// One demand-dial interface.
#[derive(Debug)]
pub struct DemandDial {
    config: DemandConfig,
    state: State,
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    last_activity: Instant,
    /// Calls failed in a row.
    failures: u32,
    retry_at: Option<Instant>,
    actions: VecDeque<Action>,
    stats: DemandStats,
}

impl DemandDial {
    /// A persistent interface asks to dial at once.
    pub fn new(config: DemandConfig, now: Instant) -> Self {
        let mut d = Self {
            config,
            state: State::Idle,
            queue: VecDeque::new(),
            queued_bytes: 0,
            last_activity: now,
            failures: 0,
            retry_at: None,
            actions: VecDeque::new(),
            stats: DemandStats::default(),
        };
        if d.config.mode == Mode::Persistent {
            d.dial();
        }
        d
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn stats(&self) -> DemandStats {
        self.stats
    }

    /// Packets waiting for the link.
    pub fn queued(&self) -> (usize, usize) {
        (self.queue.len(), self.queued_bytes)
    }

    /// A packet the kernel routed into the interface.
    pub fn on_outbound(&mut self, packet: &[u8], now: Instant) -> Verdict {
        match self.state {
            State::Up => {
                self.last_activity = now;
                Verdict::Send
            }
            State::Idle => {
                let verdict = self.enqueue(packet);
                self.dial();
                verdict
            }
            State::Dialing | State::HangingUp | State::Backoff => self.enqueue(packet),
        }
    }

    /// Data arrived from the peer.
    pub fn on_inbound(&mut self, now: Instant) {
        if self.state == State::Up {
            self.last_activity = now;
        }
    }

    /// A call was bound to the interface (the peer called us, our own call got
    /// through, or a new call replaces the link): packets wait for its link
    /// instead of dialing again.
    pub fn on_connecting(&mut self) {
        self.state = State::Dialing;
        self.retry_at = None;
    }

    /// The link is up (a call we placed, or one the peer placed and we answered):
    /// returns the packets that waited, oldest first, to send now.
    pub fn on_link_up(&mut self, now: Instant) -> VecDeque<Vec<u8>> {
        self.state = State::Up;
        self.failures = 0;
        self.retry_at = None;
        self.last_activity = now;
        self.queued_bytes = 0;
        std::mem::take(&mut self.queue)
    }

    /// The link went down. `was_up`: it had carried data (otherwise the call failed).
    pub fn on_link_down(&mut self, was_up: bool, now: Instant) {
        if was_up {
            self.after_link();
        } else {
            self.on_dial_failed(now);
        }
    }

    /// The call we placed ended before its link was up (no answer, refused,
    /// authentication failed). Ignored unless we were dialing.
    pub fn on_dial_failed(&mut self, now: Instant) {
        if self.state != State::Dialing {
            return;
        }
        self.stats.dial_failures += 1;
        self.failures = self.failures.saturating_add(1);
        let doubling = 2u32.saturating_pow(self.failures - 1);
        let wait = self
            .config
            .backoff_initial
            .saturating_mul(doubling)
            .min(self.config.backoff_max);
        self.state = State::Backoff;
        self.retry_at = Some(now + wait);
    }

    /// Acts on the deadline of [`poll_timeout`](Self::poll_timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Up => {
                if let Some(at) = self.idle_deadline()
                    && now >= at
                {
                    self.stats.idle_hangups += 1;
                    self.state = State::HangingUp;
                    self.actions.push_back(Action::HangUp);
                }
            }
            State::Backoff => {
                if self.retry_at.is_some_and(|at| now >= at) {
                    self.retry_at = None;
                    self.after_link();
                }
            }
            State::Idle | State::Dialing | State::HangingUp => {}
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Up => self.idle_deadline(),
            State::Backoff => self.retry_at,
            State::Idle | State::Dialing | State::HangingUp => None,
        }
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn idle_deadline(&self) -> Option<Instant> {
        match self.config.mode {
            Mode::OnDemand => self.config.idle_timeout.map(|t| self.last_activity + t),
            Mode::Persistent => None,
        }
    }

    /// No link and no back-off: dial if the mode or waiting packets want it.
    fn after_link(&mut self) {
        if self.config.mode == Mode::Persistent || !self.queue.is_empty() {
            self.dial();
        } else {
            self.state = State::Idle;
        }
    }

    fn dial(&mut self) {
        self.state = State::Dialing;
        self.stats.dials += 1;
        self.actions.push_back(Action::Dial);
    }

    fn enqueue(&mut self, packet: &[u8]) -> Verdict {
        let fits = self.queue.len() < self.config.queue_packets
            && self.queued_bytes + packet.len() <= self.config.queue_bytes;
        if !fits {
            self.stats.dropped_queue_full += 1;
            return Verdict::Dropped;
        }
        self.queued_bytes += packet.len();
        self.queue.push_back(packet.to_vec());
        self.stats.queued += 1;
        Verdict::Queued
    }
}

/// Who placed a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placer {
    Us,
    Peer,
}

/// Two calls between the same two routers for the same interface: whether the new one
/// replaces the existing one (which is then hung up) or is hung up itself.
///
/// Calls placed by the same side: the new one wins (that side no longer counts on the
/// old call, e.g. it restarted). Calls placed by different sides (both dialed at
/// once): the call placed by the router with the higher outer IPv4 address wins, as in
/// RFC 2637's control-connection collision rule. Both routers see the same two calls
/// with the roles swapped, so both keep the same one.
pub fn keep_new_call(existing: Placer, new: Placer, local: Ipv4Addr, peer: Ipv4Addr) -> bool {
    if existing == new {
        return true;
    }
    match new {
        Placer::Us => local > peer,
        Placer::Peer => peer > local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn on_demand() -> DemandConfig {
        DemandConfig {
            mode: Mode::OnDemand,
            idle_timeout: Some(3 * S),
            queue_packets: 3,
            queue_bytes: 250,
            backoff_initial: S,
            backoff_max: 8 * S,
        }
    }

    #[test]
    fn the_first_packet_dials_and_waits_for_the_link() {
        let t0 = Instant::now();
        let mut d = DemandDial::new(on_demand(), t0);
        assert_eq!(d.poll_action(), None, "on-demand does not dial by itself");
        assert_eq!(d.on_outbound(&[1; 60], t0), Verdict::Queued);
        assert_eq!(d.poll_action(), Some(Action::Dial));
        assert_eq!(d.on_outbound(&[2; 60], t0), Verdict::Queued);
        assert_eq!(d.poll_action(), None, "one call at a time");
        assert_eq!(d.state(), State::Dialing);
        let waiting = d.on_link_up(t0 + S);
        assert_eq!(waiting, [vec![1; 60], vec![2; 60]], "oldest first");
        assert_eq!(d.queued(), (0, 0));
        assert_eq!(d.on_outbound(&[3; 60], t0 + S), Verdict::Send);
    }

    #[test]
    fn the_queue_is_bounded_in_packets_and_bytes() {
        let t0 = Instant::now();
        let mut d = DemandDial::new(on_demand(), t0);
        assert_eq!(d.on_outbound(&[0; 100], t0), Verdict::Queued);
        assert_eq!(d.on_outbound(&[0; 100], t0), Verdict::Queued);
        assert_eq!(d.on_outbound(&[0; 100], t0), Verdict::Dropped, "bytes");
        assert_eq!(d.on_outbound(&[0; 10], t0), Verdict::Queued);
        assert_eq!(d.on_outbound(&[0; 10], t0), Verdict::Dropped, "packets");
        assert_eq!(d.queued(), (3, 210));
        let stats = d.stats();
        assert_eq!((stats.queued, stats.dropped_queue_full), (3, 2));
    }

    #[test]
    fn idle_in_both_directions_hangs_up_and_traffic_dials_again() {
        let t0 = Instant::now();
        let mut d = DemandDial::new(on_demand(), t0);
        d.on_outbound(&[0; 20], t0);
        d.poll_action();
        d.on_link_up(t0);
        assert_eq!(d.poll_timeout(), Some(t0 + 3 * S));
        d.on_outbound(&[0; 20], t0 + 2 * S);
        d.handle_timeout(t0 + 3 * S);
        assert_eq!(d.poll_action(), None, "sent 1 s ago");
        d.on_inbound(t0 + 4 * S);
        assert_eq!(
            d.poll_timeout(),
            Some(t0 + 7 * S),
            "received data counts too"
        );
        d.handle_timeout(t0 + 7 * S);
        assert_eq!(d.poll_action(), Some(Action::HangUp));
        assert_eq!(d.state(), State::HangingUp);
        assert_eq!(
            d.on_outbound(&[9; 20], t0 + 7 * S),
            Verdict::Queued,
            "not on a closing link"
        );
        d.on_link_down(true, t0 + 8 * S);
        assert_eq!(
            d.poll_action(),
            Some(Action::Dial),
            "the packet that waited"
        );
        assert_eq!(d.stats().idle_hangups, 1);

        let mut quiet = DemandDial::new(on_demand(), t0);
        quiet.on_outbound(&[0; 20], t0);
        quiet.poll_action();
        quiet.on_link_up(t0);
        quiet.handle_timeout(t0 + 3 * S);
        assert_eq!(quiet.poll_action(), Some(Action::HangUp));
        quiet.on_link_down(true, t0 + 3 * S);
        assert_eq!(quiet.state(), State::Idle);
        assert_eq!(quiet.poll_action(), None);
    }

    #[test]
    fn failed_calls_back_off_exponentially_up_to_the_maximum() {
        let t0 = Instant::now();
        let mut d = DemandDial::new(
            DemandConfig {
                mode: Mode::Persistent,
                ..on_demand()
            },
            t0,
        );
        assert_eq!(
            d.poll_action(),
            Some(Action::Dial),
            "persistent dials at once"
        );
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            d.on_dial_failed(now);
            let at = d.poll_timeout().unwrap();
            waits.push((at - now).as_secs());
            d.handle_timeout(at - Duration::from_millis(1));
            assert_eq!(d.poll_action(), None, "not before the back-off");
            d.handle_timeout(at);
            assert_eq!(d.poll_action(), Some(Action::Dial));
            now = at;
        }
        assert_eq!(waits, [1, 2, 4, 8, 8, 8]);
        d.on_link_up(now);
        assert_eq!(d.poll_timeout(), None, "persistent links never idle out");
        d.on_link_down(true, now + 100 * S);
        assert_eq!(d.poll_action(), Some(Action::Dial), "redial at once");
        d.on_dial_failed(now + 100 * S);
        assert_eq!(
            d.poll_timeout(),
            Some(now + 101 * S),
            "the link was up: back to the first wait"
        );
    }

    #[test]
    fn both_routers_keep_the_same_call() {
        let seattle: Ipv4Addr = "198.51.100.1".parse().unwrap();
        let new_york: Ipv4Addr = "203.0.113.1".parse().unwrap();
        // Seattle placed call A, New York call B; each side sees the other's second.
        let at_seattle = keep_new_call(Placer::Us, Placer::Peer, seattle, new_york);
        let at_new_york = keep_new_call(Placer::Us, Placer::Peer, new_york, seattle);
        assert!(
            at_seattle,
            "B, placed by the higher address, wins at Seattle"
        );
        assert!(!at_new_york, "and New York keeps B, its own call");
        // The other order of arrival: each side sees its own call second.
        assert!(!keep_new_call(Placer::Peer, Placer::Us, seattle, new_york));
        assert!(keep_new_call(Placer::Peer, Placer::Us, new_york, seattle));
        // The same router calling again replaces its old call.
        assert!(keep_new_call(Placer::Peer, Placer::Peer, seattle, new_york));
        assert!(keep_new_call(Placer::Us, Placer::Us, seattle, new_york));
    }

    #[test]
    fn on_demand_retries_only_with_packets_waiting() {
        let t0 = Instant::now();
        let mut d = DemandDial::new(on_demand(), t0);
        d.on_outbound(&[0; 20], t0);
        d.poll_action();
        d.on_dial_failed(t0);
        d.handle_timeout(t0 + S);
        assert_eq!(
            d.poll_action(),
            Some(Action::Dial),
            "the first packet still waits"
        );
        d.on_link_down(false, t0 + S);
        d.handle_timeout(t0 + 3 * S);
        assert_eq!(d.poll_action(), Some(Action::Dial));
        d.on_dial_failed(t0 + 3 * S);
        // The answering side's link came up meanwhile (the peer called us).
        let waiting = d.on_link_up(t0 + 4 * S);
        assert_eq!(waiting.len(), 1);
        d.on_dial_failed(t0 + 4 * S);
        assert_eq!(
            d.state(),
            State::Up,
            "a late failure of our own call changes nothing"
        );
    }

    #[test]
    fn a_call_from_the_peer_holds_packets_without_dialing() {
        let t0 = Instant::now();
        let mut d = DemandDial::new(on_demand(), t0);
        d.on_connecting();
        assert_eq!(d.on_outbound(&[1; 20], t0), Verdict::Queued);
        assert_eq!(d.poll_action(), None, "the peer's call is coming up");
        // It failed (not our failure): the waiting packet dials at once.
        d.on_link_down(true, t0);
        assert_eq!(d.poll_action(), Some(Action::Dial));
    }
}
