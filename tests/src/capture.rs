//! Packet captures of lab traffic and their dissection by tshark, the independent
//! reader of what the agent and its peers put on the wire.
//!
//! [`Capture::start`] runs dumpcap on an interface of a lab namespace; [`Capture::finish`]
//! stops it and [`dissect`] checks the file: tshark must find no malformed packet and
//! no expert error, and reports which protocols and messages it saw.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, ensure};

use crate::{demo::wait_for, lab::Lab};

/// tshark's display filter for what must never appear in our captures.
pub const PROBLEMS: &str = "_ws.malformed || _ws.expert.severity >= 0x800000";

/// A running capture.
pub struct Capture {
    pid: u32,
    path: PathBuf,
}

impl Capture {
    /// Captures everything on `iface` in namespace `ns` into `path` (pcapng); returns
    /// once dumpcap is capturing.
    pub fn start(lab: &mut Lab, ns: &str, iface: &str, path: &Path) -> anyhow::Result<Self> {
        let _ = std::fs::remove_file(path);
        let mut cmd = Command::new("dumpcap");
        cmd.args(["-q", "-i", iface, "-w"])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let pid = lab
            .spawn(ns, cmd)
            .context("starting dumpcap (run `cargo xtask setup` for tshark)")?;
        wait_for(Duration::from_secs(10), || {
            std::fs::metadata(path).is_ok_and(|m| m.len() > 0) || lab.exited(pid).is_some()
        })
        .context("dumpcap did not start capturing")?;
        ensure!(lab.exited(pid).is_none(), "dumpcap exited at once");
        Ok(Self {
            pid,
            path: path.to_path_buf(),
        })
    }

    /// Stops the capture (dumpcap flushes its file on SIGTERM) and returns the file.
    pub fn finish(self, lab: &mut Lab) -> anyhow::Result<PathBuf> {
        // Frames still in flight through the bridge reach dumpcap first.
        std::thread::sleep(Duration::from_millis(300));
        lab.stop(self.pid, Duration::from_secs(10))?;
        Ok(self.path)
    }
}

/// What tshark read in a capture.
#[derive(Debug, Default)]
pub struct Dissection {
    pub frames: usize,
    /// Protocol stacks (`frame.protocols`) of every frame, e.g.
    /// `eth:ethertype:ip:gre:ppp:chap`.
    pub stacks: Vec<String>,
}

impl Dissection {
    /// Frames whose protocol stack contains `proto` (a `:`-separated layer name).
    pub fn count(&self, proto: &str) -> usize {
        self.stacks
            .iter()
            .filter(|s| s.split(':').any(|layer| layer == proto))
            .count()
    }
}

/// Runs tshark on `file`: fails if any frame is malformed or carries an expert error
/// (listing them), otherwise returns every frame's protocol stack. TCP on `data_ports`
/// is the tests' own payload (random bytes): tshark reads it as plain data, or a
/// heuristic dissector may take it for its protocol (Thrift did) and call it malformed.
pub fn dissect(file: &Path, data_ports: &[u16]) -> anyhow::Result<Dissection> {
    let file = file.to_str().context("capture path is not UTF-8")?;
    let decode_as: Vec<String> = data_ports
        .iter()
        .map(|port| format!("tcp.port=={port},data"))
        .collect();
    let tshark_on = |extra: &[&str]| {
        let mut args = vec!["-r", file];
        for rule in &decode_as {
            args.extend(["-d", rule.as_str()]);
        }
        args.extend_from_slice(extra);
        tshark(&args)
    };
    let problems = tshark_on(&["-Y", PROBLEMS])?;
    ensure!(
        problems.trim().is_empty(),
        "tshark finds malformed packets or expert errors in {file}:\n{problems}"
    );
    let stacks: Vec<String> = tshark_on(&["-T", "fields", "-e", "frame.protocols"])?
        .lines()
        .map(str::to_owned)
        .collect();
    Ok(Dissection {
        frames: stacks.len(),
        stacks,
    })
}

/// Numbers of the frames of `file` matching the display `filter`, in order.
pub fn matching(file: &Path, filter: &str) -> anyhow::Result<Vec<u64>> {
    let file = file.to_str().context("capture path is not UTF-8")?;
    tshark(&[
        "-r",
        file,
        "-Y",
        filter,
        "-T",
        "fields",
        "-e",
        "frame.number",
    ])?
    .lines()
    .map(|n| {
        n.trim()
            .parse()
            .context("tshark printed a bad frame number")
    })
    .collect()
}

/// Runs tshark with `args`, returning its standard output.
pub fn tshark(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("tshark")
        .args(args)
        .output()
        .context("running tshark (run `cargo xtask setup`)")?;
    ensure!(
        out.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
