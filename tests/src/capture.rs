//! Packet captures of lab traffic and their dissection by tshark, the independent
//! reader of what the agent and its peers put on the wire.
//!
//! [`Capture::start`] runs dumpcap on an interface of a lab namespace; [`Capture::finish`]
//! sends a marker frame out of that interface and stops dumpcap once the file holds
//! it (everything sent before is then in the file, whatever the machine's load); and
//! [`dissect`] checks the file: tshark must find no malformed packet and no expert
//! error, and reports which protocols and messages it saw.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{Context as _, ensure};

use crate::{demo::wait_for, lab::Lab, netns};

/// tshark's display filter for what must never appear in our captures.
pub const PROBLEMS: &str = "_ws.malformed || _ws.expert.severity >= 0x800000";

/// Ethertype of the end marker (IEEE 802 local experimental ethertype 1).
pub const MARKER_ETHERTYPE: u16 = 0x88b5;
/// How long dumpcap may take to write the marker into its file.
const MARKER_WAIT: Duration = Duration::from_secs(10);

/// A running capture.
pub struct Capture {
    pid: u32,
    path: PathBuf,
    ns: String,
    iface: String,
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
            ns: ns.to_owned(),
            iface: iface.to_owned(),
        })
    }

    /// Sends the end marker (a broadcast frame of [`MARKER_ETHERTYPE`] naming this
    /// capture), waits until dumpcap has written it, then stops the capture and
    /// returns the file.
    pub fn finish(self, lab: &mut Lab) -> anyhow::Result<PathBuf> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let marker = format!(
            "pptp-xdp capture end {} {}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        send_marker(&self.ns, &self.iface, marker.as_bytes())?;
        let written = wait_for(MARKER_WAIT, || {
            std::fs::read(&self.path)
                .is_ok_and(|bytes| bytes.windows(marker.len()).any(|w| w == marker.as_bytes()))
        });
        lab.stop(self.pid, Duration::from_secs(10))?;
        written.with_context(|| {
            format!(
                "dumpcap did not write the end marker into {} within {MARKER_WAIT:?}",
                self.path.display()
            )
        })?;
        Ok(self.path)
    }
}

/// Sends one broadcast Ethernet frame of [`MARKER_ETHERTYPE`] carrying `payload` out
/// of `iface` in namespace `ns` (a packet socket).
fn send_marker(ns: &str, iface: &str, payload: &[u8]) -> anyhow::Result<()> {
    let iface = iface.to_owned();
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xfe]);
    frame.extend_from_slice(&MARKER_ETHERTYPE.to_be_bytes());
    frame.extend_from_slice(payload);
    frame.resize(frame.len().max(60), 0);
    netns::run_in(ns, move || {
        let ifindex = nix::net::if_::if_nametoindex(iface.as_str())
            .with_context(|| format!("no interface {iface}"))?;
        // SAFETY: plain socket(2); the descriptor is owned below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        ensure!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a descriptor just returned by socket(2), owned from here on.
        let socket = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_ifindex = ifindex as i32;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: the buffer and the address are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::from_ref(&to).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        ensure!(
            sent == frame.len() as isize,
            "sending the capture's end marker on {iface}: {}",
            std::io::Error::last_os_error()
        );
        Ok(())
    })
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
