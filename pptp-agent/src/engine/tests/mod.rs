//! The engine in memory, on a virtual clock: a [`World`] holds one engine (the
//! concentrator, with a fake kernel and no XDP) and the peers that call it or that
//! it calls, each a real PPP [`Link`] speaking enhanced GRE with a [`Sequencer`]
//! of its own. Nothing sleeps: when nothing is in flight, time jumps to the next
//! deadline of the engine or of a peer. RADIUS is a function answering claims, or
//! a list of pending ones the test answers itself.

mod aaa;
mod capture;
mod fleet;
mod rates;
mod routers;
mod sessions;
mod silence;

use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rand::{SeedableRng as _, rngs::StdRng};

use super::{
    Action, CallUp, Delivery, Device, Engine, EngineConfig, Mode, OwnerId, SessionEvent, SessionId,
    Target,
    kernel::{
        CallSpec,
        fake::{FakeNetwork, Kernel},
    },
};
use crate::{
    gre::{GreHeader, Sequencer},
    ppp::{
        auth::{Claim, Credentials, Method, Policy, Secret, SecretSource},
        ccp::{MppeMode, MppePolicy},
        ipcp::AddressPool,
        link::{ClaimTicket, ClientConfig, Event, Link, LinkConfig, Role, ServerConfig, Verifier},
    },
    radius::{AuthJob, Authorized, acct::Record, nas::NasRecord},
};

/// The concentrator's outer address and tunnel address.
pub const SERVER_WAN: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const SERVER_TUNNEL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Users the concentrator knows: name = password.
pub struct Users(pub &'static [&'static str]);

impl SecretSource for Users {
    fn secret(&self, user: &[u8]) -> Option<Secret> {
        self.0
            .iter()
            .find(|u| u.as_bytes() == user)
            .map(|u| Secret::Password(u.as_bytes().to_vec()))
    }
}

/// An address pool shared by every link of the concentrator.
#[derive(Clone)]
pub struct Pool(pub Arc<Mutex<BTreeSet<Ipv4Addr>>>);

impl Pool {
    /// `count` addresses from 192.0.2.10 on.
    pub fn of(count: u8) -> Self {
        Self(Arc::new(Mutex::new(
            (0..count)
                .map(|i| Ipv4Addr::new(192, 0, 2, 10 + i))
                .collect(),
        )))
    }
}

impl AddressPool for Pool {
    fn allocate(&mut self, _user: &[u8]) -> Option<Ipv4Addr> {
        self.0.lock().unwrap().pop_first()
    }

    /// A wanted address (RADIUS Framed-IP-Address) is granted even outside the
    /// pool, as the concentrator's pool does.
    fn allocate_authorized(
        &mut self,
        wanted: Option<Ipv4Addr>,
        _named: Option<&str>,
    ) -> Option<Ipv4Addr> {
        match wanted {
            Some(a) => {
                self.0.lock().unwrap().remove(&a);
                Some(a)
            }
            None => self.allocate(b""),
        }
    }

    fn release(&mut self, address: Ipv4Addr) {
        self.0.lock().unwrap().insert(address);
    }
}

fn no_mppe() -> MppePolicy {
    MppePolicy {
        mode: MppeMode::Deny,
        ..MppePolicy::default()
    }
}

/// A concentrator's side of a call: MS-CHAPv2, the shared pool, `verifier`.
pub fn server_link(pool: &Pool, verifier: Verifier) -> LinkConfig {
    let mut config = LinkConfig::new(Role::Server(ServerConfig {
        name: b"concentrator".to_vec(),
        auth: Policy::new(&[Method::MsChapV2]),
        local_ip: SERVER_TUNNEL,
        dns: [None, None],
        nbns: [None, None],
        verifier,
        pool: Box::new(pool.clone()),
    }));
    config.mppe = no_mppe();
    config
}

/// A client's side of a call as `user` with its password.
pub fn client_link(user: &str, password: &str) -> LinkConfig {
    let mut config = LinkConfig::new(Role::Client(ClientConfig {
        credentials: Credentials {
            user: user.as_bytes().to_vec(),
            password: password.as_bytes().to_vec(),
        },
        auth: Policy::new(&[Method::MsChapV2]),
        request_dns: false,
    }));
    config.mppe = no_mppe();
    config
}

