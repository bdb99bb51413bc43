//! Every RADIUS exchange of the agent over a fixed set of UDP sockets, sans-IO.
//!
//! A RADIUS identifier is one byte, and RFC 2865 (§3, "Identifier") makes it unique
//! per source address and port and server: so each socket of the set has its own
//! 256 identifiers at every server. An exchange is given one socket and one
//! identifier free at every server of its list (the request is encoded per server
//! with that identifier, so fail-over needs no new encoding; the exchanges of one
//! kind all share one list, so this costs no identifiers), keeps them through its
//! retransmissions (RFC 5080 §2.2.1: same identifier, same authenticator, so a
//! server's duplicate detection works) and gives them back when it ends. Answers are
//! matched by (socket, server, identifier) and then verified by the exchange's
//! [`Transaction`] (Response Authenticator, Message-Authenticator). Each exchange
//! spreads its waits differently ([`Transaction::with_spread`]), so a burst of
//! requests that goes unanswered is not retransmitted as one burst.
//!
//! Identifiers are handed out round-robin per socket, and the sockets in turn, so an
//! identifier comes back only after the other 255 of its socket. An exchange that was
//! retransmitted or given up may still get answers, to a copy the server saw late:
//! its identifiers are held for [`Limits::hold`] before reuse, and an answer that
//! arrives meanwhile is counted as late ([`Received::Late`]), not taken for the next
//! exchange. An exchange answered at its first send frees its identifier at once (the
//! server answered the only copy). When no socket has an identifier free, requests
//! wait in a queue of [`Limits::max_waiting`], first come first served; beyond it they
//! are refused ([`Refused::QueueFull`]). Nothing opens a socket: the caller binds
//! [`Limits::sockets`] once.
//!
//! The caller moves bytes and time: [`Exchanges::submit`],
//! [`Exchanges::handle_datagram`], [`Exchanges::handle_timeout`] in;
//! [`Exchanges::poll_transmit`], [`Exchanges::poll_done`],
//! [`Exchanges::poll_timeout`] out.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use super::client::{Health, Outcome, Server, Timing, Transaction};

/// How many sockets, how long identifiers are held, how many requests may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub sockets: usize,
    pub hold: Duration,
    pub max_waiting: usize,
}

/// Encodes a request for each server of its list with the identifier given (`None`:
/// it does not fit a RADIUS packet).
pub type Encode = Box<dyn FnOnce(u8) -> Option<Vec<Vec<u8>>> + Send>;

/// A request to carry out; `token` comes back with its result.
pub struct Request<T> {
    pub servers: Arc<[Server]>,
    /// What is known of the servers when the request was made.
    pub health: Health,
    pub timing: Timing,
    pub encode: Encode,
    pub token: T,
}

/// Why a request was not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// [`Limits::max_waiting`] requests were already waiting for an identifier.
    QueueFull,
    /// The request does not fit a RADIUS packet.
    Unencodable,
}

/// What became of a submitted request for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    Started,
    Waiting,
    /// Refused: its result ([`Refused::QueueFull`]) is in [`Exchanges::poll_done`].
    Full,
}

/// What a datagram from a server was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// The answer of an exchange in flight, verified: the exchange ended.
    Answer,
    /// Matches an exchange in flight by identifier but does not verify (wrong
    /// Response Authenticator or Message-Authenticator, or from a server not yet
    /// asked).
    Unverified,
    /// For an identifier held after its exchange ended (a late answer).
    Late,
    /// For no exchange (or too short to carry an identifier).
    Unmatched,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub socket: usize,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Free,
    /// The exchange at this index of `live`.
    Busy(usize),
    /// Ended; reusable from then on.
    Held(Instant),
}

struct Live<T> {
    socket: usize,
    id: u8,
    addrs: Vec<SocketAddr>,
    servers: Arc<[Server]>,
    transaction: Transaction,
    deadline: Option<Instant>,
    sends: u32,
    token: T,
}

