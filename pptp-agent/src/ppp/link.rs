//! One PPP link, composed: LCP, then authentication, then CCP, IPCP and IPV6CP, with
//! the phases of RFC 1661 §3.2 (Dead, Establish, Authenticate, Network, Terminate),
//! for either end: the concentrator's (authenticator, assigns addresses) or the
//! client's (authenticates itself, takes an address).
//!
//! Sans-IO, in the style of quinn-proto: the owner feeds received frames
//! ([`Link::handle_frame`]) and time ([`Link::handle_timeout`]), and polls frames to
//! send ([`Link::poll_transmit`]), [`Event`]s ([`Link::poll_event`]) and the next
//! deadline ([`Link::poll_timeout`]). No clock, socket or global randomness inside:
//! the RNG is injected.
//!
//! Policies that keep real peers working (pptp-linux, pptpd and Windows; the first two
//! are checked against in `tests/tests/interop.rs`):
//! - The link reports [`Event::Up`] only when IPCP is open *and* CCP has settled
//!   (open, or given up while MPPE is not required); IPCP is never closed because
//!   CCP is still negotiating.
//! - Echo-Requests are sent only after `interval` of silence from the peer, and any
//!   frame from it (or [`Link::note_peer_activity`], for traffic the data plane
//!   forwarded without us) clears the failure count: an active peer never trips
//!   dead-peer detection. Echo-Replies and Protocol-Rejects never exceed the peer's MRU.
//! - LCP Identification, Time-Remaining and Discard-Request are accepted and ignored.
//! - LCP renegotiation before authentication finished (a lost Configure-Ack makes
//!   the peer retransmit its request) simply restarts the link; after it, the link
//!   is closed rather than authenticated again: a PPTP call is not expected to do
//!   that, and it bounds renegotiation loops.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::auth::{
    self, AuthError, Authenticated, Claim, Credentials, Method, Policy, SecretSource,
};
use super::ccp::{self, Ccp, MppeAgreement, MppeMode, MppeParams, MppePolicy};
use super::frame::{self, Frame, Framing, protocol};
use super::fsm::{Extension, FinishReason, Fsm, Limits, Negotiator, Notice, State};
use super::ipcp::{AddressPool, Ipcp, IpcpConfig};
use super::ipv6cp::Ipv6cp;
use super::lcp::{self, AuthRole, Lcp, LcpConfig, LcpFailure};
use super::queue::pop_or_release;
use crate::mppe::{KeyStrength, StartKeys};

/// The phases of RFC 1661 §3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started, or finished.
    Dead,
    /// LCP negotiating.
    Establish,
    /// Authenticating.
    Authenticate,
    /// NCPs negotiating or open.
    Network,
    /// LCP terminating.
    Terminate,
}

/// The concentrator's end.
pub struct ServerConfig {
    /// Our CHAP name.
    pub name: Vec<u8>,
    /// Methods to ask for, most preferred first (empty: no authentication).
    pub auth: Policy,
    /// Our end's address.
    pub local_ip: Ipv4Addr,
    /// DNS servers handed out.
    pub dns: [Option<Ipv4Addr>; 2],
    /// NBNS (WINS) servers handed out.
    pub nbns: [Option<Ipv4Addr>; 2],
    /// Who judges the peer's credentials.
    pub verifier: Verifier,
    /// Addresses for peers.
    pub pool: Box<dyn AddressPool + Send>,
}

/// Names one [`Event::VerifyRequest`]: a verdict applies only to the claim whose
/// ticket it quotes. An LCP restart while a judge (RADIUS) thinks brings a new claim,
/// possibly under another name, which the old verdict must not decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimTicket(u64);

/// Who judges a peer's credentials on the server.
pub enum Verifier {
    /// Judged at once against locally known secrets (the chap-secrets file).
    Secrets(Box<dyn SecretSource + Send>),
    /// Handed out as [`Event::VerifyRequest`]; the owner answers with
    /// [`Link::verified`] (RADIUS).
    External,
}

/// Where a server link's peer address comes from, decided with the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AddressGrant {
    /// As for a locally known user: the pool follows the user's address list.
    #[default]
    ByUser,
    /// Any free pool address (authorized by RADIUS without an address).
    Any,
    /// Exactly this address (RADIUS Framed-IP-Address).
    Exactly(Ipv4Addr),
    /// A free address of the named pool (RADIUS Framed-Pool).
    Pool(String),
}

/// The client's end.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Our name and password.
    pub credentials: Credentials,
    /// Methods we accept, most preferred first.
    pub auth: Policy,
    /// Ask the server for DNS servers.
    pub request_dns: bool,
}

