//! The session hub: one task that owns every call's PPP link, the raw GRE socket,
//! the TUN device and the XDP data plane, and moves frames between them.
//!
//! Control connections run in their own tasks (the PPTP shell) and tell the hub
//! when a call is up or down ([`HubCommand`]); the hub tells them to clear a call
//! when its link dies. Keeping all links in one task keeps the data structures
//! lock-free; PPP negotiation is light, and each link is a sans-IO machine.
//!
//! Per received GRE packet: find the session by (source address, call ID), judge the
//! sequence number (the agent's own [`Sequencer`], or nothing when XDP sits in front
//! and already did), hand the PPP frame to the link, and write IPv4 data that comes
//! back to the TUN device (decrypting MPPE first) — or, for a Windows client's
//! DHCPINFORM, answer it into the session. Per TUN packet: find the session
//! by destination (the concentrator) or take the only one (a client), encrypt if
//! the session uses MPPE, add PPP and GRE, send. Frames are assembled in buffers
//! the hub owns: no allocation per packet.
//!
//! When a server link comes up the session gets its network layer in the XDP maps
//! (fast unless MPPE) and a route through the TUN device for what XDP leaves to the
//! kernel; when it goes down everything it had is removed again.
//!
//! With RADIUS ([`HubOptions::radius`]) the hub hands each claim of a link in
//! `Verifier::External` mode to a task that asks the servers and answers through a
//! channel of the hub's own; it sends Accounting Start when a session is up,
//! Interim-Update and Stop with the session's counters (XDP and agent path added up),
//! and ends sessions on Session-Timeout, Idle-Timeout, Disconnect-Request
//! ([`HubCommand::Kill`]) and applies CoA ([`HubCommand::Reauthorize`]). The
//! per-session state for that lives in [`super::aaa`].
//!
//! Demand-dial interfaces ([`DemandIface`]) have a TUN device of their own, with their
//! routes, from the start. A reader task per device hands the hub what the kernel
//! routes into it (one copy per packet into a bounded channel: site-to-site links
//! are few and take the agent's path anyway); the interface's [`DemandDial`] machine
//! says whether to send it on the session bound to the interface, queue it, dial
//! (through the [`Dialer`] the owner gave) or hang up. A session is bound to an interface when we placed its
//! call for it, or when the peer authenticates with the interface's name (a calling
//! router); [`keep_new_call`] settles two calls for one interface.

use std::{
    collections::HashMap,
    io,
    net::Ipv4Addr,
    sync::Arc,
    time::{Duration, Instant},
};

use ipnet::Ipv4Net;
use pptp_common::seq::Judgement;
use rand::{SeedableRng as _, rngs::StdRng};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::{
    config::LiveLimits,
    dataplane::xdp::{CallSpec, NetworkSpec, Slot, XdpDataplane},
    demand::{Action, DemandDial, Placer, Verdict, keep_new_call},
    dhcp::{DhcpInformResponder, MAX_REPLY_LEN},
    gre::{GreHeader, SeqVerdict, Sequencer},
    inet::Ipv4Packet,
    mppe::{Decrypted, Decryptor, Encryptor, MppeConfig, MppeError, cipher::ENCRYPT_HEADROOM},
    ppp::{
        frame::{Framing, protocol},
        link::{ClaimTicket, DownReason, Event, Link, LinkConfig, LinkUp},
    },
    pptp::{
        call_id::SharedCallIds,
        shell::{CallClears, Command},
    },
    radius::{
        AuthJob, Authorized, Radius,
        acct::{Counters, Due, Record, SessionClock, Status, TerminateCause},
        auth::Authorization,
    },
};

use super::{
    aaa::SessionAaa,
    deadlines::Deadlines,
    gre_socket::{GreSocket, RecvBatch},
    routes::SessionRoutes,
    tun::Tun,
};

/// A command to a control connection's task. Every control connection allocates
/// its Call IDs from a [`SharedCallIds`]: the concentrator shares one among all its
/// connections, since sessions are told apart by (peer address, Call ID) and many
/// clients can share one address behind a NAT.
pub type ControlCommand = Command<SharedCallIds>;

/// Commands waiting for the hub: senders wait for room (a control connection then
/// stops reading its peer), so a hub that falls behind slows its sources down
/// instead of queueing without bound.
pub const HUB_QUEUE: usize = 1024;

/// The hub's inbox ([`HUB_QUEUE`] commands).
pub fn channel() -> (mpsc::Sender<HubCommand>, mpsc::Receiver<HubCommand>) {
    mpsc::channel(HUB_QUEUE)
}

/// Told what becomes of a session: [`SessionEvent::Up`] when IPCP opens (again,
/// after a renegotiation) and [`SessionEvent::Down`] once. Called on the hub's
/// task: it must not block (a client's bounded channel with room for its one
/// call's events, or a watch).
pub type SessionNotify = Box<dyn FnMut(SessionEvent) + Send>;

/// (peer's outer address, our call ID): how GRE from the peer names a session.
pub type SessionKey = (Ipv4Addr, u16);

/// A call that came up on a control connection.
pub struct CallUp {
    pub peer_addr: Ipv4Addr,
    pub local_addr: Ipv4Addr,
    pub local_call_id: u16,
    pub peer_call_id: u16,
    /// The PPP link to run over it.
    pub link: LinkConfig,
    /// The control connection, to clear the call when the link ends.
    pub control: Arc<CallClears>,
    /// Told when the link comes up and when the session ends.
    pub notify: Option<SessionNotify>,
    /// The demand-dial interface (index in [`HubOptions::demand`]) we placed this
    /// call for; `None` for calls we answered.
    pub router: Option<usize>,
}

/// A demand-dial interface: its device (created, with its routes, before any call)
/// and its machine.
pub struct DemandIface {
    /// The name a calling router authenticates with to be bound here.
    pub name: String,
    pub tun: Tun,
    /// Networks behind the peer router (packets from them are not spoofed).
    pub routes: Vec<Ipv4Net>,
    pub demand: DemandDial,
}

/// Starts a call for demand-dial interface `index` (its `generation`-th); the task
/// must end by sending [`HubCommand::DialEnded`] with both.
pub type Dialer = Box<dyn FnMut(usize, u64) + Send>;

/// What the hub is asked to do.
pub enum HubCommand {
    /// Start the PPP link of a call.
    CallUp(Box<CallUp>),
    /// The control connection lost the call.
    CallDown(SessionKey),
    /// Close every link (LCP Terminate), clear every call, undo every route and
    /// map entry, then stop.
    Shutdown(oneshot::Sender<()>),
    /// An IPv4 packet to carry as if the TUN device had given it.
    Send(Vec<u8>),
    /// Report every session.
    Sessions(oneshot::Sender<Vec<SessionInfo>>),
    /// Hang up the sessions selected (LCP Terminate, then the call is cleared);
    /// answers how many were selected.
    Kill(Selector, oneshot::Sender<usize>),
    /// Report the hub's drop counters.
    Stats(oneshot::Sender<HubStats>),
    /// Report what the hub holds now.
    Load(oneshot::Sender<HubLoad>),
    /// Change the timeouts of session `id` (RADIUS CoA); answers whether it exists.
    Reauthorize(u64, Authorization, oneshot::Sender<bool>),
    /// A call placed by the [`Dialer`] ended (whether or not it came up).
    DialEnded { index: usize, generation: u64 },
    /// Report every demand-dial interface.
    Interfaces(oneshot::Sender<Vec<InterfaceInfo>>),
}

/// Which sessions a [`HubCommand::Kill`] hangs up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The session with this id ([`SessionInfo::id`]).
    Id(u64),
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
    pub id: u64,
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
}

/// One demand-dial interface, as operators see it (`pptp-agent interfaces`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceInfo {
    pub name: String,
    pub device: String,
    pub state: crate::demand::State,
    /// The session bound to it ([`SessionInfo::id`]).
    pub session: Option<u64>,
    /// Packets and bytes waiting for the link.
    pub queued_packets: usize,
    pub queued_bytes: usize,
    #[serde(flatten)]
    pub stats: crate::demand::DemandStats,
}

/// What the owner of a call hears about its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    Up(LinkUp),
    Down(DownReason),
}

