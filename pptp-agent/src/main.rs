//! `pptp-agent`: the pptp-xdp daemon and its command-line tools.

mod cli;

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pptp-agent: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
