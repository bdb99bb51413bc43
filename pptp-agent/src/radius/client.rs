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
//! The caller moves bytes: [`Transaction::poll_transmit`] says what to send where,
//! [`Transaction::poll_timeout`] when to call [`Transaction::handle_timeout`].

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use super::packet::{Packet, code};

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
    /// Refuse an Access-Accept/Reject/Challenge without a valid Message-Authenticator
    /// (the BlastRADIUS defence; FreeRADIUS sends one from 3.2.5 on).
    pub require_message_authenticator: bool,
}

/// Which servers failed recently (shared by the transactions of one client).
#[derive(Debug, Clone, Default)]
pub struct Health {
    dead_until: Vec<Option<Instant>>,
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

    /// Records the outcome of a transaction.
    pub fn record(&mut self, outcome: &Outcome, dead_time: Duration, now: Instant) {
        for &i in &outcome.silent {
            if self.dead_until.len() <= i {
                self.dead_until.resize(i + 1, None);
            }
            self.dead_until[i] = Some(now + dead_time);
        }
        if let Some((i, _)) = &outcome.answer
            && let Some(slot) = self.dead_until.get_mut(*i)
        {
            *slot = None;
        }
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
    pos: usize,
    sends: u32,
    timing: Timing,
    due: bool,
    deadline: Option<Instant>,
    outcome: Option<Outcome>,
}

impl Transaction {
    /// An exchange of the request encoded per server (`encoded[i]` for `servers[i]`),
    /// trying the servers in `order`.
    pub fn new(
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
            pos: 0,
            sends: 0,
            timing,
            due: true,
            deadline: None,
            outcome,
        }
    }

    /// The next datagram to send: (server index, bytes).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(usize, &[u8])> {
        if self.outcome.is_some() || !self.due {
            return None;
        }
        self.due = false;
        self.sends += 1;
        self.deadline = Some(now + self.timing.timeout);
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
        let require_ma =
            request[0] == code::ACCESS_REQUEST && self.timing.require_message_authenticator;
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
        require_message_authenticator: true,
    };

    #[test]
    fn retransmits_then_fails_over_to_the_next_server_which_answers() {
        let s = servers();
        let enc = request(&s);
        let mut t = Transaction::new(&s, enc.clone(), vec![0, 1], TIMING);
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
        let mut t = Transaction::new(&s, request(&s), vec![1, 0], TIMING);
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
        let mut t = Transaction::new(&s, enc.clone(), vec![0, 1], TIMING);
        let now = Instant::now();
        t.poll_transmit(now);
        t.handle_timeout(now + TIMING.timeout);
        t.poll_transmit(now);
        t.handle_timeout(now + 2 * TIMING.timeout);
        t.poll_transmit(now);
        assert!(t.handle_response(0, &answer(&enc[0], b"secret0")).is_some());
        assert_eq!(t.outcome().unwrap().silent, Vec::<usize>::new());
    }
}
