//! One RADIUS exchange with retransmission and fail-over, sans-IO.
//!
//! A [`Transaction`] holds the request already encoded for each server (the
//! authenticators and User-Password depend on the server's secret), tries the
//! servers in the order [`Health::order`] gives (servers that recently failed go
//! last), sends to each up to `1 + retries` times `timeout` apart, and ends with the
//! first response that verifies, or with no answer. Responses with a wrong
//! identifier, from another server or failing verification are ignored (counted by
//! the caller), never accepted.
//!
//! With [`Transaction::with_spread`], each wait is `timeout` give or take up to 10 %
//! (RFC 5080 §2.2.1's RAND), so that requests sent together in a burst are not all
//! retransmitted together.
//!
//! The caller moves bytes: [`Transaction::poll_transmit`] says what to send where,
//! [`Transaction::poll_timeout`] when to call [`Transaction::handle_timeout`].
//!
//! BlastRADIUS (CVE-2024-3596): an attacker on the path can forge an Access-Accept
//! whose Response Authenticator checks out (an MD5 chosen-prefix collision) unless the
//! response carries a Message-Authenticator, which only the secret's holder can
//! compute. [`RequireMessageAuthenticator::Auto`] (the default) requires one from a
//! server once that server has sent one in any response ([`Health`] remembers it for
//! the client's life): old servers keep working, and a server known to sign cannot be
//! impersonated by an unsigned forgery.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use super::packet::{Packet, attr, code};

/// A RADIUS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub addr: SocketAddr,
    pub secret: Vec<u8>,
}

/// Retransmission settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Time to wait for an answer to each transmission.
    pub timeout: Duration,
    /// Retransmissions to one server before failing over to the next.
    pub retries: u32,
    /// How long a server that did not answer is tried only after the others.
    pub dead_time: Duration,
    /// When an Access-Accept/Reject/Challenge without a valid Message-Authenticator
    /// is refused (the BlastRADIUS defence; FreeRADIUS sends one from 3.2.5 on).
    pub require_message_authenticator: RequireMessageAuthenticator,
}

/// When responses to an Access-Request must carry a Message-Authenticator
/// (`radius.require_message_authenticator`: `"auto"`, `true`, `false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequireMessageAuthenticator {
    /// From each server once it has sent one in any response.
    #[default]
    Auto,
    /// From every server, always.
    Always,
    /// Never (one is still checked when present).
    Never,
}

impl RequireMessageAuthenticator {
    /// Whether a server that has (`signed`) or has not sent one must send one.
    pub fn applies(self, signed: bool) -> bool {
        match self {
            Self::Auto => signed,
            Self::Always => true,
            Self::Never => false,
        }
    }
}

/// What the exchanges of one client learnt about its servers: which failed recently,
/// and which have sent a Message-Authenticator.
#[derive(Debug, Clone, Default)]
pub struct Health {
    dead_until: Vec<Option<Instant>>,
    signed: Vec<bool>,
}

impl Health {
    /// Server indexes to try: those not recently dead first, in configured order.
    pub fn order(&self, servers: usize, now: Instant) -> Vec<usize> {
        let dead = |i: usize| {
            self.dead_until
                .get(i)
                .copied()
                .flatten()
                .is_some_and(|t| t > now)
        };
        let mut order: Vec<usize> = (0..servers).filter(|&i| !dead(i)).collect();
        order.extend((0..servers).filter(|&i| dead(i)));
        order
    }

    /// Whether server `i` has sent a (valid) Message-Authenticator.
    pub fn signed(&self, i: usize) -> bool {
        self.signed.get(i).copied().unwrap_or(false)
    }

    /// Records the outcome of a transaction; true if the answering server sent a
    /// Message-Authenticator for the first time.
    pub fn record(&mut self, outcome: &Outcome, dead_time: Duration, now: Instant) -> bool {
        for &i in &outcome.silent {
            if self.dead_until.len() <= i {
                self.dead_until.resize(i + 1, None);
            }
            self.dead_until[i] = Some(now + dead_time);
        }
        let Some((i, packet)) = &outcome.answer else {
            return false;
        };
        if let Some(slot) = self.dead_until.get_mut(*i) {
            *slot = None;
        }
        // A response that verified: its Message-Authenticator, if any, is valid.
        if packet.get(attr::MESSAGE_AUTHENTICATOR).is_none() || self.signed(*i) {
            return false;
        }
        if self.signed.len() <= *i {
            self.signed.resize(i + 1, false);
        }
        self.signed[*i] = true;
        true
    }
}

