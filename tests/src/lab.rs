//! The standard lab: PPTP clients, a WAN bridge, the concentrator and a LAN host,
//! each in its own network namespace.
//!
//! ```text
//!  client i (eth0 198.51.100.{10+i}) ──┐
//!                                      ├─ br0 in "wan" ── up0 198.51.100.1 [concentrator] lan0 203.0.113.1 ── eth0 203.0.113.10 [lan]
//!  client j ───────────────────────────┘
//! ```
//!
//! The WAN and the LAN are /27s (198.51.100.0/27, 203.0.113.0/27); sessions
//! normally get tunnel addresses from 192.0.2.0/24, and the scale test and the
//! sessions benchmark from RFC 2544's benchmarking range ([`addr::SCALE_POOLS`]).
//! Names carry the creating process's PID
//! (`pxl<pid>x<n>-conc`), so labs of concurrent tests never collide and the
//! leftovers of a killed test can be found ([`down_stale`]) and removed. A [`Lab`]
//! tears itself down when dropped, also when a test panics; processes started
//! with [`Lab::spawn`] are killed by PID first.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    bpffs::TempBpffs,
    netns::{self, ip, ip_in},
};

/// Addresses of the lab (documentation ranges, and 198.18.0.0/15 for many sessions).
pub mod addr {
    use std::net::Ipv4Addr;

    /// Prefix length of the WAN and of the LAN.
    pub const SUBNET_LEN: u8 = 27;
    /// The concentrator's uplink address (WAN side, 198.51.100.0/27).
    pub const CONC_WAN: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    /// The concentrator's LAN address (203.0.113.0/27).
    pub const CONC_LAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    /// The LAN host behind the concentrator.
    pub const LAN_HOST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    /// First address of the tunnel pool (192.0.2.0/24).
    pub const POOL_START: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

    /// Clients the WAN has room for (198.51.100.10 to .30).
    pub const MAX_CLIENTS: usize = 21;
    /// Tunnel addresses for many sessions at once: 5,000 of RFC 2544's
    /// benchmarking range (198.18.0.0/15), which the LAN host reaches through its
    /// default route via the concentrator like any other tunnel address.
    pub const SCALE_POOLS: [&str; 1] = ["198.18.0.1-198.18.19.136"];

    /// WAN address of client `i` (0-based).
    pub fn client(i: usize) -> Ipv4Addr {
        assert!(
            i < MAX_CLIENTS,
            "the lab has room for {MAX_CLIENTS} clients"
        );
        Ipv4Addr::new(198, 51, 100, 10 + i as u8)
    }
}

/// Interface names inside the namespaces.
pub mod ifname {
    /// The concentrator's uplink (facing the WAN bridge).
    pub const UPLINK: &str = "up0";
    /// The concentrator's LAN link.
    pub const LAN: &str = "lan0";
    /// The only interface of a client or of the LAN host.
    pub const HOST: &str = "eth0";
}

/// Root of the lab's run directories (bpffs mounts, PID files).
pub const RUN_ROOT: &str = "/run/pptp-xdp-lab";
const PREFIX: &str = "pxl";

/// What to build.
#[derive(Clone, Debug)]
pub struct LabSpec {
    /// Number of client namespaces.
    pub clients: usize,
}

impl Default for LabSpec {
    fn default() -> Self {
        Self { clients: 1 }
    }
}

/// A running lab. Dropping it tears it down.
pub struct Lab {
    id: String,
    clients: usize,
    children: Vec<Child>,
    bpffs: Option<TempBpffs>,
    keep: bool,
}

impl Lab {
    /// Builds a lab with a name unique to this process.
    pub fn up(spec: &LabSpec) -> anyhow::Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{PREFIX}{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self::build(id, spec)
    }

