//! The load generator's traffic check: every session sends an ICMP echo request
//! through its own tunnel as soon as it is up, again each [`ECHO_RETRY`] while
//! unanswered (at most [`ECHO_ROUNDS`] in all), and counts only a reply that
//! carries its own identifier ([`echo_id`]) and arrived through its own call. The
//! time from IPCP up to that reply is the session's time to its first forwarded
//! packet. [`Echoes`] is the bookkeeping, sans-IO: it takes the time and gives the
//! packets to send.

use std::{
    collections::HashMap,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use pptp_common::wire::ipv4;

use crate::inet;

/// Echo requests a session sends at most.
pub const ECHO_ROUNDS: u16 = 5;
/// Time between a session's echo requests while unanswered.
pub const ECHO_RETRY: Duration = Duration::from_secs(1);
/// How long the last requests are waited for.
pub const ECHO_WAIT: Duration = Duration::from_secs(2);

/// The ICMP identifier of session `index`'s echo requests: its index modulo
/// 65,536 (fewer sessions than that are up at once: the Call IDs run out first).
pub fn echo_id(index: u32) -> u16 {
    index as u16
}

/// A session waiting for its first reply.
struct Waiting {
    id: u16,
    up_at: Instant,
    sent: u16,
    last_sent: Instant,
}

/// The traffic check of every session.
pub struct Echoes {
    target: Ipv4Addr,
    /// Each up session's identifier, by its address.
    ids: HashMap<Ipv4Addr, u16>,
    waiting: HashMap<Ipv4Addr, Waiting>,
    /// From IPCP up to the first reply, of every answered session.
    pub first_packet: Vec<Duration>,
    pub misdelivered: u32,
    /// When the last request went out.
    last_sent: Option<Instant>,
}

impl Echoes {
    /// Echo requests go to `target`.
    pub fn new(target: Ipv4Addr) -> Self {
        Self {
            target,
            ids: HashMap::new(),
            waiting: HashMap::new(),
            first_packet: Vec::new(),
            misdelivered: 0,
            last_sent: None,
        }
    }

    /// Session `index` came up at `now` with `address`: its first request.
    pub fn up(&mut self, index: u32, address: Ipv4Addr, now: Instant) -> Vec<u8> {
        self.ask(address, echo_id(index), now)
    }

    /// The check once more, for every session that came up (after the hold: do
    /// they still carry traffic?), and the first request of each, sent at `now`.
    pub fn again(&self, now: Instant) -> (Echoes, Vec<Vec<u8>>) {
        let mut again = Echoes::new(self.target);
        let packets = self
            .ids
            .iter()
            .map(|(&address, &id)| again.ask(address, id, now))
            .collect();
        (again, packets)
    }

    /// The session with `address` and identifier `id` waits for a reply to the
    /// request sent at `now`, returned.
    fn ask(&mut self, address: Ipv4Addr, id: u16, now: Instant) -> Vec<u8> {
        self.ids.insert(address, id);
        self.waiting.insert(
            address,
            Waiting {
                id,
                up_at: now,
                sent: 1,
                last_sent: now,
            },
        );
        self.last_sent = Some(now);
        echo_request(address, self.target, id, 0)
    }

    /// A packet that arrived through the call of the session with address `via`.
    pub fn received(&mut self, via: Ipv4Addr, packet: &[u8], now: Instant) {
        let Some((to, id)) = echo_reply_to(packet, self.target) else {
            return;
        };
        if via != to || self.ids.get(&to) != Some(&id) {
            self.misdelivered += 1;
        } else if let Some(w) = self.waiting.remove(&to) {
            self.first_packet.push(now - w.up_at);
        }
    }

    /// The requests due at `now`: sessions unanswered for [`ECHO_RETRY`] that have
    /// requests left.
    pub fn due(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        for (&address, w) in &mut self.waiting {
            if w.sent < ECHO_ROUNDS && now >= w.last_sent + ECHO_RETRY {
                packets.push(echo_request(address, self.target, w.id, w.sent));
                w.sent += 1;
                w.last_sent = now;
            }
        }
        if !packets.is_empty() {
            self.last_sent = Some(now);
        }
        packets
    }

    /// Whether every session is answered, or has spent its requests and the last
    /// of them had [`ECHO_WAIT`] to be answered.
    pub fn settled(&self, now: Instant) -> bool {
        self.waiting.is_empty()
            || (self.waiting.values().all(|w| w.sent >= ECHO_ROUNDS)
                && self.last_sent.is_none_or(|at| now >= at + ECHO_WAIT))
    }

    /// Sessions answered.
    pub fn answered(&self) -> u32 {
        self.first_packet.len() as u32
    }
}

/// An IPv4 ICMP echo request from `src` to `dst` with identifier `id`, 56 bytes of
/// data like ping's.
pub fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16) -> Vec<u8> {
    const DATA: usize = 56;
    const ICMP: usize = 8 + DATA;
    let mut p = vec![0u8; ipv4::HEADER_LEN + ICMP];
    let header = inet::Ipv4Repr::new(src.octets(), dst.octets(), ipv4::PROTO_ICMP, ICMP as u16);
    p[..ipv4::HEADER_LEN].copy_from_slice(&header.header());
    p[20] = 8; // echo request
    p[24..26].copy_from_slice(&id.to_be_bytes());
    p[26..28].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let icmp_sum = inet::checksum(&p[20..]);
    p[22..24].copy_from_slice(&icmp_sum.to_be_bytes());
    p
}