/// Which end this link is.
pub enum Role {
    /// Concentrator: authenticates the peer and assigns its address.
    Server(ServerConfig),
    /// Client: authenticates itself and takes an address.
    Client(ClientConfig),
}

/// Dead-peer detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoConfig {
    /// Silence after which an Echo-Request is sent (each link adds its own random
    /// part of half an interval: [`echo_wait`]), and the time between unanswered ones.
    pub interval: Duration,
    /// Unanswered Echo-Requests before the peer is declared dead.
    pub max_failures: u32,
}

impl EchoConfig {
    /// An Echo-Request after 30 s of silence, the peer dead after 3 unanswered.
    pub const DEFAULT: Self = Self {
        interval: Duration::from_secs(30),
        max_failures: 3,
    };
}

/// A link's silence before its first Echo-Request: the interval plus a random part
/// of half an interval, drawn once per link (unanswered ones are repeated every
/// interval). Links that come up together (thousands after
/// an outage of the access network, their last frames received in the same
/// second) would otherwise send their Echo-Requests together, every interval, for
/// as long as they last; with waits of their own they spread over half an interval
/// at once and drift further apart with every round.
pub fn echo_wait(echo: EchoConfig, rng: &mut dyn RngCore) -> Duration {
    let half = u64::try_from((echo.interval / 2).as_nanos()).unwrap_or(u64::MAX);
    let extra = rng.next_u64().checked_rem(half).unwrap_or(0);
    echo.interval + Duration::from_nanos(extra)
}

/// Settings of one link.
pub struct LinkConfig {
    /// Server or client.
    pub role: Role,
    /// The MRU we ask for.
    pub mru: u16,
    /// MPPE policy.
    pub mppe: MppePolicy,
    /// Run IPV6CP (otherwise it is Protocol-Rejected).
    pub ipv6: bool,
    /// Automaton timers and counters.
    pub limits: Limits,
    /// Authentication timers.
    pub auth_timers: auth::Timers,
    /// Dead-peer detection, if wanted.
    pub echo: Option<EchoConfig>,
    /// Passive open (RFC 1661 §4.1): wait up to this long for the peer's first LCP
    /// packet before sending our Configure-Request. A concentrator answering a call
    /// uses it: its first Configure-Request could otherwise reach the client before
    /// the client has read the Call-Reply, be dropped as belonging to no call, and
    /// cost LCP's 3-second restart timer. `None`: send at once.
    pub passive: Option<Duration>,
}

impl LinkConfig {
    /// Defaults for `role`: MRU 1400, MPPE-128 stateless required, no IPv6, LCP echo
    /// every 30 s with 3 failures allowed.
    pub fn new(role: Role) -> Self {
        LinkConfig {
            role,
            mru: 1400,
            mppe: MppePolicy::default(),
            ipv6: false,
            limits: Limits::default(),
            auth_timers: auth::Timers::default(),
            echo: Some(EchoConfig::DEFAULT),
            passive: None,
        }
    }
}

/// MPPE as agreed: parameters and the start keys seen from this end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mppe {
    /// Strength and stateless mode.
    pub params: MppeParams,
    /// Start keys (send and receive) for the cipher.
    pub keys: StartKeys,
}

/// The link is up: what the data plane needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkUp {
    /// Our address.
    pub local_ip: Ipv4Addr,
    /// The peer's address.
    pub peer_ip: Ipv4Addr,
    /// DNS servers (given or received).
    pub dns: [Option<Ipv4Addr>; 2],
    /// MPPE, if negotiated.
    pub mppe: Option<Mppe>,
    /// Header compression to send data with.
    pub framing: Framing,
    /// The peer's MRU.
    pub peer_mru: u16,
}

/// Why a link went down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownReason {
    /// Closed locally.
    #[error("closed locally")]
    Closed,
    /// The peer sent Terminate-Request.
    #[error("terminated by the peer")]
    PeerTerminated,
    /// The lower layer (the PPTP call) went away.
    #[error("lower layer down")]
    LowerLayerDown,
    /// The peer stopped answering during negotiation or termination.
    #[error("the peer did not answer")]
    Timeout,
    /// A negotiation did not converge, or the peer rejected LCP itself.
    #[error("negotiation failed")]
    NegotiationFailed,
    /// The peer renegotiated LCP after it opened.
    #[error("the peer renegotiated the link")]
    Renegotiated,
    /// The link is looped back (our Magic-Number came back).
    #[error("looped-back link")]
    LoopedBack,
    /// No authentication method both ends accept.
    #[error("no common authentication method")]
    NoCommonAuth,
    /// The peer refused to authenticate.
    #[error("the peer refused to authenticate")]
    AuthRefused,
    /// Authentication failed.
    #[error("authentication failed: {0}")]
    AuthFailed(AuthError),
    /// MPPE required but not agreed (or not keyable with this method).
    #[error("encryption required but not negotiated")]
    MppeRequired,
    /// No address to assign, or none received.
    #[error("no IP address")]
    NoAddress,
    /// IPCP failed.
    #[error("IPCP failed")]
    IpcpFailed,
    /// The peer stopped answering Echo-Requests.
    #[error("the peer stopped answering echo requests")]
    EchoTimeout,
}