    /// Builds the named lab of `cargo xtask lab up`, which outlives this process.
    pub fn up_named(name: &str, spec: &LabSpec) -> anyhow::Result<Self> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("lab name {name:?} must be ASCII letters and digits");
        }
        let mut lab = Self::build(format!("{PREFIX}-{name}"), spec)?;
        lab.keep = true;
        Ok(lab)
    }

    fn build(id: String, spec: &LabSpec) -> anyhow::Result<Self> {
        if spec.clients > addr::MAX_CLIENTS {
            bail!(
                "{} clients asked for; the lab's WAN has room for {}",
                spec.clients,
                addr::MAX_CLIENTS
            );
        }
        check_privileges()?;
        let lab = Self {
            id,
            clients: spec.clients,
            children: Vec::new(),
            bpffs: None,
            keep: false,
        };
        // On error `lab` is dropped here and removes whatever was created.
        lab.create()?;
        Ok(lab)
    }

    fn create(&self) -> anyhow::Result<()> {
        let (wan, conc, lan) = (self.wan_ns(), self.concentrator_ns(), self.lan_ns());
        let mut all = vec![wan.clone(), conc.clone(), lan.clone()];
        all.extend((0..self.clients).map(|i| self.client_ns(i)));
        for ns in &all {
            ip(&["netns", "add", ns])?;
            quiet_ipv6(ns)?;
            ip_in(ns, &["link", "set", "lo", "up"])?;
        }
        ip_in(&wan, &["link", "add", "name", "br0", "type", "bridge"])?;
        ip_in(&wan, &["link", "set", "br0", "up"])?;

        let attach_to_wan = |ns: &str, port: &str, address: Ipv4Addr, ifname: &str| {
            ip(&[
                "link", "add", "name", ifname, "netns", ns, "type", "veth", "peer", "name", port,
                "netns", &wan,
            ])?;
            ip_in(&wan, &["link", "set", port, "master", "br0", "up"])?;
            ip_in(
                ns,
                &[
                    "addr",
                    "add",
                    &format!("{address}/{}", addr::SUBNET_LEN),
                    "dev",
                    ifname,
                ],
            )?;
            ip_in(ns, &["link", "set", ifname, "up"])
        };
        attach_to_wan(&conc, "conc", addr::CONC_WAN, ifname::UPLINK)?;
        for i in 0..self.clients {
            attach_to_wan(
                &self.client_ns(i),
                &format!("c{i}"),
                addr::client(i),
                ifname::HOST,
            )?;
        }

        ip(&[
            "link",
            "add",
            "name",
            ifname::LAN,
            "netns",
            &conc,
            "type",
            "veth",
            "peer",
            "name",
            ifname::HOST,
            "netns",
            &lan,
        ])?;
        ip_in(
            &conc,
            &[
                "addr",
                "add",
                &format!("{}/{}", addr::CONC_LAN, addr::SUBNET_LEN),
                "dev",
                ifname::LAN,
            ],
        )?;
        ip_in(&conc, &["link", "set", ifname::LAN, "up"])?;
        ip_in(
            &lan,
            &[
                "addr",
                "add",
                &format!("{}/{}", addr::LAN_HOST, addr::SUBNET_LEN),
                "dev",
                ifname::HOST,
            ],
        )?;
        ip_in(&lan, &["link", "set", ifname::HOST, "up"])?;
        ip_in(
            &lan,
            &[
                "route",
                "add",
                "default",
                "via",
                &addr::CONC_LAN.to_string(),
            ],
        )?;
        sysctl(&conc, "net/ipv4/ip_forward", "1")?;
        self.tune_veths()
    }

    /// Two veth properties that real NICs do not have and XDP cares about:
    /// - a veth hands TCP segments on with their checksum left to "offload"; an XDP
    ///   program that encapsulates such a segment sends it with a wrong checksum, so
    ///   the hosts that originate traffic compute checksums themselves (tx off);
    /// - XDP_REDIRECT into a veth needs NAPI on its peer, which GRO enables.
    fn tune_veths(&self) -> anyhow::Result<()> {
        let ethtool = |ns: &str, args: &[&str]| {
            netns::run_in_ns(ns, Command::new("ethtool").args(args))
                .map(drop)
                .context("ethtool (run `cargo xtask setup`)")
        };
        ethtool(
            &self.lan_ns(),
            &["-K", ifname::HOST, "tx", "off", "gro", "on"],
        )?;
        for i in 0..self.clients {
            ethtool(
                &self.client_ns(i),
                &["-K", ifname::HOST, "tx", "off", "gro", "on"],
            )?;
        }
        ethtool(&self.wan_ns(), &["-K", "conc", "gro", "on"])
    }

    /// The lab's identifier (prefix of its namespace names).
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Namespace holding the WAN bridge.
    pub fn wan_ns(&self) -> String {
        format!("{}-wan", self.id)
    }
    /// The concentrator's namespace.
    pub fn concentrator_ns(&self) -> String {
        format!("{}-conc", self.id)
    }
    /// The LAN host's namespace.
    pub fn lan_ns(&self) -> String {
        format!("{}-lan", self.id)
    }
    /// Namespace of client `i` (0-based).
    pub fn client_ns(&self, i: usize) -> String {
        assert!(
            i < self.clients,
            "client {i} of a lab with {}",
            self.clients
        );
        format!("{}-c{i}", self.id)
    }
    /// Every namespace of the lab.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all = vec![self.wan_ns(), self.concentrator_ns(), self.lan_ns()];
        all.extend((0..self.clients).map(|i| self.client_ns(i)));
        all
    }

    /// A bpffs mounted for this lab (agents pin their maps here), mounted on first use.
    pub fn bpffs(&mut self) -> anyhow::Result<PathBuf> {
        if self.bpffs.is_none() {
            self.bpffs = Some(TempBpffs::mount(self.run_dir().join("bpf"))?);
        }
        Ok(self.bpffs.as_ref().map(|b| b.path().to_path_buf()).unwrap())
    }

    fn run_dir(&self) -> PathBuf {
        Path::new(RUN_ROOT).join(&self.id)
    }

    /// Starts `cmd` inside namespace `ns`; the lab kills it (by PID) on teardown.
    pub fn spawn(&mut self, ns: &str, mut cmd: Command) -> anyhow::Result<u32> {
        netns::command_in(ns, &mut cmd)?;
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {cmd:?} in {ns}"))?;
        let pid = child.id();
        self.children.push(child);
        std::fs::create_dir_all(self.run_dir())?;
        let pids: Vec<String> = self.children.iter().map(|c| c.id().to_string()).collect();
        std::fs::write(self.run_dir().join("pids"), pids.join("\n"))?;
        Ok(pid)
    }

    /// Whether a process started with [`Lab::spawn`] has exited (and how).
    pub fn exited(&mut self, pid: u32) -> Option<std::process::ExitStatus> {
        let child = self.children.iter_mut().find(|c| c.id() == pid)?;
        child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM to a process started with [`Lab::spawn`] and waits (bounded)
    /// for it to exit; returns its exit status.
    pub fn stop(
        &mut self,
        pid: u32,
        timeout: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let index = self
            .children
            .iter()
            .position(|c| c.id() == pid)
            .with_context(|| format!("process {pid} was not started by this lab"))?;
        let mut child = self.children.remove(index);
        terminate(&mut child, timeout)
    }

    /// Kills a process started with [`Lab::spawn`] with SIGKILL (a crash: it
    /// cleans nothing up) and reaps it.
    pub fn kill(&mut self, pid: u32) -> anyhow::Result<std::process::ExitStatus> {
        let index = self
            .children
            .iter()
            .position(|c| c.id() == pid)
            .with_context(|| format!("process {pid} was not started by this lab"))?;
        let mut child = self.children.remove(index);
        let killed = child.kill();
        let status = child.wait()?;
        killed?;
        Ok(status)
    }

    /// Tears the lab down now (also done on drop).
    pub fn down(mut self) -> anyhow::Result<()> {
        self.keep = false;
        self.teardown()
    }

    fn teardown(&mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        for mut child in self.children.drain(..) {
            if let Err(e) = terminate(&mut child, Duration::from_secs(5)) {
                first_error.get_or_insert(e);
            }
        }
        self.bpffs = None;
        if let Err(e) = remove_run_dir(&self.run_dir()) {
            first_error.get_or_insert(e);
        }
        for ns in netns::list()
            .into_iter()
            .filter(|ns| belongs_to(ns, &self.id))
        {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Err(e) = self.teardown() {
            eprintln!("lab {}: teardown: {e:#}", self.id);
        }
    }
}

/// Removes the named lab built by [`Lab::up_named`].
pub fn down_named(name: &str) -> anyhow::Result<()> {
    down_id(&format!("{PREFIX}-{name}"))
}

/// Removes the labs of processes that no longer exist (a test killed mid-run).
/// Returns the identifiers removed.
pub fn down_stale() -> anyhow::Result<Vec<String>> {
    let mut ids: Vec<String> = netns::list()
        .iter()
        .filter_map(|ns| ns.split_once('-').map(|(id, _)| id.to_owned()))
        .chain(
            std::fs::read_dir(RUN_ROOT)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok()?.file_name().into_string().ok()),
        )
        .filter(|id| owner_pid(id).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()))
        .collect();
    ids.sort();
    ids.dedup();
    for id in &ids {
        down_id(id)?;
    }
    Ok(ids)
}