/// Where the IPv4 packets of sessions meet the kernel.
pub enum TunMode {
    /// The concentrator's shared device: routes per client address.
    Concentrator(Tun),
    /// A client's device, created when its link comes up, with these routes.
    Client { name: String, routes: Vec<String> },
    /// No device: IPv4 from sessions goes to this channel with the address of the
    /// session it arrived on, and [`HubCommand::Send`] puts packets into the session
    /// whose address is their source (the load generator drives many client
    /// sessions this way). A full channel drops the packet (counted in
    /// `send_errors`).
    Probe(mpsc::Sender<(Ipv4Addr, Vec<u8>)>),
}

/// What a concentrator's hub does beyond carrying sessions.
#[derive(Default)]
pub struct HubOptions {
    /// Answers Windows clients' DHCPINFORM.
    pub dhcp: Option<DhcpInformResponder>,
    /// The limits in force; the hub checks sessions per user when authentication
    /// succeeds.
    pub limits: LiveLimits,
    /// RADIUS authentication (for links in `Verifier::External` mode) and accounting.
    pub radius: Option<Radius>,
    /// Networks behind a user (a router): routed to its session while it is up.
    pub user_routes: HashMap<String, Vec<Ipv4Net>>,
    /// Demand-dial interfaces.
    pub demand: Vec<DemandIface>,
    /// Places the calls of demand-dial interfaces.
    pub dialer: Option<Dialer>,
}

/// Packets the hub dropped, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HubStats {
    pub malformed_gre: u64,
    pub unknown_session: u64,
    pub old_sequence: u64,
    /// GRE sequence numbers too far ahead of the window (`pptp_common::seq`).
    pub sequence_jump: u64,
    /// IPv4 frames whose payload is not an IPv4 packet (IPv6 or garbage).
    pub malformed_ip: u64,
    pub spoofed_source: u64,
    pub no_session_for_destination: u64,
    pub send_errors: u64,
    /// MPPE packets refused (out of window, awaiting a flush, malformed).
    pub mppe_refused: u64,
    /// Stateful MPPE losses that made us send a CCP Reset-Request.
    pub mppe_resets_sent: u64,
    /// DHCPINFORMs answered for clients.
    pub dhcp_informs_answered: u64,
    /// Unreadable DHCP requests dropped.
    pub dhcp_malformed: u64,
    /// Logins refused: wrong credentials, unknown user, dial-in denied, RADIUS reject.
    pub auth_failures: u64,
}

/// What the hub holds now: each bounded by the sessions (and their pending RADIUS
/// exchanges), never by the traffic.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HubLoad {
    /// Session timers pending (at most one per session).
    pub timers: usize,
    /// Access-Requests waiting for a RADIUS verdict.
    pub authentications: usize,
    /// Accounting requests in flight.
    pub accounting: usize,
}

/// A [`HubStats`] counter that counts something other than dropped packets.
pub struct HubEvent {
    /// The field's name in [`HubStats`] (and in the API's JSON).
    pub field: &'static str,
    /// Its Prometheus counter.
    pub metric: &'static str,
    /// What it counts, for `stats` and the metric's HELP.
    pub help: &'static str,
}

impl HubStats {
    /// The counters that are not drops; every other field is a drop reason.
    pub const EVENTS: [HubEvent; 3] = [
        HubEvent {
            field: "mppe_resets_sent",
            metric: "pptp_mppe_reset_requests_total",
            help: "CCP Reset-Requests sent (stateful MPPE lost sync)",
        },
        HubEvent {
            field: "dhcp_informs_answered",
            metric: "pptp_dhcp_informs_answered_total",
            help: "DHCPINFORMs answered for clients",
        },
        HubEvent {
            field: "auth_failures",
            metric: "pptp_auth_failures_total",
            help: "Logins refused (credentials, unknown user, dial-in denied, RADIUS reject)",
        },
    ];

    /// Whether `field` counts drops.
    pub fn is_drop(field: &str) -> bool {
        Self::EVENTS.iter().all(|e| e.field != field)
    }
}

/// How a session's GRE sequence numbers are kept.
enum Sequencing {
    /// By the agent alone (no XDP in front of this session).
    Local(Sequencer),
    /// In the slot shared with the XDP programs, which drop old packets early and
    /// record what they forward themselves.
    Shared(Slot),
}

impl Sequencing {
    /// Moves the receive window to `seq`, a packet the agent took.
    fn accept(&mut self, xdp: Option<&XdpDataplane>, seq: u32) {
        match (self, xdp) {
            (Sequencing::Local(s), _) => s.accept(seq),
            (Sequencing::Shared(slot), Some(xdp)) => xdp.seq().accept(slot.0, seq),
            (Sequencing::Shared(_), None) => unreachable!("shared sequencing without XDP"),
        }
    }
}

/// Why the agent's path refused a received data packet.
enum Refusal {
    /// Bytes in an IPv4 frame that are not an IPv4 packet.
    MalformedIp,
    /// An inner source that is not the session's.
    Spoofed,
    /// Refused and counted where it was judged (MPPE).
    Counted,
}

/// A session's MPPE, one half per direction.
struct Cipher {
    encrypt: Encryptor,
    decrypt: Decryptor,
    /// When we last asked the peer for a flush (stateful mode, lost sync).
    last_reset_request: Option<Instant>,
}

/// While stateful MPPE waits for a flushed packet, the Reset-Request (which may be
/// lost too) is sent again at most this often, as packets keep arriving.
const RESET_REQUEST_RETRY: Duration = Duration::from_millis(200);
/// How long a shutdown waits for the peers' LCP Terminate-Acks before it clears the
/// calls anyway. A peer that gets Call-Clear-Request first (pptpd) kills its pppd
/// before the Ack leaves, so the hang-up would look like a lost link.
const HANGUP_GRACE: Duration = Duration::from_secs(3);

/// Packets a session moved through the agent.
#[derive(Debug, Default, Clone, Copy)]
struct AgentCounters {
    rx_packets: u64,
    rx_bytes: u64,
    tx_packets: u64,
    tx_bytes: u64,
}

struct Session {
    id: u64,
    started: Instant,
    user: Option<String>,
    counters: AgentCounters,
    peer_addr: Ipv4Addr,
    local_call_id: u16,
    peer_call_id: u16,
    link: Link,
    seq: Sequencing,
    up: Option<LinkUp>,
    framing: Framing,
    mppe: Option<Cipher>,
    control: Arc<CallClears>,
    notify: Option<SessionNotify>,
    aaa: SessionAaa,
    /// Networks behind the peer, routed to the session once it is up.
    routes: Vec<Ipv4Net>,
    /// Our end of the outer connection.
    local_addr: Ipv4Addr,
    /// Who placed the call.
    placer: Placer,
    /// The demand-dial interface it is bound to.
    router: Option<usize>,
}

/// How long a router call replaced by another (two calls for one interface) still
/// takes what the peer sends on it.
const LINGER: Duration = Duration::from_secs(1);

/// Packets read from demand-dial interfaces' devices, with the interface's index.
type RouterPackets = mpsc::Receiver<(usize, Vec<u8>)>;

