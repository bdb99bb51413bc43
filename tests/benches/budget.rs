//! Voluntary clients up to the descriptor budget (issue 17): each client brings its
//! own control connection, so each session costs the concentrator a descriptor,
//! and these machines cap a process at 20,000. `pptp-agent load-test` in a client
//! namespace brings up as many voluntary clients as the concentrator's descriptor
//! budget allows (read from its "descriptor budget" log line; the load generator
//! holds as many sockets, under the same cap), each pinging the LAN host through
//! its own tunnel. While they are held, one more client dials from a second
//! namespace: the concentrator must refuse it at once (`connections_over_fd_budget`)
//! and every established session must still answer its ping afterwards
//! (`load-test --recheck`). Prints the set-up rate, the concentrator's memory per
//! session (RSS with every session up minus RSS idle, over the sessions: the
//! sockets' buffers are the kernel's) and what the refused client saw.
//! Run by `cargo xtask bench` with `PPTP_AGENT_BIN` set to a release build.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use pptp_agent::runtime::load::SETUP_OVER;
use pptp_tests::{
    agents,
    demo::wait_for,
    lab::{Lab, LabSpec, addr},
    load::{self, LoadRun, Target},
    process::{open_fds, rss},
};

/// Seconds every session stays up after its traffic check: the extra client dials
/// meanwhile.
const HOLD: u64 = 20;
/// Set-ups in flight.
const CONCURRENCY: usize = 256;

/// The control connections the concentrator's descriptor budget allows, from its
/// log line `descriptor budget ... control_connections=N` (coloured by the log's
/// terminal escapes, which are taken out first).
fn budget(log: &str) -> anyhow::Result<usize> {
    let line = log
        .lines()
        .find(|l| l.contains("descriptor budget"))
        .context("no \"descriptor budget\" line in the concentrator's log")?;
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            plain.push(c);
        }
    }
    let value = plain
        .split_whitespace()
        .find_map(|word| word.strip_prefix("control_connections="))
        .with_context(|| format!("no control_connections= in {plain}"))?;
    Ok(value.parse()?)
}

/// Control connections the concentrator refused for its descriptor budget
/// (`stats --limit 0`: the counters without 20,000 rows).
fn refused_by_budget(lab: &mut Lab, bin: &std::path::Path) -> anyhow::Result<u64> {
    let out = agents::operator(lab, bin, &["stats", "--limit", "0", "--json"])?;
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    stats["guard"]["connections_over_fd_budget"]
        .as_u64()
        .with_context(|| format!("no guard counter in {stats}"))
}

fn main() -> anyhow::Result<()> {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 2 })?;
    let dir = std::env::temp_dir().join(format!("{}-bench-budget", lab.id()));
    let server = load::start_pac_concentrator(&mut lab, &bin, &dir)?;
    std::thread::sleep(Duration::from_millis(500));
    let sessions = budget(&std::fs::read_to_string(&server.log)?)?;
    let (rss_idle, fds_idle) = (rss(server.pid)?, open_fds(server.pid)?);
    let to = Target {
        client: 0,
        server: addr::CONC_WAN,
        sessions,
        concurrency: CONCURRENCY,
        hold: HOLD,
    };
    let run = LoadRun::start_with(
        &mut lab,
        &bin,
        &dir,
        "budget",
        to,
        &["--recheck", "--setup-timeout", "120"],
    )?;
    wait_for(Duration::from_secs(900), || {
        std::fs::read_to_string(&run.log).is_ok_and(|log| log.contains(SETUP_OVER))
            || lab.exited(run.pid).is_some()
    })?;
    let (rss_up, fds_up) = (rss(server.pid)?, open_fds(server.pid)?);
    let refused_before = refused_by_budget(&mut lab, &bin)?;

    // One more voluntary client, from another address.
    let extra = agents::dial(
        &mut lab,
        &bin,
        1,
        &["--user", load::USER, "--password", load::PASSWORD],
    );
    let refused_after = refused_by_budget(&mut lab, &bin)?;
    let extra_came_up = extra.is_ok();
    let extra_said = match &extra {
        Ok(_) => "came up".to_owned(),
        Err(e) => {
            let text = format!("{e:#}");
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            lines[lines.len().saturating_sub(2)..].join(" | ")
        }
    };

    wait_for(Duration::from_secs(600), || lab.exited(run.pid).is_some())?;
    let report = run.report()?;
    let field = |name: &str| report[name].as_f64().unwrap_or(f64::NAN);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "\nvoluntary clients up to the descriptor budget: {sessions} control connections allowed \
         (RLIMIT_NOFILE 20,000 here, less what the concentrator holds and its reserve), \
         {CONCURRENCY} set-ups in flight, CHAP, XDP, each pinging the LAN host\n"
    );
    println!(
        "established {} of {}, failed {}, flaps {}; echo answered {} (unanswered {}), after the hold {} (unanswered {}), misdelivered {}",
        report["established"],
        report["attempted"],
        report["failed"],
        report["flaps"],
        report["echo_answered"],
        report["echo_unanswered"],
        report["recheck_answered"],
        report["recheck_unanswered"],
        report["echo_misdelivered"]
    );
    println!(
        "set-ups per second: min {:.0}, avg {:.0}, max {:.0}; set-up p50 {:.0} ms, p99 {:.0} ms",
        field("setup_rate_min"),
        field("setup_rate_avg"),
        field("setup_rate_max"),
        field("setup_ms_p50"),
        field("setup_ms_p99")
    );
    println!(
        "concentrator RSS idle {:.1} MiB, all up {:.1} MiB: {:.2} KiB per session; descriptors idle {fds_idle}, all up {fds_up}",
        mib(rss_idle),
        mib(rss_up),
        rss_up.saturating_sub(rss_idle) as f64 / sessions as f64 / 1024.0
    );
    println!(
        "one more client: {} (connections_over_fd_budget {refused_before} -> {refused_after}); it said: {extra_said}",
        if extra_came_up { "CAME UP" } else { "refused" }
    );
    ensure!(
        report["established"].as_u64() == Some(sessions as u64)
            && report["echo_answered"].as_u64() == Some(sessions as u64)
            && report["recheck_answered"].as_u64() == Some(sessions as u64),
        "not every session came up and answered, before and after the hold: {report}\n{}",
        run.notable_log(20)
    );
    ensure!(
        !extra_came_up && refused_after > refused_before,
        "the client beyond the budget was not refused by the budget"
    );
    lab.stop(server.pid, Duration::from_secs(60))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
