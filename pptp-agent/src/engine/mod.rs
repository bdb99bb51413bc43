//! The concentrator as a sans-IO engine, in the style of quinn-proto's `Endpoint`:
//! no sockets, no tasks, no clock. Events come in through `handle_*` with the time,
//! what to do comes out of `poll_transmit` (GRE packets for peers), `poll_action`
//! ([`Action`]: clear a call, tell a call's owner, ask RADIUS, dial) and
//! `poll_timeout`; data packets are answered directly, into buffers the caller owns.
//! The tokio runtime (`crate::runtime`) only moves bytes and carries actions out;
//! the engine's tests drive it in memory on a virtual clock.
//!
//! The parts, each in its own file:
//! - [`table`]: the sessions by one generational [`SessionId`], indexed by call,
//!   client address, user and prefix;
//! - [`session`]: one session's call, link, sequencing, cipher and packet
//!   operations;
//! - `datapath` (private): GRE from peers and IPv4 from the kernel, anti-spoofing;
//! - `network` (private): a session's maps, routes and prefixes once it is up;
//! - `aaa` (private) and [`accounting`]: RADIUS authentication and accounting, session
//!   and idle timeouts, CoA, and what a session keeps for them;
//! - `rates` (private): each session's rate limit, from RADIUS, CoA or the
//!   configuration, on both paths;
//! - [`capture`]: a copy of one agent-path session's packets for `pptp-agent capture`;
//! - `routers` (private) and [`router`]: the demand-dial interfaces' supervisor and
//!   what it keeps per interface;
//! - `operator` (private) and [`views`]: the operator's commands, and the views,
//!   counters and selectors they use;
//! - [`action`]: what the engine and the runtime tell each other besides packets;
//! - [`kernel`]: the XDP maps and routes, as traits the runtime implements;
//! - [`deadlines`]: one timer per session;
//! - `silence` (private): calls whose peer sends no GRE (IP protocol 47 blocked).
//!
//! A session's life: [`Engine::handle_call_up`] (a control connection has a call)
//! installs it in the XDP maps (so that its GRE numbering is shared with the
//! programs) and opens its link; when IPCP opens, its network layer goes into the
//! maps (fast unless MPPE or routes) and the kernel gets a route to the client;
//! when the link goes down everything is undone and the call's owner is told to
//! clear the call ([`Action::ClearCall`]).

mod aaa;
pub mod accounting;
pub mod action;
pub mod capture;
mod datapath;
pub mod deadlines;
pub mod kernel;
mod network;
mod operator;
pub mod prefixes;
mod rates;
pub mod router;
mod routers;
pub mod session;
mod silence;
pub mod table;
#[cfg(test)]
mod tests;
pub mod views;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use ipnet::Ipv4Net;
use rand::{RngCore, TryRngCore as _};

use crate::{
    demand::Placer,
    dhcp::DhcpInformResponder,
    escape::Escaped,
    gre::Sequencer,
    guard::limits::LiveLimits,
    ppp::link::{DownReason, Event, Link, LinkUp},
    radius::nas::AcctSessionIds,
};

pub use self::{
    accounting::Arrival,
    action::{Action, CallUp, Delivery, OwnerId, SessionEvent, Target},
    kernel::{CallSpec, Dataplane, DataplaneError, Device, Network},
    router::RouterConfig,
    table::{CallKey, SessionId},
    views::{
        AgentCounter, AgentStats, DataPath, EngineLoad, InterfaceInfo, Selector, SessionInfo,
        SessionState,
    },
};
use self::{
    capture::Captures,
    deadlines::Deadlines,
    router::Router,
    session::{Sequencing, Session},
    table::SessionTable,
};

/// What the engine does with IPv4 from sessions, and where packets for them come
/// from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Routes per client on the concentrator's device; XDP in front when present.
    Concentrator,
    /// One session, its own device ([`Network::client_up`]).
    Client,
    /// No device: the load generator's sessions, told apart by their own address.
    Probe,
}