/// How a transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The server that answered and its verified response; `None`: nobody did.
    pub answer: Option<(usize, Packet)>,
    /// Servers that were tried and never answered.
    pub silent: Vec<usize>,
}

/// One request/response exchange.
#[derive(Debug)]
pub struct Transaction {
    /// The request as encoded for each server.
    encoded: Vec<Vec<u8>>,
    secrets: Vec<Vec<u8>>,
    order: Vec<usize>,
    /// Servers known to send Message-Authenticator ([`Health::signed`]).
    signed: Vec<bool>,
    pos: usize,
    sends: u32,
    /// Seeds the spread of each wait ([`Transaction::with_spread`]).
    spread: Option<u64>,
    timing: Timing,
    due: bool,
    deadline: Option<Instant>,
    outcome: Option<Outcome>,
}

impl Transaction {
    /// An exchange of the request encoded per server (`encoded[i]` for `servers[i]`),
    /// trying the servers in the order `health` gives.
    pub fn new(
        servers: &[Server],
        encoded: Vec<Vec<u8>>,
        health: &Health,
        now: Instant,
        timing: Timing,
    ) -> Self {
        let order = health.order(servers.len(), now);
        let signed = (0..servers.len()).map(|i| health.signed(i)).collect();
        Self::in_order(servers, encoded, order, timing).with_signed(signed)
    }

    /// As [`Transaction::new`], trying the servers in `order`, none known to sign.
    pub fn in_order(
        servers: &[Server],
        encoded: Vec<Vec<u8>>,
        order: Vec<usize>,
        timing: Timing,
    ) -> Self {
        assert_eq!(servers.len(), encoded.len(), "one encoding per server");
        let outcome = order.is_empty().then(|| Outcome {
            answer: None,
            silent: Vec::new(),
        });
        Transaction {
            encoded,
            secrets: servers.iter().map(|s| s.secret.clone()).collect(),
            order,
            signed: Vec::new(),
            pos: 0,
            sends: 0,
            spread: None,
            timing,
            due: true,
            deadline: None,
            outcome,
        }
    }

    fn with_signed(mut self, signed: Vec<bool>) -> Self {
        self.signed = signed;
        self
    }

    /// The same, each wait spread by up to ±10 % as `seed` (different for each
    /// exchange) picks.
    pub fn with_spread(mut self, seed: u64) -> Self {
        self.spread = Some(seed);
        self
    }

    /// How long to wait for an answer to the send just made.
    fn wait(&self) -> Duration {
        let Some(seed) = self.spread else {
            return self.timing.timeout;
        };
        // splitmix64 of the seed and the send's place: -100..=100 per mille.
        let mut z = seed ^ (u64::from(self.sends) | (self.pos as u64) << 32);
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let per_mille = 900 + (z % 201) as u32;
        self.timing.timeout * per_mille / 1000
    }

