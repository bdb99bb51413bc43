//! `cargo xtask demo`: the agent in the lab, real PPTP-port TCP and GRE from a
//! client, and `pptp-agent stats` showing exactly what was sent.

use pptp_tests::demo::{self, DemoConfig};

use crate::{cmd, setup};

pub fn run() -> anyhow::Result<()> {
    setup::run()?;
    let agent_bin = cmd::build_agent(true)?;
    let report = demo::run(&DemoConfig {
        agent_bin,
        gre_packets: 1000,
        tcp_payload: 256 * 1024,
    })?;
    println!(
        "\nThe client sent {} TCP segments to port 1723 ({} bytes echoed) and {} GRE packets.",
        report.tcp.segments, report.tcp.payload, report.gre.packets
    );
    println!("\n$ pptp-agent stats\n{}", report.stats_table);
    println!("$ pptp-agent stats --json\n{}", report.stats_json);
    println!("\nCounters match what was sent; the agent detached on SIGTERM and the lab is gone.");
    Ok(())
}
