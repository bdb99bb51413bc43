//! Many incoming calls per control connection: `pptp-agent load-test --incoming
//! --calls-per-connection 200` plays three access switches (PAC role) placing 600
//! Incoming-Call-Requests against a concentrator with XDP and a 198.18.0.0/15 pool.
//! The concentrator must list every session up on the XDP path with a distinct
//! address while the kernel of its namespace holds exactly three established
//! control connections, every session's echo must reach the LAN host from its
//! listed address with its own identifier and be answered (nftables counters there:
//! an observer outside the product), and after the hang-up no session may be left.
//! The load generator's report must agree. Needs root.

use std::{collections::BTreeSet, process::Command, time::Duration};

use pptp_agent::runtime::load::echo_id;
use pptp_tests::{
    agents,
    demo::wait_for,
    lab::{Lab, LabSpec, addr},
    load::{self, LoadRun, Target},
    netns,
    nft::EchoObserver,
};

const SESSIONS: usize = 600;
const PER_CONNECTION: usize = 200;

/// Established TCP connections to port 1723 in namespace `ns`, by the kernel.
fn control_connections(ns: &str) -> usize {
    let out = netns::run_in_ns(
        ns,
        Command::new("ss").args(["-Htn", "state", "established", "( sport = :1723 )"]),
    )
    .expect("ss (iproute2)");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn six_hundred_incoming_calls_on_three_control_connections() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let dir = std::env::temp_dir().join(format!("{}-incoming-load", lab.id()));
    let server = load::start_pac_concentrator(&mut lab, &bin, &dir).unwrap();
    let observer = EchoObserver::install(&lab.lan_ns()).unwrap();
    let to = Target {
        client: 0,
        server: addr::CONC_WAN,
        sessions: SESSIONS,
        concurrency: 64,
        hold: 3,
    };
    let per = PER_CONNECTION.to_string();
    let run = LoadRun::start_with(
        &mut lab,
        &bin,
        &dir,
        "incoming",
        to,
        &["--incoming", "--calls-per-connection", &per],
    )
    .unwrap();

    let all_up = wait_for(Duration::from_secs(120), || {
        let up = agents::sessions(&mut lab, &bin)
            .iter()
            .filter(|s| s["state"] == "up")
            .count();
        up == SESSIONS || lab.exited(run.pid).is_some()
    });
    let listed = agents::sessions(&mut lab, &bin);
    let connections = control_connections(&lab.concentrator_ns());
    assert!(
        all_up.is_ok() && listed.len() == SESSIONS,
        "{} sessions listed\nreport {:?}\n{}",
        listed.len(),
        run.report().ok(),
        run.notable_log(40)
    );
    assert_eq!(
        connections,
        SESSIONS / PER_CONNECTION,
        "control connections"
    );
    assert!(
        listed.iter().all(|s| s["path"] == "xdp"),
        "every session on XDP"
    );
    let clients: BTreeSet<String> = listed
        .iter()
        .filter_map(|s| s["client"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(clients.len(), SESSIONS, "distinct addresses");
    assert!(
        clients.iter().all(|c| c.starts_with("198.18.")),
        "addresses from the pool"
    );

    wait_for(Duration::from_secs(120), || lab.exited(run.pid).is_some())
        .unwrap_or_else(|e| panic!("the load test did not end: {e:#}"));
    let status = lab.exited(run.pid).unwrap();
    let report = run.report().unwrap();
    assert!(
        status.success(),
        "{status}\n{report}\n{}",
        run.notable_log(40)
    );
    load::assert_every_session_carried_traffic(&report, SESSIONS, "");
    assert_eq!(
        report["connections"].as_u64(),
        Some((SESSIONS / PER_CONNECTION) as u64),
        "connections in {report}"
    );

    // The LAN host saw each listed address with its session's own identifier, and
    // answered each request.
    let requests = observer.requests().unwrap();
    let replies = observer.replies().unwrap();
    let seen: BTreeSet<String> = requests.keys().map(|(a, _)| a.to_string()).collect();
    assert_eq!(
        seen, clients,
        "echo requests from exactly the listed addresses"
    );
    let ids: BTreeSet<u16> = requests.keys().map(|&(_, id)| id).collect();
    let own: BTreeSet<u16> = (0..SESSIONS as u32).map(echo_id).collect();
    assert_eq!(requests.len(), SESSIONS, "one identifier per address");
    assert_eq!(ids, own, "every session's own identifier");
    assert!(
        requests.keys().all(|pair| replies.contains_key(pair)),
        "every request answered"
    );

    // Hung up: no session, map entry or address left, no control connection.
    wait_for(Duration::from_secs(30), || {
        agents::stats(&mut lab, &bin).is_ok_and(|s| {
            s["installed_calls"] == 0
                && s["pool"]["in_use"] == 0
                && s["sessions"].as_array().is_some_and(Vec::is_empty)
        }) && control_connections(&lab.concentrator_ns()) == 0
    })
    .unwrap_or_else(|e| panic!("sessions or connections left: {e:#}"));
    let status = lab.stop(server.pid, Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status}\n{}", server.log_tail());
    let _ = std::fs::remove_dir_all(&dir);
}
