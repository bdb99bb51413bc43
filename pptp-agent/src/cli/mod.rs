//! Command-line interface: argument parsing and one module per subcommand.

mod dial;
mod options;
mod serve;
mod stats;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use pptp_agent::dataplane::bpffs::{self, PinDir};

/// PPTP VPN concentrator and calling router with an XDP data plane.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the concentrator: accept PPTP calls, run PPP, forward sessions in XDP
    /// (or through the agent), until SIGINT or SIGTERM; then hang every session up
    /// and remove every map, route and pin.
    Serve(serve::ServeArgs),
    /// Dial a PPTP server as a client and route traffic through the tunnel until
    /// SIGINT or SIGTERM.
    Dial(dial::DialArgs),
    /// Print the data plane's counters (read from the pinned maps of a running agent).
    Stats(stats::StatsArgs),
}

/// Where an agent's maps are pinned; `serve` and `stats` must agree on it.
#[derive(Args, Debug, Clone)]
pub struct PinArgs {
    /// bpffs mount point; mounted by `serve` if it is not a bpffs yet.
    #[arg(long, default_value = bpffs::DEFAULT_ROOT, value_name = "DIR")]
    bpffs: PathBuf,
    /// Name of this agent's directory under the bpffs root (several agents can
    /// run on one host under different names).
    #[arg(long, default_value = bpffs::DEFAULT_INSTANCE, value_name = "NAME")]
    instance: String,
}

impl PinArgs {
    fn pin_dir(&self) -> anyhow::Result<PinDir> {
        PinDir::new(&self.bpffs, &self.instance)
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Dial(args) => dial::run(args),
        Command::Stats(args) => stats::run(args),
    }
}
