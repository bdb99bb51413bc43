//! Network namespaces: create, delete, and run code or processes inside them.
//!
//! Code runs in a namespace on a dedicated thread that `setns()`s into it, so the
//! calling process keeps its own namespaces; processes are spawned with `setns()`
//! before `exec` (unlike `ip netns exec` this keeps the mount namespace, so bpffs
//! mounts stay visible to every process of a test).

use std::{
    fs::File,
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Command, Output},
};

use anyhow::{Context as _, bail};
use nix::sched::{CloneFlags, setns};

/// Directory where iproute2 keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Path of the namespace file for `name`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

/// Runs `ip` with `args` in the current namespace and fails with its stderr.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("ip").args(args))
}

/// Runs `ip` with `args` inside namespace `ns`.
pub fn ip_in(ns: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut cmd = Command::new("ip");
    cmd.args(["-n", ns]).args(args);
    run(&mut cmd)
}

/// Runs a command to completion and fails with its stderr if it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    output(cmd).map(drop)
}

/// Runs a command to completion, returning its output, failing with its stderr.
pub fn output(cmd: &mut Command) -> anyhow::Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?} (is iproute2 installed?)"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Runs `f` on a new thread that has entered namespace `ns`, and returns its result.
pub fn run_in<T, F>(ns: &str, f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
{
    let file = File::open(path(ns)).with_context(|| format!("opening namespace {ns}"))?;
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).context("setns")?;
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("thread in namespace {ns} panicked"))?
}

/// Makes `cmd` start inside namespace `ns`.
pub fn command_in(ns: &str, cmd: &mut Command) -> anyhow::Result<()> {
    let file = File::open(path(ns)).with_context(|| format!("opening namespace {ns}"))?;
    // SAFETY: the closure only calls setns(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || setns(&file, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from));
    }
    Ok(())
}

/// Names of all existing namespaces.
pub fn list() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs a command inside namespace `ns` to completion, failing with its stderr.
pub fn run_in_ns(ns: &str, cmd: &mut Command) -> anyhow::Result<Output> {
    command_in(ns, cmd)?;
    output(cmd)
}