/// The tasks reading demand-dial devices; stopped when the hub's run ends.
struct Readers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Readers {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// A demand-dial interface at run time.
struct Router {
    name: String,
    tun: std::sync::Arc<Tun>,
    routes: Vec<Ipv4Net>,
    demand: DemandDial,
    /// The session its traffic goes to.
    session: Option<SessionKey>,
    /// A call that won over `session` (two calls for one interface) and takes its
    /// place once its link is up: make before break, so that packets already on
    /// the old link are not lost.
    next: Option<SessionKey>,
    /// Calls placed so far (tells a late [`HubCommand::DialEnded`] from the current).
    generation: u64,
}

/// A RADIUS verdict for the session (key, id) and the claim (ticket) it was asked for.
type AuthReply = (SessionKey, u64, ClaimTicket, Authorized);

/// The hub. Build it with [`Hub::new`], run it with [`Hub::run`].
pub struct Hub {
    gre: GreSocket,
    tun_mode: TunMode,
    /// The client's device once its link is up.
    client_tun: Option<Tun>,
    xdp: Option<XdpDataplane>,
    sessions: HashMap<SessionKey, Session>,
    by_client: HashMap<Ipv4Addr, SessionKey>,
    timers: Deadlines<SessionKey>,
    next_session_id: u64,
    /// Assembles outgoing GRE packets.
    scratch: Vec<u8>,
    /// Holds a received MPPE packet while it is decrypted in place.
    decrypt_buf: Vec<u8>,
    /// Answers Windows clients' DHCPINFORM (concentrator only).
    dhcp: Option<DhcpInformResponder>,
    dhcp_reply: Vec<u8>,
    limits: LiveLimits,
    user_routes: HashMap<String, Vec<Ipv4Net>>,
    /// Routes to networks behind sessions (concentrator only).
    session_routes: SessionRoutes,
    routers: Vec<Router>,
    /// Replaced router calls still accepting data until they are hung up.
    lingering: Vec<(Instant, SessionKey)>,
    dialer: Option<Dialer>,
    stats: HubStats,
    radius: Option<Radius>,
    /// Accounting requests in flight (awaited, within a bound, at shutdown).
    accounting: tokio::task::JoinSet<()>,
    /// Access-Requests in flight, one per session at most; each task ends with
    /// its verdict.
    authentications: tokio::task::JoinSet<AuthReply>,
    /// A shutdown in progress: who waits for it, and until when the links may take
    /// to go down.
    closing: Option<(oneshot::Sender<()>, Instant)>,
}

enum Wake {
    Gre(io::Result<usize>),
    Tun(io::Result<usize>),
    Router(Option<(usize, Vec<u8>)>),
    Command(Option<HubCommand>),
    Authorized(Option<AuthReply>),
    Timer,
}

impl Hub {
    pub fn new(
        gre: GreSocket,
        tun_mode: TunMode,
        xdp: Option<XdpDataplane>,
        options: HubOptions,
    ) -> Self {
        Self {
            gre,
            tun_mode,
            client_tun: None,
            xdp,
            sessions: HashMap::new(),
            by_client: HashMap::new(),
            timers: Deadlines::default(),
            next_session_id: 1,
            scratch: Vec::with_capacity(2048),
            decrypt_buf: Vec::with_capacity(2048),
            dhcp: options.dhcp,
            dhcp_reply: Vec::with_capacity(MAX_REPLY_LEN),
            limits: options.limits,
            user_routes: options.user_routes,
            session_routes: SessionRoutes::default(),
            routers: options
                .demand
                .into_iter()
                .map(|d| Router {
                    name: d.name,
                    tun: std::sync::Arc::new(d.tun),
                    routes: d.routes,
                    demand: d.demand,
                    session: None,
                    next: None,
                    generation: 0,
                })
                .collect(),
            lingering: Vec::new(),
            dialer: options.dialer,
            stats: HubStats::default(),
            radius: options.radius,
            accounting: tokio::task::JoinSet::new(),
            authentications: tokio::task::JoinSet::new(),
            closing: None,
        }
    }

    /// Runs until [`HubCommand::Shutdown`] or until every sender is gone. A shutdown
    /// terminates every link (LCP Terminate-Request) and waits, at most
    /// [`HANGUP_GRACE`], for the links to go down (Terminate-Ack) before it clears
    /// the calls that are left and answers.
    pub async fn run(mut self, mut commands: mpsc::Receiver<HubCommand>) {
        let mut batch = RecvBatch::default();
        let mut tun_buf = vec![0u8; 65_536];
        let (readers, mut from_routers) = self.start_router_readers();
        let mut has_routers = !readers.0.is_empty();
        for index in 0..self.routers.len() {
            self.router_actions(index);
        }
        loop {
            if let Some((_, until)) = &self.closing
                && (self.sessions.is_empty() || Instant::now() >= *until)
            {
                self.shutdown();
                if let Some((done, _)) = self.closing.take() {
                    let _ = done.send(());
                }
                self.finish_accounting().await;
                return;
            }
            let deadline = self
                .timers
                .next()
                .into_iter()
                .chain(self.routers.iter().filter_map(|r| r.demand.poll_timeout()))
                .chain(self.lingering.iter().map(|(at, _)| *at))
                .chain(self.closing.as_ref().map(|(_, until)| *until))
                .min();
            let wake = {
                let tun = current_tun(&self.tun_mode, &self.client_tun);
                let authenticating = !self.authentications.is_empty();
                tokio::select! {
                    r = self.gre.recv_batch(&mut batch) => Wake::Gre(r),
                    r = recv_tun(tun, &mut tun_buf) => Wake::Tun(r),
                    r = from_routers.recv(), if has_routers => Wake::Router(r),
                    c = commands.recv() => Wake::Command(c),
                    Some(r) = self.authentications.join_next(), if authenticating => {
                        Wake::Authorized(r.ok())
                    }
                    () = sleep_until(deadline) => Wake::Timer,
                }
            };
            match wake {
                Wake::Gre(Ok(n)) => {
                    // A call's first PPP frame can arrive together with the command
                    // that installs the call (the peer answers our Call-Reply at
                    // once): take the commands first so it is not dropped as unknown.
                    while let Ok(command) = commands.try_recv() {
                        self.on_command(command);
                    }
                    for i in 0..n {
                        match batch.packet(i) {
                            Ok((bytes, received)) => self.on_gre(bytes, &received).await,
                            Err(_) => self.stats.malformed_gre += 1,
                        }
                    }
                }
                Wake::Gre(Err(e)) => tracing::warn!(error = %e, "GRE socket"),
                Wake::Tun(Ok(n)) => self.on_tun_packet(&tun_buf[..n]),
                Wake::Tun(Err(e)) => tracing::warn!(error = %e, "TUN device"),
                Wake::Router(Some((index, packet))) => self.on_router_packet(index, &packet),
                // Every reader ended (their devices failed, logged): stop polling.
                Wake::Router(None) => has_routers = false,
                Wake::Command(Some(command)) => self.on_command(command),
                Wake::Authorized(Some((key, id, ticket, authorized))) => {
                    self.on_authorized(key, id, ticket, authorized)
                }
                Wake::Authorized(None) => {}
                Wake::Command(None) => {
                    self.shutdown();
                    self.finish_accounting().await;
                    return;
                }
                Wake::Timer => {
                    self.on_timers();
                    self.on_router_timers(Instant::now());
                    self.on_lingering(Instant::now());
                }
            }
        }
    }

    /// Carries out `command`.
    fn on_command(&mut self, command: HubCommand) {
        match command {
            HubCommand::CallUp(call) => self.on_call_up(*call),
            HubCommand::CallDown(key) => self.on_call_down(key),
            HubCommand::Send(packet) => self.on_tun_packet(&packet),
            HubCommand::Shutdown(done) => {
                // A second request joins the first one's deadline (the first waiter
                // sees its channel closed).
                let until = match self.closing.take() {
                    Some((_, until)) => until,
                    None => {
                        self.terminate_links();
                        Instant::now() + HANGUP_GRACE
                    }
                };
                self.closing = Some((done, until));
            }
            HubCommand::Sessions(reply) => {
                let _ = reply.send(self.session_infos());
            }
            HubCommand::Kill(selector, reply) => {
                let _ = reply.send(self.kill(&selector));
            }
            HubCommand::Stats(reply) => {
                let _ = reply.send(self.stats);
            }
            HubCommand::Load(reply) => {
                let _ = reply.send(self.load());
            }
            HubCommand::Reauthorize(id, update, reply) => {
                let _ = reply.send(self.reauthorize(id, &update));
            }
            HubCommand::DialEnded { index, generation } => self.on_dial_ended(index, generation),
            HubCommand::Interfaces(reply) => {
                let _ = reply.send(self.interface_infos());
            }
        }
    }

    /// Drop counters.
    pub fn stats(&self) -> HubStats {
        self.stats
    }

    fn load(&mut self) -> HubLoad {
        while self.accounting.try_join_next().is_some() {}
        HubLoad {
            timers: self.timers.len(),
            authentications: self.authentications.len(),
            accounting: self.accounting.len(),
        }
    }

