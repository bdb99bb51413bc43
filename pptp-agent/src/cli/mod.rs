//! Command-line interface: argument parsing and one module per subcommand.

mod agent;
mod capture;
mod check_config;
mod dial;
mod generate;
mod interfaces;
mod kill;
mod load_test;
mod options;
mod serve;
mod sessions;
mod stats;

use clap::{Parser, Subcommand};

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
    Serve(Box<serve::ServeArgs>),
    /// Dial a PPTP server as a client and route traffic through the tunnel until
    /// SIGINT or SIGTERM.
    Dial(dial::DialArgs),
    /// Print counters and sessions: from the running agent's API, or from its
    /// pinned maps when no agent answers.
    Stats(stats::StatsArgs),
    /// List the running agent's sessions (id, user, peer, address, path, MPPE,
    /// state, uptime, counters).
    Sessions(sessions::SessionsArgs),
    /// Hang sessions up (LCP Terminate-Request, then the call is cleared).
    Kill(kill::KillArgs),
    /// Write a pcap of one session's packets (both directions) from the data
    /// plane, to a file or standard output, until Ctrl-C.
    Capture(capture::CaptureArgs),
    /// List the running agent's demand-dial interfaces (state, bound session,
    /// calls, idle hang-ups, queued and dropped packets).
    Interfaces(interfaces::InterfacesArgs),
    /// Validate a configuration file and the chap-secrets file it names.
    CheckConfig(check_config::CheckConfigArgs),
    /// Capacity test: establish many sessions against a concentrator from this one
    /// process, ping through each, hang them up, report setup rate and failures.
    /// Traffic goes only to --server and --ping.
    LoadTest(load_test::LoadTestArgs),
    /// Write the man pages and shell completions (for packaging).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Dial(args) => dial::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Sessions(args) => sessions::run(args),
        Command::Kill(args) => kill::run(args),
        Command::Capture(args) => capture::run(args),
        Command::Interfaces(args) => interfaces::run(args),
        Command::CheckConfig(args) => check_config::run(args),
        Command::LoadTest(args) => load_test::run(args),
        Command::Generate(args) => generate::run(args, <Cli as clap::CommandFactory>::command()),
    }
}