    /// The next datagram to send: (server index, bytes).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(usize, &[u8])> {
        if self.outcome.is_some() || !self.due {
            return None;
        }
        self.due = false;
        self.sends += 1;
        self.deadline = Some(now + self.wait());
        let server = self.order[self.pos];
        Some((server, &self.encoded[server]))
    }

    /// When [`Transaction::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outcome.is_none().then_some(self.deadline).flatten()
    }

    /// Retransmits, fails over, or gives up.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_some() || self.deadline.is_none_or(|d| now < d) {
            return;
        }
        self.deadline = None;
        if self.sends <= self.timing.retries {
            self.due = true;
            return;
        }
        self.pos += 1;
        self.sends = 0;
        if self.pos < self.order.len() {
            self.due = true;
        } else {
            self.outcome = Some(Outcome {
                answer: None,
                silent: self.order.clone(),
            });
        }
    }

    /// A datagram from `server`: the response if it answers this request and
    /// verifies (it then ends the transaction), `None` otherwise.
    pub fn handle_response(&mut self, server: usize, bytes: &[u8]) -> Option<&Packet> {
        if self.outcome.is_some() {
            return None;
        }
        let request = self.encoded.get(server)?;
        if bytes.get(1) != request.get(1) || !self.order[..=self.pos].contains(&server) {
            return None;
        }
        let auth: [u8; 16] = request[4..20].try_into().ok()?;
        let signed = self.signed.get(server).copied().unwrap_or(false);
        let require_ma = request[0] == code::ACCESS_REQUEST
            && self.timing.require_message_authenticator.applies(signed);
        let packet =
            Packet::verify_response(bytes, &auth, &self.secrets[server], require_ma).ok()?;
        let silent = self.order[..self.pos]
            .iter()
            .copied()
            .filter(|&i| i != server)
            .collect();
        self.outcome = Some(Outcome {
            answer: Some((server, packet)),
            silent,
        });
        self.outcome.as_ref()?.answer.as_ref().map(|(_, p)| p)
    }

    /// The outcome, once the transaction ended.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::packet::attr;

    fn servers() -> Vec<Server> {
        ["127.0.0.1:1812", "127.0.0.1:1813"]
            .iter()
            .enumerate()
            .map(|(i, a)| Server {
                addr: a.parse().unwrap(),
                secret: format!("secret{i}").into_bytes(),
            })
            .collect()
    }

    fn request(servers: &[Server]) -> Vec<Vec<u8>> {
        servers
            .iter()
            .map(|s| {
                let mut p = Packet::new(code::ACCOUNTING_REQUEST, 42, [0; 16]);
                p.push(attr::USER_NAME, "alice");
                p.encode(&s.secret, None).unwrap()
            })
            .collect()
    }

    fn answer(request: &[u8], secret: &[u8]) -> Vec<u8> {
        let auth: [u8; 16] = request[4..20].try_into().unwrap();
        Packet::new(code::ACCOUNTING_RESPONSE, request[1], [0; 16])
            .encode(secret, Some(&auth))
            .unwrap()
    }

    const TIMING: Timing = Timing {
        timeout: Duration::from_secs(1),
        retries: 1,
        dead_time: Duration::from_secs(30),
        require_message_authenticator: RequireMessageAuthenticator::Always,
    };

    #[test]
    fn retransmits_then_fails_over_to_the_next_server_which_answers() {
        let s = servers();
        let enc = request(&s);
        let mut t = Transaction::in_order(&s, enc.clone(), vec![0, 1], TIMING);
        let t0 = Instant::now();
        assert_eq!(t.poll_transmit(t0).unwrap().0, 0);
        assert_eq!(t.poll_transmit(t0), None, "one send per timeout");
        t.handle_timeout(t0 + Duration::from_millis(999));
        assert_eq!(t.poll_transmit(t0), None, "not yet");
        t.handle_timeout(t0 + TIMING.timeout);
        let (server, bytes) = t.poll_transmit(t0 + TIMING.timeout).unwrap();
        assert_eq!((server, bytes), (0, &enc[0][..]), "retransmitted identical");
        let t1 = t0 + 2 * TIMING.timeout;
        t.handle_timeout(t1);
        assert_eq!(t.poll_transmit(t1).unwrap().0, 1, "failed over");
        // A forged answer (server 0's secret for server 1's request) is ignored.
        assert!(t.handle_response(1, &answer(&enc[1], b"secret0")).is_none());
        // A wrong identifier too.
        let mut wrong = answer(&enc[1], b"secret1");
        wrong[1] ^= 1;
        assert!(t.handle_response(1, &wrong).is_none());
        let p = t.handle_response(1, &answer(&enc[1], b"secret1")).unwrap();
        assert_eq!(p.code, code::ACCOUNTING_RESPONSE);
        let outcome = t.outcome().unwrap().clone();
        assert_eq!(outcome.silent, vec![0]);
        assert_eq!(t.poll_timeout(), None);

        // The silent server goes last for the next transactions, until its dead
        // time is over.
        let mut health = Health::default();
        health.record(&outcome, TIMING.dead_time, t1);
        assert_eq!(health.order(2, t1), vec![1, 0]);
        assert_eq!(health.order(2, t1 + TIMING.dead_time), vec![0, 1]);
    }

    #[test]
    fn gives_up_when_no_server_answers() {
        let s = servers();
        let mut t = Transaction::in_order(&s, request(&s), vec![1, 0], TIMING);
        let mut now = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..10 {
            while let Some((server, _)) = t.poll_transmit(now) {
                sent.push(server);
            }
            let Some(at) = t.poll_timeout() else { break };
            now = at;
            t.handle_timeout(now);
        }
        assert_eq!(sent, vec![1, 1, 0, 0]);
        assert_eq!(
            t.outcome(),
            Some(&Outcome {
                answer: None,
                silent: vec![1, 0]
            })
        );
    }

    #[test]
    fn a_late_answer_from_the_first_server_still_counts() {
        let s = servers();
        let enc = request(&s);
        let mut t = Transaction::in_order(&s, enc.clone(), vec![0, 1], TIMING);
        let now = Instant::now();
        t.poll_transmit(now);
        t.handle_timeout(now + TIMING.timeout);
        t.poll_transmit(now);
        t.handle_timeout(now + 2 * TIMING.timeout);
        t.poll_transmit(now);
        assert!(t.handle_response(0, &answer(&enc[0], b"secret0")).is_some());
        assert_eq!(t.outcome().unwrap().silent, Vec::<usize>::new());
    }

    /// An Access-Accept for `request` from a server with `secret`, with a
    /// Message-Authenticator when `signed`.
    fn accept(request: &[u8], secret: &[u8], signed: bool) -> Vec<u8> {
        let auth: [u8; 16] = request[4..20].try_into().unwrap();
        let mut p = Packet::new(code::ACCESS_ACCEPT, request[1], [0; 16]);
        if signed {
            p.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
        }
        p.encode(secret, Some(&auth)).unwrap()
    }

    fn access_requests(servers: &[Server], id: u8) -> Vec<Vec<u8>> {
        servers
            .iter()
            .map(|s| {
                let mut p = Packet::new(code::ACCESS_REQUEST, id, [id; 16]);
                p.push(attr::USER_NAME, "alice");
                p.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
                p.encode(&s.secret, None).unwrap()
            })
            .collect()
    }

    /// Whether an Access-Accept (signed or not) from `server` ends a fresh
    /// transaction of a client whose servers are in `health`.
    fn takes(
        health: &mut Health,
        mode: RequireMessageAuthenticator,
        server: usize,
        signed: bool,
    ) -> bool {
        let s = servers();
        let enc = access_requests(&s, 7);
        let timing = Timing {
            require_message_authenticator: mode,
            ..TIMING
        };
        let now = Instant::now();
        let mut t = Transaction::in_order(&s, enc.clone(), vec![server], timing)
            .with_signed((0..s.len()).map(|i| health.signed(i)).collect());
        t.poll_transmit(now);
        let answer = accept(&enc[server], &s[server].secret, signed);
        let taken = t.handle_response(server, &answer).is_some();
        if let Some(outcome) = t.outcome() {
            health.record(outcome, TIMING.dead_time, now);
        }
        taken
    }

    #[test]
    fn auto_requires_message_authenticator_from_a_server_once_it_sent_one() {
        use RequireMessageAuthenticator::*;
        let mut health = Health::default();
        assert!(
            takes(&mut health, Auto, 0, false),
            "an old server that never signs works"
        );
        assert!(!health.signed(0));
        assert!(takes(&mut health, Auto, 0, true));
        assert!(health.signed(0), "remembered");
        assert!(
            !takes(&mut health, Auto, 0, false),
            "an unsigned answer (a BlastRADIUS forgery) from a server that signs is ignored"
        );
        assert!(takes(&mut health, Auto, 0, true));
        assert!(
            takes(&mut health, Auto, 1, false),
            "the other server has not signed yet: per server"
        );

        let mut fresh = Health::default();
        assert!(
            !takes(&mut fresh, Always, 1, false),
            "true: always required"
        );
        assert!(takes(&mut fresh, Always, 1, true));
        assert!(takes(&mut fresh, Never, 1, false), "false: never required");
        assert!(fresh.signed(1), "a signed answer was seen all the same");

        // Accounting responses never carry one: never required.
        let s = servers();
        let enc = request(&s);
        let mut t =
            Transaction::in_order(&s, enc.clone(), vec![0], TIMING).with_signed(vec![true, true]);
        t.poll_transmit(Instant::now());
        assert!(t.handle_response(0, &answer(&enc[0], b"secret0")).is_some());
    }

    #[test]
    fn new_takes_order_and_signers_from_health() {
        let s = servers();
        let enc = access_requests(&s, 9);
        let now = Instant::now();
        let mut health = Health::default();
        health.record(
            &Outcome {
                answer: Some((
                    1,
                    Packet::parse(&accept(&enc[1], b"secret1", true)).unwrap(),
                )),
                silent: vec![0],
            },
            TIMING.dead_time,
            now,
        );
        let timing = Timing {
            require_message_authenticator: RequireMessageAuthenticator::Auto,
            ..TIMING
        };
        let mut t = Transaction::new(&s, enc.clone(), &health, now, timing);
        assert_eq!(
            t.poll_transmit(now).unwrap().0,
            1,
            "the silent server goes last"
        );
        assert!(
            t.handle_response(1, &accept(&enc[1], b"secret1", false))
                .is_none()
        );
        assert!(
            t.handle_response(1, &accept(&enc[1], b"secret1", true))
                .is_some()
        );
    }
}
