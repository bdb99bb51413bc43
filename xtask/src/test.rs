//! `cargo xtask test`: formatting and lints (the agent's workspace, the BPF crate on
//! its own target, the fuzz crate), then every unit and integration test, privileged
//! ones included (with the agent's debug build, and its Debian package for
//! tests/tests/package.rs), then a short run of every fuzz target on its corpus.

use pptp_tests::lab;

use crate::{cmd, fuzz, package, setup};

pub fn run() -> anyhow::Result<()> {
    setup::run()?;
    let ebpf = cmd::ebpf_dir();
    cmd::run(cmd::cargo().args(["fmt", "--all", "--check"]))?;
    cmd::run(cmd::cargo_pinned(&ebpf).args(["fmt", "--all", "--check"]))?;
    cmd::run(cmd::cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    cmd::run(cmd::cargo_pinned(&ebpf).args([
        "clippy",
        "--locked",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--",
        "-D",
        "warnings",
    ]))?;
    fuzz::lint()?;

    let stale = lab::down_stale()?;
    if !stale.is_empty() {
        eprintln!("xtask: removed labs left by killed test runs: {stale:?}");
    }
    let agent = cmd::build_agent(false)?;
    let deb = package::build(&agent, false)?;
    cmd::run(
        cmd::cargo()
            .args(["test", "--workspace", "--locked"])
            .env("PPTP_AGENT_BIN", &agent)
            .env("PPTP_AGENT_DEB", &deb),
    )?;
    let stale = lab::down_stale()?;
    anyhow::ensure!(stale.is_empty(), "tests left labs behind: {stale:?}");
    fuzz::smoke()
}
