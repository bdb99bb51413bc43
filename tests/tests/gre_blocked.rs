//! A firewall between client and server that passes TCP 1723 but drops GRE (IP
//! protocol 47), the field's most common PPTP failure (Windows errors 619 and 806;
//! docs/troubleshooting.md): nftables in the client's namespace drops every GRE
//! packet both ways. `pptp-agent dial` gets its control connection and call up,
//! hears no GRE and fails within its `--gre-wait` with the protocol-47 message; the
//! concentrator counts the call in `calls_without_gre` (stats and Prometheus) and
//! logs the hint once for the peer, even for a second such call. Needs root.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use pptp_tests::{
    agents,
    demo::wait_for,
    lab::{Lab, LabSpec},
    nft,
};

#[test]
fn dial_names_protocol_47_and_the_concentrator_counts_the_call() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let metrics: SocketAddr = (Ipv4Addr::LOCALHOST, 9100).into();
    let server = agents::start_server(
        &mut lab,
        &bin,
        &[
            "--user",
            "alice:secret-1",
            "--metrics",
            &metrics.to_string(),
        ],
    )
    .unwrap();
    let client_ns = lab.client_ns(0);
    nft::block_gre(&client_ns).unwrap();

    let args = [
        "--user",
        "alice",
        "--password",
        "secret-1",
        "--gre-wait",
        "3",
    ];
    for attempt in 0..2 {
        let started = Instant::now();
        let failed = agents::dial(&mut lab, &bin, 0, &args);
        let message = format!("{:#}", failed.err().expect("no session without GRE"));
        let took = started.elapsed();
        assert!(
            message.contains(
                "control connection and call up, but no GRE from the server within 3 s: \
                 IP protocol 47 (GRE) is probably blocked on the path"
            ),
            "attempt {attempt}: {message}"
        );
        assert!(took < Duration::from_secs(15), "gave up after {took:?}");
    }
    assert!(
        nft::gre_blocked(&client_ns).unwrap() >= 2,
        "the firewall did drop GRE"
    );

    let mut counted = None;
    wait_for(Duration::from_secs(15), || {
        counted = calls_without_gre(&mut lab, &bin);
        counted == Some(2)
    })
    .unwrap_or_else(|_| {
        panic!(
            "calls_without_gre = {counted:?}, not 2:\n{}",
            server.log_tail()
        )
    });
    let answer = agents::scrape(&lab.concentrator_ns(), metrics);
    assert_eq!(agents::sample(&answer, "pptp_calls_without_gre_total"), 2);
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert_eq!(
        log.matches("IP protocol 47 (GRE) is probably blocked on the path")
            .count(),
        1,
        "the hint once for the peer:\n{}",
        server.log_tail()
    );
}

/// The concentrator's `calls_without_gre` from `stats --json`.
fn calls_without_gre(lab: &mut Lab, bin: &std::path::Path) -> Option<u64> {
    let stats = agents::operator(lab, bin, &["stats", "--json"]).ok()?;
    let json: serde_json::Value = serde_json::from_slice(&stats.stdout).ok()?;
    json["hub"]["calls_without_gre"].as_u64()
}