/// The other end of a call.
pub struct Peer {
    /// Its outer address.
    pub addr: Ipv4Addr,
    /// The engine's call ID (the key of GRE the peer sends).
    pub engine_call_id: u16,
    /// The peer's call ID (the key of GRE the engine sends).
    pub peer_call_id: u16,
    pub link: Link,
    pub seq: Sequencer,
    pub owner: OwnerId,
    pub events: Vec<Event>,
    /// IPv4 packets the peer received.
    pub received: Vec<Vec<u8>>,
    /// A silent peer reads and sends nothing (a dead client).
    pub silent: bool,
    /// The engine told the call's owner to clear the call.
    pub cleared: bool,
    /// When the engine sent this peer an LCP Echo-Request.
    pub echo_requests: Vec<Instant>,
}

impl Peer {
    pub fn is_up(&self) -> bool {
        self.events.iter().any(|e| matches!(e, Event::Up(_)))
    }
}

/// A RADIUS stand-in: the verdict on a claim.
pub type Judge = Box<dyn FnMut(&Claim) -> Authorized>;

/// One engine and its peers.
pub struct World {
    pub engine: Engine,
    pub kernel: Arc<Mutex<Kernel>>,
    pub now: Instant,
    pub pool: Pool,
    pub peers: Vec<Peer>,
    /// Answers claims at once; without one they wait in `pending`.
    pub judge: Option<Judge>,
    pub pending: Vec<(SessionId, ClaimTicket, AuthJob)>,
    pub records: Vec<(SessionId, Record)>,
    /// Accounting-On and -Off, with how many session records came before each.
    pub nas_records: Vec<(usize, NasRecord)>,
    pub dials: Vec<(usize, u64)>,
    pub notified: Vec<(OwnerId, SessionEvent)>,
    pub delivered: Vec<(Target, Vec<u8>)>,
    next_owner: u64,
    next_call_id: u16,
}

impl World {
    /// An engine built from `config`, with `pool_size` addresses.
    pub fn new(mut config: EngineConfig, pool_size: u8) -> Self {
        let start = Instant::now();
        let mut seed = 0;
        config.rng = Box::new(move || {
            seed += 1;
            Box::new(StdRng::seed_from_u64(seed))
        });
        let network = FakeNetwork::default();
        let kernel = network.0.clone();
        Self {
            engine: Engine::new(config, None, Box::new(network), start),
            kernel,
            now: start,
            pool: Pool::of(pool_size),
            peers: Vec::new(),
            judge: None,
            pending: Vec::new(),
            records: Vec::new(),
            nas_records: Vec::new(),
            dials: Vec::new(),
            notified: Vec::new(),
            delivered: Vec::new(),
            next_owner: 0,
            next_call_id: 100,
        }
    }

    /// A call from a client at `addr` as `user` (password = `password`), the
    /// concentrator judging with `verifier`; returns the peer's index.
    pub fn call_in(&mut self, addr: Ipv4Addr, link: LinkConfig, verifier: Verifier) -> usize {
        let server = server_link(&self.pool, verifier);
        self.place(addr, server, link, None)
    }

