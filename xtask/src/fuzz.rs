//! `cargo xtask fuzz`: run each cargo-fuzz target of the agent for a bounded time.

use std::process::Command;

use anyhow::ensure;
use clap::Args;

use crate::cmd::{self, stdout_of};

#[derive(Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 300)]
    seconds: u32,
    /// Targets to run (default: all of `cargo fuzz list`).
    targets: Vec<String>,
}

pub fn run(args: FuzzArgs) -> anyhow::Result<()> {
    ensure!(
        (1..=86_400).contains(&args.seconds),
        "--seconds must be 1..=86400"
    );
    if stdout_of(Command::new("cargo-fuzz").arg("--version")).is_none() {
        cmd::run(cmd::cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let toolchain = cmd::pinned_toolchain()?;
    let fuzz = || {
        let mut cmd = cmd::cargo_pinned(&cmd::fuzz_dir());
        cmd.args([&format!("+{toolchain}"), "fuzz"]);
        cmd
    };
    let targets = if args.targets.is_empty() {
        stdout_of(fuzz().arg("list"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    } else {
        args.targets
    };
    ensure!(
        !targets.is_empty(),
        "no fuzz targets found in pptp-agent/fuzz"
    );
    for target in &targets {
        cmd::run(fuzz().args([
            "run",
            target,
            "--",
            &format!("-max_total_time={}", args.seconds),
        ]))?;
        eprintln!(
            "xtask: fuzz target {target}: no crash in {} s",
            args.seconds
        );
    }
    Ok(())
}