fn down_id(id: &str) -> anyhow::Result<()> {
    let run_dir = Path::new(RUN_ROOT).join(id);
    if let Ok(pids) = std::fs::read_to_string(run_dir.join("pids")) {
        for pid in pids.lines().filter_map(|p| p.parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    remove_run_dir(&run_dir)?;
    for ns in netns::list().into_iter().filter(|ns| belongs_to(ns, id)) {
        ip(&["netns", "del", &ns])?;
    }
    Ok(())
}

/// PID encoded in a lab id `pxl<pid>x<n>`.
fn owner_pid(id: &str) -> Option<u32> {
    id.strip_prefix(PREFIX)?.split_once('x')?.0.parse().ok()
}

fn belongs_to(ns: &str, id: &str) -> bool {
    ns.strip_prefix(id)
        .is_some_and(|rest| rest.starts_with('-'))
}

fn remove_run_dir(dir: &Path) -> anyhow::Result<()> {
    let bpf = dir.join("bpf");
    if bpf.exists() {
        // MNT_DETACH: a process still holding a pinned object must not block teardown.
        let _ = nix::mount::umount2(&bpf, nix::mount::MntFlags::MNT_DETACH);
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

fn terminate(child: &mut Child, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    let status = child.wait()?;
    bail!("process {pid} ignored SIGTERM for {timeout:?} and was killed ({status})")
}

/// Writes a sysctl under /proc/sys inside namespace `ns`.
pub fn sysctl(ns: &str, key: &str, value: &str) -> anyhow::Result<()> {
    let key = key.to_owned();
    let value = value.to_owned();
    netns::run_in(ns, move || {
        let path = format!("/proc/sys/{key}");
        std::fs::write(&path, &value).with_context(|| format!("writing {path}"))
    })
}

/// No IPv6 on lab links: keeps router/neighbour solicitations out of the counters.
fn quiet_ipv6(ns: &str) -> anyhow::Result<()> {
    for key in [
        "net/ipv6/conf/all/disable_ipv6",
        "net/ipv6/conf/default/disable_ipv6",
    ] {
        sysctl(ns, key, "1")?;
    }
    Ok(())
}

/// Fails with a clear message when the lab cannot be built here.
pub fn check_privileges() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the lab needs root (network namespaces, veth, bpffs): run as root");
    }
    netns::output(Command::new("ip").arg("-V"))
        .context("the lab needs iproute2's `ip` (run `cargo xtask setup`)")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_encode_their_owner() {
        assert_eq!(owner_pid("pxl1234x0"), Some(1234));
        assert_eq!(owner_pid("pxl-demo"), None);
        assert_eq!(owner_pid("other"), None);
        assert!(belongs_to("pxl12x0-conc", "pxl12x0"));
        assert!(!belongs_to("pxl12x01-conc", "pxl12x0"));
    }
}