/// RADIUS as the engine needs to know it.
#[derive(Debug, Clone, Copy, Default)]
pub struct AaaSettings {
    /// RADIUS is in use: links in external-verifier mode ask it, and every session
    /// runs a clock for the timeouts an Access-Accept or a CoA sets.
    pub radius: bool,
    /// Accounting records are sent.
    pub accounting: bool,
    /// Interim-Update interval unless the server sends Acct-Interim-Interval.
    pub interim: Option<Duration>,
}

/// Rate limits from the configuration: per user, and a default for the others.
/// RADIUS (Mikrotik-Rate-Limit) overrides both.
#[derive(Debug, Clone, Default)]
pub struct RatePolicy {
    /// For users without a limit of their own; zero: none.
    pub default: pptp_common::rate::RateLimit,
    pub users: HashMap<String, pptp_common::rate::RateLimit>,
}

/// Makes the random source of each new link (magic numbers, challenges).
pub type LinkRng = Box<dyn FnMut() -> Box<dyn RngCore + Send> + Send>;

/// Everything the engine is built from.
pub struct EngineConfig {
    pub mode: Mode,
    /// Sessions the table holds at most.
    pub capacity: usize,
    /// Answers Windows clients' DHCPINFORM (concentrator only).
    pub dhcp: Option<DhcpInformResponder>,
    /// The limits in force (sessions per user, checked at authentication).
    pub limits: LiveLimits,
    pub aaa: AaaSettings,
    /// How sessions are named in Acct-Session-Id.
    pub acct_ids: AcctSessionIds,
    /// Whether this process starts the NAS afresh (Accounting-On) or takes its
    /// sessions over from another.
    pub arrival: Arrival,
    /// Networks behind a user (a router): routed to its session while it is up.
    pub user_routes: HashMap<String, Vec<Ipv4Net>>,
    /// Demand-dial interfaces.
    pub routers: Vec<RouterConfig>,
    /// Whether demand-dial interfaces may dial (a dialer is there).
    pub dialing: bool,
    /// Rate limits for users without one from RADIUS.
    pub rates: RatePolicy,
    /// How long a call may stay up without GRE from its peer before it is
    /// reported (and, on a client, ended): see `silence.rs`.
    pub gre_wait: Duration,
    pub rng: LinkRng,
}

impl EngineConfig {
    /// A configuration for `mode` with nothing beyond carrying sessions.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            capacity: usize::from(u16::MAX),
            dhcp: None,
            limits: LiveLimits::default(),
            aaa: AaaSettings::default(),
            acct_ids: AcctSessionIds::default(),
            arrival: Arrival::Fresh,
            user_routes: HashMap::new(),
            routers: Vec::new(),
            dialing: false,
            rates: RatePolicy::default(),
            gre_wait: GRE_WAIT,
            // The operating system's generator: a zero-sized handle (a generator
            // seeded per link cost each session 320 bytes), read a few times per
            // link (magic numbers, challenges, the echo timer's offset).
            rng: Box::new(|| Box::new(rand::rngs::OsRng.unwrap_err())),
        }
    }
}

/// [`EngineConfig::gre_wait`] unless set: LCP has sent four Configure-Requests
/// by then, more than a lossy path loses.
pub const GRE_WAIT: Duration = Duration::from_secs(10);

/// How long a shutdown waits for the peers' LCP Terminate-Acks before it clears the
/// calls anyway. A peer that gets Call-Clear-Request first (pptpd) kills its pppd
/// before the Ack leaves, so the hang-up would look like a lost link.
pub const HANGUP_GRACE: Duration = Duration::from_secs(3);

/// The concentrator (or a client's one session).
pub struct Engine {
    config: EngineConfig,
    table: SessionTable<Session>,
    timers: Deadlines<SessionId>,
    dataplane: Option<Box<dyn Dataplane>>,
    network: Box<dyn Network>,
    routers: Vec<Router>,
    /// Replaced router calls still taking what their peer sends, until then.
    lingering: Vec<(Instant, SessionId)>,
    stats: AgentStats,
    /// Sessions with an Access-Request in flight.
    authenticating: usize,
    /// GRE packets for peers, built from links' frames (control traffic).
    transmit: VecDeque<(Ipv4Addr, Vec<u8>)>,
    actions: VecDeque<Action>,
    /// Assembles outgoing GRE packets.
    scratch: Vec<u8>,
    /// A shutdown in progress: until when the links may take to go down.
    closing: Option<Instant>,
    /// Zero of the policers' clock on the agent's path.
    origin: Instant,
    /// Accounting-Off was said.
    departed: bool,
    /// Peers already told about GRE that never came (`silence.rs`).
    hinted: HashSet<Ipv4Addr>,
    /// `pptp-agent capture` of a session on the agent's path.
    captures: Captures,
}

