//! Many concurrent sessions on one concentrator, all passing traffic: `pptp-agent
//! load-test` in one client namespace establishes 5,000 sessions (as many as
//! `addr::SCALE_POOLS` has tunnel addresses, each a voluntary client with its own
//! control connection), pings the LAN host through each, and hangs them all up. The concentrator must list every session up on the XDP path while
//! they are up, and afterwards hold no session, map entry or route; a second run of
//! the same size proves that every address went back to the pool.
//!
//! Not every figure comes from the product: an observer outside it (nftables
//! counters on the LAN host, `pptp_tests::nft::EchoObserver`) sees each session's
//! echo request arrive from the address the concentrator lists for it, with the
//! session's own ICMP identifier, and the reply leave for it; `load-test` credits a
//! reply only when it came back through that session's own call. Needs root.

use std::time::Duration;

use std::collections::{BTreeMap, BTreeSet};

use pptp_agent::runtime::load::echo_id;
use pptp_tests::{
    agents,
    demo::wait_for,
    lab::{Lab, LabSpec},
    load::{self, LoadRun},
    nft::{EchoCounts, EchoObserver},
};
use serde_json::Value;

const SESSIONS: usize = 5_000;

#[test]
fn every_address_of_the_pools_in_use_at_once_all_passing_traffic() {
    assert_eq!(load::pool_size(), SESSIONS, "the test fills the pools");
    // On XDP twice (the second round proves every address went back to the pool),
    // then once with every session on the agent's path, where the echo round is a
    // burst of 5,000 packets through the concentrator's TUN device each way.
    fill_the_pool(true, 2);
    fill_the_pool(false, 1);
}