/// What the link tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Authentication succeeded (the peer's name on a server, ours on a client).
    AuthSucceeded {
        /// The user name.
        user: Vec<u8>,
    },
    /// IP (and MPPE, if any) is ready.
    Up(LinkUp),
    /// IPV6CP opened: (our interface identifier, the peer's).
    Ipv6Up {
        /// Our interface identifier.
        local_id: [u8; 8],
        /// The peer's interface identifier.
        peer_id: [u8; 8],
    },
    /// The peer sent CCP Reset-Request (stateful MPPE: flush and set the A bit).
    CcpResetRequested,
    /// The peer's credentials, to be judged and answered with [`Link::verified`]
    /// (only with [`Verifier::External`]), quoting the ticket.
    VerifyRequest(ClaimTicket, Claim),
    /// The peer acknowledged our CCP Reset-Request.
    CcpResetAcked,
    /// The link is down for good; the owner tears the call down.
    Down(DownReason),
}

/// The authentication machine for the current link.
enum AuthMachine {
    Authenticator(auth::Authenticator),
    Peer(auth::Peer),
}

/// Network-phase state.
struct Network {
    ccp: Fsm<Ccp>,
    ipcp: Fsm<Ipcp>,
    /// Boxed: over 500 bytes that the (usual) IPv4-only link need not carry.
    ipv6cp: Option<Box<Fsm<Ipv6cp>>>,
    ccp_settled: bool,
    /// IPCP and IPV6CP wait (Closed) for CCP: see [`Network::settle_ccp`].
    ncps_waiting: bool,
}

impl Network {
    /// CCP is settled (open, or given up when MPPE is only preferred). When MPPE may
    /// be negotiated the network protocols are opened only now (or when the peer
    /// starts one first, as Windows does): pppd holds its IPCP Closed until CCP is up
    /// and answers an earlier Configure-Request with Terminate-Ack, which left our
    /// request to be resent 3 s later (seen in the interop VM: MPPE sessions took 3 s
    /// longer to come up than plain ones).
    fn settle_ccp(&mut self, now: Instant) {
        self.ccp_settled = true;
        if self.ncps_waiting {
            self.open_ncps(now);
        }
    }

    fn open_ncps(&mut self, now: Instant) {
        self.ncps_waiting = false;
        self.ipcp.open(now);
        if let Some(v6) = &mut self.ipv6cp {
            v6.open(now);
        }
    }
}

/// One PPP link.
pub struct Link {
    config: LinkConfig,
    rng: Box<dyn RngCore + Send>,
    phase: Phase,
    lcp: Fsm<Lcp>,
    /// Boxed: 256 bytes a link needs only while it authenticates.
    auth: Option<Box<AuthMachine>>,
    /// The claim handed out for external judgement, if one waits.
    claim: Option<(ClaimTicket, Claim)>,
    /// Claims handed out so far (the next ticket).
    claims: u64,
    /// How the peer's address is chosen (set with an external verdict).
    grant: AddressGrant,
    authenticated: Option<Authenticated>,
    net: Option<Network>,
    peer_ip: Option<Ipv4Addr>,
    up: bool,
    reason: Option<DownReason>,
    echo_deadline: Option<Instant>,
    echo_outstanding: u32,
    /// This link's silence before its first Echo-Request ([`echo_wait`]).
    echo_wait: Duration,
    /// Passive open: when our Configure-Request goes out if the peer has not spoken.
    passive_until: Option<Instant>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
}