impl Engine {
    pub fn new(
        config: EngineConfig,
        dataplane: Option<Box<dyn Dataplane>>,
        network: Box<dyn Network>,
        now: Instant,
    ) -> Self {
        let mut config = config;
        let routers = std::mem::take(&mut config.routers)
            .into_iter()
            .map(|r| Router::new(r, now))
            .collect();
        let mut engine = Self {
            table: SessionTable::new(config.capacity),
            config,
            timers: Deadlines::default(),
            dataplane,
            network,
            routers,
            lingering: Vec::new(),
            stats: AgentStats::default(),
            authenticating: 0,
            transmit: VecDeque::new(),
            actions: VecDeque::new(),
            scratch: Vec::with_capacity(2048),
            closing: None,
            origin: now,
            departed: false,
            hinted: HashSet::new(),
            captures: Captures::default(),
        };
        engine.announce_arrival();
        for index in 0..engine.routers.len() {
            engine.router_actions(index, now);
        }
        engine
    }

    /// Counts something the runtime saw (a packet it could not write, say).
    pub fn count(&mut self, counter: AgentCounter) {
        self.stats.add(counter);
    }

    /// The next GRE packet for a peer: its destination and bytes.
    pub fn poll_transmit(&mut self) -> Option<(Ipv4Addr, Vec<u8>)> {
        self.transmit.pop_front()
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers
            .next()
            .into_iter()
            .chain(self.routers.iter().filter_map(Router::poll_timeout))
            .chain(self.lingering.iter().map(|(at, _)| *at))
            .chain(self.closing)
            .min()
    }

