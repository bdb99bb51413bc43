//! Sessions' lives: up, traffic both ways, hang-up, limits, dead peers, a full
//! pool, shutdown.

use super::*;
use crate::{
    engine::{AgentCounter, Selector},
    guard::limits::{Limits, LiveLimits},
    ppp::link::DownReason,
};

const USERS: &[&str] = &["alice", "bob"];
const LAN_HOST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

fn client(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 10 + i)
}

fn secrets() -> Verifier {
    Verifier::Secrets(Box::new(Users(USERS)))
}

fn concentrator() -> World {
    World::new(EngineConfig::new(Mode::Concentrator), 8)
}

fn routes(w: &World) -> Vec<String> {
    let k = w.kernel.lock().unwrap();
    k.routes
        .iter()
        .map(|(dev, net)| format!("{dev} {net}"))
        .collect()
}

#[test]
fn a_session_carries_traffic_both_ways_and_leaves_nothing_behind() {
    let mut w = concentrator();
    let p = w.call_in(client(0), client_link("alice", "alice"), secrets());
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers[p].is_up()));
    let id = w.session_of(p).unwrap();
    assert_eq!(routes(&w), ["Concentrator 192.0.2.10/32"]);
    assert!(matches!(&w.notified[..], [(_, SessionEvent::Up(_))]));

    let up = ipv4(Ipv4Addr::new(192, 0, 2, 10), LAN_HOST);
    assert!(matches!(
        w.peer_sends(p, &up),
        Delivery::Deliver {
            target: Target::Kernel(Device::Concentrator),
            ..
        }
    ));
    assert_eq!(w.delivered.last().unwrap().1, up);
    let down = ipv4(LAN_HOST, Ipv4Addr::new(192, 0, 2, 10));
    w.kernel_sends(Device::Concentrator, &down);
    assert_eq!(w.peers[p].received, [down]);
    let spoofed = ipv4(Ipv4Addr::new(192, 0, 2, 99), LAN_HOST);
    assert_eq!(w.peer_sends(p, &spoofed), Delivery::Done);
    assert_eq!(w.engine.stats().get(AgentCounter::SpoofedSource), 1);

    assert_eq!(w.engine.kill(w.now, &Selector::Id(id)), 1);
    assert!(w.run_until(Duration::from_secs(10), |w| w.sessions() == 0));
    assert!(w.peers[p].cleared, "the call was cleared");
    assert!(routes(&w).is_empty());
    assert_eq!(w.pool.0.lock().unwrap().len(), 8, "the address went back");
    assert!(matches!(
        w.notified.last(),
        Some((_, SessionEvent::Down(DownReason::Closed)))
    ));
    assert_eq!(w.engine.load().timers, 0);
}

#[test]
fn a_user_may_have_as_many_sessions_as_allowed() {
    let mut config = EngineConfig::new(Mode::Concentrator);
    config.limits = LiveLimits::new(Limits {
        sessions_per_user: Some(1),
        ..Limits::default()
    });
    let mut w = World::new(config, 8);
    let first = w.call_in(client(0), client_link("alice", "alice"), secrets());
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers[first].is_up()));
    let second = w.call_in(client(1), client_link("alice", "alice"), secrets());
    let bob = w.call_in(client(2), client_link("bob", "bob"), secrets());
    w.run(Duration::from_secs(20));
    assert!(!w.peers[second].is_up() && w.peers[second].cleared);
    assert!(w.peers[bob].is_up(), "another user is not limited");
    assert!(w.session_of(first).is_some(), "the first session stays");
    assert_eq!(w.sessions(), 2);
}

#[test]
fn a_peer_that_stops_answering_is_hung_up_after_its_echoes() {
    let mut w = concentrator();
    let p = w.call_in(client(0), client_link("alice", "alice"), secrets());
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers[p].is_up()));
    let silent_at = w.now;
    w.peers[p].silent = true;
    assert!(w.run_until(Duration::from_secs(600), |w| w.sessions() == 0));
    // An Echo-Request after the link's echo wait (30-45 s) of silence and every
    // 30 s after, 3 unanswered: closed 120-135 s after the last word, then LCP's
    // Terminate-Request goes unanswered too (2 tries 3 s apart).
    let after = w.now - silent_at;
    assert!(
        after >= Duration::from_secs(120) && after <= Duration::from_secs(141),
        "down {after:?} after the peer went silent"
    );
    assert!(matches!(
        w.notified.last(),
        Some((_, SessionEvent::Down(DownReason::EchoTimeout)))
    ));
    assert!(routes(&w).is_empty());
}

