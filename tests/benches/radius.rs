//! RADIUS at scale: [`SESSIONS`] sessions authenticated (CHAP) by a real FreeRADIUS
//! on loopback in the concentrator's namespace (`pptp_tests::freeradius`, as the
//! RADIUS tests start it) and accounted (Start when up, Stop at hang-up), driven by
//! `pptp-agent load-test` from a lab client against `serve` with a 198.18.0.0/15
//! pool. The agent sends every exchange over its fixed set of UDP sockets
//! (`radius.sockets`, see `pptp-agent/src/radius/exchanges.rs`).
//!
//! Prints set-ups/s with their p50/p99 (load-test's report), the concentrator's open
//! descriptors and its UDP sockets idle, at the peak and after every session ended,
//! the RADIUS round trips p50/p99 as tshark measures them on loopback (`radius.time`
//! of each answer, an observer independent of the agent), how many source ports the
//! agent's requests came from and how many were retransmissions, the Start and Stop
//! records FreeRADIUS wrote, and the agent's counters of dropped answers. FreeRADIUS
//! runs as in production (`-f`: its thread pool, no per-request debug log); under
//! `-X` it is the bottleneck. Figures, not pass/fail: it fails only when
//! the sessions did not all come up or the records are not all there. Run by
//! `cargo xtask bench` with `PPTP_AGENT_BIN` set to a release build.

use std::{collections::HashSet, path::Path, time::Duration};

use anyhow::{Context as _, ensure};
use pptp_tests::{
    agents::{self, ConfigSpec},
    capture::{self, Capture},
    demo::wait_for,
    freeradius::{self, FreeRadius},
    lab::{Lab, LabSpec},
    load::{self, LoadRun},
};

/// Sessions set up, all up at once before they hang up.
const SESSIONS: usize = 10_000;
/// Set-ups in flight at once.
const CONCURRENCY: usize = 256;
/// `radius.sockets`.
const SOCKETS: usize = 8;
/// Tunnel addresses: 10,238 of RFC 2544's range.
const POOL: &str = "198.18.0.1-198.18.39.254";
const SECRET: &str = "bench-secret";
const AUTH_PORT: u16 = 18120;

/// Descriptors process `pid` holds, and how many of them are UDP sockets.
fn descriptors(pid: u32) -> anyhow::Result<(usize, usize)> {
    let mut inodes = HashSet::new();
    let mut total = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        total += 1;
        // A descriptor may close while we look: skip it.
        let Ok(target) = std::fs::read_link(entry?.path()) else {
            continue;
        };
        if let Some(inode) = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
        {
            inodes.insert(inode.to_owned());
        }
    }
    let mut udp = 0;
    for table in ["udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}"))?;
        udp += text
            .lines()
            .skip(1)
            .filter(|l| {
                l.split_whitespace()
                    .nth(9)
                    .is_some_and(|i| inodes.contains(i))
            })
            .count();
    }
    Ok((total, udp))
}

/// The `q` quantile of `sorted`.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// tshark on `file`, its RADIUS on our ports, the packets matching `filter`: the
/// values of `field`, one per line.
fn fields(file: &Path, filter: &str, field: &str) -> anyhow::Result<String> {
    let file = file.to_str().context("capture path is not UTF-8")?;
    let auth = format!("udp.port=={AUTH_PORT},radius");
    let acct = format!("udp.port=={},radius", AUTH_PORT + 1);
    capture::tshark(&[
        "-r", file, "-d", &auth, "-d", &acct, "-Y", filter, "-T", "fields", "-e", field,
    ])
}

