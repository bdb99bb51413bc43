//! The interop VM running: Debian's kernel under qemu (TCG: no KVM on these
//! machines), its NIC a tap device on the lab's WAN bridge, its first serial port
//! the console (kept in a log file) and its second the control channel that
//! `tests/vm/init.sh` serves: the host sends a shell script, the guest runs it and
//! answers with its exit status and output. Every script runs under
//! [`STRICT`] (`set -euo pipefail`): a failing command, an unset variable or a failed
//! stage of a pipeline ends it with a non-zero status, so no failure inside a guest
//! command passes unseen.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::Ipv4Addr,
    os::unix::net::UnixStream,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};

use super::image::Image;
use crate::{
    demo::wait_for,
    lab::{Lab, RUN_ROOT, addr},
    netns::ip_in,
};

/// The guest's address on the lab's WAN (below the lab's client addresses).
pub const GUEST_WAN: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 9);
/// The tap device in the WAN namespace.
const TAP: &str = "vmtap0";
/// How long the guest may take from qemu's start to the control channel's READY.
const BOOT_LIMIT: Duration = Duration::from_secs(90);
/// Put in front of every script the guest runs (`init.sh` runs it with plain bash).
const STRICT: &str = "set -euo pipefail\n";

/// What a guest command returned.
#[derive(Debug)]
pub struct GuestOutput {
    pub status: i32,
    pub text: String,
}

/// A booted guest. Stop it with [`Guest::stop`]; if a test fails first, the lab
/// kills qemu (by PID) on teardown.
pub struct Guest {
    pid: u32,
    control: BufReader<UnixStream>,
    console: PathBuf,
    /// Time from qemu's start to the guest's READY.
    pub boot_time: Duration,
}

impl Guest {
    /// Boots `image` attached to the lab's WAN bridge, with [`GUEST_WAN`] on its eth0.
    pub fn boot(lab: &mut Lab, image: &Image) -> anyhow::Result<Self> {
        let wan = lab.wan_ns();
        ip_in(&wan, &["tuntap", "add", "dev", TAP, "mode", "tap"])?;
        ip_in(&wan, &["link", "set", TAP, "master", "br0", "up"])?;
        let run_dir = PathBuf::from(RUN_ROOT).join(lab.id());
        std::fs::create_dir_all(&run_dir)?;
        let socket = run_dir.join("vm-control.sock");
        let console = std::env::temp_dir().join(format!("{}-vm-console.log", lab.id()));
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args(["-nodefaults", "-display", "none", "-no-reboot"])
            .args(["-machine", "pc", "-accel", "tcg", "-m", "1024", "-smp", "1"])
            .arg("-kernel")
            .arg(&image.kernel)
            .arg("-initrd")
            .arg(&image.initrd)
            .args(["-append", "console=ttyS0 panic=-1 quiet"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-chardev")
            .arg(format!(
                "socket,id=control,path={},server=on,wait=off",
                socket.display()
            ))
            .args(["-serial", "chardev:control"])
            .args([
                "-netdev",
                &format!("tap,id=wan,ifname={TAP},script=no,downscript=no"),
            ])
            // No checksum offload either way: every frame on the bridge is complete,
            // as a real NIC's would be (XDP and tshark read them as they are).
            .args([
                "-device",
                "virtio-net-pci,netdev=wan,mac=52:54:00:12:34:56,csum=off,guest_csum=off",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let started = Instant::now();
        let pid = lab
            .spawn(&wan, qemu)
            .context("starting qemu-system-x86_64 (run `cargo xtask setup`)")?;
        let mut stream = None;
        wait_for(Duration::from_secs(10), || {
            stream = UnixStream::connect(&socket).ok();
            stream.is_some() || lab.exited(pid).is_some()
        })
        .context("qemu's control socket did not appear")?;
        let stream = stream.with_context(|| format!("qemu exited: {:?}", lab.exited(pid)))?;
        let mut guest = Self {
            pid,
            control: BufReader::new(stream),
            console,
            boot_time: Duration::ZERO,
        };
        guest
            .read_line_starting("READY", started + BOOT_LIMIT)
            .with_context(|| format!("the guest did not boot:\n{}", guest.console_tail()))?;
        guest.boot_time = started.elapsed();
        guest.run_ok(
            &format!(
                "ip addr add {GUEST_WAN}/{} dev eth0 && ip link set eth0 up",
                addr::SUBNET_LEN
            ),
            Duration::from_secs(10),
        )?;
        Ok(guest)
    }

    /// Runs `script` (bash, under [`STRICT`]) in the guest and returns its exit
    /// status and output; fails if the guest does not answer within `limit`.
    pub fn run(&mut self, script: &str, limit: Duration) -> anyhow::Result<GuestOutput> {
        let mut line = BASE64.encode(format!("{STRICT}{script}"));
        line.push('\n');
        self.control.get_mut().write_all(line.as_bytes())?;
        let reply = self
            .read_line_starting("DONE ", Instant::now() + limit)
            .with_context(|| format!("the guest did not finish {script:?} in {limit:?}"))?;
        let mut fields = reply.trim_end().splitn(3, ' ').skip(1);
        let status = fields.next().unwrap_or_default().parse()?;
        let text = BASE64.decode(fields.next().unwrap_or_default())?;
        Ok(GuestOutput {
            status,
            text: String::from_utf8_lossy(&text).into_owned(),
        })
    }

    /// As [`Guest::run`], failing (with the output) unless the script succeeds.
    pub fn run_ok(&mut self, script: &str, limit: Duration) -> anyhow::Result<String> {
        let out = self.run(script, limit)?;
        ensure!(
            out.status == 0,
            "guest: {script:?} exited {}:\n{}",
            out.status,
            out.text
        );
        Ok(out.text)
    }

    /// The last lines of the guest's console.
    pub fn console_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.console).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops qemu.
    pub fn stop(self, lab: &mut Lab) -> anyhow::Result<()> {
        lab.stop(self.pid, Duration::from_secs(10)).map(drop)
    }

    fn read_line_starting(&mut self, prefix: &str, deadline: Instant) -> anyhow::Result<String> {
        let mut line = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("timed out waiting for {prefix:?}");
            }
            self.control.get_ref().set_read_timeout(Some(left))?;
            // A timed-out read_line may leave a partial line in `line`; it is kept
            // and completed by the next read.
            match self.control.read_line(&mut line) {
                Ok(0) => bail!("the guest's control channel closed"),
                Ok(_) if line.ends_with('\n') => {
                    if line.starts_with(prefix) {
                        return Ok(line);
                    }
                    line.clear();
                }
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => return Err(e).context("reading the guest's control channel"),
            }
        }
    }
}
