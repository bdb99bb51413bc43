//! Test harness: two [`Link`]s (or a link and a scripted peer) wired back to back in
//! memory with a virtual clock and fault injection, in the style of quinn-proto's
//! `Pair`. Nothing sleeps: time jumps to the next deadline when the wire is quiet.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::auth::{Credentials, Method, Policy, Secret, SecretSource};
use super::ipcp::AddressPool;
use super::link::{ClientConfig, Event, Link, LinkConfig, Role, ServerConfig, Verifier};

pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const POOL_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
pub const DNS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
pub const USER: &[u8] = b"pptpuser";
pub const PASSWORD: &[u8] = b"pptp-Secret1";

/// One user with a password.
pub struct Users;

impl SecretSource for Users {
    fn secret(&self, user: &[u8]) -> Option<Secret> {
        (user == USER).then(|| Secret::Password(PASSWORD.to_vec()))
    }
}

/// A pool of one address that records releases.
#[derive(Clone, Default)]
pub struct OneAddress {
    pub taken: Arc<Mutex<bool>>,
    pub released: Arc<Mutex<Vec<Ipv4Addr>>>,
}

impl AddressPool for OneAddress {
    fn allocate(&mut self, _user: &[u8]) -> Option<Ipv4Addr> {
        let mut taken = self.taken.lock().unwrap();
        (!*taken).then(|| {
            *taken = true;
            POOL_IP
        })
    }

    fn release(&mut self, address: Ipv4Addr) {
        *self.taken.lock().unwrap() = false;
        self.released.lock().unwrap().push(address);
    }
}

pub fn server_config(methods: &[Method], pool: OneAddress) -> LinkConfig {
    LinkConfig::new(Role::Server(ServerConfig {
        name: b"pptpd".to_vec(),
        auth: Policy::new(methods),
        local_ip: SERVER_IP,
        dns: [Some(DNS), None],
        nbns: [None, None],
        verifier: Verifier::Secrets(Box::new(Users)),
        pool: Box::new(pool),
    }))
}

pub fn client_config(methods: &[Method], password: &[u8]) -> LinkConfig {
    LinkConfig::new(Role::Client(ClientConfig {
        credentials: Credentials {
            user: USER.to_vec(),
            password: password.to_vec(),
        },
        auth: Policy::new(methods),
        request_dns: true,
    }))
}

pub fn link(config: LinkConfig, seed: u64) -> Link {
    Link::new(config, Box::new(StdRng::seed_from_u64(seed)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

/// Decides the fate of a frame in flight: false drops it; it may also rewrite it.
pub type Fault = Box<dyn FnMut(Side, &mut Vec<u8>) -> bool>;

/// A scripted peer: the frames it answers a received frame with.
pub type Script = Box<dyn FnMut(&[u8]) -> Vec<Vec<u8>>>;

/// What stands on the client side: a real link or a script answering frames.
pub enum Remote {
    Link(Box<Link>),
    Script(Script),
}

pub struct Pair {
    pub server: Link,
    pub client: Remote,
    pub start: Instant,
    pub now: Instant,
    pub fault: Option<Fault>,
    pub server_events: Vec<Event>,
    pub client_events: Vec<Event>,
    /// Frames in flight, with their sender.
    wire: VecDeque<(Side, Vec<u8>)>,
    /// Every frame delivered, with its sender.
    pub transcript: Vec<(Side, Vec<u8>)>,
}

impl Pair {
    pub fn new(server: Link, client: Remote) -> Self {
        let now = Instant::now();
        Pair {
            server,
            client,
            start: now,
            now,
            fault: None,
            server_events: Vec::new(),
            client_events: Vec::new(),
            wire: VecDeque::new(),
            transcript: Vec::new(),
        }
    }

    pub fn links(server: LinkConfig, client: LinkConfig) -> Self {
        Pair::new(link(server, 1), Remote::Link(Box::new(link(client, 2))))
    }

    pub fn open(&mut self) {
        self.server.open(self.now);
        if let Remote::Link(c) = &mut self.client {
            c.open(self.now);
        }
    }

    pub fn client_link(&mut self) -> &mut Link {
        match &mut self.client {
            Remote::Link(c) => c,
            Remote::Script(_) => panic!("scripted client"),
        }
    }

    fn collect(&mut self) {
        while let Some(f) = self.server.poll_transmit() {
            self.wire.push_back((Side::Server, f));
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
        if let Remote::Link(c) = &mut self.client {
            while let Some(f) = c.poll_transmit() {
                self.wire.push_back((Side::Client, f));
            }
            while let Some(e) = c.poll_event() {
                self.client_events.push(e);
            }
        }
    }

    /// Delivers one frame; false when the wire is empty.
    fn step(&mut self) -> bool {
        self.collect();
        let Some((from, mut frame)) = self.wire.pop_front() else {
            return false;
        };
        if let Some(fault) = &mut self.fault {
            if !fault(from, &mut frame) {
                return true;
            }
        }
        self.transcript.push((from, frame.clone()));
        let now = self.now;
        match (from, &mut self.client) {
            (Side::Server, Remote::Link(c)) => {
                c.handle_frame(now, &frame);
            }
            (Side::Server, Remote::Script(script)) => {
                for reply in script(&frame) {
                    self.wire.push_back((Side::Client, reply));
                }
            }
            (Side::Client, _) => {
                self.server.handle_frame(now, &frame);
            }
        }
        true
    }

    fn next_deadline(&self) -> Option<Instant> {
        let client = match &self.client {
            Remote::Link(c) => c.poll_timeout(),
            Remote::Script(_) => None,
        };
        [self.server.poll_timeout(), client]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs until `done` holds or `limit` of virtual time has passed; returns
    /// whether `done` held.
    pub fn drive_until(&mut self, limit: Duration, mut done: impl FnMut(&Pair) -> bool) -> bool {
        loop {
            while self.step() {
                if done(self) {
                    return true;
                }
            }
            self.collect();
            if done(self) {
                return true;
            }
            let Some(deadline) = self.next_deadline() else {
                return false;
            };
            if deadline > self.start + limit {
                return false;
            }
            self.now = self.now.max(deadline);
            let now = self.now;
            self.server.handle_timeout(now);
            if let Remote::Link(c) = &mut self.client {
                c.handle_timeout(now);
            }
        }
    }

    /// Both links up (or either down).
    pub fn drive_to_settled(&mut self) {
        let settled = |p: &Pair| {
            let up = |ev: &[Event]| ev.iter().any(|e| matches!(e, Event::Up(_)));
            let down = |ev: &[Event]| ev.iter().any(|e| matches!(e, Event::Down(_)));
            (up(&p.server_events) && up(&p.client_events))
                || (down(&p.server_events) && down(&p.client_events))
        };
        assert!(
            self.drive_until(Duration::from_secs(120), settled),
            "did not settle: {:?} {:?}",
            self.server_events,
            self.client_events
        );
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}

pub fn up(events: &[Event]) -> Option<&super::link::LinkUp> {
    events.iter().find_map(|e| match e {
        Event::Up(u) => Some(u),
        _ => None,
    })
}

pub fn down(events: &[Event]) -> Option<&super::link::DownReason> {
    events.iter().find_map(|e| match e {
        Event::Down(r) => Some(r),
        _ => None,
    })
}
