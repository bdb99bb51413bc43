//! RADIUS in the engine: verdicts bound to their claims, CoA session and idle
//! timeouts, accounting, a Disconnect-Request.

use super::*;
use crate::{
    engine::{AaaSettings, Selector},
    ppp::auth::Verdict,
    radius::{
        acct::{Status, TerminateCause},
        auth::Authorization,
    },
};

/// A concentrator that asks RADIUS, which accepts every claim by checking it
/// against `password = user name` (as a real server would with its users).
fn with_radius() -> World {
    let mut config = EngineConfig::new(Mode::Concentrator);
    config.aaa = AaaSettings {
        radius: true,
        accounting: true,
        interim: None,
    };
    let mut w = World::new(config, 8);
    w.judge = Some(Box::new(|claim: &Claim| {
        let verdict = claim.verify(Some(Secret::Password(claim.user.clone())));
        let accepted = matches!(verdict, Verdict::Accept { .. });
        Authorized {
            verdict,
            grant: crate::ppp::link::AddressGrant::Any,
            authorization: accepted.then(Authorization::default),
        }
    }));
    w
}

fn up(w: &mut World) -> (usize, SessionId) {
    let p = w.call_in(
        Ipv4Addr::new(198, 51, 100, 10),
        client_link("alice", "alice"),
        Verifier::External,
    );
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers[p].is_up()));
    (p, w.session_of(p).unwrap())
}

fn stop_cause(w: &World, id: SessionId) -> Option<TerminateCause> {
    w.records
        .iter()
        .find(|(s, r)| *s == id && r.status == Status::Stop)
        .and_then(|(_, r)| r.cause)
}

#[test]
fn radius_accepts_and_accounting_starts() {
    let mut w = with_radius();
    let (_, id) = up(&mut w);
    assert_eq!(w.records.len(), 1);
    assert_eq!(w.records[0].0, id);
    assert_eq!(w.records[0].1.status, Status::Start);
    assert_eq!(w.records[0].1.user, "alice");
    assert_eq!(w.engine.load().authentications, 0);
}

#[test]
fn a_coa_session_timeout_ends_the_session() {
    let mut w = with_radius();
    let (p, id) = up(&mut w);
    let update = Authorization {
        session_timeout: Some(Duration::from_secs(5)),
        ..Authorization::default()
    };
    let at = w.now;
    assert!(w.engine.reauthorize(w.now, id, &update));
    assert!(w.run_until(Duration::from_secs(60), |w| w.sessions() == 0));
    assert!(w.now - at <= Duration::from_secs(6), "{:?}", w.now - at);
    assert_eq!(stop_cause(&w, id), Some(TerminateCause::SessionTimeout));
    assert!(w.peers[p].cleared);
}

#[test]
fn a_coa_idle_timeout_ends_a_silent_session() {
    let mut w = with_radius();
    let (_, id) = up(&mut w);
    let update = Authorization {
        idle_timeout: Some(Duration::from_secs(3)),
        ..Authorization::default()
    };
    assert!(w.engine.reauthorize(w.now, id, &update));
    assert!(w.run_until(Duration::from_secs(60), |w| w.sessions() == 0));
    assert_eq!(stop_cause(&w, id), Some(TerminateCause::IdleTimeout));
    assert!(!w.engine.reauthorize(w.now, id, &update), "it is gone");
}

#[test]
fn a_disconnect_request_ends_the_session_it_names() {
    let mut w = with_radius();
    let (p, id) = up(&mut w);
    // Dynamic authorization names sessions by id (from Acct-Session-Id).
    assert_eq!(w.engine.kill(w.now, &Selector::Id(id)), 1);
    assert!(w.run_until(Duration::from_secs(10), |w| w.sessions() == 0));
    assert_eq!(stop_cause(&w, id), Some(TerminateCause::AdminReset));
    assert!(w.peers[p].cleared);
    assert_eq!(
        w.engine.kill(w.now, &Selector::Id(id)),
        0,
        "an ended session is named no more"
    );
}

#[test]
fn a_verdict_for_an_ended_session_decides_nothing() {
    let mut w = with_radius();
    w.judge = None;
    let p = w.call_in(
        Ipv4Addr::new(198, 51, 100, 10),
        client_link("alice", "alice"),
        Verifier::External,
    );
    assert!(w.run_until(Duration::from_secs(10), |w| !w.pending.is_empty()));
    assert_eq!(w.engine.load().authentications, 1);
    let (id, ticket, _) = w.pending.pop().unwrap();
    w.engine
        .handle_call_down(w.now, (w.peers[p].addr, w.peers[p].engine_call_id));
    while w.step() {}
    assert_eq!(w.engine.load().authentications, 0);
    let accept = Authorized {
        verdict: Verdict::Accept {
            authenticator_response: None,
            keys: None,
        },
        grant: crate::ppp::link::AddressGrant::Any,
        authorization: Some(Authorization::default()),
    };
    w.engine.handle_verdict(w.now, id, ticket, accept);
    while w.step() {}
    assert_eq!(w.sessions(), 0);
    assert!(!w.peers[p].is_up());
}
