//! `pptp-agent capture` of sessions on the agent's path, on the virtual clock: the
//! armed session's packets are teed both ways, with their times and lengths, and
//! no other session's; the buffer keeps to its bounds and counts what it drops; a
//! capture nobody drains lapses; the session's end ends its capture, and the slot
//! of the table it leaves is not captured again.

use super::*;
use crate::engine::{
    AgentCounter, Selector,
    capture::{CaptureError, CaptureLimits},
};
use pptp_common::capture::{FROM_CLIENT, SNAPLEN, TO_CLIENT};

const LAN_HOST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

fn world() -> World {
    World::new(EngineConfig::new(Mode::Concentrator), 8)
}

/// Session of `user` up; its peer's index, its id and its client address.
fn up(w: &mut World, user: &str, outer: u8) -> (usize, SessionId, Ipv4Addr) {
    let p = w.call_in(
        Ipv4Addr::new(198, 51, 100, outer),
        client_link(user, user),
        Verifier::Secrets(Box::new(Users(&["alice", "bob"]))),
    );
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers[p].is_up()));
    let id = w.session_of(p).unwrap();
    let client = w
        .engine
        .sessions(w.now)
        .into_iter()
        .find(|s| s.id == id)
        .and_then(|s| s.client)
        .unwrap();
    (p, id, client)
}

#[test]
fn the_armed_session_is_teed_both_ways_and_no_other() {
    let mut w = world();
    let (a, alice, alice_ip) = up(&mut w, "alice", 10);
    let (b, _bob, bob_ip) = up(&mut w, "bob", 11);
    let number = w
        .engine
        .start_capture(alice, CaptureLimits::default(), w.now)
        .unwrap();
    assert_eq!(
        w.engine
            .start_capture(alice, CaptureLimits::default(), w.now),
        Err(CaptureError::Busy(alice)),
        "one at a time"
    );
    let started = w.now;
    let from_alice = sized(alice_ip, LAN_HOST, 100);
    let to_alice = sized(LAN_HOST, alice_ip, 2000);
    w.peer_sends(a, &from_alice);
    w.run(Duration::from_millis(10));
    w.kernel_sends(Device::Concentrator, &to_alice);
    w.peer_sends(b, &sized(bob_ip, LAN_HOST, 60));
    w.kernel_sends(Device::Concentrator, &sized(LAN_HOST, bob_ip, 60));
    let batch = w.engine.take_captured(number, w.now);
    assert!(batch.armed);
    assert_eq!(batch.dropped, 0);
    let seen: Vec<_> = batch
        .packets
        .iter()
        .map(|p| (p.at - started, p.direction, p.len, p.data.len()))
        .collect();
    assert_eq!(
        seen,
        [
            (Duration::ZERO, FROM_CLIENT, 100, 100),
            (Duration::from_millis(10), TO_CLIENT, 2000, SNAPLEN),
        ],
        "alice's two packets, the long one cut, bob's none"
    );
    assert_eq!(batch.packets[0].data, from_alice);
    assert_eq!(batch.packets[1].data, to_alice[..SNAPLEN]);
    assert!(
        w.engine.take_captured(number, w.now).packets.is_empty(),
        "taken once"
    );
}

#[test]
fn the_buffer_keeps_its_bounds_and_counts_its_drops() {
    let mut w = world();
    let (a, alice, alice_ip) = up(&mut w, "alice", 10);
    let limits = CaptureLimits {
        packets: 5,
        bytes: 1000,
        ..CaptureLimits::default()
    };
    let number = w.engine.start_capture(alice, limits, w.now).unwrap();
    // 300-byte packets: the byte bound (3 fit in 1000) comes first.
    for _ in 0..10 {
        w.peer_sends(a, &sized(alice_ip, LAN_HOST, 300));
    }
    let batch = w.engine.take_captured(number, w.now);
    assert_eq!((batch.packets.len(), batch.dropped), (3, 7));
    // 40-byte packets: now the packet bound.
    for _ in 0..10 {
        w.peer_sends(a, &sized(alice_ip, LAN_HOST, 40));
    }
    let batch = w.engine.take_captured(number, w.now);
    assert_eq!((batch.packets.len(), batch.dropped), (5, 12));
    assert_eq!(w.engine.stats().get(AgentCounter::CaptureDropped), 12);
    assert_eq!(
        w.delivered.len(),
        20,
        "what the capture dropped still went on"
    );
}

#[test]
fn a_capture_nobody_reads_lapses() {
    let mut w = world();
    let (a, alice, alice_ip) = up(&mut w, "alice", 10);
    let number = w
        .engine
        .start_capture(alice, CaptureLimits::default(), w.now)
        .unwrap();
    w.run(Duration::from_secs(11));
    w.peer_sends(a, &sized(alice_ip, LAN_HOST, 40));
    let batch = w.engine.take_captured(number, w.now);
    assert!(!batch.armed && batch.packets.is_empty(), "{batch:?}");
    // And another may start.
    assert!(
        w.engine
            .start_capture(alice, CaptureLimits::default(), w.now)
            .is_ok()
    );
}

#[test]
fn the_capture_ends_with_its_session() {
    let mut w = world();
    let (a, alice, alice_ip) = up(&mut w, "alice", 10);
    let number = w
        .engine
        .start_capture(alice, CaptureLimits::default(), w.now)
        .unwrap();
    w.peer_sends(a, &sized(alice_ip, LAN_HOST, 40));
    assert_eq!(w.engine.kill(w.now, &Selector::Id(alice)), 1);
    assert!(w.run_until(Duration::from_secs(10), |w| w.sessions() == 0));
    let last = w.engine.take_captured(number, w.now);
    assert!(!last.armed, "ended with the session");
    assert_eq!(last.packets.len(), 1, "what it held comes with the end");
    assert_eq!(
        w.engine.take_captured(number, w.now),
        Default::default(),
        "and nothing after"
    );
    // A new session (it may take the same place in the table) is not captured.
    let (c, carol, carol_ip) = up(&mut w, "bob", 12);
    w.peer_sends(c, &sized(carol_ip, LAN_HOST, 40));
    assert!(w.engine.take_captured(number, w.now).packets.is_empty());
    assert_eq!(
        w.engine.start_capture(
            SessionId::from_number(u64::MAX),
            CaptureLimits::default(),
            w.now
        ),
        Err(CaptureError::NoSession(SessionId::from_number(u64::MAX)))
    );
    assert!(
        w.engine
            .start_capture(carol, CaptureLimits::default(), w.now)
            .is_ok()
    );
}