    /// Runs what is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(id) = self.timers.pop_due(now) {
            if let Some(session) = self.table.get_mut(id) {
                session.link.handle_timeout(now);
                self.on_session_clock(id, now);
                self.on_gre_wait(id, now);
                self.flush(id, now);
            }
        }
        self.on_router_timers(now);
        self.on_lingering(now);
    }

    /// Starts the PPP link of a call. A second call under a live call key, or one
    /// the data plane cannot take, is cleared at once.
    pub fn handle_call_up(&mut self, now: Instant, up: CallUp) {
        let call = up.call;
        let key = (call.peer_addr, call.local_call_id);
        if self.table.by_call(key).is_some() {
            // Control connections to or from one address share their call IDs; a
            // second call under a live key would take its GRE.
            tracing::error!(peer = %key.0, call_id = key.1, "call refused: its Call ID is already live for this peer");
            self.clear(up.owner, call.local_call_id);
            return;
        }
        if self.table.is_full() {
            tracing::error!(peer = %key.0, sessions = self.table.len(), "call refused: the session table is full");
            self.clear(up.owner, call.local_call_id);
            return;
        }
        let seq = match &mut self.dataplane {
            Some(dp) => match dp.install(call) {
                Ok(slot) => Sequencing::Shared(slot),
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "cannot install the call in the data plane"
                    );
                    self.clear(up.owner, call.local_call_id);
                    return;
                }
            },
            None => Sequencing::Local(Sequencer::new(0)),
        };
        let mut link = Link::new(up.link, (self.config.rng)());
        link.open(now);
        let mut session = Session::new(call, link, seq, up.owner, now);
        if up.router.is_some() {
            session.placer = Placer::Us;
        }
        let id = self
            .table
            .insert(key, session)
            .expect("checked: the call is free and the table has room");
        tracing::info!(peer = %call.peer_addr, call_id = call.local_call_id, session = %id, "call up, PPP starting");
        if let Some(index) = up.router {
            self.bind(index, id, now);
        }
        self.flush(id, now);
    }

    /// The control connection lost the call.
    pub fn handle_call_down(&mut self, now: Instant, call: CallKey) {
        let Some(id) = self.table.by_call(call) else {
            return;
        };
        if let Some(session) = self.table.get_mut(id) {
            session.link.lower_down(now);
            self.flush(id, now);
        }
        // A link that did not report Down on lower_down still goes.
        self.end_session(id, DownReason::LowerLayerDown, now);
    }

    fn clear(&mut self, owner: OwnerId, local_call_id: u16) {
        self.actions.push_back(Action::ClearCall {
            owner,
            local_call_id,
        });
    }

    /// Sends what the session's link queued, acts on its events and re-arms its
    /// timer.
    fn flush(&mut self, id: SessionId, now: Instant) {
        loop {
            let dp = self.dataplane.as_deref();
            let Some(session) = self.table.get_mut(id) else {
                return;
            };
            while let Some(frame) = session.link.poll_transmit() {
                match session.frame_to_gre(dp, &frame, &mut self.scratch) {
                    Ok(()) => self
                        .transmit
                        .push_back((session.call.peer_addr, self.scratch.clone())),
                    Err(_) => self.stats.add(AgentCounter::SendErrors),
                }
            }
            let Some(event) = session.link.poll_event() else {
                break;
            };
            self.on_link_event(id, event, now);
        }
        if let Some(session) = self.table.get(id) {
            let clock = session.aaa.clock.as_ref().and_then(|c| c.poll_timeout());
            let at = [
                session.link.poll_timeout(),
                clock,
                self.gre_deadline(session),
            ]
            .into_iter()
            .flatten()
            .min();
            self.timers.set(id, at.map(|at| at.max(now)));
        }
    }

    fn on_link_event(&mut self, id: SessionId, event: Event, now: Instant) {
        match event {
            Event::AuthSucceeded { user } => {
                let user = String::from_utf8_lossy(&user).into_owned();
                self.authenticated(id, user, now);
            }
            Event::Up(up) => self.link_up(id, up, now),
            Event::Down(reason) => self.end_session(id, reason, now),
            Event::VerifyRequest(ticket, claim) => self.authenticate(id, ticket, claim, now),
            Event::CcpResetRequested => {
                if let Some(session) = self.table.get_mut(id) {
                    session.reset_encryption();
                }
            }
            other => tracing::debug!(session = %id, event = ?other, "link event"),
        }
    }

    fn authenticated(&mut self, id: SessionId, user: String, now: Instant) {
        let Some(peer) = self.table.call(id).map(|c| c.0) else {
            return;
        };
        tracing::info!(%peer, user = %Escaped::str(&user), session = %id, "authenticated");
        let over = self
            .config
            .limits
            .get()
            .sessions_per_user
            .is_some_and(|limit| self.table.of_user(&user).count() >= limit as usize);
        self.table.set_user(id, &user);
        let routers = &self.routers;
        let Some(session) = self.table.get_mut(id) else {
            return;
        };
        if over {
            tracing::warn!(%peer, user = %Escaped::str(&user), "hung up: the user has as many sessions as allowed");
            session.link.close(now);
        }
        if session.placer == Placer::Peer {
            session.routes = self
                .config
                .user_routes
                .get(&user)
                .cloned()
                .unwrap_or_default();
        }
        if let Some(a) = &session.aaa.authorization {
            session.routes.extend(&a.routes);
        }
        session.user = Some(user.clone());
        // A calling router: its user name is one of our interfaces.
        let router = (session.placer == Placer::Peer && session.router.is_none())
            .then(|| routers.iter().position(|r| r.name() == user))
            .flatten();
        if let Some(index) = router {
            self.bind(index, id, now);
        }
    }

    fn link_up(&mut self, id: SessionId, up: LinkUp, now: Instant) {
        if let Err(e) = self.network_up(id, &up, now) {
            tracing::error!(
                error = format!("{e:#}"),
                "cannot bring the session's network up"
            );
            if let Some(session) = self.table.get_mut(id) {
                session.link.close(now);
            }
            return;
        }
        self.start_policing(id);
        let mppe = up.mppe.as_ref().map(|m| m.params);
        tracing::info!(session = %id, local = %up.local_ip, remote = %up.peer_ip, ?mppe, "session up");
        let Some(session) = self.table.get_mut(id) else {
            return;
        };
        session.link_up(&up);
        let (owner, router) = (session.owner, session.router);
        self.actions.push_back(Action::Notify {
            owner,
            event: SessionEvent::Up(up),
        });
        if let Some(index) = router {
            self.router_link_up(index, id, now);
        }
        self.start_accounting(id, now);
    }

    /// LCP Terminate-Request on a session.
    fn hang_up(&mut self, id: SessionId, now: Instant) {
        if let Some(session) = self.table.get_mut(id) {
            session.link.close(now);
        }
        self.flush(id, now);
    }

    /// Removes a session and everything it had; tells its owner to clear the call.
    fn end_session(&mut self, id: SessionId, reason: DownReason, now: Instant) {
        self.gre_missing(id, "before the call ended");
        let Some(session) = self.table.get(id) else {
            return;
        };
        if matches!(reason, DownReason::AuthFailed(_)) {
            self.stats.add(AgentCounter::AuthFailures);
        }
        if session.aaa.clock.is_some() {
            let cause = session.aaa.terminate_cause(&reason);
            self.account(id, crate::radius::acct::Status::Stop, Some(cause), now);
        }
        self.detach_routes(id);
        let Some(session) = self.table.remove(id) else {
            return;
        };
        self.timers.set(id, None);
        self.captures.session_gone(id);
        if session.aaa.asking {
            self.authenticating -= 1;
            self.actions
                .push_back(Action::CancelAuthentication { session: id });
        }
        tracing::info!(peer = %session.call.peer_addr, call_id = session.call.local_call_id, session = %id, %reason, "session down");
        if let (Some(dp), Sequencing::Shared(slot)) = (&mut self.dataplane, &session.seq)
            && let Err(e) = dp.remove(*slot)
        {
            tracing::error!(
                error = format!("{e:#}"),
                "removing the session from the data plane"
            );
        }
        if let Some(index) = session.router {
            self.router_session_gone(index, id, &session, now);
        } else if let Some(up) = &session.up {
            match self.config.mode {
                Mode::Concentrator => self
                    .network
                    .remove_route(Device::Concentrator, Ipv4Net::from(up.peer_ip)),
                Mode::Client => self.network.client_down(),
                Mode::Probe => {}
            }
        }
        // The owner hears the end before it is told to clear the call: that is the
        // session's last word to it.
        self.actions.push_back(Action::Notify {
            owner: session.owner,
            event: SessionEvent::Down(reason),
        });
        self.clear(session.owner, session.call.local_call_id);
        if let Some(index) = session.router {
            self.router_actions(index, now);
        }
    }

    /// Starts a shutdown: every link sends LCP Terminate-Request; persistent
    /// interfaces stop dialing. [`shutdown_complete`](Self::shutdown_complete) says
    /// when to [`finish`](Self::finish).
    pub fn begin_shutdown(&mut self, now: Instant) {
        if self.closing.is_some() {
            return;
        }
        self.config.dialing = false;
        self.closing = Some(now + HANGUP_GRACE);
        self.terminate_links(now);
    }

    /// Whether every session is down or the grace period is over.
    pub fn shutdown_complete(&self, now: Instant) -> bool {
        self.closing
            .is_some_and(|until| self.table.is_empty() || now >= until)
    }

    /// Ends every session left (closing its link first if not yet), then says
    /// Accounting-Off: a clean stop. (A process handing its sessions over to
    /// another does not finish: the sessions live on, and so does the NAS.)
    /// Returns the data plane, for the runtime to shut down.
    pub fn finish(&mut self, now: Instant) -> Option<Box<dyn Dataplane>> {
        self.config.dialing = false;
        self.closing.get_or_insert(now);
        self.terminate_links(now);
        for id in self.table.ids() {
            self.end_session(id, DownReason::Closed, now);
        }
        self.announce_departure();
        self.dataplane.take()
    }

    fn terminate_links(&mut self, now: Instant) {
        for id in self.table.ids() {
            if let Some(session) = self.table.get_mut(id) {
                session.aaa.cause = Some(crate::radius::acct::TerminateCause::AdminReboot);
                session.link.close(now);
            }
            self.flush(id, now);
        }
    }
}