/// The exchanges in flight and waiting, and every socket's identifiers.
pub struct Exchanges<T> {
    limits: Limits,
    /// (socket, server address): the 256 identifiers.
    tables: HashMap<(usize, SocketAddr), Vec<Slot>>,
    live: Vec<Option<Live<T>>>,
    vacant: Vec<usize>,
    waiting: VecDeque<Request<T>>,
    /// Exchanges that may have something to send.
    ready: VecDeque<usize>,
    timers: BTreeSet<(Instant, usize)>,
    /// When held identifiers become free, in order.
    holds: VecDeque<Instant>,
    done: VecDeque<(T, Result<Outcome, Refused>)>,
    next_socket: usize,
    next_id: Vec<u8>,
    /// Exchanges started so far: each one's seed for spreading its waits.
    started: u64,
}

impl<T> Exchanges<T> {
    pub fn new(limits: Limits) -> Self {
        let limits = Limits {
            sockets: limits.sockets.max(1),
            ..limits
        };
        Exchanges {
            tables: HashMap::new(),
            live: Vec::new(),
            vacant: Vec::new(),
            waiting: VecDeque::new(),
            ready: VecDeque::new(),
            timers: BTreeSet::new(),
            holds: VecDeque::new(),
            done: VecDeque::new(),
            next_socket: 0,
            next_id: vec![0; limits.sockets],
            started: 0,
            limits,
        }
    }

    /// Exchanges in flight.
    pub fn in_flight(&self) -> usize {
        self.live.len() - self.vacant.len()
    }

    /// Requests waiting for an identifier.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Starts `request` if an identifier is free (and none waits before it),
    /// queues it otherwise.
    pub fn submit(&mut self, request: Request<T>, now: Instant) -> Submitted {
        if self.waiting.is_empty()
            && let Some((socket, id)) = self.allocate(&addrs(&request.servers), now)
        {
            self.start(request, socket, id, now);
            return Submitted::Started;
        }
        if self.waiting.len() >= self.limits.max_waiting {
            self.done
                .push_back((request.token, Err(Refused::QueueFull)));
            return Submitted::Full;
        }
        self.waiting.push_back(request);
        Submitted::Waiting
    }

    /// A datagram that arrived on `socket` from `from`.
    pub fn handle_datagram(
        &mut self,
        socket: usize,
        from: SocketAddr,
        bytes: &[u8],
        now: Instant,
    ) -> Received {
        let Some(&id) = bytes.get(1) else {
            return Received::Unmatched;
        };
        let slot = self.tables.get(&(socket, from)).map(|t| t[usize::from(id)]);
        match slot {
            Some(Slot::Busy(i)) => {
                let live = self.live[i]
                    .as_mut()
                    .expect("a busy slot names a live exchange");
                let Some(server) = live.servers.iter().position(|s| s.addr == from) else {
                    return Received::Unmatched;
                };
                if live.transaction.handle_response(server, bytes).is_none() {
                    return Received::Unverified;
                }
                self.finish(i, now);
                Received::Answer
            }
            Some(Slot::Held(until)) if until > now => Received::Late,
            _ => Received::Unmatched,
        }
    }