    fn on_call_up(&mut self, call: CallUp) {
        let key = (call.peer_addr, call.local_call_id);
        if self.sessions.contains_key(&key) {
            // Control connections to or from one address must share their Call IDs
            // (SharedCallIds); a second call under a live key would take its GRE.
            tracing::error!(peer = %key.0, call_id = key.1, "call refused: its Call ID is already live for this peer");
            call.control.clear(call.local_call_id);
            return;
        }
        let seq = match &mut self.xdp {
            Some(xdp) => match xdp.install(CallSpec {
                peer_addr: call.peer_addr,
                local_addr: call.local_addr,
                local_call_id: call.local_call_id,
                peer_call_id: call.peer_call_id,
            }) {
                Ok(slot) => Sequencing::Shared(slot),
                Err(e) => {
                    tracing::error!(error = %e, "cannot install the call in the data plane");
                    call.control.clear(call.local_call_id);
                    return;
                }
            },
            None => Sequencing::Local(Sequencer::new(0)),
        };
        let mut link = Link::new(call.link, Box::new(StdRng::from_os_rng()));
        let now = Instant::now();
        link.open(now);
        tracing::info!(peer = %call.peer_addr, call_id = call.local_call_id, "call up, PPP starting");
        let id = self.next_session_id;
        self.next_session_id += 1;
        self.sessions.insert(
            key,
            Session {
                id,
                started: Instant::now(),
                user: None,
                counters: AgentCounters::default(),
                peer_addr: call.peer_addr,
                local_call_id: call.local_call_id,
                peer_call_id: call.peer_call_id,
                link,
                seq,
                up: None,
                framing: Framing::default(),
                mppe: None,
                control: call.control,
                notify: call.notify,
                aaa: SessionAaa::default(),
                routes: Vec::new(),
                local_addr: call.local_addr,
                placer: if call.router.is_some() {
                    Placer::Us
                } else {
                    Placer::Peer
                },
                router: None,
            },
        );
        if let Some(index) = call.router {
            self.bind(index, key);
        }
        self.flush(key, now);
    }

    fn on_call_down(&mut self, key: SessionKey) {
        let now = Instant::now();
        if let Some(session) = self.sessions.get_mut(&key) {
            session.link.lower_down(now);
            self.flush(key, now);
        }
        // A link that did not report Down on lower_down still goes.
        self.end_session(key, DownReason::LowerLayerDown);
    }

    async fn on_gre(&mut self, buf: &[u8], received: &super::gre_socket::Received) {
        let Ok((header, payload)) = GreHeader::parse(&buf[received.gre_offset..received.end])
        else {
            self.stats.malformed_gre += 1;
            return;
        };
        let key = (received.src, header.call_id);
        let Some(session) = self.sessions.get_mut(&key) else {
            self.stats.unknown_session += 1;
            return;
        };
        // Judged here whatever XDP did (it leaves what it hands over unrecorded, and
        // never sees outer fragments); the window moves only once the packet is taken.
        let verdict = match (&mut session.seq, self.xdp.as_ref()) {
            (Sequencing::Local(seq), _) => {
                if let Some(ack) = header.ack {
                    seq.on_ack(ack);
                }
                header.seq.map(|s| seq.judge(s))
            }
            (Sequencing::Shared(slot), Some(xdp)) => {
                header.seq.map(|s| match xdp.seq().judge(slot.0, s) {
                    Judgement::New => SeqVerdict::Accept { lost: 0 },
                    Judgement::Duplicate => SeqVerdict::Duplicate,
                    Judgement::Old => SeqVerdict::Old,
                    Judgement::TooFar => SeqVerdict::TooFar,
                })
            }
            (Sequencing::Shared(_), None) => unreachable!("shared sequencing without XDP"),
        };
        match verdict {
            Some(SeqVerdict::Duplicate | SeqVerdict::Old) => {
                self.stats.old_sequence += 1;
                return;
            }
            Some(SeqVerdict::TooFar) => {
                self.stats.sequence_jump += 1;
                return;
            }
            Some(SeqVerdict::Accept { .. }) | None => {}
        }
        if payload.is_empty() {
            return;
        }
        let now = Instant::now();
        let data = session.link.handle_frame(now, payload);
        let expected_source = match &self.tun_mode {
            TunMode::Concentrator(_) => session.up.as_ref().map(|up| up.peer_ip),
            TunMode::Client { .. } | TunMode::Probe(_) => None,
        };
        let routes = &self.session_routes;
        let behind_router: &[Ipv4Net] = match session.router {
            Some(index) => &self.routers[index].routes,
            None => &[],
        };
        // The decryption buffer is taken out of the hub while the session is borrowed.
        let mut decrypted = std::mem::take(&mut self.decrypt_buf);
        // (The link hands over plain IPv4 only on sessions without MPPE.)
        let packet: Result<&[u8], Refusal> = match data {
            Some(frame) if frame.protocol == protocol::IPV4 => Ok(frame.info),
            Some(frame) if frame.protocol == protocol::COMPRESSED => {
                match decrypt(session, frame.info, &mut decrypted, now, &mut self.stats) {
                    Some((start, len)) => Ok(&decrypted[start..start + len]),
                    None => Err(Refusal::Counted),
                }
            }
            _ => Ok(&[]),
        };
        let packet = packet.and_then(|bytes| {
            if bytes.is_empty() {
                return Ok(None);
            }
            let ip = Ipv4Packet::parse(bytes).ok_or(Refusal::MalformedIp)?;
            let src = ip.source;
            let spoofed = expected_source.is_some_and(|peer| {
                src != peer
                    && !routes.is_behind(key, src)
                    && !behind_router.iter().any(|net| net.contains(&src))
            });
            if spoofed {
                return Err(Refusal::Spoofed);
            }
            Ok(Some(&bytes[..ip.len]))
        });
        let packet = match packet {
            Ok(packet) => {
                if let Some(seq) = header.seq {
                    session.seq.accept(self.xdp.as_ref(), seq);
                }
                packet
            }
            Err(refusal) => {
                match refusal {
                    Refusal::MalformedIp => self.stats.malformed_ip += 1,
                    Refusal::Spoofed => self.stats.spoofed_source += 1,
                    Refusal::Counted => {}
                }
                None
            }
        };
        if let Some(packet) = packet {
            session.counters.rx_packets += 1;
            session.counters.rx_bytes += packet.len() as u64;
            let answer = match &self.dhcp {
                Some(dhcp) => dhcp.respond(packet, &mut self.dhcp_reply),
                None => Ok(None),
            };
            match answer {
                Ok(Some(len)) => {
                    send_ip(
                        &self.gre,
                        self.xdp.as_ref(),
                        session,
                        &mut self.scratch,
                        &self.dhcp_reply[..len],
                        &mut self.stats,
                    );
                    self.stats.dhcp_informs_answered += 1;
                    self.decrypt_buf = decrypted;
                    self.flush(key, now);
                    return;
                }
                Ok(None) => {}
                Err(_) => {
                    self.stats.dhcp_malformed += 1;
                    self.decrypt_buf = decrypted;
                    self.flush(key, now);
                    return;
                }
            }
            let tun = match session.router {
                Some(index) => {
                    let router = &mut self.routers[index];
                    router.demand.on_inbound(now);
                    Some(&*router.tun)
                }
                None => current_tun(&self.tun_mode, &self.client_tun),
            };
            if let TunMode::Probe(probe) = &self.tun_mode {
                let sent = session
                    .up
                    .as_ref()
                    .is_some_and(|up| probe.try_send((up.local_ip, packet.to_vec())).is_ok());
                if !sent {
                    self.stats.send_errors += 1;
                }
            } else if let Some(tun) = tun
                && tun.send(packet).await.is_err()
            {
                self.stats.send_errors += 1;
            }
        }
        self.decrypt_buf = decrypted;
        self.flush(key, now);
    }

    fn on_tun_packet(&mut self, packet: &[u8]) {
        let Some(ip) = Ipv4Packet::parse(packet) else {
            return;
        };
        let packet = &packet[..ip.len];
        let key = match &self.tun_mode {
            TunMode::Concentrator(_) => self
                .by_client
                .get(&ip.destination)
                .copied()
                .or_else(|| self.session_routes.lookup(ip.destination)),
            TunMode::Client { .. } => self.sessions.keys().next().copied(),
            TunMode::Probe(_) => self.by_client.get(&ip.source).copied(),
        };
        let Some(session) = key.and_then(|key| self.sessions.get_mut(&key)) else {
            self.stats.no_session_for_destination += 1;
            return;
        };
        send_ip(
            &self.gre,
            self.xdp.as_ref(),
            session,
            &mut self.scratch,
            packet,
            &mut self.stats,
        );
    }

