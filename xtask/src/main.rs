//! `cargo xtask`: the project's own automation.
//!
//! `setup` installs what the build and the tests need (idempotent); `demo` and
//! `test` run it first, so a fresh machine needs nothing else.

mod bench;
mod cmd;
mod demo;
mod fuzz;
mod lab;
mod package;
mod setup;
mod test;

use clap::{Parser, Subcommand};

/// pptp-xdp developer tasks.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the nightly rust-src, bpf-linker, cargo-fuzz and Debian packages; check root, BPF, bpffs.
    Setup,
    /// Bring up the lab, run the agent with XDP, send PPTP traffic, print `pptp-agent stats`.
    Demo,
    /// Format and lint checks, every unit and integration test (needs root), a short run of every fuzz target.
    Test,
    /// Build or remove the network-namespace lab.
    Lab(lab::LabArgs),
    /// Run every fuzz target (or the ones named) for a bounded time, from its checked-in corpus.
    Fuzz(fuzz::FuzzArgs),
    /// Benchmarks: XDP decap/encap packets/s against a bare redirect and kernel forwarding.
    Bench(bench::BenchArgs),
    /// Build the Debian package (binary, systemd unit, example configuration, man pages, completions).
    Package(package::PackageArgs),
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Demo => demo::run(),
        Task::Test => test::run(),
        Task::Lab(args) => lab::run(args),
        Task::Fuzz(args) => fuzz::run(args),
        Task::Bench(args) => bench::run(args),
        Task::Package(args) => package::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
