//! The agent's cargo-fuzz targets (`pptp-agent/fuzz`, a crate outside the workspace
//! with its own lock file, built with the pinned nightly):
//!
//! - `cargo xtask fuzz [--seconds N] [TARGET...]` runs targets for a bounded time;
//! - `cargo xtask test` formats and lints the crate ([`lint`]) and smoke-runs every
//!   target for [`SMOKE_SECONDS`] on its corpus ([`smoke`]).
//!
//! Each target starts from its checked-in corpus, `pptp-agent/fuzz/corpus/<target>/`
//! (small: seeds from the real captures in `tests/vectors/captures` and example
//! files, grown by fuzzing and minimised with libFuzzer's merge), which is only read;
//! new inputs go to `target/fuzz/corpus/<target>/`, so a run leaves the clone clean.
//! The targets never load the data plane, so the BPF object they would embed is
//! replaced by an empty one (`PPTP_EBPF_OBJECT`): the workspace build has built the
//! real one, and this saves two more BPF builds. They are built without a sanitizer
//! (`-s none`): nothing they reach has unsafe code (only the data plane's mmaps,
//! `pptp-agent/src/dataplane/mapped.rs`, `table.rs` and `clients.rs`, and
//! `pptp-agent/src/runtime/gre_socket.rs` have any), so AddressSanitizer would
//! find nothing there, and leaving it out halves the build (measured here: 3 min 35 s
//! without it, about 7 min of CPU with it) and the runs; panics, overflow checks and
//! debug assertions stay on.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, ensure};
use clap::Args;

use crate::{
    cmd::{self, stdout_of},
    setup,
};

/// Seconds each target runs in `cargo xtask test`.
pub const SMOKE_SECONDS: u32 = 15;
/// The sanitizer the targets are built with (see the module docs).
const SANITIZER: [&str; 2] = ["--sanitizer", "none"];

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
    setup::install_cargo_fuzz()?;
    let targets = if args.targets.is_empty() {
        targets()?
    } else {
        args.targets
    };
    for target in &targets {
        run_target(target, args.seconds)?;
    }
    Ok(())
}

/// rustfmt and clippy (`-D warnings`, the lock file as checked in) for the crate.
pub fn lint() -> anyhow::Result<()> {
    cmd::run(pinned_cargo()?.args(["fmt", "--all", "--check"]))?;
    cmd::run(pinned_cargo()?.args([
        "clippy",
        "--locked",
        "--all-targets",
        "--target-dir",
        &target_dir().display().to_string(),
        "--",
        "-D",
        "warnings",
    ]))
}

/// Builds every target, then runs each for [`SMOKE_SECONDS`] on its corpus.
pub fn smoke() -> anyhow::Result<()> {
    cmd::run(fuzz()?.args([
        "build",
        SANITIZER[0],
        SANITIZER[1],
        "--target-dir",
        &target_dir().display().to_string(),
    ]))?;
    for target in targets()? {
        let corpus = corpus(&target);
        let seeds = std::fs::read_dir(&corpus)
            .with_context(|| format!("the checked-in corpus {}", corpus.display()))?
            .count();
        ensure!(seeds > 0, "the corpus {} is empty", corpus.display());
        run_target(&target, SMOKE_SECONDS)?;
    }
    Ok(())
}

/// The targets `cargo fuzz list` names.
fn targets() -> anyhow::Result<Vec<String>> {
    let list = stdout_of(fuzz()?.arg("list")).context("cargo fuzz list failed")?;
    let targets: Vec<String> = list.lines().map(str::to_owned).collect();
    ensure!(
        !targets.is_empty(),
        "no fuzz targets found in pptp-agent/fuzz"
    );
    Ok(targets)
}

/// Runs `target` for `seconds` on its checked-in corpus; fails on a crash.
fn run_target(target: &str, seconds: u32) -> anyhow::Result<()> {
    let grown = target_dir().join("corpus").join(target);
    std::fs::create_dir_all(&grown)?;
    cmd::run(
        fuzz()?
            .args(["run", SANITIZER[0], SANITIZER[1]])
            .args(["--target-dir", &target_dir().display().to_string()])
            .arg(target)
            .arg(&grown)
            .arg(corpus(target))
            .args([
                "--".to_owned(),
                format!("-max_total_time={seconds}"),
                "-print_final_stats=1".to_owned(),
            ]),
    )?;
    eprintln!("xtask: fuzz target {target}: no crash in {seconds} s");
    Ok(())
}

/// The checked-in corpus of `target`.
fn corpus(target: &str) -> PathBuf {
    cmd::fuzz_dir().join("corpus").join(target)
}

/// Where the fuzz crate builds (inside the workspace's target directory).
fn target_dir() -> PathBuf {
    cmd::target_dir().join("fuzz")
}

/// `cargo +<pinned nightly>` in the fuzz crate, with the empty BPF object.
fn pinned_cargo() -> anyhow::Result<Command> {
    let toolchain = cmd::pinned_toolchain()?;
    let mut cargo = cmd::cargo_pinned(&cmd::fuzz_dir());
    cargo.arg(format!("+{toolchain}"));
    cargo.env("PPTP_EBPF_OBJECT", empty_object()?);
    Ok(cargo)
}

/// `cargo +<pinned nightly> fuzz`.
fn fuzz() -> anyhow::Result<Command> {
    let mut cargo = pinned_cargo()?;
    cargo.arg("fuzz");
    Ok(cargo)
}

/// An empty file standing in for the BPF object (see the module docs).
fn empty_object() -> anyhow::Result<PathBuf> {
    let path = target_dir().join("no-bpf-object.o");
    if !Path::new(&path).is_file() {
        std::fs::create_dir_all(target_dir())?;
        std::fs::write(&path, b"")?;
    }
    Ok(path)
}