    fn session_infos(&self) -> Vec<SessionInfo> {
        let now = Instant::now();
        let mut infos: Vec<SessionInfo> = self
            .sessions
            .values()
            .map(|session| {
                let c = counters(self.xdp.as_ref(), session);
                let fast = matches!(session.seq, Sequencing::Shared(_));
                let path = if fast && session.up.is_some() && session.mppe.is_none() {
                    DataPath::Xdp
                } else {
                    DataPath::Agent
                };
                let client = session.up.as_ref().map(|up| match self.tun_mode {
                    TunMode::Concentrator(_) => up.peer_ip,
                    TunMode::Client { .. } | TunMode::Probe(_) => up.local_ip,
                });
                SessionInfo {
                    id: session.id,
                    user: session.user.clone(),
                    peer: session.peer_addr,
                    local_call_id: session.local_call_id,
                    peer_call_id: session.peer_call_id,
                    client,
                    state: if session.up.is_some() {
                        SessionState::Up
                    } else {
                        SessionState::Starting
                    },
                    path,
                    mppe: session
                        .up
                        .as_ref()
                        .and_then(|up| up.mppe.as_ref())
                        .map(|m| {
                            let bits = match m.params.strength {
                                crate::mppe::KeyStrength::Bits40 => 40,
                                crate::mppe::KeyStrength::Bits56 => 56,
                                crate::mppe::KeyStrength::Bits128 => 128,
                            };
                            let mode = if m.params.stateless {
                                "stateless"
                            } else {
                                "stateful"
                            };
                            format!("{bits}-bit {mode}")
                        }),
                    interface: session.router.map(|i| self.routers[i].name.clone()),
                    uptime_secs: now.duration_since(session.started).as_secs(),
                    rx_packets: c.input_packets,
                    rx_bytes: c.input_octets,
                    tx_packets: c.output_packets,
                    tx_bytes: c.output_octets,
                }
            })
            .collect();
        infos.sort_by_key(|i| i.id);
        infos
    }

    fn kill(&mut self, selector: &Selector) -> usize {
        let now = Instant::now();
        let keys: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| match selector {
                Selector::Id(id) => s.id == *id,
                Selector::User(user) => s.user.as_deref() == Some(user.as_str()),
                Selector::All => true,
            })
            .map(|(key, _)| *key)
            .collect();
        for key in &keys {
            if let Some(session) = self.sessions.get_mut(key) {
                tracing::info!(id = session.id, user = ?session.user, "killed by the operator");
                session.aaa.cause = Some(TerminateCause::AdminReset);
                session.link.close(now);
            }
            self.flush(*key, now);
        }
        keys.len()
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        while let Some(key) = self.timers.pop_due(now) {
            if let Some(session) = self.sessions.get_mut(&key) {
                session.link.handle_timeout(now);
                self.on_session_clock(key, now);
                self.flush(key, now);
            }
        }
    }

    /// Sends what the link queued, acts on its events and re-arms its timer.
    fn flush(&mut self, key: SessionKey, now: Instant) {
        loop {
            let Some(session) = self.sessions.get_mut(&key) else {
                return;
            };
            while let Some(frame) = session.link.poll_transmit() {
                send_gre(
                    &self.gre,
                    self.xdp.as_ref(),
                    session,
                    &mut self.scratch,
                    &frame,
                    &mut self.stats,
                );
            }
            let Some(event) = session.link.poll_event() else {
                break;
            };
            self.on_link_event(key, event);
        }
        if let Some(session) = self.sessions.get(&key) {
            let clock = session
                .aaa
                .clock
                .as_ref()
                .and_then(SessionClock::poll_timeout);
            let link = session.link.poll_timeout();
            let at = [link, clock].into_iter().flatten().min();
            self.timers.set(key, at.map(|at| at.max(now)));
        }
    }

    fn on_link_event(&mut self, key: SessionKey, event: Event) {
        match event {
            Event::AuthSucceeded { user } => {
                let logged = crate::escape::Escaped(&user).to_string();
                let user = String::from_utf8_lossy(&user).into_owned();
                tracing::info!(peer = %key.0, user = %logged, "authenticated");
                let others = self
                    .sessions
                    .values()
                    .filter(|s| s.user.as_deref() == Some(user.as_str()))
                    .count();
                let over = self
                    .limits
                    .get()
                    .sessions_per_user
                    .is_some_and(|limit| others >= limit as usize);
                if let Some(session) = self.sessions.get_mut(&key) {
                    if over {
                        tracing::warn!(peer = %key.0, user = %logged, "hung up: the user has as many sessions as allowed");
                        session.link.close(Instant::now());
                    }
                    if session.placer == Placer::Peer {
                        session.routes = self.user_routes.get(&user).cloned().unwrap_or_default();
                    }
                    if let Some(a) = &session.aaa.authorization {
                        session.routes.extend(&a.routes);
                    }
                    session.user = Some(user.clone());
                    // A calling router: its user name is one of our interfaces.
                    if session.placer == Placer::Peer
                        && session.router.is_none()
                        && let Some(index) = self.routers.iter().position(|r| r.name == user)
                    {
                        self.bind(index, key);
                    }
                }
            }
            Event::Up(up) => {
                if let Err(e) = self.network_up(key, &up) {
                    tracing::error!(error = %e, "cannot bring the session's network up");
                    if let Some(session) = self.sessions.get_mut(&key) {
                        session.link.close(Instant::now());
                    }
                    return;
                }
                let mppe = up.mppe.as_ref().map(|m| m.params);
                tracing::info!(peer = %key.0, local = %up.local_ip, remote = %up.peer_ip, ?mppe, "session up");
                if let Some(session) = self.sessions.get_mut(&key) {
                    session.framing = up.framing;
                    session.mppe = up.mppe.as_ref().map(|m| {
                        let config = MppeConfig::new(m.params.strength, m.params.stateless);
                        Cipher {
                            encrypt: Encryptor::new(m.keys.send, config),
                            decrypt: Decryptor::new(m.keys.recv, config),
                            last_reset_request: None,
                        }
                    });
                    if let Some(notify) = &mut session.notify {
                        notify(SessionEvent::Up(up.clone()));
                    }
                    session.up = Some(up);
                    if let Some(index) = session.router {
                        self.router_link_up(index, key);
                    }
                }
                self.start_accounting(key);
            }
            Event::Down(reason) => self.end_session(key, reason),
            Event::VerifyRequest(ticket, claim) => self.authenticate(key, ticket, claim),
            Event::CcpResetRequested => {
                if let Some(cipher) = self.sessions.get_mut(&key).and_then(|s| s.mppe.as_mut()) {
                    cipher.encrypt.reset();
                }
            }
            other => tracing::debug!(peer = %key.0, event = ?other, "link event"),
        }
    }

    fn network_up(&mut self, key: SessionKey, up: &LinkUp) -> anyhow::Result<()> {
        if let Some(index) = self.sessions.get(&key).and_then(|s| s.router) {
            // A router's link: its interface's device (with its routes) carries it;
            // the link's addresses go on the device for operators and for what the
            // box itself sends.
            return self.routers[index]
                .tun
                .set_link_addresses(up.local_ip, up.peer_ip);
        }
        match &self.tun_mode {
            TunMode::Concentrator(tun) => {
                let Some(session) = self.sessions.get(&key) else {
                    return Ok(());
                };
                if let (Some(xdp), Sequencing::Shared(slot)) = (&mut self.xdp, &session.seq) {
                    xdp.set_network(
                        *slot,
                        NetworkSpec {
                            client_addr: up.peer_ip,
                            mtu: up.peer_mru,
                            // XDP checks that data comes from the client's address
                            // alone: a router's session stays on the agent's path.
                            fast: up.mppe.is_none() && session.routes.is_empty(),
                        },
                    )?;
                }
                tun.add_route(&format!("{}/32", up.peer_ip))?;
                self.by_client.insert(up.peer_ip, key);
                // A router that calls again (it restarted, its old call not yet
                // timed out) takes its networks over from its own older session,
                // which is hung up.
                let stale: Vec<SessionKey> = if session.routes.is_empty() {
                    Vec::new()
                } else {
                    self.sessions
                        .iter()
                        .filter(|(k, s)| {
                            **k != key
                                && s.user == session.user
                                && s.up.is_some()
                                && !s.routes.is_empty()
                        })
                        .map(|(k, _)| *k)
                        .collect()
                };
                for old in &stale {
                    tracing::info!(user = ?session.user, old = %old.0, "a router called again: its older session gives up its routes");
                    self.session_routes.detach(*old, tun);
                }
                self.session_routes.attach(key, &session.routes, tun);
                let now = Instant::now();
                for old in stale {
                    self.hang_up(old, now);
                }
            }
            TunMode::Client { name, routes } => {
                let tun = Tun::create(name, up.local_ip, Some(up.peer_ip), up.peer_mru)?;
                for route in routes {
                    tun.add_route(route)?;
                }
                self.client_tun = Some(tun);
            }
            TunMode::Probe(_) => {
                self.by_client.insert(up.local_ip, key);
            }
        }
        Ok(())
    }