/// Round trips in ms of the answers in `file` matching `filter`, sorted.
fn round_trips(file: &Path, filter: &str) -> anyhow::Result<Vec<f64>> {
    let out = fields(file, filter, "radius.time")?;
    let mut ms: Vec<f64> = out
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .map(|s| s * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

/// `[limits]` for one client address bringing every session.
const LIMITS: &str = "[limits]\nmax_sessions = 65535\nconnections_per_source = 0\nunauthenticated_calls_per_source = 0\n";

/// The baseline, measured in the same run: the same load against a concentrator
/// judging users by its secrets file, without RADIUS. Its load-test report.
fn baseline(bin: &Path) -> anyhow::Result<serde_json::Value> {
    let mut lab = Lab::up(&LabSpec { clients: 1 })?;
    let dir = std::env::temp_dir().join(format!("{}-bench-radius-baseline", lab.id()));
    let server = agents::start_from_config(
        &mut lab,
        bin,
        &dir,
        &ConfigSpec {
            xdp: false,
            pools: &[POOL],
            secrets: &format!("{} * {} *\n", load::USER, load::PASSWORD),
            auth: "methods = [\"chap\"]",
            extra: LIMITS,
        },
    )?;
    let run = LoadRun::start(&mut lab, bin, &dir, "baseline", SESSIONS, CONCURRENCY, 0)?;
    wait_for(Duration::from_secs(900), || lab.exited(run.pid).is_some())
        .context("load-test did not end within 900 s")?;
    let report = run.report()?;
    ensure!(
        report["established"].as_u64() == Some(SESSIONS as u64),
        "baseline: not every session came up: {report}\n{}",
        run.notable_log(20)
    );
    lab.stop(server.pid, Duration::from_secs(30))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

fn main() -> anyhow::Result<()> {
    let bin = agents::agent_bin();
    let base = baseline(&bin)?;
    let mut lab = Lab::up(&LabSpec { clients: 1 })?;
    let ns = lab.concentrator_ns();
    let dir = std::env::temp_dir().join(format!("{}-bench-radius", lab.id()));
    let radius = FreeRadius::start_with(
        &mut lab,
        &ns,
        &dir.join("freeradius"),
        &freeradius::Spec {
            auth_port: AUTH_PORT,
            secret: SECRET,
            users: &format!(
                "{} Cleartext-Password := \"{}\"\n",
                load::USER,
                load::PASSWORD
            ),
            site: None,
            modules: &[],
        },
        &["-f", "-l", "stdout"],
    )?;
    let pcap = dir.join("radius.pcapng");
    let capture = Capture::start(&mut lab, &ns, "lo", &pcap)?;
    let server = agents::start_from_config(
        &mut lab,
        &bin,
        &dir,
        &ConfigSpec {
            xdp: false,
            pools: &[POOL],
            secrets: "",
            auth: "methods = [\"chap\"]\nsource = \"radius\"",
            extra: &format!(
                "{LIMITS}[radius]\nsockets = {SOCKETS}\n\
                 [[radius.servers]]\nauth = \"127.0.0.1:{AUTH_PORT}\"\nacct = \"127.0.0.1:{}\"\nsecret = \"{SECRET}\"\n",
                AUTH_PORT + 1
            ),
        },
    )?;
    std::thread::sleep(Duration::from_secs(1));
    let idle = descriptors(server.pid)?;

    let run = LoadRun::start(&mut lab, &bin, &dir, "radius", SESSIONS, CONCURRENCY, 0)?;
    let mut peak = idle;
    // Bounded: load-test gives up on a set-up after 30 s, and the wait after 900 s.
    let sampled = wait_for(Duration::from_secs(900), || {
        if let Ok((fds, udp)) = descriptors(server.pid) {
            peak = (peak.0.max(fds), peak.1.max(udp));
        }
        std::thread::sleep(Duration::from_millis(200));
        lab.exited(run.pid).is_some()
    });
    sampled.context("load-test did not end within 900 s")?;
    let report = run.report()?;
    ensure!(
        report["established"].as_u64() == Some(SESSIONS as u64),
        "not every session came up: {report}\n{}\n{}",
        run.notable_log(20),
        server.log_tail()
    );
    wait_for(Duration::from_secs(120), || {
        agents::sessions(&mut lab, &bin).is_empty()
    })
    .context("sessions still up two minutes after load-test ended")?;
    let stops = wait_for(Duration::from_secs(60), || {
        radius.records(load::USER, "Stop").len() >= SESSIONS
    });
    let starts = radius.records(load::USER, "Start").len();
    let stopped = radius.records(load::USER, "Stop").len();
    let after = descriptors(server.pid)?;
    let stats = agents::stats(&mut lab, &bin)?;
    let file = capture.finish(&mut lab)?;
    lab.stop(server.pid, Duration::from_secs(30))?;
    lab.stop(radius.pid, Duration::from_secs(10))?;

    let access = round_trips(&file, "radius.code == 2 || radius.code == 3")?;
    let accounting = round_trips(&file, "radius.code == 5")?;
    let ports: HashSet<String> =
        fields(&file, "radius.code == 1 || radius.code == 4", "udp.srcport")?
            .lines()
            .map(str::to_owned)
            .collect();

    let requests = fields(
        &file,
        "radius.code == 1 || radius.code == 4",
        "frame.number",
    )?
    .lines()
    .count();
    let retransmitted = fields(&file, "radius.req.dup", "frame.number")?
        .lines()
        .count();
    let f = |name: &str| report[name].as_f64().unwrap_or(f64::NAN);
    println!(
        "\nRADIUS: {SESSIONS} sessions, CHAP against FreeRADIUS on loopback, Start and Stop accounted, {CONCURRENCY} set-ups in flight, radius.sockets = {SOCKETS}\n"
    );
    println!(
        "set-ups/s {:.0} (p50 {:.0} ms, p99 {:.0} ms)",
        f("sessions_per_second"),
        f("setup_ms_p50"),
        f("setup_ms_p99")
    );
    let b = |name: &str| base[name].as_f64().unwrap_or(f64::NAN);
    println!(
        "baseline, users from the secrets file (no RADIUS), same run: set-ups/s {:.0} (p50 {:.0} ms, p99 {:.0} ms); ratio RADIUS / baseline set-ups/s {:.2}",
        b("sessions_per_second"),
        b("setup_ms_p50"),
        b("setup_ms_p99"),
        f("sessions_per_second") / b("sessions_per_second")
    );
    println!(
        "agent descriptors: idle {}, peak {}, after {}; of them UDP sockets: idle {}, peak {}, after {}",
        idle.0, peak.0, after.0, idle.1, peak.1, after.1
    );
    println!(
        "agent request source ports seen by tshark: {} (sockets configured: {SOCKETS})",
        ports.len()
    );
    println!(
        "requests sent: {requests}, of them retransmissions (tshark radius.req.dup): {retransmitted}"
    );
    for (name, ms) in [("Access", &access), ("Accounting", &accounting)] {
        println!(
            "{name} round trip on loopback (tshark radius.time): {} answers, p50 {:.2} ms, p99 {:.2} ms",
            ms.len(),
            quantile(ms, 0.5),
            quantile(ms, 0.99)
        );
    }
    println!("FreeRADIUS detail file: {starts} Start, {stopped} Stop records");
    let guard = &stats["guard"];
    println!(
        "agent counters: radius_unmatched {}, radius_late {}, radius_unverified {}, radius_queue_full {}",
        guard["radius_unmatched"],
        guard["radius_late"],
        guard["radius_unverified"],
        guard["radius_queue_full"]
    );
    stops.context("FreeRADIUS did not record every Stop within 60 s")?;
    ensure!(starts >= SESSIONS, "{starts} Start records");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