/// The destination and identifier of an intact echo reply from `from`; `None` for
/// anything else (other protocols or sources, requests, bad checksums).
pub fn echo_reply_to(packet: &[u8], from: Ipv4Addr) -> Option<(Ipv4Addr, u16)> {
    let ip = ipv4::Header(*packet.first_chunk()?);
    let ihl = ip.header_len();
    if !ip.is_ipv4() || packet.len() < ihl + 8 || ip.protocol() != ipv4::PROTO_ICMP {
        return None;
    }
    let icmp = &packet[ihl..];
    let reply = icmp[0] == 0;
    let intact = inet::verifies(0, icmp);
    (Ipv4Addr::from(ip.src()) == from && reply && intact).then(|| {
        (
            Ipv4Addr::from(ip.dst()),
            u16::from_be_bytes([icmp[4], icmp[5]]),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host's answer to `request`: addresses swapped, type 0, checksum adjusted.
    fn reply_to(request: &[u8]) -> Vec<u8> {
        let mut reply = request.to_vec();
        reply[12..16].copy_from_slice(&request[16..20]);
        reply[16..20].copy_from_slice(&request[12..16]);
        reply[20] = 0;
        reply[22..24].copy_from_slice(&[0, 0]);
        let sum = inet::checksum(&reply[20..]);
        reply[22..24].copy_from_slice(&sum.to_be_bytes());
        reply
    }

    #[test]
    fn echo_requests_are_valid_and_replies_are_recognised() {
        let (client, host) = (Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(203, 0, 113, 10));
        let request = echo_request(client, host, echo_id(7), 3);
        assert_eq!(request.len(), 84);
        assert!(inet::verifies(0, &request[..20]));
        assert!(inet::verifies(0, &request[20..]));
        let reply = reply_to(&request);
        assert_eq!(echo_reply_to(&reply, host), Some((client, 7)));
        // Not from the target, a request, a damaged reply, a truncated packet.
        assert_eq!(echo_reply_to(&reply, client), None);
        assert_eq!(echo_reply_to(&request, client), None);
        let mut damaged = reply.clone();
        damaged[40] ^= 1;
        assert_eq!(echo_reply_to(&damaged, host), None);
        assert_eq!(echo_reply_to(&reply[..24], host), None);
        assert_eq!(echo_reply_to(&[], host), None);
    }

    #[test]
    fn first_packet_time_runs_from_up_to_the_reply_through_retries() {
        let host = Ipv4Addr::new(203, 0, 113, 10);
        let (a, b) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        let t0 = Instant::now();
        let mut echoes = Echoes::new(host);
        let first_a = echoes.up(0, a, t0);
        let first_b = echoes.up(1, b, t0 + Duration::from_millis(100));
        // Nothing due before a second has passed.
        assert!(echoes.due(t0 + Duration::from_millis(900)).is_empty());
        // a's first request is lost; its second goes out after a second.
        let due = echoes.due(t0 + ECHO_RETRY);
        assert_eq!(due.len(), 1);
        assert_eq!(echo_reply_to(&reply_to(&due[0]), host), Some((a, 0)));
        echoes.received(a, &reply_to(&due[0]), t0 + Duration::from_millis(1030));
        // b's reply comes through a's call: misdelivered, b still waits.
        echoes.received(a, &reply_to(&first_b), t0 + Duration::from_millis(1040));
        // A second reply for a counts nothing more.
        echoes.received(a, &reply_to(&first_a), t0 + Duration::from_millis(1050));
        assert_eq!(echoes.first_packet, vec![Duration::from_millis(1030)]);
        assert_eq!(echoes.misdelivered, 1);
        assert_eq!(echoes.answered(), 1);
        assert!(!echoes.settled(t0 + Duration::from_secs(2)));
        // b spends its requests (the 2nd to 5th at 2 s to 5 s: each a second after
        // the one before, polled every second), then has ECHO_WAIT for the last.
        let mut sent = 1;
        for s in 2..=10 {
            sent += echoes.due(t0 + Duration::from_secs(s)).len();
        }
        assert_eq!(sent, usize::from(ECHO_ROUNDS));
        let last = t0 + Duration::from_secs(5);
        assert!(!echoes.settled(last + ECHO_WAIT - Duration::from_millis(1)));
        assert!(echoes.settled(last + ECHO_WAIT));

        // Checked again: both sessions ask anew and count anew.
        let t1 = t0 + Duration::from_secs(60);
        let (mut again, requests) = echoes.again(t1);
        assert_eq!(requests.len(), 2);
        assert!(!again.settled(t1 + ECHO_WAIT));
        let for_a = requests
            .iter()
            .find(|r| echo_reply_to(&reply_to(r), host) == Some((a, 0)))
            .unwrap();
        again.received(a, &reply_to(for_a), t1 + Duration::from_millis(5));
        assert_eq!(again.answered(), 1);
        assert_eq!(again.misdelivered, 0);
        assert!(!again.settled(t1 + ECHO_WAIT));
    }
}
