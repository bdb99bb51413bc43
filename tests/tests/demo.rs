//! `cargo xtask demo`'s scenario, checked: a plain session on the XDP path and an
//! MPPE session on the agent's path carry ping and TCP, the uplink counters equal
//! what the clients sent (counted by nftables), and nothing is left behind. Needs root.

use pptp_tests::{
    agents,
    demo::{self, DemoConfig},
};

#[test]
fn sessions_carry_traffic_and_stats_match_what_was_sent() {
    let report = demo::run(&DemoConfig {
        agent_bin: agents::agent_bin(),
        tcp_payload: 1 << 20,
        pings: 3,
    })
    .expect("demo scenario");
    assert_eq!(report.clients.len(), 2);
    assert!(report.clients.iter().all(|c| c.tcp.payload == 1 << 20));
    assert!(
        report.control_segments >= 8,
        "two control connections: {}",
        report.control_segments
    );
    assert!(
        report.gre_packets >= 100,
        "PPP negotiation and data: {}",
        report.gre_packets
    );
    assert!(report.stats_table.contains("| xdp ") && report.stats_table.contains("| agent "));
}
