//! `perf record` of the pipeline's CPU while ours or (a) runs, by symbol.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aya::Ebpf;
use pptp_tests::netns;

use crate::{
    Direction, Plane,
    live::{Kind, Senders, send, set_templates},
    pinned_cpu,
    sinks::Sinks,
};

/// A profile: CPU ns per packet of the pipeline, and the symbols it spent them in.
pub struct Profile {
    direction: Direction,
    plane: Plane,
    ns_per_packet: f64,
    /// (share of the samples in percent, symbol), largest first.
    symbols: Vec<(f64, String)>,
}

/// Samples the pinned CPU with `perf record` while `plane` runs `direction` at 64 B;
/// keeps the samples of the benchmark's thread and the CPU's ksoftirqd.
pub fn profile(
    bench: &mut Ebpf,
    sinks: &Sinks,
    senders: &Senders,
    direction: Direction,
    plane: Plane,
    run_dir: &std::path::Path,
) -> anyhow::Result<Profile> {
    let cpu = pinned_cpu();
    std::fs::create_dir_all(run_dir)?;
    let data = run_dir.join(format!("perf-{direction:?}-{plane:?}.data"));
    let frame = set_templates(bench, direction, plane, 64)?;
    let mut perf = std::process::Command::new("perf")
        .args(["record", "-q", "-C", &cpu.to_string(), "-o"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting perf record (install linux-perf, or unset PPTP_BENCH_PERF)")?;
    std::thread::sleep(Duration::from_millis(500));
    let sent = send(
        bench,
        sinks,
        (direction, plane),
        &senders[&(direction, plane)],
        &frame,
        Duration::from_secs(3),
    );
    let pid = nix::unistd::Pid::from_raw(perf.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(20);
    while perf.try_wait()?.is_none() {
        if Instant::now() > deadline {
            perf.kill()?;
            perf.wait()?;
            bail!("perf record did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = sent?;
    let comm = std::fs::read_to_string("/proc/thread-self/comm")?;
    let out = netns::output(
        std::process::Command::new("perf")
            .args([
                "report",
                "-q",
                "--stdio",
                "--no-children",
                "--sort",
                "symbol",
            ])
            .args([
                "--percentage",
                "relative",
                "--percent-limit",
                "0.5",
                "--comms",
            ])
            .arg(format!("{},ksoftirqd/{cpu}", comm.trim()))
            .arg("-i")
            .arg(&data),
    )?;
    let symbols = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let share = fields.next()?.strip_suffix('%')?.parse::<f64>().ok()?;
            let _kind = fields.next()?;
            let symbol = fields.next()?;
            // BPF programs: bpf_prog_<tag>_<name> -> bpf_prog_<name>
            let symbol = match symbol.strip_prefix("bpf_prog_") {
                Some(rest) => format!("bpf_prog_{}", rest.split_once('_').map_or(rest, |r| r.1)),
                None => symbol.to_owned(),
            };
            Some((share, symbol))
        })
        .collect();
    Ok(Profile {
        direction,
        plane,
        ns_per_packet: sent.cpu.as_nanos() as f64
            / sent.got[Kind::expected(direction, plane) as usize].max(1) as f64,
        symbols,
    })
}

/// Prints ours and (a) side by side: ns per packet in each symbol.
pub fn print(profiles: &[Profile]) {
    for direction in [Direction::Decap, Direction::Encap] {
        let of = |plane| {
            profiles
                .iter()
                .find(|p| p.direction == direction && p.plane == plane)
        };
        let (Some(ours), Some(bare)) = (of(Plane::Ours), of(Plane::Bare)) else {
            continue;
        };
        println!();
        println!(
            "profile, {direction:?} 64 B (perf record, cpu-clock samples of the pipeline's CPU; CPU ns per packet by symbol, symbols >= 0.5%):"
        );
        println!(
            "  total: pptp-xdp {:.0} ns, (a) bare redirect {:.0} ns",
            ours.ns_per_packet, bare.ns_per_packet
        );
        println!(
            "  {:<40} {:>9} {:>9} {:>8}",
            "symbol", "pptp-xdp", "(a)", "extra"
        );
        let mut names: Vec<&String> = ours.symbols.iter().map(|(_, s)| s).collect();
        for (_, s) in &bare.symbols {
            if !names.contains(&s) {
                names.push(s);
            }
        }
        let ns = |p: &Profile, name: &str| {
            p.symbols
                .iter()
                .find(|(_, s)| s == name)
                .map_or(0.0, |(share, _)| share / 100.0 * p.ns_per_packet)
        };
        let mut rows: Vec<(String, f64, f64)> = names
            .into_iter()
            .map(|n| (n.clone(), ns(ours, n), ns(bare, n)))
            .collect();
        rows.sort_by(|x, y| (y.1 - y.2).total_cmp(&(x.1 - x.2)));
        for (name, o, b) in rows.iter().take(16) {
            println!("  {name:<40} {o:>6.1} ns {b:>6.1} ns {:>+6.1} ns", o - b);
        }
    }
}
