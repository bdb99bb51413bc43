//! What traffic and churn cost the concentrator in memory and descriptors, which
//! must come back flat (figures, not pass/fail): its RSS and open descriptors
//! before and after
//!
//! - (a) millions of packets through one MPPE-128 session (the agent's path), small
//!   UDP datagrams each way with iperf3, and
//! - (b) 10,000 session set-ups and tear-downs in a row: `pptp-agent load-test`
//!   rounds of 500 sessions, each pinging through its tunnel, against a
//!   concentrator with XDP.
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
/// Sessions per load-test round, and rounds.
const CHURN_ROUND: usize = 500;
const CHURN_ROUNDS: usize = 20;

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

/// (b): idle, after the first round, after the last.
fn churn(bin: &Path) -> anyhow::Result<[Sample; 3]> {
    let mut lab = Lab::up(&LabSpec { clients: 1 })?;
    let dir = std::env::temp_dir().join(format!("{}-bench-resources", lab.id()));
    let server = load::start_concentrator(&mut lab, bin, &dir, true)?;
    std::thread::sleep(Duration::from_millis(500));
    let idle = Sample::of(server.pid)?;
    let mut first = idle;
    for round in 0..CHURN_ROUNDS {
        let run = LoadRun::start(
            &mut lab,
            bin,
            &dir,
            &format!("churn{round}"),
            CHURN_ROUND,
            64,
            0,
        )?;
        wait_for(Duration::from_secs(300), || lab.exited(run.pid).is_some())?;
        let report = run.report()?;
        ensure!(
            report["established"].as_u64() == Some(CHURN_ROUND as u64)
                && report["echo_answered"].as_u64() == Some(CHURN_ROUND as u64),
            "round {round}: not every session came up and answered: {report}\n{}",
            run.notable_log(20)
        );
        wait_for(Duration::from_secs(30), || {
            agents::sessions(&mut lab, bin).is_empty()
        })
        .context("sessions left after a round")?;
        if round == 0 {
            first = Sample::of(server.pid)?;
        }
    }
    let last = Sample::of(server.pid)?;
    lab.stop(server.pid, Duration::from_secs(30))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok([idle, first, last])
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
    let [idle, first, last] = churn(&bin)?;
    let total = CHURN_ROUND * CHURN_ROUNDS;
    println!(
        "\n(b) {total} session set-ups and tear-downs ({CHURN_ROUNDS} load-test rounds of {CHURN_ROUND}), XDP"
    );
    println!(
        "    concentrator RSS idle {:.1} MiB, after round 1 {:.1} MiB, after round {CHURN_ROUNDS} {:.1} MiB ({:+.0} bytes per session come and gone since round 1)",
        mib(idle.rss),
        mib(first.rss),
        mib(last.rss),
        (last.rss as f64 - first.rss as f64) / (total - CHURN_ROUND) as f64
    );
    println!(
        "    descriptors idle {}, after round 1 {}, after round {CHURN_ROUNDS} {}",
        idle.fds, first.fds, last.fds
    );
    Ok(())
}
