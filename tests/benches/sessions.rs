//! Sessions at scale: `pptp-agent load-test` establishes as many sessions as the lab
//! has tunnel addresses for (5,000 voluntary clients, `addr::SCALE_POOLS`),
//! against a concentrator with XDP and, as the baseline measured in the same run,
//! one without (every session on the agent's path, no BPF map writes). Reports
//! sessions/s, the concentrator's memory per session (its RSS with every session up
//! minus its RSS idle) and the BPF maps' memory per session (they are preallocated
//! for `MAX_SESSIONS`). [`ROUNDS`] rounds of each, interleaved (baseline, XDP,
//! baseline, ...), each with a fresh lab and concentrator; the report gives the
//! median of each figure. Run by `cargo xtask bench` with `PPTP_AGENT_BIN` set to a
//! release build.

use std::{path::Path, time::Duration};

use anyhow::ensure;
use pptp_tests::{
    agents::{self, SERVER_INSTANCE},
    bpffs::pinned_map_bytes,
    demo::wait_for,
    lab::{Lab, LabSpec},
    load::{self, LoadRun},
    process::rss,
    sample::median,
    traffic,
};
use serde_json::Value;

/// Setups in flight at once.
const CONCURRENCY: usize = 64;
/// Rounds per concentrator; the report gives medians.
const ROUNDS: usize = 3;
/// Sessions the maps are sized for (`pptp_common::session::MAX_SESSIONS`).
const MAP_CAPACITY: u64 = 65_536;

struct Round {
    report: Value,
    rss_idle: u64,
    rss_up: u64,
    map_bytes: u64,
}

fn round(bin: &Path, sessions: usize, xdp: bool) -> anyhow::Result<Round> {
    let mut lab = Lab::up(&LabSpec { clients: 1 })?;
    let dir = std::env::temp_dir().join(format!("{}-bench-sessions", lab.id()));
    let server = load::start_concentrator(&mut lab, bin, &dir, xdp)?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = rss(server.pid)?;
    let run = LoadRun::start(&mut lab, bin, &dir, "load", sessions, CONCURRENCY, 3)?;
    wait_for(Duration::from_secs(600), || {
        agents::up_sessions(&mut lab, bin) == sessions as u64 || lab.exited(run.pid).is_some()
    })?;
    let rss_up = rss(server.pid)?;
    let map_bytes = if xdp {
        pinned_map_bytes(&lab.bpffs()?.join(SERVER_INSTANCE))?
    } else {
        0
    };
    wait_for(Duration::from_secs(300), || lab.exited(run.pid).is_some())?;
    let report = run.report()?;
    ensure!(
        report["established"].as_u64() == Some(sessions as u64)
            && report["echo_answered"].as_u64() == Some(sessions as u64),
        "not every session came up and answered: {report}\n{}\nconcentrator: {}\nlink drops: client {}, wan {}, concentrator {}, lan {}",
        run.notable_log(20),
        agents::stats(&mut lab, bin)
            .map(|mut s| {
                s["sessions"] = Value::Null;
                s
            })
            .unwrap_or_default(),
        traffic::link_drops(&lab.client_ns(0))?,
        traffic::link_drops(&lab.wan_ns())?,
        traffic::link_drops(&lab.concentrator_ns())?,
        traffic::link_drops(&lab.lan_ns())?,
    );
    lab.stop(server.pid, Duration::from_secs(30))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Round {
        report,
        rss_idle,
        rss_up,
        map_bytes,
    })
}

/// Medians over the rounds of one concentrator.
struct Figures {
    rate: f64,
    p50: f64,
    p99: f64,
    rss_idle: f64,
    rss_up: f64,
    per_session: f64,
    map_bytes: f64,
}

fn figures(rounds: &[Round], sessions: usize) -> Figures {
    let of = |f: &dyn Fn(&Round) -> f64| median(rounds.iter().map(f));
    let field = |r: &Round, name: &str| r.report[name].as_f64().unwrap_or(0.0);
    Figures {
        rate: of(&|r| field(r, "sessions_per_second")),
        p50: of(&|r| field(r, "setup_ms_p50")),
        p99: of(&|r| field(r, "setup_ms_p99")),
        rss_idle: of(&|r| r.rss_idle as f64),
        rss_up: of(&|r| r.rss_up as f64),
        per_session: of(&|r| r.rss_up.saturating_sub(r.rss_idle) as f64 / sessions as f64),
        map_bytes: of(&|r| r.map_bytes as f64),
    }
}

fn main() -> anyhow::Result<()> {
    let bin = agents::agent_bin();
    let sessions = load::pool_size();
    let (mut agent_path, mut xdp) = (Vec::new(), Vec::new());
    for n in 0..ROUNDS {
        for (rounds, with_xdp) in [(&mut agent_path, false), (&mut xdp, true)] {
            let r = round(&bin, sessions, with_xdp)?;
            eprintln!(
                "round {n}, {}: {:.0} sessions/s",
                if with_xdp { "XDP" } else { "agent's path" },
                r.report["sessions_per_second"].as_f64().unwrap_or(0.0)
            );
            rounds.push(r);
        }
    }
    let (agent_path, xdp) = (figures(&agent_path, sessions), figures(&xdp, sessions));

    let mib = |b: f64| b / (1024.0 * 1024.0);
    println!(
        "\nsessions: {sessions} voluntary clients at once (one control connection each), {CONCURRENCY} setups in flight, CHAP, each pinging the LAN host; medians of {ROUNDS} interleaved rounds\n"
    );
    println!(
        "{:<30} {:>11} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "concentrator", "sessions/s", "p50 ms", "p99 ms", "RSS idle", "RSS up", "per session"
    );
    for (name, f) in [("agent's path only (baseline)", &agent_path), ("XDP", &xdp)] {
        println!(
            "{:<30} {:>11.0} {:>10.0} {:>10.0} {:>8.1} MiB {:>6.1} MiB {:>8.1} KiB",
            name,
            f.rate,
            f.p50,
            f.p99,
            mib(f.rss_idle),
            mib(f.rss_up),
            f.per_session / 1024.0
        );
    }
    println!(
        "\nratio XDP / baseline: sessions/s {:.2}, agent memory per session {:.2}",
        xdp.rate / agent_path.rate.max(1e-9),
        xdp.per_session / agent_path.per_session.max(1e-9)
    );
    println!(
        "BPF maps: {:.1} MiB, preallocated for {MAP_CAPACITY} sessions: {:.0} bytes per session of capacity",
        mib(xdp.map_bytes),
        xdp.map_bytes / MAP_CAPACITY as f64
    );
    println!(
        "projected for 50,000 sessions: agent {:.0} MiB + maps {:.1} MiB (maps do not grow)",
        mib(xdp.rss_idle + xdp.per_session * 50_000.0),
        mib(xdp.map_bytes)
    );
    Ok(())
}
