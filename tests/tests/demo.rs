//! `cargo xtask demo`'s scenario, checked: the counters `pptp-agent stats` prints
//! equal what the client sent, and nothing is left behind. Needs root.

use std::path::PathBuf;

use pptp_tests::demo::{self, DemoConfig};

/// The agent binary: `PPTP_AGENT_BIN` (set by `cargo xtask test`) or the debug build.
fn agent_bin() -> PathBuf {
    std::env::var_os("PPTP_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/pptp-agent")
        })
}

#[test]
fn stats_match_the_traffic_sent() {
    let report = demo::run(&DemoConfig {
        agent_bin: agent_bin(),
        gre_packets: 300,
        tcp_payload: 64 * 1024,
    })
    .expect("demo scenario");
    assert_eq!(report.gre.packets, 300);
    assert!(
        report.tcp.segments >= 3,
        "a TCP exchange has at least SYN, data, FIN"
    );
    assert!(report.stats_table.contains("gre_enhanced"));
}
