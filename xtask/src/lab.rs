//! `cargo xtask lab up|down`: the network-namespace lab for manual work.

use clap::{Args, Subcommand};
use pptp_tests::lab::{self, Lab, LabSpec, addr};

#[derive(Args)]
pub struct LabArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Create the lab (it stays until `lab down`).
    Up {
        /// Name of the lab (namespaces are called pxl-<name>-*).
        #[arg(long, default_value = "lab")]
        name: String,
        /// Number of client namespaces.
        #[arg(long, default_value_t = 2)]
        clients: usize,
    },
    /// Remove the lab, and the leftovers of any test that was killed mid-run.
    Down {
        #[arg(long, default_value = "lab")]
        name: String,
    },
}

pub fn run(args: LabArgs) -> anyhow::Result<()> {
    match args.action {
        Action::Up { name, clients } => {
            let lab = Lab::up_named(&name, &LabSpec { clients })?;
            println!("lab {} is up:", lab.id());
            println!(
                "  concentrator  {}  up0 {}  lan0 {}",
                lab.concentrator_ns(),
                addr::CONC_WAN,
                addr::CONC_LAN
            );
            println!("  LAN host      {}  eth0 {}", lab.lan_ns(), addr::LAN_HOST);
            for i in 0..clients {
                println!(
                    "  client {i}      {}  eth0 {}",
                    lab.client_ns(i),
                    addr::client(i)
                );
            }
            println!("  WAN bridge    {}  br0", lab.wan_ns());
            println!(
                "enter one with `ip netns exec <namespace> bash`; remove with `cargo xtask lab down --name {name}`"
            );
            Ok(())
        }
        Action::Down { name } => {
            lab::down_named(&name)?;
            let stale = lab::down_stale()?;
            println!(
                "lab pxl-{name} removed; stale test labs removed: {}",
                stale.len()
            );
            Ok(())
        }
    }
}
