//! A concentrator among many sharing one AAA service: NAS-Port unique and stable,
//! Acct-Session-Id unique across concentrators, Accounting-On at start and
//! Accounting-Off at a clean stop (not on a takeover), Framed-IP-Address honoured,
//! dynamic-authorization requests matched to the sessions they name.

use super::*;
use crate::{
    engine::{AaaSettings, Arrival, HANGUP_GRACE, Selector},
    ppp::link::AddressGrant,
    radius::{
        acct::Status,
        auth::{Authorization, Nas},
        dae::Target,
        nas::{AcctSessionIds, NasStatus},
    },
};

/// A concentrator named `nas` that accounts, started at the same second with
/// the same random half as every other one of these tests (the worst case).
fn concentrator(nas: &str, arrival: Arrival) -> World {
    let mut config = EngineConfig::new(Mode::Concentrator);
    config.aaa = AaaSettings {
        radius: true,
        accounting: true,
        interim: Some(Duration::from_secs(30)),
    };
    config.acct_ids = AcctSessionIds::new(
        &Nas {
            identifier: Some(nas.into()),
            ip: None,
        },
        0x6932_A1F0,
        7,
    );
    config.arrival = arrival;
    World::new(config, 8)
}

fn client(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 10 + i)
}

/// Accepts `user` = password, granting `grant`.
fn accept(claim: &Claim, grant: AddressGrant) -> Authorized {
    let address = match grant {
        AddressGrant::Exactly(a) => Some(a),
        _ => None,
    };
    Authorized {
        verdict: claim.verify(Some(Secret::Password(claim.user.clone()))),
        grant,
        authorization: Some(Authorization {
            address,
            ..Authorization::default()
        }),
    }
}

/// Runs until RADIUS has claims pending, answers them with `grant`, and returns
/// the NAS-Ports they asked with.
fn answer_claims(w: &mut World, grant: AddressGrant) -> Vec<(SessionId, u32)> {
    assert!(w.run_until(Duration::from_secs(10), |w| !w.pending.is_empty()));
    let mut ports = Vec::new();
    for (id, ticket, job) in std::mem::take(&mut w.pending) {
        ports.push((id, job.port));
        let verdict = accept(&job.claim, grant.clone());
        w.engine.handle_verdict(w.now, id, ticket, verdict);
    }
    ports
}

fn records_of(w: &World, id: SessionId) -> Vec<&Record> {
    w.records
        .iter()
        .filter(|(s, _)| *s == id)
        .map(|(_, r)| r)
        .collect()
}

#[test]
fn nas_ports_are_unique_and_stable_even_when_call_ids_repeat() {
    let mut w = concentrator("pptp-1", Arrival::Fresh);
    // Two clients whose calls have the same Call ID of ours: the engine keys
    // calls on (peer address, Call ID) and takes both. (The runtime draws every
    // Call ID from one allocator, so today they differ; the NAS-Port must not
    // depend on it.)
    let a = w.call_in(client(0), client_link("alice", "alice"), Verifier::External);
    w.next_call_id -= 1;
    let b = w.call_in(client(1), client_link("bob", "bob"), Verifier::External);
    assert_eq!(w.peers[a].engine_call_id, w.peers[b].engine_call_id);
    let mut asked = answer_claims(&mut w, AddressGrant::Any);
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers[a].is_up()
        && w.peers[b].is_up()));
    // Interim-Updates, then the end of both.
    w.run(Duration::from_secs(31));
    assert_eq!(w.engine.kill(w.now, &Selector::All), 2);
    assert!(w.run_until(Duration::from_secs(10), |w| w.sessions() == 0));

    asked.sort();
    let (ida, idb) = (
        w.records[0].0.min(w.records[1].0),
        w.records[0].0.max(w.records[1].0),
    );
    assert_eq!(
        asked.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [ida, idb]
    );
    let (pa, pb) = (asked[0].1, asked[1].1);
    assert_ne!(pa, pb, "one NAS-Port per session");
    for (id, port) in [(ida, pa), (idb, pb)] {
        let records = records_of(&w, id);
        let statuses: Vec<_> = records.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [Status::Start, Status::InterimUpdate, Status::Stop]
        );
        assert!(
            records.iter().all(|r| r.port == port),
            "the Access-Request's NAS-Port in every record of session {id}: {:?}",
            records.iter().map(|r| r.port).collect::<Vec<_>>()
        );
    }

    // A slot freed is reused: a later session may have an earlier one's port,
    // never a live one's.
    let c = w.call_in(client(2), client_link("carol", "carol"), Verifier::External);
    let again = answer_claims(&mut w, AddressGrant::Any);
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers[c].is_up()));
    assert_eq!(again.len(), 1);
    assert!(again[0].0 != ida && again[0].0 != idb, "a new session id");
}