    /// A call the engine placed as a client (`pptp-agent dial`) to a server at
    /// `addr` that knows `users`.
    pub fn dial(
        &mut self,
        addr: Ipv4Addr,
        client: LinkConfig,
        users: &'static [&'static str],
    ) -> usize {
        let remote = server_link(&self.pool, Verifier::Secrets(Box::new(Users(users))));
        self.place(addr, client, remote, None)
    }

    /// A call the engine placed for demand-dial interface `router`, answered by a
    /// server at `addr` that knows `users`.
    pub fn dial_out(
        &mut self,
        addr: Ipv4Addr,
        router: usize,
        client: LinkConfig,
        users: &'static [&'static str],
    ) -> usize {
        let remote_pool = Pool(Arc::new(Mutex::new(
            [Ipv4Addr::new(203, 0, 113, 2)].into_iter().collect(),
        )));
        let mut remote = server_link(&remote_pool, Verifier::Secrets(Box::new(Users(users))));
        if let Role::Server(s) = &mut remote.role {
            s.local_ip = Ipv4Addr::new(203, 0, 113, 1);
        }
        self.place(addr, client, remote, Some(router))
    }

    fn place(
        &mut self,
        addr: Ipv4Addr,
        ours: LinkConfig,
        theirs: LinkConfig,
        router: Option<usize>,
    ) -> usize {
        self.next_call_id += 1;
        let owner = OwnerId(self.next_owner);
        self.next_owner += 1;
        let peer_call_id = 7000 + self.next_call_id;
        let mut link = Link::new(
            theirs,
            Box::new(StdRng::seed_from_u64(u64::from(peer_call_id))),
        );
        link.open(self.now);
        self.peers.push(Peer {
            addr,
            engine_call_id: self.next_call_id,
            peer_call_id,
            link,
            seq: Sequencer::new(0),
            owner,
            events: Vec::new(),
            received: Vec::new(),
            silent: false,
            cleared: false,
            echo_requests: Vec::new(),
        });
        self.engine.handle_call_up(
            self.now,
            CallUp {
                call: CallSpec {
                    peer_addr: addr,
                    local_addr: SERVER_WAN,
                    local_call_id: self.next_call_id,
                    peer_call_id,
                },
                link: ours,
                owner,
                router,
            },
        );
        self.peers.len() - 1
    }

    /// Moves everything in flight once; whether anything moved.
    fn step(&mut self) -> bool {
        let mut busy = false;
        while let Some((dst, mut gre)) = self.engine.poll_transmit() {
            busy = true;
            let Ok((header, payload)) = GreHeader::parse(&gre) else {
                panic!("the engine sent malformed GRE");
            };
            let Some(peer) = self
                .peers
                .iter_mut()
                .find(|p| p.addr == dst && p.peer_call_id == header.call_id)
            else {
                continue;
            };
            if peer.silent {
                continue;
            }
            peer.seq.on_header(&header);
            // LCP goes without address/control or protocol compression (RFC 1661 §6.5-6).
            if payload.starts_with(&[0xff, 0x03, 0xc0, 0x21, crate::ppp::lcp::code::ECHO_REQUEST]) {
                peer.echo_requests.push(self.now);
            }
            let payload = payload.to_vec();
            gre.clear();
            if let Some(frame) = peer.link.handle_frame(self.now, &payload) {
                peer.received.push(frame.info.to_vec());
            }
        }
        for i in 0..self.peers.len() {
            while let Some(event) = self.peers[i].link.poll_event() {
                busy = true;
                self.peers[i].events.push(event);
            }
            while let Some(frame) = self.peers[i].link.poll_transmit() {
                busy = true;
                let peer = &mut self.peers[i];
                if peer.silent || peer.cleared {
                    continue;
                }
                let mut gre = Vec::new();
                let header = peer
                    .seq
                    .data_header(peer.engine_call_id, frame.len() as u16);
                header.emit(&mut gre);
                gre.extend_from_slice(&frame);
                let addr = peer.addr;
                if let Delivery::Deliver { target, packet } =
                    self.engine.handle_gre(self.now, addr, &mut gre)
                {
                    self.delivered.push((target, gre[packet].to_vec()));
                }
            }
        }
        while let Some(action) = self.engine.poll_action() {
            busy = true;
            self.act(action);
        }
        busy
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::ClearCall {
                owner,
                local_call_id,
            } => {
                if let Some(peer) = self
                    .peers
                    .iter_mut()
                    .find(|p| p.owner == owner && p.engine_call_id == local_call_id)
                {
                    peer.cleared = true;
                    peer.link.lower_down(self.now);
                }
            }
            Action::Notify { owner, event } => self.notified.push((owner, event)),
            Action::Authenticate {
                session,
                ticket,
                job,
            } => match &mut self.judge {
                Some(judge) => {
                    let verdict = judge(&job.claim);
                    self.engine
                        .handle_verdict(self.now, session, ticket, verdict);
                }
                None => self.pending.push((session, ticket, job)),
            },
            Action::CancelAuthentication { session } => {
                self.pending.retain(|(s, _, _)| *s != session);
            }
            Action::Account { session, record } => self.records.push((session, record)),
            Action::AccountNas { record } => self.nas_records.push((self.records.len(), record)),
            Action::Dial { router, generation } => self.dials.push((router, generation)),
        }
    }

    /// Runs until nothing is due before `limit` from now; time jumps between
    /// deadlines.
    pub fn run(&mut self, limit: Duration) {
        self.run_until(limit, |_| false);
    }

    /// Runs until `done` or `limit` (virtual) has passed; whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&World) -> bool) -> bool {
        let deadline = self.now + limit;
        for _ in 0..100_000 {
            while self.step() {}
            if done(self) {
                return true;
            }
            let next = self
                .peers
                .iter()
                .filter(|p| !p.silent && !p.cleared)
                .filter_map(|p| p.link.poll_timeout())
                .chain(self.engine.poll_timeout())
                .min();
            match next {
                Some(at) if at <= deadline => {
                    self.now = self.now.max(at);
                    self.engine.handle_timeout(self.now);
                    for peer in self.peers.iter_mut().filter(|p| !p.silent && !p.cleared) {
                        peer.link.handle_timeout(self.now);
                    }
                }
                _ => {
                    self.now = deadline;
                    return done(self);
                }
            }
        }
        panic!("the world did not settle in 100,000 steps");
    }

    /// The session of peer `i`, if the engine still has it.
    pub fn session_of(&self, i: usize) -> Option<SessionId> {
        self.engine
            .sessions(self.now)
            .into_iter()
            .find(|s| {
                s.local_call_id == self.peers[i].engine_call_id && s.peer == self.peers[i].addr
            })
            .map(|s| s.id)
    }

    /// Sessions in the engine.
    pub fn sessions(&self) -> usize {
        self.engine.session_count()
    }

    /// An IPv4 packet peer `i` sends through its tunnel; what the engine delivered.
    pub fn peer_sends(&mut self, i: usize, packet: &[u8]) -> Delivery {
        let frame = crate::ppp::frame::encode(
            crate::ppp::frame::Framing::default(),
            crate::ppp::frame::protocol::IPV4,
            packet,
        );
        let peer = &mut self.peers[i];
        let mut gre = Vec::new();
        peer.seq
            .data_header(peer.engine_call_id, frame.len() as u16)
            .emit(&mut gre);
        gre.extend_from_slice(&frame);
        let delivery = self.engine.handle_gre(self.now, peer.addr, &mut gre);
        if let Delivery::Deliver { target, packet } = &delivery {
            self.delivered.push((*target, gre[packet.clone()].to_vec()));
        }
        while self.step() {}
        delivery
    }

    /// An IPv4 packet the kernel routed into `device`, as the runtime hands it on.
    pub fn kernel_sends(&mut self, device: Device, packet: &[u8]) {
        if let Some((dst, gre)) = self.engine.handle_ip(self.now, device, packet) {
            let gre = gre.to_vec();
            let Ok((header, payload)) = GreHeader::parse(&gre) else {
                panic!("the engine sent malformed GRE");
            };
            if let Some(peer) = self
                .peers
                .iter_mut()
                .find(|p| p.addr == dst && p.peer_call_id == header.call_id)
                && let Some(frame) = peer.link.handle_frame(self.now, payload)
            {
                peer.received.push(frame.info.to_vec());
            }
        }
    }
}

/// A minimal IPv4 packet from `src` to `dst` (no payload).
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let sum = crate::inet::checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p
}

/// An IPv4 packet of `len` bytes in all from `src` to `dst` (a valid header).
pub fn sized(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> Vec<u8> {
    let mut p = ipv4(src, dst);
    p.resize(len, 0);
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[10..12].fill(0);
    let sum = crate::inet::checksum(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p
}