fn fill_the_pool(xdp: bool, rounds: usize) {
    let path = if xdp { "xdp" } else { "agent" };
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let dir = std::env::temp_dir().join(format!("{}-scale", lab.id()));
    let server = load::start_concentrator(&mut lab, &bin, &dir, xdp).unwrap();
    let observer = EchoObserver::install(&lab.lan_ns()).unwrap();

    for round in 1..=rounds {
        let round = format!("{path} {round}");
        observer.reset().unwrap();
        let unknown_before = xdp.then(|| xdp_unknown_sessions(&mut lab, &bin));
        let run = LoadRun::start(
            &mut lab,
            &bin,
            &dir,
            &format!("round-{}", round.replace(' ', "-")),
            SESSIONS,
            64,
            3,
        )
        .unwrap();

        // While they are up, the concentrator lists every one of them, up, on XDP.
        let all_up = wait_for(Duration::from_secs(240), || {
            agents::up_sessions(&mut lab, &bin) == SESSIONS as u64 || lab.exited(run.pid).is_some()
        });
        let listed = agents::sessions(&mut lab, &bin);
        if all_up.is_err() || listed.len() != SESSIONS {
            let _ = wait_for(Duration::from_secs(60), || lab.exited(run.pid).is_some());
            panic!(
                "round {round}: {} sessions listed\nreport {:?}\nconcentrator {}\n{}",
                listed.len(),
                run.report().ok(),
                summary(&mut lab, &bin),
                run.notable_log(40)
            );
        }
        // No call's GRE reached XDP before the call was in its map: a reply that
        // overtakes the installation gets the client's first LCP packet dropped
        // (drop_unknown) and costs it LCP's 3 s restart.
        assert_eq!(
            unknown_before.map(|before| xdp_unknown_sessions(&mut lab, &bin) - before),
            unknown_before.map(|_| 0),
            "round {round}: GRE for calls XDP did not know yet\n{}",
            summary(&mut lab, &bin)
        );
        let pool = agents::stats(&mut lab, &bin).unwrap()["pool"].clone();
        assert_eq!(
            pool,
            serde_json::json!({"in_use": SESSIONS, "size": SESSIONS}),
            "round {round}: the pool is full"
        );
        let on_path = listed.iter().filter(|s| s["path"] == path).count();
        assert_eq!(on_path, SESSIONS, "round {round}: every session on {path}");
        let mut clients: Vec<&str> = listed.iter().filter_map(|s| s["client"].as_str()).collect();
        clients.sort_unstable();
        clients.dedup();
        assert_eq!(clients.len(), SESSIONS, "round {round}: distinct addresses");

        wait_for(Duration::from_secs(120), || lab.exited(run.pid).is_some())
            .unwrap_or_else(|e| panic!("round {round}: the load test did not end: {e:#}"));
        let status = lab.exited(run.pid).unwrap();
        let report = run.report().unwrap();
        assert!(
            status.success(),
            "round {round}: {status}\n{report}\nconcentrator {}\n{}",
            summary(&mut lab, &bin),
            run.notable_log(40)
        );
        load::assert_every_session_carried_traffic(&report, SESSIONS, &format!("round {round}: "));
        eprintln!(
            "round {round}: {SESSIONS} sessions in {:.1} s ({:.0}/s), setup p50 {:.0} ms p99 {:.0} ms",
            report["setup_seconds"].as_f64().unwrap(),
            report["sessions_per_second"].as_f64().unwrap(),
            report["setup_ms_p50"].as_f64().unwrap(),
            report["setup_ms_p99"].as_f64().unwrap(),
        );

        // What the LAN host saw: one identifier per listed address, every session's
        // own, each request answered.
        let requests = observer.requests().unwrap();
        let replies = observer.replies().unwrap();
        let ids = identifiers_by_address(&requests);
        let listed_clients: BTreeSet<&str> = clients.iter().copied().collect();
        let seen: BTreeSet<String> = ids.keys().map(|a| a.to_string()).collect();
        assert_eq!(
            seen.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            listed_clients,
            "round {round}: echo requests reached the LAN host from exactly the listed addresses"
        );
        let own: BTreeSet<u16> = (0..SESSIONS as u32).map(echo_id).collect();
        let carried: BTreeSet<u16> = ids.values().flatten().copied().collect();
        assert!(
            ids.values().all(|ids| ids.len() == 1) && carried == own,
            "round {round}: one identifier per address, each session's own: {ids:?}"
        );
        let unanswered: Vec<_> = requests
            .keys()
            .filter(|pair| !replies.contains_key(pair))
            .collect();
        assert!(
            unanswered.is_empty() && replies.keys().all(|pair| requests.contains_key(pair)),
            "round {round}: the LAN host answered every request and nothing else: unanswered {unanswered:?}"
        );

        // Hung up: no session, no map entry, no address in use, no route left.
        wait_for(Duration::from_secs(30), || {
            agents::stats(&mut lab, &bin).is_ok_and(|s| {
                (!xdp || s["installed_calls"] == 0)
                    && s["pool"]["in_use"] == 0
                    && s["sessions"].as_array().is_some_and(Vec::is_empty)
            })
        })
        .unwrap_or_else(|e| panic!("round {round}: sessions left: {e:#}"));
        assert_eq!(
            agents::tunnel_routes(&lab).unwrap(),
            "",
            "round {round}: no route left"
        );
    }
    let s = agents::stats(&mut lab, &bin).unwrap();
    let echoes = (rounds * SESSIONS) as u64;
    if xdp {
        xdp_carried_the_echoes(&s, echoes);
    } else {
        let (rx, tx) = agents::link_packets(&lab.concentrator_ns(), "pptp0").unwrap();
        assert!(
            rx >= echoes && tx >= echoes,
            "the echoes went through the agent's TUN device each way: {rx} in, {tx} out"
        );
    }
    let status = lab.stop(server.pid, Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status}\n{}", server.log_tail());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every round's echoes went through XDP in both directions. A packet that finds
/// no neighbour entry yet is passed to the kernel (no_next_hop), which forwards it:
/// that is ARP resolution, under 1% of the echoes.
fn xdp_carried_the_echoes(s: &Value, echoes: u64) {
    let unresolved = agents::counter(s, "no_next_hop");
    assert!(
        unresolved * 100 <= echoes,
        "only ARP resolution passes packets up (under 1%): {unresolved} of {echoes}\n{s}"
    );
    let decapsulated = agents::counter(s, "decapsulated") + unresolved;
    assert!(decapsulated >= echoes, "{s}");
    assert!(agents::counter(s, "encapsulated") >= echoes, "{s}");
    let misrouted = agents::counter(s, "spoofed_source") + agents::counter(s, "old_sequence");
    assert_eq!(misrouted, 0, "{s}");
}

/// GRE packets XDP dropped as for no call it knows (`drop_unknown`).
fn xdp_unknown_sessions(lab: &mut Lab, bin: &std::path::Path) -> u64 {
    agents::counter(&agents::stats(lab, bin).unwrap(), "unknown_session")
}

/// The identifiers seen per address.
fn identifiers_by_address(counts: &EchoCounts) -> BTreeMap<std::net::Ipv4Addr, BTreeSet<u16>> {
    let mut ids: BTreeMap<_, BTreeSet<u16>> = BTreeMap::new();
    for (address, id) in counts.keys() {
        ids.entry(*address).or_default().insert(*id);
    }
    ids
}

/// The concentrator's counters without the session table.
fn summary(lab: &mut Lab, bin: &std::path::Path) -> Value {
    let mut s = agents::stats(lab, bin).unwrap_or(Value::Null);
    s["sessions"] = Value::Null;
    s
}