    /// Removes a session and everything it had; tells its control connection to
    /// clear the call (harmless if the call is already gone).
    fn end_session(&mut self, key: SessionKey, reason: DownReason) {
        let Some(session) = self.sessions.get(&key) else {
            return;
        };
        if matches!(reason, DownReason::AuthFailed(_)) {
            self.stats.auth_failures += 1;
        }
        if session.aaa.clock.is_some() {
            let cause = session.aaa.terminate_cause(&reason);
            self.account(key, Status::Stop, Some(cause));
        }
        let Some(mut session) = self.sessions.remove(&key) else {
            return;
        };
        self.timers.set(key, None);
        if let Some(asking) = &session.aaa.asking {
            asking.abort();
        }
        tracing::info!(peer = %key.0, call_id = key.1, %reason, "session down");
        if let (Some(xdp), Sequencing::Shared(slot)) = (&mut self.xdp, &session.seq)
            && let Err(e) = xdp.remove(*slot)
        {
            tracing::error!(error = %e, "removing the session from the data plane");
        }
        if let Some(index) = session.router {
            self.lingering.retain(|(_, k)| *k != key);
            if let Some(up) = &session.up {
                self.router_addresses_gone(index, up);
            }
            let router = &mut self.routers[index];
            if router.next == Some(key) {
                router.next = None;
            }
            if router.session == Some(key) {
                router.session = None;
                if let Some(next) = router.next.take() {
                    // The call that was to replace this one takes over now.
                    router.session = Some(next);
                    router.demand.on_connecting();
                } else {
                    // A call the peer placed that failed is not a failure of ours
                    // to back off from.
                    let was_up = session.up.is_some() || session.placer == Placer::Peer;
                    router.demand.on_link_down(was_up, Instant::now());
                }
                tracing::info!(interface = %router.name, state = ?router.demand.state(), stats = ?router.demand.stats(), "demand-dial link down");
            }
        } else if let Some(up) = &session.up {
            match &self.tun_mode {
                TunMode::Concentrator(tun) => {
                    tun.remove_route(&format!("{}/32", up.peer_ip));
                    self.by_client.remove(&up.peer_ip);
                    self.session_routes.detach(key, tun);
                }
                TunMode::Client { .. } => self.client_tun = None,
                TunMode::Probe(_) => {
                    self.by_client.remove(&up.local_ip);
                }
            }
        }
        session.control.clear(session.local_call_id);
        if let Some(notify) = &mut session.notify {
            notify(SessionEvent::Down(reason));
        }
        if let Some(index) = session.router {
            self.router_actions(index);
        }
    }

    // ---- demand-dial interfaces ----

    /// A router session's link addresses leave the interface's device; the
    /// interface's routes (which Linux drops with a device's last address) and the
    /// addresses of the link that carries on are put back.
    fn router_addresses_gone(&mut self, index: usize, up: &LinkUp) {
        let router = &self.routers[index];
        router.tun.remove_link_addresses(up.local_ip, up.peer_ip);
        for route in &router.routes {
            if let Err(e) = router.tun.add_route(&route.to_string()) {
                tracing::error!(interface = %router.name, %route, error = format!("{e:#}"), "cannot restore the interface's route");
            }
        }
        for key in [router.session, router.next].into_iter().flatten() {
            if let Some(other) = self.sessions.get(&key).and_then(|s| s.up.as_ref()) {
                let _ = router.tun.set_link_addresses(other.local_ip, other.peer_ip);
            }
        }
    }

    /// Hangs up the replaced calls whose time is over.
    fn on_lingering(&mut self, now: Instant) {
        let (due, keep): (Vec<_>, Vec<_>) =
            self.lingering.drain(..).partition(|(at, _)| *at <= now);
        self.lingering = keep;
        for (_, key) in due {
            self.hang_up(key, now);
        }
    }

