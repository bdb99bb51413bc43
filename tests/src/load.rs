//! Many sessions in the lab: a concentrator whose pools hold 5,000 tunnel
//! addresses ([`addr::SCALE_POOLS`]), and `pptp-agent load-test` in client 0's
//! namespace filling them. Used by the scale test and the
//! sessions benchmark.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;
use serde_json::Value;

use crate::{
    agents::{self, Agent, ConfigSpec},
    lab::{Lab, addr},
};

/// The user every load-test session authenticates as.
pub const USER: &str = "load";
pub const PASSWORD: &str = "load-secret";

/// Addresses in [`addr::SCALE_POOLS`]: the most sessions the lab can hold at once.
pub fn pool_size() -> usize {
    addr::SCALE_POOLS
        .iter()
        .map(|range| {
            let (first, last) = range.split_once('-').expect("FIRST-LAST");
            let first: std::net::Ipv4Addr = first.parse().expect("an address");
            let last: std::net::Ipv4Addr = last.parse().expect("an address");
            (u32::from(last) - u32::from(first) + 1) as usize
        })
        .sum()
}

/// Starts the concentrator from a configuration file written into `dir`: the wide
/// pools, CHAP, no per-source caps (connections, calls waiting for authentication:
/// every session comes from client 0) nor per-user ones; XDP on the lab's links when `xdp`,
/// otherwise every session takes the agent's path.
pub fn start_concentrator(
    lab: &mut Lab,
    bin: &Path,
    dir: &Path,
    xdp: bool,
) -> anyhow::Result<Agent> {
    let spec = ConfigSpec {
        xdp,
        pools: &addr::SCALE_POOLS,
        secrets: &format!("{USER} * {PASSWORD} *\n"),
        auth: "methods = [\"chap\"]",
        extra: "[limits]\nmax_sessions = 65535\nconnections_per_source = 0\nunauthenticated_calls_per_source = 0",
    };
    agents::start_from_config(lab, bin, dir, &spec)
}

/// The tunnel pool of the 50,000-session benchmark: 198.18.0.0/15 (RFC 2544's
/// benchmarking range), 131,069 addresses, more than the BPF maps hold.
pub const BENCHMARK_POOL: &str = "198.18.0.2-198.19.255.254";

/// Starts the concentrator for access switches placing many incoming calls each
/// (`load-test --incoming`): XDP, [`BENCHMARK_POOL`], CHAP, and no cap on calls
/// waiting for authentication per connection or per source, nor on connections
/// per source (an operator would lift these for its switches' addresses only,
/// with a `[[limits.peers]]` entry).
pub fn start_pac_concentrator(lab: &mut Lab, bin: &Path, dir: &Path) -> anyhow::Result<Agent> {
    let spec = ConfigSpec {
        xdp: true,
        pools: &[BENCHMARK_POOL],
        secrets: &format!("{USER} * {PASSWORD} *\n"),
        auth: "methods = [\"chap\"]",
        extra: "[limits]\nmax_sessions = 65535\nconnections_per_source = 0\n\
                unauthenticated_calls_per_connection = 0\nunauthenticated_calls_per_source = 0",
    };
    agents::start_from_config(lab, bin, dir, &spec)
}

/// Panics unless the `load-test` report says that all `sessions` were attempted,
/// came up, answered their echo through their own call (none misdelivered), did
/// not flap and were hung up; `context` starts the message.
pub fn assert_every_session_carried_traffic(report: &Value, sessions: usize, context: &str) {
    for (field, expected) in [
        ("attempted", sessions),
        ("established", sessions),
        ("failed", 0),
        ("flaps", 0),
        ("echo_answered", sessions),
        ("echo_unanswered", 0),
        ("echo_misdelivered", 0),
        ("hung_up", sessions),
    ] {
        assert_eq!(
            report[field].as_u64(),
            Some(expected as u64),
            "{context}{field} in {report}"
        );
    }
}

/// Where a load test runs from and to, and how many sessions it holds how long.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The lab client whose namespace it runs in.
    pub client: usize,
    /// The concentrator it calls.
    pub server: std::net::Ipv4Addr,
    pub sessions: usize,
    /// Setups in flight at once.
    pub concurrency: usize,
    /// Seconds every session stays up after its traffic check.
    pub hold: u64,
}

/// A `pptp-agent load-test` run started in a client's namespace.
pub struct LoadRun {
    pub pid: u32,
    /// Its JSON report (stdout).
    pub report: PathBuf,
    /// Its log (stderr).
    pub log: PathBuf,
}

impl LoadRun {
    /// Starts `sessions` sessions at `concurrency` setups in flight; each pings the
    /// LAN host, all stay up `hold` seconds, then hang up.
    pub fn start(
        lab: &mut Lab,
        bin: &Path,
        dir: &Path,
        name: &str,
        sessions: usize,
        concurrency: usize,
        hold: u64,
    ) -> anyhow::Result<Self> {
        let to = Target {
            client: 0,
            server: addr::CONC_WAN,
            sessions,
            concurrency,
            hold,
        };
        Self::start_to(lab, bin, dir, name, to)
    }

    /// As [`LoadRun::start`], from client `to.client`'s namespace to `to.server`.
    pub fn start_to(
        lab: &mut Lab,
        bin: &Path,
        dir: &Path,
        name: &str,
        to: Target,
    ) -> anyhow::Result<Self> {
        Self::start_with(lab, bin, dir, name, to, &[])
    }

    /// As [`LoadRun::start_to`], with further `load-test` arguments (`--incoming
    /// --calls-per-connection N`, a longer `--setup-timeout`).
    pub fn start_with(
        lab: &mut Lab,
        bin: &Path,
        dir: &Path,
        name: &str,
        to: Target,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let Target {
            sessions,
            concurrency,
            hold,
            ..
        } = to;
        let report = dir.join(format!("{name}.json"));
        let log = dir.join(format!("{name}.log"));
        let mut cmd = Command::new(bin);
        cmd.args(["load-test", "--server", &to.server.to_string()])
            .args(["--sessions", &sessions.to_string()])
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--user", USER, "--password", PASSWORD, "--auth", "chap"])
            .args(["--ping", &addr::LAN_HOST.to_string()])
            .args(["--hold", &hold.to_string(), "--json"])
            .args(extra)
            .stdout(std::fs::File::create(&report)?)
            .stderr(std::fs::File::create(&log)?);
        let pid = lab.spawn(&lab.client_ns(to.client), cmd)?;
        Ok(Self { pid, report, log })
    }

    /// The report, once the run has ended.
    pub fn report(&self) -> anyhow::Result<Value> {
        let text = std::fs::read_to_string(&self.report)?;
        serde_json::from_str(&text).with_context(|| format!("load-test report: {text}"))
    }

    /// The last `n` lines of the log that say more than "starting" or "closed".
    pub fn notable_log(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let notable: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("PPP starting") && !l.contains("closed locally"))
            .collect();
        notable[notable.len().saturating_sub(n)..].join("\n")
    }
}
