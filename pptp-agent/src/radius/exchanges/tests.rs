//! The identifier pool and answer matching on a virtual clock.

use super::*;
use crate::radius::{
    client::RequireMessageAuthenticator,
    packet::{Packet, attr, code},
};

const TIMING: Timing = Timing {
    timeout: Duration::from_secs(1),
    retries: 1,
    dead_time: Duration::from_secs(30),
    require_message_authenticator: RequireMessageAuthenticator::Auto,
};

const HOLD: Duration = Duration::from_secs(5);

/// The longest a wait of [`TIMING`] may be spread to (+10 %).
const LONGEST: Duration = Duration::from_millis(1100);

/// Whether `wait` is `timeout` give or take 10 %.
fn within_spread(wait: Duration, timeout: Duration) -> bool {
    wait >= timeout * 9 / 10 && wait <= timeout * 11 / 10
}

fn limits(sockets: usize, max_waiting: usize) -> Limits {
    Limits {
        sockets,
        hold: HOLD,
        max_waiting,
    }
}

fn servers() -> Arc<[Server]> {
    vec![Server {
        addr: "127.0.0.1:1813".parse().unwrap(),
        secret: b"secret".to_vec(),
    }]
    .into()
}

/// An Accounting-Request for each server, with the identifier given.
fn request(token: u32, timing: Timing) -> Request<u32> {
    let servers = servers();
    let secrets: Vec<Vec<u8>> = servers.iter().map(|s| s.secret.clone()).collect();
    Request {
        servers,
        health: Health::default(),
        timing,
        encode: Box::new(move |id| {
            secrets
                .iter()
                .map(|secret| {
                    let mut p = Packet::new(code::ACCOUNTING_REQUEST, id, [0; 16]);
                    p.push(attr::USER_NAME, format!("user{token}"));
                    p.encode(secret, None).ok()
                })
                .collect()
        }),
        token,
    }
}

/// The server's answer to `request`, signed with `secret`.
fn answer(request: &[u8], secret: &[u8]) -> Vec<u8> {
    let auth: [u8; 16] = request[4..20].try_into().unwrap();
    Packet::new(code::ACCOUNTING_RESPONSE, request[1], [0; 16])
        .encode(secret, Some(&auth))
        .unwrap()
}

fn transmits(x: &mut Exchanges<u32>, now: Instant) -> Vec<Transmit> {
    std::iter::from_fn(|| x.poll_transmit(now)).collect()
}

fn done(x: &mut Exchanges<u32>) -> Vec<(u32, Result<Outcome, Refused>)> {
    std::iter::from_fn(|| x.poll_done()).collect()
}

#[test]
fn a_retransmission_keeps_socket_identifier_and_bytes() {
    let mut x = Exchanges::new(limits(4, 10));
    let t0 = Instant::now();
    assert_eq!(x.submit(request(1, TIMING), t0), Submitted::Started);
    let first = transmits(&mut x, t0);
    assert_eq!(first.len(), 1);
    let due = x.poll_timeout().unwrap();
    assert!(within_spread(due - t0, TIMING.timeout), "{:?}", due - t0);
    x.handle_timeout(due);
    let again = transmits(&mut x, due);
    assert_eq!(
        again, first,
        "same socket, server, identifier and authenticator"
    );
    // Answered after the retransmission: the identifier is held, a second answer
    // (to the other copy) is late, not unmatched nor taken for another exchange.
    let reply = answer(&first[0].bytes, b"secret");
    let at = due + Duration::from_millis(10);
    assert_eq!(
        x.handle_datagram(first[0].socket, first[0].to, &reply, at),
        Received::Answer
    );
    assert!(matches!(
        &done(&mut x)[..],
        [(
            1,
            Ok(Outcome {
                answer: Some(_),
                ..
            })
        )]
    ));
    assert_eq!(
        x.handle_datagram(first[0].socket, first[0].to, &reply, at),
        Received::Late
    );
    assert_eq!(x.in_flight(), 0);
}

#[test]
fn identifiers_run_out_then_requests_wait_in_a_bounded_queue() {
    let mut x = Exchanges::new(limits(2, 2));
    let t0 = Instant::now();
    let mut used = std::collections::HashSet::new();
    let mut sent = Vec::new();
    for token in 0..512 {
        assert_eq!(x.submit(request(token, TIMING), t0), Submitted::Started);
        let t = transmits(&mut x, t0).remove(0);
        assert!(
            used.insert((t.socket, t.bytes[1])),
            "(socket, id) given twice"
        );
        sent.push(t);
    }
    assert_eq!(used.len(), 512, "both sockets' whole identifier space");
    assert_eq!(x.submit(request(512, TIMING), t0), Submitted::Waiting);
    assert_eq!(x.submit(request(513, TIMING), t0), Submitted::Waiting);
    assert_eq!(x.submit(request(514, TIMING), t0), Submitted::Full);
    assert!(matches!(
        &done(&mut x)[..],
        [(514, Err(Refused::QueueFull))]
    ));
    assert!(transmits(&mut x, t0).is_empty(), "nothing more in flight");
    assert_eq!(x.waiting(), 2);

    // Exchange 7 is answered at its first send: its identifier is free at once and
    // goes to the first request waiting.
    let t = &sent[7];
    let at = t0 + Duration::from_millis(20);
    assert_eq!(
        x.handle_datagram(t.socket, t.to, &answer(&t.bytes, b"secret"), at),
        Received::Answer
    );
    assert!(matches!(&done(&mut x)[..], [(7, Ok(_))]));
    let next = transmits(&mut x, at);
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].socket, next[0].bytes[1]), (t.socket, t.bytes[1]));
    assert_ne!(next[0].bytes, t.bytes, "another request");
    assert_eq!((x.waiting(), x.in_flight()), (1, 512));
}