    /// One task per interface device, forwarding what the kernel routes into it.
    fn start_router_readers(&self) -> (Readers, RouterPackets) {
        let (tx, rx) = mpsc::channel(256);
        let readers = self
            .routers
            .iter()
            .enumerate()
            .map(|(index, router)| {
                let tun = router.tun.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65_536];
                    loop {
                        match tun.recv(&mut buf).await {
                            Ok(n) => {
                                if tx.send((index, buf[..n].to_vec())).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::error!(device = tun.name(), error = %e, "demand-dial device unreadable: interface stopped");
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        (Readers(readers), rx)
    }

    fn interface_infos(&self) -> Vec<InterfaceInfo> {
        self.routers
            .iter()
            .map(|r| {
                let (queued_packets, queued_bytes) = r.demand.queued();
                InterfaceInfo {
                    name: r.name.clone(),
                    device: r.tun.name().to_owned(),
                    state: r.demand.state(),
                    session: r
                        .session
                        .and_then(|key| self.sessions.get(&key))
                        .map(|s| s.id),
                    queued_packets,
                    queued_bytes,
                    stats: r.demand.stats(),
                }
            })
            .collect()
    }

    fn on_router_packet(&mut self, index: usize, packet: &[u8]) {
        let Some(ip) = Ipv4Packet::parse(packet) else {
            return;
        };
        let packet = &packet[..ip.len];
        let router = &mut self.routers[index];
        match router.demand.on_outbound(packet, Instant::now()) {
            Verdict::Send => match router.session.and_then(|key| self.sessions.get_mut(&key)) {
                Some(session) => send_ip(
                    &self.gre,
                    self.xdp.as_ref(),
                    session,
                    &mut self.scratch,
                    packet,
                    &mut self.stats,
                ),
                None => self.stats.no_session_for_destination += 1,
            },
            Verdict::Queued | Verdict::Dropped => {}
        }
        self.router_actions(index);
    }

    /// Binds session `key` to interface `index`, settling a second call for it.
    fn bind(&mut self, index: usize, key: SessionKey) {
        let Some(new) = self.sessions.get(&key) else {
            return;
        };
        let (placer, local, peer) = (new.placer, new.local_addr, new.peer_addr);
        let name = self.routers[index].name.clone();
        if let Some(old_key) = self.routers[index].session.filter(|k| *k != key)
            && let Some(old) = self.sessions.get_mut(&old_key)
        {
            let now = Instant::now();
            if keep_new_call(old.placer, placer, local, peer) {
                tracing::info!(interface = %name, ?placer, old = ?old.placer, "two calls for one interface: the new one replaces the old");
                if old.up.is_some() {
                    // The old link carries traffic until the new one is up.
                    if let Some(other) = self.routers[index].next.replace(key) {
                        self.hang_up(other, now);
                    }
                    if let Some(session) = self.sessions.get_mut(&key) {
                        session.router = Some(index);
                    }
                    return;
                }
                old.router = None;
                self.hang_up(old_key, now);
            } else {
                tracing::info!(interface = %name, ?placer, old = ?old.placer, "two calls for one interface: the new one is hung up");
                self.hang_up(key, now);
                return;
            }
        }
        self.routers[index].session = Some(key);
        self.routers[index].demand.on_connecting();
        if let Some(session) = self.sessions.get_mut(&key) {
            session.router = Some(index);
            tracing::info!(interface = %name, peer = %key.0, ?placer, "call bound to the demand-dial interface");
        }
    }

    /// LCP Terminate-Request on a session.
    fn hang_up(&mut self, key: SessionKey, now: Instant) {
        if let Some(session) = self.sessions.get_mut(&key) {
            session.link.close(now);
        }
        self.flush(key, now);
    }

    /// A router session's link is up: it takes over from the call it replaces, or
    /// sends what waited.
    fn router_link_up(&mut self, index: usize, key: SessionKey) {
        let now = Instant::now();
        let router = &mut self.routers[index];
        if router.next == Some(key) {
            router.next = None;
            if let Some(old) = router.session.replace(key) {
                // Packets the peer already sent on the old link still arrive.
                self.lingering.push((now + LINGER, old));
            }
            tracing::info!(interface = %router.name, "demand-dial link moved to the new call");
        } else if router.session != Some(key) {
            return;
        }
        let router = &mut self.routers[index];
        let waiting = router.demand.on_link_up(now);
        tracing::info!(interface = %router.name, queued = waiting.len(), "demand-dial link up");
        if let Some(session) = self.sessions.get_mut(&key) {
            for packet in &waiting {
                send_ip(
                    &self.gre,
                    self.xdp.as_ref(),
                    session,
                    &mut self.scratch,
                    packet,
                    &mut self.stats,
                );
            }
        }
    }

    fn on_dial_ended(&mut self, index: usize, generation: u64) {
        let Some(router) = self.routers.get_mut(index) else {
            return;
        };
        if router.generation == generation
            && router.session.is_none()
            && router.demand.state() == crate::demand::State::Dialing
        {
            router.demand.on_dial_failed(Instant::now());
            tracing::info!(interface = %router.name, next = ?router.demand.poll_timeout(), "demand-dial call failed");
        }
        self.router_actions(index);
    }

    fn on_router_timers(&mut self, now: Instant) {
        for index in 0..self.routers.len() {
            if self.routers[index]
                .demand
                .poll_timeout()
                .is_some_and(|at| at <= now)
            {
                self.routers[index].demand.handle_timeout(now);
                self.router_actions(index);
            }
        }
    }

    /// Does what interface `index`'s machine asks.
    fn router_actions(&mut self, index: usize) {
        while let Some(action) = self.routers[index].demand.poll_action() {
            let now = Instant::now();
            let router = &mut self.routers[index];
            match action {
                Action::Dial => {
                    router.generation += 1;
                    tracing::info!(interface = %router.name, "demand-dial: dialing");
                    match &mut self.dialer {
                        Some(dialer) => dialer(index, router.generation),
                        None => router.demand.on_dial_failed(now),
                    }
                }
                Action::HangUp => match router.session {
                    Some(key) => {
                        tracing::info!(interface = %router.name, "demand-dial: idle, hanging up");
                        self.hang_up(key, now);
                    }
                    None => router.demand.on_link_down(true, now),
                },
            }
        }
    }

    /// Hands a link's claim to RADIUS; the verdict comes back as [`Wake::Authorized`].
    fn authenticate(
        &mut self,
        key: SessionKey,
        ticket: ClaimTicket,
        claim: crate::ppp::auth::Claim,
    ) {
        let (Some(radius), Some(session)) = (&self.radius, self.sessions.get(&key)) else {
            tracing::error!("a link asked for external judgement without RADIUS: rejected");
            if let Some(session) = self.sessions.get_mut(&key) {
                session
                    .link
                    .verified(Instant::now(), ticket, crate::ppp::auth::Verdict::Reject);
            }
            return;
        };
        let job = AuthJob {
            claim,
            port: u32::from(key.1),
            calling_station: key.0,
        };
        let (radius, id) = (radius.clone(), session.id);
        let asking = self
            .authentications
            .spawn(async move { (key, id, ticket, radius.authenticate(job).await) });
        // A new claim (LCP restarted) makes the one asked about before moot.
        if let Some(session) = self.sessions.get_mut(&key)
            && let Some(earlier) = session.aaa.asking.replace(asking)
        {
            earlier.abort();
        }
    }

    /// A RADIUS verdict: to the link (if the session is still the one that asked).
    fn on_authorized(
        &mut self,
        key: SessionKey,
        id: u64,
        ticket: ClaimTicket,
        authorized: Authorized,
    ) {
        let now = Instant::now();
        let Some(session) = self.sessions.get_mut(&key).filter(|s| s.id == id) else {
            return;
        };
        session.aaa.asking = None;
        if session
            .link
            .verified_with(now, ticket, authorized.verdict, authorized.grant)
        {
            session.aaa.authorization = authorized.authorization;
        }
        self.flush(key, now);
    }

    /// Starts the session's clock and sends Accounting-Start (if accounting).
    fn start_accounting(&mut self, key: SessionKey) {
        let Some(radius) = &self.radius else {
            return;
        };
        let (interim, accounting) = (radius.config().interim, radius.accounts());
        // Once per session (an IPCP renegotiation brings the link up again).
        let Some(session) = self
            .sessions
            .get_mut(&key)
            .filter(|s| s.aaa.clock.is_none())
        else {
            return;
        };
        let limits = session.aaa.limits(interim, accounting);
        session.aaa.clock = Some(SessionClock::new(Instant::now(), limits));
        self.account(key, Status::Start, None);
    }

    /// Interim-Update due, or a timeout that ends the session.
    fn on_session_clock(&mut self, key: SessionKey, now: Instant) {
        let Some(session) = self.sessions.get(&key).filter(|s| s.aaa.clock.is_some()) else {
            return;
        };
        let c = counters(self.xdp.as_ref(), session);
        let packets = c.input_packets + c.output_packets;
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let due = session
            .aaa
            .clock
            .as_mut()
            .and_then(|clock| clock.handle_timeout(now, packets));
        match due {
            Some(Due::Interim) => self.account(key, Status::InterimUpdate, None),
            Some(Due::Terminate(cause)) => {
                tracing::info!(id = session.id, user = ?session.user, ?cause, "session ended by its RADIUS limits");
                session.aaa.cause = Some(cause);
                session.link.close(now);
            }
            None => {}
        }
    }

    /// CoA: new timeouts for session `id`.
    fn reauthorize(&mut self, id: u64, update: &Authorization) -> bool {
        let now = Instant::now();
        let Some((&key, session)) = self.sessions.iter_mut().find(|(_, s)| s.id == id) else {
            return false;
        };
        let accounting = self.radius.as_ref().is_some_and(Radius::accounts);
        session.aaa.reauthorize(now, update, accounting);
        self.flush(key, now);
        true
    }

    /// Sends an accounting record for the session (in a task of its own).
    fn account(&mut self, key: SessionKey, status: Status, cause: Option<TerminateCause>) {
        let (Some(radius), Some(session)) = (&self.radius, self.sessions.get(&key)) else {
            return;
        };
        if !radius.accounts() {
            return;
        }
        let now = Instant::now();
        let record = Record {
            status,
            session_id: radius.acct_session_id(session.id),
            user: session.user.clone().unwrap_or_default(),
            address: session.up.as_ref().map(|up| up.peer_ip),
            calling_station: session.peer_addr,
            port: u32::from(session.local_call_id),
            class: session
                .aaa
                .authorization
                .as_ref()
                .map(|a| a.class.clone())
                .unwrap_or_default(),
            session_time: session
                .aaa
                .clock
                .as_ref()
                .map_or(Duration::ZERO, |c| c.elapsed(now)),
            counters: counters(self.xdp.as_ref(), session),
            cause,
            radius_authenticated: session.aaa.authorization.is_some(),
        };
        let radius = radius.clone();
        while self.accounting.try_join_next().is_some() {}
        self.accounting
            .spawn(async move { radius.account(record).await });
    }

    /// Waits for the accounting requests in flight (the Stops of a shutdown), for at
    /// most the time the servers get to answer.
    async fn finish_accounting(&mut self) {
        let Some(radius) = &self.radius else {
            return;
        };
        let t = radius.config().timing;
        let servers = radius.config().acct_servers.len() as u32;
        let bound = t.timeout * (t.retries + 1) * servers.max(1);
        let _ = tokio::time::timeout(bound, async {
            while self.accounting.join_next().await.is_some() {}
        })
        .await;
    }

    /// Starts closing every link (the agent is shutting down): each sends LCP
    /// Terminate-Request and goes down on the Ack (or its own timeout).
    fn terminate_links(&mut self) {
        // Links closed now must not make persistent interfaces dial again.
        self.dialer = None;
        let now = Instant::now();
        let keys: Vec<SessionKey> = self.sessions.keys().copied().collect();
        for key in keys {
            if let Some(session) = self.sessions.get_mut(&key) {
                session.aaa.cause = Some(TerminateCause::AdminReboot);
                session.link.close(now);
            }
            self.flush(key, now);
        }
    }

    /// Ends every session left (closing its link first if not yet) and the data plane.
    fn shutdown(&mut self) {
        self.terminate_links();
        let keys: Vec<SessionKey> = self.sessions.keys().copied().collect();
        for key in keys {
            self.end_session(key, DownReason::Closed);
        }
        if let Some(xdp) = self.xdp.take()
            && let Err(e) = xdp.shutdown()
        {
            tracing::error!(error = %e, "shutting the XDP data plane down");
        }
    }
}

/// The PPP header for `protocol` as the peer agreed to receive it (at most four
/// bytes, built without allocating).
struct PppHeader {
    bytes: [u8; 4],
    len: usize,
}

impl PppHeader {
    fn new(framing: Framing, protocol: u16) -> Self {
        let mut bytes = [0; 4];
        let mut len = 0;
        if !framing.acfc {
            bytes[..2].copy_from_slice(&[0xff, 0x03]);
            len = 2;
        }
        if framing.pfc && protocol < 0x100 {
            bytes[len] = protocol as u8;
            len += 1;
        } else {
            bytes[len..len + 2].copy_from_slice(&protocol.to_be_bytes());
            len += 2;
        }
        Self { bytes, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The GRE header of the next packet of `len` payload bytes to the session's peer;
/// `None` if the payload does not fit a GRE packet.
fn gre_header(session: &mut Session, xdp: Option<&XdpDataplane>, len: usize) -> Option<GreHeader> {
    let payload_len = u16::try_from(len).ok()?;
    Some(match (&mut session.seq, xdp) {
        (Sequencing::Local(seq), _) => seq.data_header(session.peer_call_id, payload_len),
        (Sequencing::Shared(slot), Some(xdp)) => GreHeader {
            call_id: session.peer_call_id,
            payload_len,
            seq: Some(xdp.seq().take_seq(slot.0)),
            ack: xdp.seq().highest_received(slot.0),
        },
        (Sequencing::Shared(_), None) => unreachable!("shared sequencing without XDP"),
    })
}

/// Sends one IPv4 packet to the session's peer: PPP (and MPPE if negotiated) in GRE.
fn send_ip(
    gre: &GreSocket,
    xdp: Option<&XdpDataplane>,
    session: &mut Session,
    scratch: &mut Vec<u8>,
    packet: &[u8],
    stats: &mut HubStats,
) {
    let encrypted = session.mppe.is_some();
    let protocol = if encrypted {
        protocol::COMPRESSED
    } else {
        protocol::IPV4
    };
    let ppp = PppHeader::new(session.framing, protocol);
    let headroom = if encrypted { ENCRYPT_HEADROOM } else { 0 };
    let Some(header) = gre_header(session, xdp, ppp.as_bytes().len() + headroom + packet.len())
    else {
        stats.send_errors += 1;
        return;
    };
    scratch.clear();
    header.emit(scratch);
    scratch.extend_from_slice(ppp.as_bytes());
    let body = scratch.len();
    scratch.resize(body + headroom, 0);
    scratch.extend_from_slice(packet);
    if let Some(cipher) = &mut session.mppe
        && cipher
            .encrypt
            .encrypt(protocol::IPV4, &mut scratch[body..])
            .is_err()
    {
        stats.send_errors += 1;
        return;
    }
    if gre.send_to(scratch, session.peer_addr).is_err() {
        stats.send_errors += 1;
    } else {
        session.counters.tx_packets += 1;
        session.counters.tx_bytes += packet.len() as u64;
    }
}

/// Sends one PPP frame to the session's peer in one GRE packet.
fn send_gre(
    gre: &GreSocket,
    xdp: Option<&XdpDataplane>,
    session: &mut Session,
    scratch: &mut Vec<u8>,
    frame: &[u8],
    stats: &mut HubStats,
) {
    let Some(header) = gre_header(session, xdp, frame.len()) else {
        stats.send_errors += 1;
        return;
    };
    scratch.clear();
    header.emit(scratch);
    scratch.extend_from_slice(frame);
    if gre.send_to(scratch, session.peer_addr).is_err() {
        stats.send_errors += 1;
    }
}

/// Decrypts an MPPE packet into `buf`; returns where the IPv4 packet lies in it.
/// Asks the link to send a CCP Reset-Request when stateful MPPE lost sync.
fn decrypt(
    session: &mut Session,
    packet: &[u8],
    buf: &mut Vec<u8>,
    now: Instant,
    stats: &mut HubStats,
) -> Option<(usize, usize)> {
    let Some(cipher) = &mut session.mppe else {
        stats.mppe_refused += 1;
        return None;
    };
    buf.clear();
    buf.extend_from_slice(packet);
    let base = buf.as_ptr() as usize;
    match cipher.decrypt.decrypt(now, buf) {
        Ok(Decrypted::Packet(plain)) if plain.protocol == protocol::IPV4 => {
            Some((plain.payload.as_ptr() as usize - base, plain.payload.len()))
        }
        Ok(Decrypted::Packet(_)) => None,
        Ok(Decrypted::SendResetRequest { ccount, lost }) => {
            tracing::info!(peer = %session.peer_addr, ccount, lost, "stateful MPPE lost sync: CCP Reset-Request");
            cipher.last_reset_request = Some(now);
            stats.mppe_resets_sent += 1;
            session.link.send_ccp_reset_request(now);
            None
        }
        Err(MppeError::AwaitingFlush { .. }) => {
            stats.mppe_refused += 1;
            let due = cipher
                .last_reset_request
                .is_none_or(|at| now.duration_since(at) >= RESET_REQUEST_RETRY);
            if due {
                cipher.last_reset_request = Some(now);
                stats.mppe_resets_sent += 1;
                session.link.send_ccp_reset_request(now);
            }
            None
        }
        Err(_) => {
            stats.mppe_refused += 1;
            None
        }
    }
}

/// A session's IPv4 packets and bytes: the agent's path and XDP's added up.
fn counters(xdp: Option<&XdpDataplane>, session: &Session) -> Counters {
    let a = &session.counters;
    let mut c = Counters {
        input_octets: a.rx_bytes,
        input_packets: a.rx_packets,
        output_octets: a.tx_bytes,
        output_packets: a.tx_packets,
    };
    if let (Some(xdp), Sequencing::Shared(slot)) = (xdp, &session.seq)
        && let Ok(x) = xdp.session_counters(*slot)
    {
        c.input_octets += x.rx_bytes;
        c.input_packets += x.rx_packets;
        c.output_octets += x.tx_bytes;
        c.output_packets += x.tx_packets;
    }
    c
}

/// The device IPv4 from sessions goes to: the concentrator's shared one, or the
/// client's once its link is up. A function of the two fields (not a method) so that
/// it can be called while a session is borrowed.
fn current_tun<'a>(mode: &'a TunMode, client_tun: &'a Option<Tun>) -> Option<&'a Tun> {
    match mode {
        TunMode::Concentrator(tun) => Some(tun),
        TunMode::Client { .. } => client_tun.as_ref(),
        TunMode::Probe(_) => None,
    }
}

async fn recv_tun(tun: Option<&Tun>, buf: &mut [u8]) -> io::Result<usize> {
    match tun {
        Some(tun) => tun.recv(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppp_headers_follow_the_negotiated_compression() {
        let h = |acfc, pfc, p| PppHeader::new(Framing { acfc, pfc }, p).as_bytes().to_vec();
        assert_eq!(h(false, false, 0x21), [0xff, 0x03, 0x00, 0x21]);
        assert_eq!(h(true, false, 0x21), [0x00, 0x21]);
        assert_eq!(h(false, true, 0x21), [0xff, 0x03, 0x21]);
        assert_eq!(h(true, true, 0x21), [0x21]);
        assert_eq!(
            h(true, true, 0xc021),
            [0xc0, 0x21],
            "PFC only for protocols below 0x100"
        );
    }
}