    /// Retransmits, fails over, gives up, and starts waiting requests whose
    /// identifiers have come free.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, i)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let live = self.live[i]
                .as_mut()
                .expect("a timer names a live exchange");
            live.deadline = None;
            live.transaction.handle_timeout(now);
            if live.transaction.outcome().is_some() {
                self.finish(i, now);
            } else {
                self.ready.push_back(i);
            }
        }
        let mut expired = false;
        while self.holds.front().is_some_and(|&t| t <= now) {
            self.holds.pop_front();
            expired = true;
        }
        if expired {
            self.start_waiting(now);
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        while let Some(i) = self.ready.pop_front() {
            let Some(live) = self.live[i].as_mut() else {
                continue;
            };
            let Some((server, bytes)) = live.transaction.poll_transmit(now) else {
                continue;
            };
            let transmit = Transmit {
                socket: live.socket,
                to: live.servers[server].addr,
                bytes: bytes.to_vec(),
            };
            live.sends += 1;
            let deadline = live.transaction.poll_timeout();
            if let Some(old) = std::mem::replace(&mut live.deadline, deadline) {
                self.timers.remove(&(old, i));
            }
            if let Some(at) = deadline {
                self.timers.insert((at, i));
            }
            return Some(transmit);
        }
        None
    }

    /// The next ended request and its result.
    pub fn poll_done(&mut self) -> Option<(T, Result<Outcome, Refused>)> {
        self.done.pop_front()
    }

    /// When [`Exchanges::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.first().map(|&(at, _)| at);
        let hold = self
            .holds
            .front()
            .copied()
            .filter(|_| !self.waiting.is_empty());
        timer.into_iter().chain(hold).min()
    }

    /// A socket and an identifier free at every one of `addrs`.
    fn allocate(&mut self, addrs: &[SocketAddr], now: Instant) -> Option<(usize, u8)> {
        let sockets = self.limits.sockets;
        for k in 0..sockets {
            let socket = (self.next_socket + k) % sockets;
            let first = self.next_id[socket];
            for j in 0..=255u8 {
                let id = first.wrapping_add(j);
                let free = addrs.iter().all(|a| {
                    self.tables
                        .get(&(socket, *a))
                        .is_none_or(|t| match t[usize::from(id)] {
                            Slot::Free => true,
                            Slot::Busy(_) => false,
                            Slot::Held(until) => until <= now,
                        })
                });
                if free {
                    self.next_id[socket] = id.wrapping_add(1);
                    self.next_socket = (socket + 1) % sockets;
                    return Some((socket, id));
                }
            }
        }
        None
    }

    fn start(&mut self, request: Request<T>, socket: usize, id: u8, now: Instant) {
        let Some(encoded) = (request.encode)(id) else {
            self.done
                .push_back((request.token, Err(Refused::Unencodable)));
            return;
        };
        self.started += 1;
        let transaction = Transaction::new(
            &request.servers,
            encoded,
            &request.health,
            now,
            request.timing,
        )
        .with_spread(self.started);
        if let Some(outcome) = transaction.outcome() {
            self.done.push_back((request.token, Ok(outcome.clone())));
            return;
        }
        let i = self.vacant.pop().unwrap_or_else(|| {
            self.live.push(None);
            self.live.len() - 1
        });
        let addrs = addrs(&request.servers);
        for a in &addrs {
            self.tables
                .entry((socket, *a))
                .or_insert_with(|| vec![Slot::Free; 256])[usize::from(id)] = Slot::Busy(i);
        }
        self.live[i] = Some(Live {
            socket,
            id,
            addrs,
            servers: request.servers,
            transaction,
            deadline: None,
            sends: 0,
            token: request.token,
        });
        self.ready.push_back(i);
    }

    /// Ends exchange `i` (answered or given up), frees or holds its identifier and
    /// starts what waits.
    fn finish(&mut self, i: usize, now: Instant) {
        let live = self.live[i].take().expect("finishing a live exchange");
        self.vacant.push(i);
        if let Some(at) = live.deadline {
            self.timers.remove(&(at, i));
        }
        let outcome = live
            .transaction
            .outcome()
            .cloned()
            .expect("a finished transaction has an outcome");
        let hold = live.sends > 1 || outcome.answer.is_none();
        let slot = if hold {
            let until = now + self.limits.hold;
            self.holds.push_back(until);
            Slot::Held(until)
        } else {
            Slot::Free
        };
        for a in &live.addrs {
            if let Some(t) = self.tables.get_mut(&(live.socket, *a)) {
                t[usize::from(live.id)] = slot;
            }
        }
        self.done.push_back((live.token, Ok(outcome)));
        self.start_waiting(now);
    }

    fn start_waiting(&mut self, now: Instant) {
        while let Some(request) = self.waiting.front() {
            let Some((socket, id)) = self.allocate(&addrs(&request.servers), now) else {
                break;
            };
            let request = self.waiting.pop_front().expect("front exists");
            self.start(request, socket, id, now);
        }
    }
}

/// The servers' addresses, each once.
fn addrs(servers: &[Server]) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    addrs.sort_unstable();
    addrs.dedup();
    addrs
}

#[cfg(test)]
mod tests;