#[test]
fn a_late_answer_after_give_up_is_dropped_and_its_identifier_held() {
    let once = Timing {
        retries: 0,
        ..TIMING
    };
    let mut x = Exchanges::new(limits(1, 10));
    let t0 = Instant::now();
    x.submit(request(0, once), t0);
    let given_up = transmits(&mut x, t0).remove(0);
    let t1 = t0 + LONGEST;
    x.handle_timeout(t1);
    assert!(matches!(
        &done(&mut x)[..],
        [(0, Ok(Outcome { answer: None, .. }))]
    ));
    // The other 255 identifiers of the only socket, then one more: it waits for the
    // held one.
    for token in 1..=255 {
        assert_eq!(x.submit(request(token, once), t1), Submitted::Started);
    }
    let ids: Vec<u8> = transmits(&mut x, t1).iter().map(|t| t.bytes[1]).collect();
    assert!(!ids.contains(&given_up.bytes[1]));
    assert_eq!(x.submit(request(256, once), t1), Submitted::Waiting);
    let late = answer(&given_up.bytes, b"secret");
    let t2 = t1 + Duration::from_millis(500);
    assert_eq!(
        x.handle_datagram(given_up.socket, given_up.to, &late, t2),
        Received::Late
    );
    assert!(done(&mut x).is_empty(), "the late answer ends nothing");
    // The other 255 give up too (their identifiers held as well); the held one
    // comes free first, at t1 + HOLD, and goes to the request waiting.
    x.handle_timeout(t1 + LONGEST);
    assert_eq!(done(&mut x).len(), 255);
    assert_eq!(x.poll_timeout(), Some(t1 + HOLD));
    x.handle_timeout(t1 + HOLD);
    let started = transmits(&mut x, t1 + HOLD);
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].bytes[1], given_up.bytes[1]);
    // The old answer now fails the new request's authenticator.
    assert_eq!(
        x.handle_datagram(given_up.socket, given_up.to, &late, t1 + HOLD),
        Received::Unverified
    );
}

#[test]
fn answers_are_matched_by_socket_server_and_identifier_then_verified() {
    let mut x = Exchanges::new(limits(2, 10));
    let t0 = Instant::now();
    x.submit(request(0, TIMING), t0);
    let t = transmits(&mut x, t0).remove(0);
    let good = answer(&t.bytes, b"secret");
    assert_eq!(
        x.handle_datagram(t.socket, t.to, &answer(&t.bytes, b"wrong secret"), t0),
        Received::Unverified,
        "a wrong Response Authenticator"
    );
    assert_eq!(
        x.handle_datagram(1 - t.socket, t.to, &good, t0),
        Received::Unmatched,
        "the other socket"
    );
    let stranger: SocketAddr = "127.0.0.1:1812".parse().unwrap();
    assert_eq!(
        x.handle_datagram(t.socket, stranger, &good, t0),
        Received::Unmatched,
        "another server"
    );
    assert_eq!(
        x.handle_datagram(t.socket, t.to, &good[..1], t0),
        Received::Unmatched
    );
    assert!(done(&mut x).is_empty());
    assert_eq!(
        x.handle_datagram(t.socket, t.to, &good, t0),
        Received::Answer
    );
    assert_eq!(
        x.handle_datagram(t.socket, t.to, &good, t0),
        Received::Unmatched,
        "answered at the first send: nothing held"
    );
}

#[test]
fn a_burst_sent_together_is_not_retransmitted_together() {
    let mut x = Exchanges::new(limits(1, 10));
    let t0 = Instant::now();
    for token in 0..100 {
        x.submit(request(token, TIMING), t0);
    }
    assert_eq!(transmits(&mut x, t0).len(), 100);
    // Step through the retransmissions in time order: each comes within 10 % of
    // the timeout, and they are spread over more than a tenth of it.
    let mut at = Vec::new();
    while let Some(due) = x.poll_timeout().filter(|&d| d < t0 + LONGEST + LONGEST / 2) {
        x.handle_timeout(due);
        for _ in transmits(&mut x, due) {
            at.push(due - t0);
        }
    }
    assert_eq!(at.len(), 100, "every one retransmitted once");
    assert!(
        at.iter().all(|&w| within_spread(w, TIMING.timeout)),
        "{at:?}"
    );
    let spread = *at.last().unwrap() - at[0];
    assert!(spread > TIMING.timeout / 10, "spread over {spread:?} only");
}

#[test]
fn an_unencodable_request_is_refused_and_uses_no_identifier() {
    let mut x = Exchanges::new(limits(1, 10));
    let t0 = Instant::now();
    let mut r = request(0, TIMING);
    r.encode = Box::new(|_| None);
    x.submit(r, t0);
    assert!(matches!(
        &done(&mut x)[..],
        [(0, Err(Refused::Unencodable))]
    ));
    assert_eq!(x.in_flight(), 0);
    assert!(transmits(&mut x, t0).is_empty());
}