#[test]
fn acct_session_ids_differ_across_concentrators_and_stay_per_session() {
    let mut names = Vec::new();
    for nas in ["pptp-1", "pptp-2"] {
        let mut w = concentrator(nas, Arrival::Fresh);
        let p = w.call_in(client(0), client_link("alice", "alice"), Verifier::External);
        answer_claims(&mut w, AddressGrant::Any);
        assert!(w.run_until(Duration::from_secs(10), |w| w.peers[p].is_up()));
        let id = w.session_of(p).unwrap();
        w.run(Duration::from_secs(31));
        assert_eq!(w.engine.kill(w.now, &Selector::Id(id)), 1);
        assert!(w.run_until(Duration::from_secs(10), |w| w.sessions() == 0));
        let ids: Vec<_> = records_of(&w, id)
            .iter()
            .map(|r| r.session_id.clone())
            .collect();
        assert_eq!(ids.len(), 3, "Start, Interim-Update, Stop");
        assert!(ids.iter().all(|s| *s == ids[0]), "{ids:?}");
        assert!(!ids[0].is_empty());
        names.push((id, ids[0].clone()));
    }
    assert_eq!(names[0].0, names[1].0, "both concentrators' first session");
    assert_ne!(
        names[0].1, names[1].1,
        "one Acct-Session-Id across the fleet"
    );
}

#[test]
fn accounting_on_first_and_off_after_the_last_stop() {
    let mut w = concentrator("pptp-1", Arrival::Fresh);
    let p = w.call_in(client(0), client_link("alice", "alice"), Verifier::External);
    // Accounting-On goes out before the first Access-Request.
    while w.step() {}
    assert_eq!(w.nas_records.len(), 1);
    assert_eq!(w.nas_records[0].0, 0);
    assert_eq!(w.nas_records[0].1.status, NasStatus::On);
    assert!(w.nas_records[0].1.session_id.starts_with("pptp-1-"));
    answer_claims(&mut w, AddressGrant::Any);
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers[p].is_up()));

    w.engine.begin_shutdown(w.now);
    w.run_until(HANGUP_GRACE, |w| w.engine.shutdown_complete(w.now));
    w.engine.finish(w.now);
    w.engine.finish(w.now);
    while w.step() {}
    let stops = w
        .records
        .iter()
        .filter(|(_, r)| r.status == Status::Stop)
        .count();
    assert_eq!(stops, 1);
    let off: Vec<_> = w
        .nas_records
        .iter()
        .filter(|(_, r)| r.status == NasStatus::Off)
        .collect();
    assert_eq!(off.len(), 1, "once");
    assert_eq!(off[0].0, w.records.len(), "after every session's Stop");
    assert_eq!(off[0].1.session_id, w.nas_records[0].1.session_id);
}

#[test]
fn a_takeover_says_no_accounting_on() {
    let mut w = concentrator("pptp-1", Arrival::Takeover);
    let p = w.call_in(client(0), client_link("alice", "alice"), Verifier::External);
    answer_claims(&mut w, AddressGrant::Any);
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers[p].is_up()));
    assert!(w.nas_records.is_empty(), "{:?}", w.nas_records);

    let mut quiet = EngineConfig::new(Mode::Concentrator);
    quiet.aaa.radius = true;
    let mut w = World::new(quiet, 8);
    w.engine.finish(w.now);
    while w.step() {}
    assert!(
        w.nas_records.is_empty(),
        "no accounting, no Accounting-On/Off"
    );
}