impl Link {
    /// A new link in the Dead phase; `rng` supplies magic numbers and challenges.
    pub fn new(config: LinkConfig, mut rng: Box<dyn RngCore + Send>) -> Self {
        let auth = match &config.role {
            Role::Server(s) => AuthRole::Authenticator(s.auth.clone()),
            Role::Client(c) => AuthRole::Peer(c.auth.clone()),
        };
        let lcp_config = LcpConfig {
            mru: config.mru,
            pfc: true,
            acfc: true,
            auth,
        };
        let lcp = Fsm::new(Lcp::new(lcp_config, &mut *rng), config.limits, 1);
        let echo_wait = config
            .echo
            .map_or(Duration::ZERO, |e| echo_wait(e, &mut *rng));
        Link {
            config,
            rng,
            phase: Phase::Dead,
            lcp,
            auth: None,
            claim: None,
            claims: 0,
            grant: AddressGrant::ByUser,
            authenticated: None,
            net: None,
            peer_ip: None,
            up: false,
            reason: None,
            echo_deadline: None,
            echo_outstanding: 0,
            echo_wait,
            passive_until: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The header compression to send data frames with.
    pub fn framing(&self) -> Framing {
        if self.lcp.is_opened() {
            self.lcp.negotiator().send_framing()
        } else {
            Framing::default()
        }
    }

    /// Starts the link: the lower layer (the call) is up, negotiation begins.
    pub fn open(&mut self, now: Instant) {
        self.phase = Phase::Establish;
        self.lcp.open(now);
        match self.config.passive {
            Some(wait) => self.passive_until = Some(now + wait),
            None => self.lcp.up(now),
        }
        self.process(now);
    }

    /// Ends a passive open: LCP starts negotiating (sends our Configure-Request).
    fn end_passive(&mut self, now: Instant) {
        if self.passive_until.take().is_some() {
            self.lcp.up(now);
        }
    }

    /// Closes the link gracefully (LCP Terminate-Request).
    pub fn close(&mut self, now: Instant) {
        self.shutdown(now, DownReason::Closed);
    }

    /// The lower layer is gone: the link is down at once.
    pub fn lower_down(&mut self, now: Instant) {
        if self.phase == Phase::Dead {
            return;
        }
        self.reason.get_or_insert(DownReason::LowerLayerDown);
        self.lcp.down();
        self.process(now);
        self.finish();
    }

    /// Traffic from the peer that did not pass through the link (the data plane
    /// forwarded it): postpones dead-peer detection.
    pub fn note_peer_activity(&mut self, now: Instant) {
        self.echo_outstanding = 0;
        if self.echo_deadline.is_some() {
            self.echo_deadline = Some(now + self.echo_wait);
        }
    }

    /// Asks the peer to reset its compressor (stateful MPPE lost sync).
    pub fn send_ccp_reset_request(&mut self, now: Instant) {
        if let Some(net) = self.net.as_mut().filter(|n| n.ccp.is_opened()) {
            let id = net.ccp.next_id();
            net.ccp.send(ccp::code::RESET_REQUEST, id, &[]);
        }
        self.process(now);
    }

    /// Feeds one received PPP frame. Returns network-layer data (IPv4, IPv6 or
    /// MPPE-compressed) for the data path when its protocol is open.
    pub fn handle_frame<'a>(&mut self, now: Instant, bytes: &'a [u8]) -> Option<Frame<'a>> {
        if self.phase == Phase::Dead {
            return None;
        }
        self.note_peer_activity(now);
        let frame = Frame::parse(bytes).ok()?;
        let mut data = None;
        match frame.protocol {
            protocol::LCP => {
                self.end_passive(now);
                if let Some(ext) = self.lcp.receive(now, frame.info) {
                    self.lcp_extension(now, ext);
                }
            }
            protocol::PAP | protocol::CHAP => self.auth_packet(now, frame),
            protocol::CCP | protocol::IPCP | protocol::IPV6CP => self.ncp_packet(now, frame),
            protocol::IPV4 | protocol::IPV6 | protocol::COMPRESSED => {
                data = self.data_open(frame.protocol).then_some(frame);
            }
            _ => self.protocol_reject(frame),
        }
        self.process(now);
        data
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.passive_until.is_some_and(|until| until <= now) {
            self.end_passive(now);
        }
        self.lcp.handle_timeout(now);
        let outcome = match self.auth.as_deref_mut() {
            Some(AuthMachine::Authenticator(a)) => a.handle_timeout(now),
            Some(AuthMachine::Peer(p)) => p.handle_timeout(now),
            None => None,
        };
        if let Some(outcome) = outcome {
            self.auth_outcome(now, outcome);
        }
        if let Some(net) = &mut self.net {
            net.ccp.handle_timeout(now);
            net.ipcp.handle_timeout(now);
            if let Some(v6) = &mut net.ipv6cp {
                v6.handle_timeout(now);
            }
        }
        if let (Some(deadline), Some(echo)) = (self.echo_deadline, self.config.echo) {
            if deadline <= now {
                self.echo_due(now, echo);
            }
        }
        self.process(now);
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        pop_or_release(&mut self.transmit)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        pop_or_release(&mut self.events)
    }

