//! 50,000 sessions on one box (issue 17): `pptp-agent load-test --incoming` in a
//! client namespace plays access switches (PAC role), each control connection
//! carrying `PPTP_BENCH_CALLS_PER_CONNECTION` (1,000) incoming calls, until
//! `PPTP_BENCH_SESSIONS` (50,000) sessions are up at once on the XDP path, their
//! addresses from 198.18.0.0/15, each answering a ping to the LAN host through its
//! own tunnel. `PPTP_BENCH_CONCURRENCY` (512) set-ups are in flight at once.
//!
//! Prints what the load generator reports (set-ups per second min/avg/max over
//! one-second buckets, set-up p50/p99, IPCP up to the first forwarded packet, flaps,
//! failures by cause), the concentrator's memory per session (RSS with every session
//! up minus RSS idle, over the sessions), the BPF maps' memory (bytes_memlock of the
//! pinned maps), and the time to hang every session up; each beside the issue's
//! goal as a ratio (>= 1,000 set-ups/s, <= 4 KiB per session, hang-up < 60 s).
//! Nothing is asserted but that the run happened: every session up and answering.
//! Run by `cargo xtask bench` with `PPTP_AGENT_BIN` set to a release build.

use std::time::{Duration, Instant};

use anyhow::ensure;
use pptp_agent::runtime::load::SETUP_OVER;
use pptp_tests::{
    agents::{self, SERVER_INSTANCE},
    bpffs::pinned_map_bytes,
    demo::wait_for,
    lab::{Lab, LabSpec, addr},
    load::{self, LoadRun, Target},
    process::rss,
};

/// Seconds every session stays up after the traffic check (the memory is read
/// meanwhile).
const HOLD: u64 = 10;
/// The goals.
const GOAL_RATE: f64 = 1000.0;
const GOAL_BYTES_PER_SESSION: f64 = 4096.0;
const GOAL_HANGUP_SECONDS: f64 = 60.0;

fn env(name: &str, default: u32) -> anyhow::Result<u32> {
    match std::env::var(name) {
        Ok(v) => Ok(v.parse()?),
        Err(_) => Ok(default),
    }
}

fn main() -> anyhow::Result<()> {
    let bin = agents::agent_bin();
    let sessions = env("PPTP_BENCH_SESSIONS", 50_000)?;
    let per_connection = env("PPTP_BENCH_CALLS_PER_CONNECTION", 1000)?;
    let concurrency = env("PPTP_BENCH_CONCURRENCY", 512)?;
    let mut lab = Lab::up(&LabSpec { clients: 1 })?;
    let dir = std::env::temp_dir().join(format!("{}-bench-scale", lab.id()));
    let server = load::start_pac_concentrator(&mut lab, &bin, &dir)?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = rss(server.pid)?;
    let to = Target {
        client: 0,
        server: addr::CONC_WAN,
        sessions: sessions as usize,
        concurrency: concurrency as usize,
        hold: HOLD,
    };
    let per = per_connection.to_string();
    let run = LoadRun::start_with(
        &mut lab,
        &bin,
        &dir,
        "scale",
        to,
        &[
            "--incoming",
            "--calls-per-connection",
            &per,
            "--setup-timeout",
            "120",
        ],
    )?;
    let started = Instant::now();
    // Every session up, as the load generator says: the concentrator is not asked
    // (listing 50,000 sessions would leave its answer's memory in the RSS read).
    wait_for(Duration::from_secs(900), || {
        std::fs::read_to_string(&run.log).is_ok_and(|log| log.contains(SETUP_OVER))
            || lab.exited(run.pid).is_some()
    })?;
    let rss_up = rss(server.pid)?;
    let map_bytes = pinned_map_bytes(&lab.bpffs()?.join(SERVER_INSTANCE))?;
    eprintln!(
        "set-up over after {:.1} s; the concentrator lists {:?} sessions",
        started.elapsed().as_secs_f64(),
        agents::totals(&mut lab, &bin).and_then(|t| t["sessions"].as_u64())
    );
    // The concentrator's view of the hang-up: from the last poll that still saw
    // every session to the first that saw none (an upper bound: polls are
    // `sessions` commands, some 100 ms apart), whether or not the load generator
    // has exited meanwhile.
    let mut last_full = Instant::now();
    let mut all_gone = None;
    wait_for(Duration::from_secs(600), || {
        let count = agents::totals(&mut lab, &bin).and_then(|t| t["sessions"].as_u64());
        let now = Instant::now();
        if count == Some(u64::from(sessions)) {
            last_full = now;
        }
        if count == Some(0) {
            all_gone = Some(now);
        }
        all_gone.is_some()
    })?;
    wait_for(Duration::from_secs(600), || lab.exited(run.pid).is_some())?;
    let report = run.report()?;
    let hangup = all_gone.map_or(f64::NAN, |all| (all - last_full).as_secs_f64());
    let field = |name: &str| report[name].as_f64().unwrap_or(f64::NAN);
    println!(
        "\n{sessions} sessions as incoming calls, {per_connection} per control connection ({} connections), \
         {concurrency} set-ups in flight, CHAP, XDP, pool 198.18.0.0/15, each pinging the LAN host\n",
        report["connections"]
    );
    println!(
        "established {} of {}, failed {}, flaps {}, echo answered {} (unanswered {}, misdelivered {})",
        report["established"],
        report["attempted"],
        report["failed"],
        report["flaps"],
        report["echo_answered"],
        report["echo_unanswered"],
        report["echo_misdelivered"]
    );
    println!("failures by cause: {}", report["failures"]);
    println!(
        "set-ups per second: min {:.0}, avg {:.0}, max {:.0} (goal >= {GOAL_RATE:.0}: avg {:.2}x the goal)",
        field("setup_rate_min"),
        field("setup_rate_avg"),
        field("setup_rate_max"),
        field("setup_rate_avg") / GOAL_RATE
    );
    println!(
        "set-up time p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; IPCP up to first echo reply p50 {:.0} ms, p99 {:.0} ms",
        field("setup_ms_p50"),
        field("setup_ms_p99"),
        field("setup_ms_max"),
        field("first_packet_ms_p50"),
        field("first_packet_ms_p99")
    );
    let mib = |b: f64| b / (1024.0 * 1024.0);
    let per_session = rss_up.saturating_sub(rss_idle) as f64 / f64::from(sessions);
    println!(
        "agent RSS idle {:.1} MiB, with all up {:.1} MiB: {:.2} KiB per session ({:.2}x the goal of {:.0} KiB)",
        mib(rss_idle as f64),
        mib(rss_up as f64),
        per_session / 1024.0,
        per_session / GOAL_BYTES_PER_SESSION,
        GOAL_BYTES_PER_SESSION / 1024.0
    );
    println!(
        "BPF maps: {:.1} MiB locked (preallocated; {:.0} bytes per session up)",
        mib(map_bytes as f64),
        map_bytes as f64 / f64::from(sessions)
    );
    println!(
        "hang-up: on the concentrator at most {hangup:.1} s from all up to none ({:.2}x the goal of < {GOAL_HANGUP_SECONDS:.0} s); \
         the load generator saw {} sessions end within {:.1} s of its hang-up",
        hangup / GOAL_HANGUP_SECONDS,
        report["hung_up"],
        field("hangup_seconds"),
    );
    ensure!(
        report["established"].as_u64() == Some(u64::from(sessions))
            && report["echo_answered"].as_u64() == Some(u64::from(sessions)),
        "not every session came up and answered: {report}\n{}",
        run.notable_log(20)
    );
    lab.stop(server.pid, Duration::from_secs(60))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
