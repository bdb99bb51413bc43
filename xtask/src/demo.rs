//! `cargo xtask demo`: the concentrator with XDP in the lab, a plain client on the
//! XDP fast path and an MPPE client on the agent's path, ping and TCP through both,
//! and `pptp-agent stats`, whose counters are checked against what was sent.

use pptp_tests::demo::{self, DemoConfig};

use crate::{cmd, setup};

pub fn run() -> anyhow::Result<()> {
    setup::run()?;
    let agent_bin = cmd::build_agent(true)?;
    let report = demo::run(&DemoConfig {
        agent_bin,
        tcp_payload: 8 << 20,
        pings: 5,
    })?;
    println!();
    for client in &report.clients {
        println!(
            "{} (MPPE {}): 5 pings answered, {} bytes of TCP echoed through the tunnel",
            client.user, client.mppe, client.tcp.payload
        );
    }
    println!(
        "The clients sent {} TCP segments to port 1723 and {} GRE packets (counted by nftables on their side).",
        report.control_segments, report.gre_packets
    );
    println!("\n$ pptp-agent stats\n{}", report.stats_table);
    println!("$ pptp-agent stats --json\n{}", report.stats_json);
    println!(
        "The uplink's pptp_control and gre_enhanced counters equal what the clients sent; \
         the sessions hung up, the concentrator removed its maps, routes and pins on SIGTERM, and the lab is gone."
    );
    Ok(())
}
