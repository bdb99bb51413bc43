//! Threaded NAPI (`/sys/class/net/<dev>/threaded`): a veth's receive work moves from
//! the softirq of whoever sent to it into a kernel thread of its own
//! (`napi/<dev>-<id>`), which can be pinned to a CPU and whose CPU time is the work
//! done for that device alone. The bench uses it to measure what the concentrator
//! itself spends per packet, with the generator on the other CPU: that thread's CPU
//! time over the frames it took off its ring ([`handled`]; veth counts every frame
//! its NAPI poll consumes as `rx_queue_<n>_xdp_packets`, XDP program or not).

use std::{collections::BTreeSet, process::Command, time::Duration};

use anyhow::{Context as _, bail, ensure};
use nix::sched::{CpuSet, sched_setaffinity};
use pptp_tests::{demo::wait_for, netns};

/// PIDs of the NAPI threads of devices named `dev` (in any namespace).
fn threads_of(dev: &str) -> BTreeSet<u32> {
    let prefix = format!("napi/{dev}-");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            comm.trim().starts_with(&prefix).then_some(pid)
        })
        .collect()
}

/// Turns on threaded NAPI for `dev` in namespace `ns` and returns its thread's PID,
/// pinned to `cpu`. `dev` must have NAPI (an XDP program or GRO on a veth).
pub fn threaded(ns: &str, dev: &str, cpu: usize) -> anyhow::Result<u32> {
    let before = threads_of(dev);
    // `ip netns exec` mounts the namespace's own /sys.
    netns::run(Command::new("ip").args([
        "netns",
        "exec",
        ns,
        "sh",
        "-c",
        &format!("echo 1 > /sys/class/net/{dev}/threaded"),
    ]))
    .with_context(|| format!("threaded NAPI for {dev} in {ns}"))?;
    let mut new = BTreeSet::new();
    wait_for(Duration::from_secs(2), || {
        new = threads_of(dev).difference(&before).copied().collect();
        !new.is_empty()
    })
    .with_context(|| format!("no NAPI thread appeared for {dev} in {ns}"))?;
    ensure!(
        new.len() == 1,
        "{} NAPI threads appeared for {dev} in {ns}: {new:?}",
        new.len()
    );
    let pid = *new.first().expect("one");
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(nix::unistd::Pid::from_raw(pid as i32), &set)
        .with_context(|| format!("pinning napi thread {pid} to CPU {cpu}"))?;
    Ok(pid)
}

/// Frames the NAPI polls of veth `dev` in namespace `ns` have consumed so far (the
/// sum of its `rx_queue_<n>_xdp_packets` in `ethtool -S`).
pub fn handled(ns: &str, dev: &str) -> anyhow::Result<u64> {
    let out = netns::run_in_ns(ns, Command::new("ethtool").args(["-S", dev]))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let counts: Vec<u64> = text
        .lines()
        .filter_map(|line| {
            let (name, value) = line.trim().split_once(':')?;
            let queue = name.strip_prefix("rx_queue_")?;
            queue
                .ends_with("_xdp_packets")
                .then(|| value.trim().parse().ok())?
        })
        .collect();
    ensure!(
        !counts.is_empty(),
        "no rx_queue_*_xdp_packets for {dev} in {ns}: {text}"
    );
    Ok(counts.iter().sum())
}

/// CPU time thread `pid` has run so far (first field of its schedstat).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .with_context(|| format!("NAPI thread {pid} is gone"))?;
    let Some(ns) = text.split_whitespace().next().and_then(|n| n.parse().ok()) else {
        bail!("bad schedstat of {pid}: {text:?}");
    };
    Ok(Duration::from_nanos(ns))
}
