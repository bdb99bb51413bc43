//! What traffic and churn cost the concentrator in memory and descriptors, which
//! must come back flat (figures, not pass/fail): its RSS and open descriptors
//! before and after
//!
//! - (a) millions of packets through one MPPE-128 session (the agent's path), small
//!   UDP datagrams each way with iperf3, and
//! - (b) 200,000 session set-ups and tear-downs in a row (`PPTP_BENCH_CHURN_ROUNDS`
//!   rounds, 40 by default, of as many sessions as the lab's pool holds, 5,000):
//!   `pptp-agent load-test` rounds, each session pinging through its tunnel,
//!   against a concentrator with XDP; besides RSS and descriptors, what the
//!   concentrator says it holds (sessions, pool addresses, live Call IDs, calls in
//!   the XDP maps) idle and after the last round, and each round's set-up rate.
//!
//! Run by `cargo xtask bench` with `PPTP_AGENT_BIN` set to a release build.

use std::{path::Path, time::Duration};

use anyhow::{Context as _, ensure};
use pptp_tests::{
    agents,
    demo::wait_for,
    iperf,
    lab::{Lab, LabSpec, addr},
    load::{self, LoadRun},
    netns,
    process::{open_fds, rss},
};

/// Seconds of UDP each way through the MPPE session.
const UDP_SECONDS: u64 = 10;
/// Load-test rounds of churn, unless `PPTP_BENCH_CHURN_ROUNDS` says otherwise.
const CHURN_ROUNDS: usize = 40;
/// Setups in flight during churn.
const CHURN_CONCURRENCY: usize = 128;

/// Memory and descriptors of the concentrator at one moment.
#[derive(Clone, Copy)]
struct Sample {
    rss: u64,
    fds: usize,
}

impl Sample {
    fn of(pid: u32) -> anyhow::Result<Self> {
        Ok(Self {
            rss: rss(pid)?,
            fds: open_fds(pid)?,
        })
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// UDP datagrams of 64 bytes for `UDP_SECONDS`, client to LAN (or back).
fn udp_flood(lab: &mut Lab, reverse: bool) -> anyhow::Result<()> {
    let iperf_server = iperf::serve_once(lab)?;
    let mut client = iperf::client();
    client.args(["-u", "-b", "0", "-l", "64", "-t", &UDP_SECONDS.to_string()]);
    if reverse {
        client.arg("-R");
    }
    netns::run_in_ns(&lab.client_ns(0), &mut client).context("iperf3 through the tunnel")?;
    lab.stop(iperf_server, Duration::from_secs(5))?;
    Ok(())
}

/// (a): before and after the flood, and the packets the session carried.
fn mppe_traffic(bin: &Path) -> anyhow::Result<(Sample, Sample, u64)> {
    let mut lab = Lab::up(&LabSpec { clients: 1 })?;
    let server = agents::start_server(
        &mut lab,
        bin,
        &["--user", "bench:bench-secret", "--mppe", "require"],
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
            "require",
        ],
    )?;
    ensure!(
        agents::ping(&lab.client_ns(0), addr::LAN_HOST, 3)?,
        "ping through MPPE"
    );
    let before = Sample::of(server.pid)?;
    udp_flood(&mut lab, false)?;
    udp_flood(&mut lab, true)?;
    let after = Sample::of(server.pid)?;
    let session = agents::sessions(&mut lab, bin)
        .into_iter()
        .next()
        .context("the MPPE session is gone")?;
    let packets =
        session["rx_packets"].as_u64().unwrap_or(0) + session["tx_packets"].as_u64().unwrap_or(0);
    lab.down()?;
    Ok((before, after, packets))
}

/// What the concentrator says it holds: sessions, pool addresses in use, live
/// Call IDs, calls in the XDP maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Holds {
    sessions: u64,
    pool: u64,
    call_ids: u64,
    installed: u64,
}

impl Holds {
    fn of(lab: &mut Lab, bin: &Path) -> anyhow::Result<Self> {
        let s = agents::stats(lab, bin)?;
        let field = |v: &serde_json::Value| v.as_u64().with_context(|| format!("stats: {s}"));
        Ok(Self {
            sessions: field(&s["totals"]["sessions"])?,
            pool: field(&s["pool"]["in_use"])?,
            call_ids: field(&s["call_ids"])?,
            installed: field(&s["installed_calls"])?,
        })
    }
}

/// (b)'s figures.
struct Churn {
    rounds: usize,
    round_size: usize,
    idle: (Sample, Holds),
    first: Sample,
    last: (Sample, Holds),
    /// Each round's set-ups per second (`load-test`'s own figure).
    rates: Vec<f64>,
    /// Wall time of all rounds, set-up, ping, hang-up and wait for the table to empty.
    seconds: f64,
}