#[test]
fn framed_ip_address_from_radius_is_the_clients() {
    let mut w = concentrator("pptp-1", Arrival::Fresh);
    let leased = Ipv4Addr::new(198, 18, 7, 9);
    let p = w.call_in(client(0), client_link("alice", "alice"), Verifier::External);
    answer_claims(&mut w, AddressGrant::Exactly(leased));
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers[p].is_up()));
    let id = w.session_of(p).unwrap();
    let info = w.engine.sessions(w.now);
    assert_eq!(info[0].client, Some(leased));
    assert_eq!(records_of(&w, id)[0].address, Some(leased), "in the Start");
    let from_client = ipv4(leased, Ipv4Addr::new(203, 0, 113, 10));
    assert!(matches!(
        w.peer_sends(p, &from_client),
        Delivery::Deliver { .. }
    ));
}

#[test]
fn dynamic_authorization_requests_find_their_sessions_through_the_indexes() {
    let mut w = concentrator("pptp-1", Arrival::Fresh);
    let peers: Vec<usize> = ["alice", "alice", "bob"]
        .iter()
        .enumerate()
        .map(|(i, user)| w.call_in(client(i as u8), client_link(user, user), Verifier::External))
        .collect();
    answer_claims(&mut w, AddressGrant::Any);
    assert!(w.run_until(Duration::from_secs(10), |w| {
        peers.iter().all(|&p| w.peers[p].is_up())
    }));
    let ids: Vec<SessionId> = peers.iter().map(|&p| w.session_of(p).unwrap()).collect();
    let infos = w.engine.sessions(w.now);
    let address_of = |id| infos.iter().find(|i| i.id == id).unwrap().client.unwrap();
    let acct_id_of = |w: &World, id| records_of(w, id)[0].session_id.clone();
    let bob_acct = acct_id_of(&w, ids[2]).into_bytes();
    let acct_ids = AcctSessionIds::new(
        &Nas {
            identifier: Some("pptp-1".into()),
            ip: None,
        },
        0x6932_A1F0,
        7,
    );
    let named = |w: &World, target: Target| {
        let mut found = w
            .engine
            .sessions_named(&target, |acct| acct_ids.number(acct));
        found.sort();
        found
    };
    let user = |u: &str| Some(u.to_owned());

    let alice = Target {
        user: user("alice"),
        ..Target::default()
    };
    assert_eq!(named(&w, alice), vec![ids[0], ids[1]]);
    let bob_by_address = Target {
        address: Some(address_of(ids[2])),
        ..Target::default()
    };
    assert_eq!(named(&w, bob_by_address), vec![ids[2]]);
    let bob_as_alice = Target {
        user: user("alice"),
        address: Some(address_of(ids[2])),
        ..Target::default()
    };
    assert_eq!(
        named(&w, bob_as_alice),
        vec![],
        "every attribute must match"
    );
    let bob_by_acct = Target {
        acct_session_id: Some(bob_acct.clone()),
        user: user("bob"),
        ..Target::default()
    };
    assert_eq!(named(&w, bob_by_acct.clone()), vec![ids[2]]);
    let unknown = Target {
        acct_session_id: Some(b"not-ours".to_vec()),
        ..Target::default()
    };
    assert_eq!(named(&w, unknown), vec![]);
    assert_eq!(named(&w, Target::default()), vec![], "naming nothing");

    // Once bob's session has ended, its Acct-Session-Id names nothing.
    assert_eq!(w.engine.kill(w.now, &Selector::Id(ids[2])), 1);
    assert!(w.run_until(Duration::from_secs(10), |w| w.sessions() == 2));
    assert_eq!(named(&w, bob_by_acct), vec![]);
}