    /// When [`Link::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let auth = match self.auth.as_deref() {
            Some(AuthMachine::Authenticator(a)) => a.poll_timeout(),
            Some(AuthMachine::Peer(p)) => p.poll_timeout(),
            None => None,
        };
        let net = self.net.iter().flat_map(|n| {
            [
                n.ccp.poll_timeout(),
                n.ipcp.poll_timeout(),
                n.ipv6cp.as_ref().and_then(|v| v.poll_timeout()),
            ]
        });
        [
            self.lcp.poll_timeout(),
            auth,
            self.echo_deadline,
            self.passive_until,
        ]
        .into_iter()
        .chain(net)
        .flatten()
        .min()
    }

    /// Whether data of this protocol may pass. With MPPE agreed only encrypted
    /// frames do: plain IP from the peer is dropped (RFC 3078 §3).
    fn data_open(&self, proto: u16) -> bool {
        let Some(net) = self.net.as_ref().filter(|_| self.up) else {
            return false;
        };
        let encrypted =
            net.ccp.is_opened() && matches!(net.ccp.negotiator().mppe(), MppeAgreement::On(_));
        match proto {
            protocol::IPV4 => !encrypted && net.ipcp.is_opened(),
            protocol::IPV6 => !encrypted && net.ipv6cp.as_ref().is_some_and(|v| v.is_opened()),
            _ => encrypted,
        }
    }

    fn lcp_extension(&mut self, now: Instant, ext: Extension<'_>) {
        if !self.lcp.is_opened() {
            return;
        }
        match ext.code {
            lcp::code::ECHO_REQUEST => {
                let mut reply = self.lcp.negotiator().magic().to_be_bytes().to_vec();
                reply.extend_from_slice(ext.data.get(4..).unwrap_or_default());
                // The whole LCP packet (4-byte header + data) within the peer's MRU.
                reply.truncate(usize::from(self.lcp.negotiator().peer_mru()).saturating_sub(4));
                self.lcp.send(lcp::code::ECHO_REPLY, ext.id, &reply);
            }
            lcp::code::PROTOCOL_REJECT => {
                let rejected = ext.data.get(..2).map(|p| u16::from_be_bytes([p[0], p[1]]));
                if let (Some(p), Some(net)) = (rejected, self.net.as_mut()) {
                    match p {
                        protocol::CCP => net.ccp.protocol_rejected(now),
                        protocol::IPCP => net.ipcp.protocol_rejected(now),
                        protocol::IPV6CP => {
                            if let Some(v6) = &mut net.ipv6cp {
                                v6.protocol_rejected(now);
                            }
                        }
                        _ => {}
                    }
                }
            }
            // Echo-Reply (already counted as activity), Discard-Request,
            // Identification, Time-Remaining: nothing to do.
            _ => {}
        }
    }

    /// The judgement on the claim of the [`Event::VerifyRequest`] that handed out
    /// `ticket`. A verdict for another claim (the link has since gone down or
    /// restarted, and perhaps claimed again) is ignored.
    pub fn verified(&mut self, now: Instant, ticket: ClaimTicket, verdict: auth::Verdict) -> bool {
        self.verified_with(now, ticket, verdict, AddressGrant::ByUser)
    }

    /// [`Link::verified`], with the judge's word on the peer's address; whether the
    /// verdict was taken (its ticket is the waiting claim's).
    pub fn verified_with(
        &mut self,
        now: Instant,
        ticket: ClaimTicket,
        verdict: auth::Verdict,
        grant: AddressGrant,
    ) -> bool {
        if self.claim.as_ref().is_none_or(|(t, _)| *t != ticket) {
            return false;
        }
        self.grant = grant;
        if let (Some((_, claim)), Some(AuthMachine::Authenticator(a))) =
            (self.claim.take(), self.auth.as_deref_mut())
        {
            let outcome = a.complete(&claim, verdict, &mut *self.rng);
            self.auth_outcome(now, outcome);
        }
        self.process(now);
        true
    }

    fn auth_packet(&mut self, now: Instant, frame: Frame<'_>) {
        let outcome = match (self.auth.as_deref_mut(), &self.config.role) {
            (Some(AuthMachine::Authenticator(a)), Role::Server(s))
                if a.method().protocol() == frame.protocol =>
            {
                let Some(claim) = a.receive_claim(frame.info) else {
                    return;
                };
                match &s.verifier {
                    Verifier::Secrets(secrets) => {
                        let verdict = claim.verify(secrets.secret(&claim.user));
                        Some(a.complete(&claim, verdict, &mut *self.rng))
                    }
                    Verifier::External => {
                        self.claims += 1;
                        let ticket = ClaimTicket(self.claims);
                        self.events
                            .push_back(Event::VerifyRequest(ticket, claim.clone()));
                        self.claim = Some((ticket, claim));
                        None
                    }
                }
            }
            (Some(AuthMachine::Peer(p)), _) if p.method().protocol() == frame.protocol => {
                p.receive(now, frame.info, &mut *self.rng)
            }
            _ => None,
        };
        if let Some(outcome) = outcome {
            self.auth_outcome(now, outcome);
        }
    }

    fn ncp_packet(&mut self, now: Instant, frame: Frame<'_>) {
        let Some(net) = &mut self.net else {
            // Not in the Network phase: silently discarded (RFC 1661 §3.4).
            return;
        };
        match frame.protocol {
            protocol::CCP => {
                if let Some(ext) = net.ccp.receive(now, frame.info) {
                    if net.ccp.is_opened() {
                        if ext.code == ccp::code::RESET_REQUEST {
                            net.ccp.send(ccp::code::RESET_ACK, ext.id, &[]);
                            self.events.push_back(Event::CcpResetRequested);
                        } else {
                            self.events.push_back(Event::CcpResetAcked);
                        }
                    }
                }
            }
            protocol::IPCP => {
                if net.ncps_waiting {
                    net.open_ncps(now);
                }
                net.ipcp.receive(now, frame.info);
            }
            _ => match &mut net.ipv6cp {
                Some(_) if net.ncps_waiting => {
                    net.open_ncps(now);
                    if let Some(v6) = &mut net.ipv6cp {
                        v6.receive(now, frame.info);
                    }
                }
                Some(v6) => {
                    v6.receive(now, frame.info);
                }
                None => self.protocol_reject(frame),
            },
        }
    }

    /// Sends LCP Protocol-Reject for a frame, within the peer's MRU.
    fn protocol_reject(&mut self, frame: Frame<'_>) {
        if !self.lcp.is_opened() {
            return;
        }
        let mut data = frame.protocol.to_be_bytes().to_vec();
        data.extend_from_slice(frame.info);
        data.truncate(usize::from(self.lcp.negotiator().peer_mru()).saturating_sub(4));
        let id = self.lcp.next_id();
        self.lcp.send(lcp::code::PROTOCOL_REJECT, id, &data);
    }

    fn echo_due(&mut self, now: Instant, echo: EchoConfig) {
        if !self.lcp.is_opened() {
            self.echo_deadline = None;
            return;
        }
        if self.echo_outstanding >= echo.max_failures {
            self.echo_deadline = None;
            self.shutdown(now, DownReason::EchoTimeout);
            return;
        }
        self.echo_outstanding += 1;
        let id = self.lcp.next_id();
        let magic = self.lcp.negotiator().magic().to_be_bytes();
        self.lcp.send(lcp::code::ECHO_REQUEST, id, &magic);
        self.echo_deadline = Some(now + echo.interval);
    }

    fn shutdown(&mut self, now: Instant, reason: DownReason) {
        self.reason.get_or_insert(reason);
        if self.phase != Phase::Dead {
            self.phase = Phase::Terminate;
        }
        self.lcp.close(now);
        self.process(now);
    }

    fn auth_outcome(&mut self, now: Instant, outcome: auth::Outcome) {
        let authenticated = match outcome {
            Ok(a) => a,
            Err(e) => return self.shutdown(now, DownReason::AuthFailed(e)),
        };
        self.events.push_back(Event::AuthSucceeded {
            user: authenticated.user.clone(),
        });
        self.authenticated = Some(authenticated);
        self.start_network(now);
    }

    fn start_network(&mut self, now: Instant) {
        self.phase = Phase::Network;
        let method = self.authenticated.as_ref().map(|a| a.method);
        let keyed: &[KeyStrength] = match method {
            Some(Method::MsChapV2) => &[
                KeyStrength::Bits40,
                KeyStrength::Bits56,
                KeyStrength::Bits128,
            ],
            Some(Method::MsChapV1) => &[KeyStrength::Bits128],
            _ => &[],
        };
        let ccp = Ccp::new(self.config.mppe.clone(), keyed);
        if ccp.mode() == MppeMode::Require && !ccp.can_encrypt() {
            return self.shutdown(now, DownReason::MppeRequired);
        }
        let ncps_waiting = ccp.mode() != MppeMode::Deny && ccp.can_encrypt();
        let ipcp_config = match &mut self.config.role {
            Role::Server(s) => {
                let user = self
                    .authenticated
                    .as_ref()
                    .map(|a| a.user.as_slice())
                    .unwrap_or_default();
                let peer = match &self.grant {
                    AddressGrant::ByUser => s.pool.allocate(user),
                    AddressGrant::Any => s.pool.allocate_authorized(None, None),
                    AddressGrant::Exactly(a) => s.pool.allocate_authorized(Some(*a), None),
                    AddressGrant::Pool(name) => s.pool.allocate_authorized(None, Some(name)),
                };
                let Some(peer) = peer else {
                    return self.shutdown(now, DownReason::NoAddress);
                };
                self.peer_ip = Some(peer);
                IpcpConfig {
                    local: Some(s.local_ip),
                    peer: Some(peer),
                    dns: s.dns,
                    nbns: s.nbns,
                    request_dns: false,
                }
            }
            Role::Client(c) => IpcpConfig {
                request_dns: c.request_dns,
                ..IpcpConfig::default()
            },
        };
        let limits = self.config.limits;
        let ipv6cp = self
            .config
            .ipv6
            .then(|| Box::new(Fsm::new(Ipv6cp::new(&mut *self.rng), limits, 1)));
        let mut net = Network {
            ccp: Fsm::new(ccp, limits, 1),
            ipcp: Fsm::new(Ipcp::new(ipcp_config), limits, 1),
            ipv6cp,
            ccp_settled: false,
            ncps_waiting,
        };
        let max_len = usize::from(self.lcp.negotiator().peer_mru());
        open_fsm(&mut net.ccp, now, max_len);
        net.ipcp.set_max_len(max_len);
        net.ipcp.up(now);
        if let Some(v6) = &mut net.ipv6cp {
            v6.set_max_len(max_len);
            v6.up(now);
        }
        if !net.ncps_waiting {
            net.open_ncps(now);
        }
        self.net = Some(net);
    }

    /// Collects what the machines queued, and reacts to their notices.
    fn process(&mut self, now: Instant) {
        loop {
            let framing = self.framing();
            // Authentication first: a Failure must reach the peer before our
            // Terminate-Request.
            match self.auth.as_deref_mut() {
                Some(AuthMachine::Authenticator(a)) => {
                    let proto = a.method().protocol();
                    while let Some(p) = a.poll_transmit() {
                        self.transmit.push_back(frame::encode(framing, proto, &p));
                    }
                }
                Some(AuthMachine::Peer(p)) => {
                    let proto = p.method().protocol();
                    while let Some(pkt) = p.poll_transmit() {
                        self.transmit.push_back(frame::encode(framing, proto, &pkt));
                    }
                }
                None => {}
            }
            drain(&mut self.lcp, protocol::LCP, framing, &mut self.transmit);
            if let Some(net) = &mut self.net {
                drain(&mut net.ccp, protocol::CCP, framing, &mut self.transmit);
                drain(&mut net.ipcp, protocol::IPCP, framing, &mut self.transmit);
                if let Some(v6) = &mut net.ipv6cp {
                    drain(v6, protocol::IPV6CP, framing, &mut self.transmit);
                }
            }
            if !self.react(now) {
                return;
            }
        }
    }

    /// Handles one pending notice; false when there was none.
    fn react(&mut self, now: Instant) -> bool {
        if let Some(failure) = self.lcp.negotiator().failure() {
            if !self.lcp.is_opened() && self.phase == Phase::Establish {
                let reason = match failure {
                    LcpFailure::NoCommonAuth => DownReason::NoCommonAuth,
                    LcpFailure::AuthRefused => DownReason::AuthRefused,
                    LcpFailure::LoopedBack => DownReason::LoopedBack,
                };
                self.shutdown(now, reason);
                return true;
            }
        }
        if let Some(notice) = self.lcp.poll_notice() {
            self.lcp_notice(now, notice);
            return true;
        }
        let Some(net) = &mut self.net else {
            return false;
        };
        if let Some(notice) = net.ccp.poll_notice() {
            match notice {
                Notice::Up => match (net.ccp.negotiator().mppe(), net.ccp.negotiator().mode()) {
                    (MppeAgreement::Mismatch, _) | (MppeAgreement::Off, MppeMode::Require) => {
                        self.shutdown(now, DownReason::MppeRequired)
                    }
                    _ => net.settle_ccp(now),
                },
                Notice::Finished(_) if net.ccp.negotiator().mode() != MppeMode::Require => {
                    net.settle_ccp(now)
                }
                Notice::Finished(_) => self.shutdown(now, DownReason::MppeRequired),
                Notice::Down if self.up => self.shutdown(now, DownReason::Renegotiated),
                Notice::Down | Notice::Started => {}
            }
            self.check_up();
            return true;
        }
        if let Some(notice) = net.ipcp.poll_notice() {
            match notice {
                Notice::Up if net.ipcp.negotiator().result().is_none() => {
                    self.shutdown(now, DownReason::NoAddress)
                }
                Notice::Finished(_) => self.shutdown(now, DownReason::IpcpFailed),
                Notice::Down if self.up => self.shutdown(now, DownReason::Renegotiated),
                _ => {}
            }
            self.check_up();
            return true;
        }
        if let Some(v6) = &mut net.ipv6cp {
            if let Some(notice) = v6.poll_notice() {
                if let (Notice::Up, Some((local_id, peer_id))) =
                    (notice, v6.negotiator().identifiers())
                {
                    self.events.push_back(Event::Ipv6Up { local_id, peer_id });
                }
                return true;
            }
        }
        false
    }

    fn lcp_notice(&mut self, now: Instant, notice: Notice) {
        match notice {
            Notice::Up => {
                self.lcp
                    .set_max_len(usize::from(self.lcp.negotiator().peer_mru()));
                self.echo_outstanding = 0;
                self.echo_deadline = self.config.echo.map(|_| now + self.echo_wait);
                self.start_auth(now);
            }
            Notice::Down => {
                self.net = None;
                self.auth = None;
                self.claim = None;
                self.echo_deadline = None;
                let renegotiating = matches!(
                    self.lcp.state(),
                    State::ReqSent | State::AckRcvd | State::AckSent
                );
                if !renegotiating {
                    self.phase = Phase::Terminate;
                } else if self.phase == Phase::Network {
                    // Renegotiation after authentication: end the link (module docs).
                    self.shutdown(now, DownReason::Renegotiated);
                } else {
                    // Before that it is only a lost Configure-Ack: start again.
                    self.phase = Phase::Establish;
                    self.authenticated = None;
                }
            }
            Notice::Started => {}
            Notice::Finished(why) => {
                self.reason.get_or_insert(match why {
                    FinishReason::Closed => DownReason::Closed,
                    FinishReason::PeerTerminated => DownReason::PeerTerminated,
                    FinishReason::Timeout => DownReason::Timeout,
                    FinishReason::NotConverging | FinishReason::Rejected => {
                        DownReason::NegotiationFailed
                    }
                });
                self.finish();
            }
        }
    }

    fn start_auth(&mut self, now: Instant) {
        let Some(method) = self.lcp.negotiator().auth_method() else {
            return self.start_network(now);
        };
        self.phase = Phase::Authenticate;
        let timers = self.config.auth_timers;
        let mut machine = match &self.config.role {
            Role::Server(s) => {
                AuthMachine::Authenticator(auth::Authenticator::new(method, &s.name, timers))
            }
            Role::Client(c) => {
                AuthMachine::Peer(auth::Peer::new(method, c.credentials.clone(), timers))
            }
        };
        match &mut machine {
            AuthMachine::Authenticator(a) => a.start(now, &mut *self.rng),
            AuthMachine::Peer(p) => p.start(now, &mut *self.rng),
        }
        self.auth = Some(Box::new(machine));
    }

    fn check_up(&mut self) {
        let Some(net) = self.net.as_ref().filter(|_| !self.up) else {
            return;
        };
        if !net.ipcp.is_opened() || !net.ccp_settled {
            return;
        }
        let Some(ip) = net.ipcp.negotiator().result() else {
            return;
        };
        let mppe = match (net.ccp.negotiator().mppe(), &self.authenticated) {
            (
                MppeAgreement::On(params),
                Some(Authenticated {
                    keys: Some(keys), ..
                }),
            ) => Some(Mppe {
                params,
                keys: keys.clone(),
            }),
            _ => None,
        };
        self.up = true;
        self.events.push_back(Event::Up(LinkUp {
            local_ip: ip.local,
            peer_ip: ip.peer,
            dns: ip.dns,
            mppe,
            framing: self.lcp.negotiator().send_framing(),
            peer_mru: self.lcp.negotiator().peer_mru(),
        }));
    }

    /// LCP finished (or the lower layer vanished): report once, release the address.
    fn finish(&mut self) {
        if self.phase == Phase::Dead {
            return;
        }
        self.phase = Phase::Dead;
        self.net = None;
        self.auth = None;
        self.claim = None;
        self.echo_deadline = None;
        self.passive_until = None;
        if let (Some(ip), Role::Server(s)) = (self.peer_ip.take(), &mut self.config.role) {
            s.pool.release(ip);
        }
        let reason = self.reason.take().unwrap_or(DownReason::Closed);
        self.events.push_back(Event::Down(reason));
    }
}

fn open_fsm<N: Negotiator>(fsm: &mut Fsm<N>, now: Instant, max_len: usize) {
    fsm.set_max_len(max_len);
    fsm.open(now);
    fsm.up(now);
}

fn drain<N: Negotiator>(
    fsm: &mut Fsm<N>,
    proto: u16,
    framing: Framing,
    out: &mut VecDeque<Vec<u8>>,
) {
    while let Some(p) = fsm.poll_transmit() {
        out.push_back(frame::encode(framing, proto, &p));
    }
}