/// (b): idle, after the first round, after the last.
fn churn(bin: &Path, rounds: usize) -> anyhow::Result<Churn> {
    let mut lab = Lab::up(&LabSpec { clients: 1 })?;
    let dir = std::env::temp_dir().join(format!("{}-bench-resources", lab.id()));
    let server = load::start_concentrator(&mut lab, bin, &dir, true)?;
    let round_size = load::pool_size();
    std::thread::sleep(Duration::from_millis(500));
    let idle = (Sample::of(server.pid)?, Holds::of(&mut lab, bin)?);
    let mut first = idle.0;
    let mut rates = Vec::new();
    let started = std::time::Instant::now();
    for round in 0..rounds {
        let run = LoadRun::start(
            &mut lab,
            bin,
            &dir,
            &format!("churn{round}"),
            round_size,
            CHURN_CONCURRENCY,
            0,
        )?;
        wait_for(Duration::from_secs(300), || lab.exited(run.pid).is_some())?;
        let report = run.report()?;
        ensure!(
            report["established"].as_u64() == Some(round_size as u64)
                && report["echo_answered"].as_u64() == Some(round_size as u64),
            "round {round}: not every session came up and answered: {report}\n{}",
            run.notable_log(20)
        );
        rates.push(report["sessions_per_second"].as_f64().unwrap_or(0.0));
        wait_for(Duration::from_secs(60), || {
            Holds::of(&mut lab, bin).is_ok_and(|h| h.sessions == 0)
        })
        .context("sessions left after a round")?;
        if round == 0 {
            first = Sample::of(server.pid)?;
        }
        let _ = std::fs::remove_file(&run.log);
    }
    let seconds = started.elapsed().as_secs_f64();
    let last = (Sample::of(server.pid)?, Holds::of(&mut lab, bin)?);
    lab.stop(server.pid, Duration::from_secs(30))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Churn {
        rounds,
        round_size,
        idle,
        first,
        last,
        rates,
        seconds,
    })
}

fn main() -> anyhow::Result<()> {
    let bin = agents::agent_bin();
    let (before, after, packets) = mppe_traffic(&bin)?;
    println!(
        "\n(a) one MPPE-128 session, 64-byte UDP each way for {UDP_SECONDS} s: {packets} packets through the agent"
    );
    println!(
        "    concentrator RSS {:.1} -> {:.1} MiB ({:+.1} bytes per packet), descriptors {} -> {}",
        mib(before.rss),
        mib(after.rss),
        (after.rss as f64 - before.rss as f64) / packets.max(1) as f64,
        before.fds,
        after.fds
    );
    let rounds = std::env::var("PPTP_BENCH_CHURN_ROUNDS")
        .ok()
        .map(|v| v.parse())
        .transpose()
        .context("PPTP_BENCH_CHURN_ROUNDS: a number of rounds")?
        .unwrap_or(CHURN_ROUNDS);
    ensure!(rounds >= 2, "PPTP_BENCH_CHURN_ROUNDS: at least 2");
    let c = churn(&bin, rounds)?;
    let total = c.rounds * c.round_size;
    let mut rates = c.rates.clone();
    rates.sort_by(f64::total_cmp);
    println!(
        "\n(b) {total} session set-ups and tear-downs in a row ({} load-test rounds of {}, {CHURN_CONCURRENCY} in flight, each session pinging), XDP, in {:.0} s",
        c.rounds, c.round_size, c.seconds
    );
    println!(
        "    set-ups per second per round: min {:.0}, median {:.0}, max {:.0}; {:.0} set-ups and tear-downs per second over the whole run",
        rates[0],
        rates[rates.len() / 2],
        rates[rates.len() - 1],
        total as f64 / c.seconds
    );
    println!(
        "    concentrator RSS idle {:.1} MiB, after round 1 {:.1} MiB, after round {} {:.1} MiB ({:+.0} bytes per session come and gone since round 1)",
        mib(c.idle.0.rss),
        mib(c.first.rss),
        c.rounds,
        mib(c.last.0.rss),
        (c.last.0.rss as f64 - c.first.rss as f64) / (total - c.round_size) as f64
    );
    println!(
        "    descriptors idle {}, after round 1 {}, after round {} {}",
        c.idle.0.fds, c.first.fds, c.rounds, c.last.0.fds
    );
    let (idle, last) = (c.idle.1, c.last.1);
    println!(
        "    held idle -> after the last round: sessions {} -> {}, pool addresses {} -> {}, live Call IDs {} -> {}, calls in the XDP maps {} -> {}{}",
        idle.sessions,
        last.sessions,
        idle.pool,
        last.pool,
        idle.call_ids,
        last.call_ids,
        idle.installed,
        last.installed,
        if idle == last {
            " (back to idle)"
        } else {
            " (NOT back to idle)"
        }
    );
    Ok(())
}
