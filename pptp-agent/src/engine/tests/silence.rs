//! Calls whose peer sends no GRE (IP protocol 47 blocked on the path): counted once
//! each, the owner told, the hint logged once per peer address (a bounded set), a
//! client's session ended.

use super::*;
use crate::engine::{AgentCounter, GRE_WAIT, silence::MAX_HINTED_PEERS};

fn secrets() -> Verifier {
    Verifier::Secrets(Box::new(Users(&["alice"])))
}

fn no_gre(w: &World) -> usize {
    w.notified
        .iter()
        .filter(|(_, e)| matches!(e, SessionEvent::NoGre { waited } if *waited == GRE_WAIT))
        .count()
}

#[test]
fn a_concentrator_counts_calls_without_gre_and_hints_once_per_peer() {
    let mut w = World::new(EngineConfig::new(Mode::Concentrator), 8);
    let blocked = Ipv4Addr::new(198, 51, 100, 20);
    let talking = w.call_in(
        Ipv4Addr::new(198, 51, 100, 10),
        client_link("alice", "alice"),
        secrets(),
    );
    let deaf = w.call_in(blocked, client_link("alice", "alice"), secrets());
    w.peers[deaf].silent = true;
    let start = w.now;
    assert!(w.run_until(GRE_WAIT * 2, |w| no_gre(w) == 1));
    assert!(
        w.now - start >= GRE_WAIT,
        "not before the wait: {:?}",
        w.now - start
    );
    assert!(w.peers[talking].is_up());
    assert_eq!(w.engine.stats().get(AgentCounter::CallsWithoutGre), 1);
    assert!(
        w.session_of(deaf).is_some(),
        "a concentrator leaves the end to LCP"
    );

    // Another deaf call from the same address: counted, not hinted again.
    let again = w.call_in(blocked, client_link("alice", "alice"), secrets());
    w.peers[again].silent = true;
    assert!(w.run_until(GRE_WAIT * 2, |w| no_gre(w) == 2));
    assert_eq!(w.engine.stats().get(AgentCounter::CallsWithoutGre), 2);
    assert_eq!(w.engine.hinted.len(), 1);
    assert!(
        w.run_until(Duration::from_secs(120), |w| w.sessions() == 1),
        "LCP gave up"
    );
    assert_eq!(
        w.engine.stats().get(AgentCounter::CallsWithoutGre),
        2,
        "once per call"
    );

    // The set of hinted peers stays bounded.
    w.engine
        .hinted
        .extend((0..MAX_HINTED_PEERS as u32).map(|i| Ipv4Addr::from(0xC612_0000 + i)));
    let third = w.call_in(
        Ipv4Addr::new(198, 51, 100, 30),
        client_link("alice", "alice"),
        secrets(),
    );
    w.peers[third].silent = true;
    assert!(w.run_until(GRE_WAIT * 2, |w| no_gre(w) == 3));
    assert_eq!(
        w.engine.hinted.len(),
        1,
        "emptied when full, then the new peer"
    );
}

#[test]
fn a_client_without_gre_gives_up_after_the_wait() {
    let mut w = World::new(EngineConfig::new(Mode::Client), 8);
    let p = w.dial(
        Ipv4Addr::new(198, 51, 100, 1),
        client_link("alice", "alice"),
        &["alice"],
    );
    w.peers[p].silent = true;
    let start = w.now;
    assert!(w.run_until(GRE_WAIT * 3, |w| w.sessions() == 0));
    assert!(
        w.now - start >= GRE_WAIT && w.now - start < GRE_WAIT * 2,
        "{:?}",
        w.now - start
    );
    assert_eq!(no_gre(&w), 1);
    assert!(matches!(
        w.notified.last(),
        Some((_, SessionEvent::Down(_)))
    ));
    assert!(w.peers[p].cleared);
    assert_eq!(w.engine.stats().get(AgentCounter::CallsWithoutGre), 1);

    // A server that answers: no report.
    let mut w = World::new(EngineConfig::new(Mode::Client), 8);
    let p = w.dial(
        Ipv4Addr::new(198, 51, 100, 1),
        client_link("alice", "alice"),
        &["alice"],
    );
    assert!(w.run_until(GRE_WAIT * 3, |w| w.peers[p].is_up()));
    w.run(GRE_WAIT * 2);
    assert_eq!((no_gre(&w), w.sessions()), (0, 1));
}

#[test]
fn a_call_ended_before_the_wait_without_gre_is_counted_once() {
    let mut w = World::new(EngineConfig::new(Mode::Concentrator), 8);
    let p = w.call_in(
        Ipv4Addr::new(198, 51, 100, 20),
        client_link("alice", "alice"),
        secrets(),
    );
    w.peers[p].silent = true;
    w.run(GRE_WAIT / 2);
    assert_eq!(w.engine.stats().get(AgentCounter::CallsWithoutGre), 0);
    w.engine
        .handle_call_down(w.now, (w.peers[p].addr, w.peers[p].engine_call_id));
    w.run(GRE_WAIT * 2);
    assert_eq!(w.sessions(), 0);
    assert_eq!(w.engine.stats().get(AgentCounter::CallsWithoutGre), 1);
    assert_eq!(no_gre(&w), 0, "the owner has gone: nobody to tell");
}
