//! The agent's own data path (TUN + raw GRE socket), end to end in the lab: TCP
//! through a session without MPPE (a plain relay: the baseline) and with MPPE-128
//! stateless, in each direction, beside the product's RC4 alone in this process (the
//! `Rc4State` the MPPE cipher runs, keyed once, over the bytes a 1400-byte packet
//! puts through it: protocol field and payload).
//!
//! Packets per second come from the concentrator's TUN counters (every inner packet
//! the agent relays crosses it exactly once); the agent's CPU time (from /proc) turns
//! them into packets per second per core, since the agent runs on one thread. Both
//! sessions stay up for the whole run and [`ROUNDS`] rounds interleave them (relay
//! and MPPE one after the other in each direction, the RC4 baseline before each
//! round); the report gives medians. Run by `cargo xtask bench` with
//! `PPTP_AGENT_BIN` set to a release build.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use pptp_tests::{
    agents, iperf,
    lab::{Lab, LabSpec},
    netns,
    sample::median,
};

/// Inner packet size of the RC4 measurement (a full-size TCP segment).
const PACKET: usize = 1400;
/// Rounds per case; the report gives their medians.
const ROUNDS: usize = 3;

struct Measurement {
    mbit: f64,
    pps: f64,
    /// Fraction of one core the concentrator's agent used.
    cpu: f64,
}

impl Measurement {
    fn pps_per_core(&self) -> f64 {
        self.pps / self.cpu.max(1e-6)
    }
}

/// CPU seconds (user + system) used by process `pid` so far.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = &stat[stat.rfind(')').context("bad /proc stat")? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

/// One iperf3 run from the client (or to it, `reverse`) for `seconds`.
fn run_iperf(
    lab: &mut Lab,
    server_pid: u32,
    reverse: bool,
    seconds: u64,
) -> anyhow::Result<Measurement> {
    let iperf_server = iperf::serve_once(lab)?;
    let before_cpu = cpu_seconds(server_pid)?;
    let (rx0, tx0) = agents::link_packets(&lab.concentrator_ns(), "pptp0")?;
    let started = Instant::now();
    let mut client = iperf::client();
    client.args(["-t", &seconds.to_string(), "-J"]);
    if reverse {
        client.arg("-R");
    }
    let out = netns::run_in_ns(&lab.client_ns(0), &mut client)?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(server_pid)? - before_cpu) / wall;
    let (rx1, tx1) = agents::link_packets(&lab.concentrator_ns(), "pptp0")?;
    let _ = lab.stop(iperf_server, Duration::from_secs(5));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let bits = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 reported no throughput")?;
    // Client to LAN: the agent writes the packets into the TUN (its rx); LAN to
    // client: the kernel hands them to the agent (its tx).
    let packets = if reverse { tx1 - tx0 } else { rx1 - rx0 };
    Ok(Measurement {
        mbit: bits / 1e6,
        pps: packets as f64 / wall,
        cpu,
    })
}