#[test]
fn when_the_pool_is_exhausted_new_sessions_fail_and_the_others_stay() {
    let mut w = World::new(EngineConfig::new(Mode::Concentrator), 2);
    let peers: Vec<usize> = (0..3)
        .map(|i| w.call_in(client(i), client_link("alice", "alice"), secrets()))
        .collect();
    w.run(Duration::from_secs(60));
    let up: Vec<bool> = peers.iter().map(|p| w.peers[*p].is_up()).collect();
    assert_eq!(up, [true, true, false]);
    assert!(w.peers[peers[2]].cleared, "the third call was cleared");
    assert_eq!(w.sessions(), 2);
    assert_eq!(routes(&w).len(), 2);
}

#[test]
fn a_shutdown_waits_for_the_acks_at_most_its_grace() {
    let mut w = concentrator();
    let answering = w.call_in(client(0), client_link("alice", "alice"), secrets());
    let silent = w.call_in(client(1), client_link("bob", "bob"), secrets());
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers.iter().all(Peer::is_up)));
    w.peers[silent].silent = true;
    let started = w.now;
    w.engine.begin_shutdown(w.now);
    assert!(w.run_until(Duration::from_secs(1), |w| {
        w.session_of(answering).is_none()
    }));
    assert!(
        !w.engine.shutdown_complete(w.now),
        "the silent peer still has its grace"
    );
    assert!(w.run_until(Duration::from_secs(10), |w| {
        w.engine.shutdown_complete(w.now)
    }));
    let waited = w.now - started;
    assert!(waited >= crate::engine::HANGUP_GRACE, "{waited:?}");
    assert!(waited <= crate::engine::HANGUP_GRACE + Duration::from_millis(1));
    w.engine.finish(w.now);
    while w.step() {}
    assert_eq!(w.sessions(), 0);
    assert!(w.peers.iter().all(|p| p.cleared));
    assert!(routes(&w).is_empty());
}

#[test]
fn sessions_up_together_send_their_echo_requests_spread_over_an_interval() {
    // 200 calls come up in the same instant (as after a restart of the access
    // network); their first Echo-Requests must not leave together, and neither
    // must the ones after.
    const CALLS: u16 = 200;
    let interval = crate::ppp::link::EchoConfig::DEFAULT.interval;
    let mut w = World::new(EngineConfig::new(Mode::Concentrator), CALLS as u8 + 1);
    let peers: Vec<usize> = (0..CALLS)
        .map(|i| {
            let mut link = client_link("alice", "alice");
            link.echo = None;
            let addr = Ipv4Addr::new(198, 18, (i / 200) as u8, (i % 200) as u8 + 1);
            w.call_in(addr, link, secrets())
        })
        .collect();
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers.iter().all(Peer::is_up)));
    let up = w.now;
    w.run(3 * interval);
    let mut per_second = std::collections::BTreeMap::<u64, u32>::new();
    let mut first = Vec::new();
    for p in &peers {
        let times = &w.peers[*p].echo_requests;
        assert!(
            times.len() >= 2,
            "peer {p} got {} echo requests",
            times.len()
        );
        first.push(times[0] - up);
        for t in times {
            *per_second.entry((*t - up).as_secs()).or_default() += 1;
        }
    }
    let earliest = first.iter().min().unwrap();
    let latest = first.iter().max().unwrap();
    assert!(
        *earliest >= interval,
        "first echo request {earliest:?} after up"
    );
    assert!(
        *latest - *earliest >= interval / 3,
        "first echo requests within {:?} of each other",
        *latest - *earliest
    );
    let busiest = per_second.values().max().unwrap();
    assert!(
        *busiest <= u32::from(CALLS) / 5,
        "{busiest} of {CALLS} sessions' echo requests left in the same second"
    );
}

/// A link's random source (magic numbers, CHAP challenges, its echo timer's offset)
/// is the operating system's, held in no memory of the link's own: each link
/// carried a seeded ChaCha generator of its own, about 320 bytes a session.
#[test]
fn a_link_random_source_costs_no_memory_per_session() {
    let mut config = EngineConfig::new(Mode::Concentrator);
    let mut rng = (config.rng)();
    assert_eq!(std::mem::size_of_val(&*rng), 0);
    // And it is random.
    assert_ne!(rng.next_u64(), rng.next_u64());
}