/// The product's RC4 alone: packets of `PACKET` bytes (plus the 2-byte protocol
/// field MPPE encrypts with them) per second on one core, one key schedule for all.
fn rc4_primitive(budget: Duration) -> f64 {
    use pptp_agent::mppe::{KeyStrength, cipher::Rc4State, keys};
    let key = keys::initial_session_key(&[0x5a; 16], KeyStrength::Bits128);
    let mut rc4 = Rc4State::new(&key);
    let mut buf = vec![0x45u8; 2 + PACKET];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < budget {
        for _ in 0..64 {
            rc4.apply(std::hint::black_box(&mut buf));
        }
        n += 64;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// One session in its own lab (no XDP: every packet takes the agent's path).
struct Case {
    lab: Lab,
    server_pid: u32,
}

impl Case {
    fn up(bin: &std::path::Path, mppe: bool) -> anyhow::Result<Self> {
        let mut lab = Lab::up(&LabSpec { clients: 1 })?;
        let server_policy = if mppe { "require" } else { "deny" };
        // A missing uplink: no XDP.
        let server = agents::start_server_on(
            &mut lab,
            bin,
            "missing0",
            &["--user", "bench:bench-secret", "--mppe", server_policy],
        )?;
        agents::dial(
            &mut lab,
            bin,
            0,
            &[
                "--user",
                "bench",
                "--password",
                "bench-secret",
                "--mppe",
                server_policy,
            ],
        )?;
        Ok(Self {
            lab,
            server_pid: server.pid,
        })
    }
}

/// Medians over the rounds of one case and direction.
struct Medians {
    mbit: f64,
    pps: f64,
    cpu: f64,
    pps_per_core: f64,
}

fn medians(rounds: &[Measurement]) -> Medians {
    let of = |f: fn(&Measurement) -> f64| median(rounds.iter().map(f));
    Medians {
        mbit: of(|m| m.mbit),
        pps: of(|m| m.pps),
        cpu: of(|m| m.cpu),
        pps_per_core: of(Measurement::pps_per_core),
    }
}

fn main() -> anyhow::Result<()> {
    let bin = PathBuf::from(
        std::env::var_os("PPTP_AGENT_BIN")
            .context("PPTP_AGENT_BIN must name a (release) pptp-agent: run `cargo xtask bench`")?,
    );
    ensure!(bin.is_file(), "{} does not exist", bin.display());
    let seconds: u64 = std::env::var("PPTP_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(3, |s| s.ceil().max(1.0) as u64);

    let mut relay = Case::up(&bin, false)?;
    let mut mppe = Case::up(&bin, true)?;
    let mut rc4 = Vec::new();
    // [case][direction] -> one measurement per round
    let mut runs: [[Vec<Measurement>; 2]; 2] = Default::default();
    for round in 0..ROUNDS {
        rc4.push(rc4_primitive(Duration::from_millis(500)));
        for (direction, reverse) in [(0, false), (1, true)] {
            for (i, case) in [&mut relay, &mut mppe].into_iter().enumerate() {
                let m = run_iperf(&mut case.lab, case.server_pid, reverse, seconds)?;
                eprintln!(
                    "round {round}: {} {}: {:.0} packets/s per core",
                    ["relay", "MPPE-128"][i],
                    ["client -> LAN", "LAN -> client"][direction],
                    m.pps_per_core()
                );
                runs[i][direction].push(m);
            }
        }
    }
    relay.lab.down()?;
    mppe.lab.down()?;
    let rc4 = median(rc4);
    let [relay, mppe] = runs.map(|case| case.map(|rounds| medians(&rounds)));

    println!(
        "\nThe agent's data path (TUN + raw GRE socket), TCP through one session, {seconds} s per run, medians of {ROUNDS} interleaved rounds"
    );
    println!(
        "{:<34} {:>10} {:>12} {:>9} {:>14}",
        "case", "Mbit/s", "packets/s", "agent CPU", "packets/s/core"
    );
    let row = |name: &str, m: &Medians| {
        println!(
            "{:<34} {:>10.0} {:>12.0} {:>8.0}% {:>14.0}",
            name,
            m.mbit,
            m.pps,
            m.cpu * 100.0,
            m.pps_per_core
        )
    };
    row("relay, no crypto, client -> LAN", &relay[0]);
    row("relay, no crypto, LAN -> client", &relay[1]);
    row("MPPE-128 stateless, client -> LAN", &mppe[0]);
    row("MPPE-128 stateless, LAN -> client", &mppe[1]);
    println!(
        "{:<34} {:>10.0} {:>12.0} {:>9} {:>14.0}",
        "product's RC4 alone (1400 B)",
        rc4 * PACKET as f64 * 8.0 / 1e6,
        rc4,
        "100%",
        rc4
    );
    println!("\nratios (packets/s per core):");
    for (dir, i) in [("client -> LAN", 0), ("LAN -> client", 1)] {
        println!(
            "  {dir}: MPPE / relay = {:.2}, MPPE / RC4 alone = {:.2}, relay / RC4 alone = {:.2}",
            mppe[i].pps_per_core / relay[i].pps_per_core,
            mppe[i].pps_per_core / rc4,
            relay[i].pps_per_core / rc4
        );
    }
    println!(
        "(both agents and iperf3 share this machine's {} cores; the load average was {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    Ok(())
}
