//! `cargo xtask bench`: the benchmarks, each measuring its baselines in the same run
//! and reporting ratios (timing goals live here, never in pass/fail tests).
//!
//! - `xdp` (`tests/benches/xdp/`): decap and encap packets/s of the XDP data plane
//!   against a bare XDP redirect and plain kernel forwarding, in a namespace lab, for
//!   the whole pipeline and for the concentrator alone (threaded NAPI), plus ns per
//!   packet of each program under BPF_PROG_TEST_RUN.
//! - `mppe` (`pptp-agent/benches/mppe.rs`): the MPPE cipher on one core against the
//!   product's own RC4 over the same bytes.
//! - `fallback` (`tests/benches/fallback.rs`): the agent's own data path end to end
//!   (TUN + raw GRE socket), a plain relay against MPPE-128, per agent core, beside
//!   the product's RC4 alone.
//! - `sessions` (`tests/benches/sessions.rs`): sessions/s and memory per session
//!   with every tunnel address of the lab in use, with XDP against the agent's path.
//! - `resources` (`tests/benches/resources.rs`): the concentrator's RSS and open
//!   descriptors before and after millions of packets through an MPPE session and
//!   200,000 session set-ups and tear-downs (both must come back flat, and so must
//!   the sessions, pool addresses, Call IDs and map entries the concentrator holds).
//! - `scale` (`tests/benches/scale.rs`): 50,000 sessions up at once as incoming
//!   calls (1,000 per control connection) on the XDP path: set-ups per second,
//!   memory per session, BPF map memory and hang-up time beside the goals.
//! - `budget` (`tests/benches/budget.rs`): voluntary clients up to the descriptor
//!   budget (about 19,000 here), one more refused while every session keeps
//!   answering its ping.
//! - `radius` (`tests/benches/radius.rs`): 10,000 sessions authenticated and
//!   accounted by FreeRADIUS on loopback: set-ups/s, the agent's descriptors and UDP
//!   sockets idle, at the peak and after, RADIUS round trips p50/p99.

use clap::Args;
use pptp_tests::lab;

use crate::{cmd, setup};

#[derive(Args)]
pub struct BenchArgs {
    /// Length of each measuring round, in seconds.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Skip the `perf record` profile of the XDP data plane (taken when perf is installed).
    #[arg(long)]
    no_perf: bool,
    /// Sessions installed in the XDP bench, one run per count (the fast path must cost
    /// no more at 50,000 than at 500).
    #[arg(long, value_delimiter = ',', default_values_t = [500, 50_000])]
    xdp_sessions: Vec<usize>,
    /// Frames the XDP bench's generator sends per session in a row, one run per
    /// value and session count: 1 visits another session with every frame (the worst
    /// case), 16 sends trains as real traffic does (docs/benchmarks.md).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16])]
    xdp_bursts: Vec<usize>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.seconds > 0.0 && args.seconds <= 60.0,
        "--seconds must be in (0, 60]"
    );
    setup::run()?;
    let stale = lab::down_stale()?;
    if !stale.is_empty() {
        eprintln!("xtask: removed labs left by killed runs: {stale:?}");
    }
    let perf = !args.no_perf && cmd::succeeds(std::process::Command::new("perf").arg("--version"));
    if !perf && !args.no_perf {
        eprintln!("xtask: perf not found: the benchmark runs without a profile");
    }
    for sessions in &args.xdp_sessions {
        for burst in &args.xdp_bursts {
            cmd::run(
                bench("pptp-tests", "xdp")
                    .env("PPTP_BENCH_SECONDS", args.seconds.to_string())
                    .env("PPTP_BENCH_PERF", if perf { "1" } else { "0" })
                    .env("PPTP_BENCH_SESSIONS", sessions.to_string())
                    .env("PPTP_BENCH_BURST", burst.to_string()),
            )?;
        }
    }
    cmd::run(&mut bench("pptp-agent", "mppe"))?;
    let agent = cmd::build_agent(true)?;
    cmd::run(
        bench("pptp-tests", "fallback")
            .env("PPTP_AGENT_BIN", &agent)
            .env("PPTP_BENCH_SECONDS", args.seconds.max(3.0).to_string()),
    )?;
    cmd::run(bench("pptp-tests", "sessions").env("PPTP_AGENT_BIN", &agent))?;
    cmd::run(bench("pptp-tests", "resources").env("PPTP_AGENT_BIN", &agent))?;
    cmd::run(bench("pptp-tests", "scale").env("PPTP_AGENT_BIN", &agent))?;
    cmd::run(bench("pptp-tests", "budget").env("PPTP_AGENT_BIN", &agent))?;
    cmd::run(bench("pptp-tests", "radius").env("PPTP_AGENT_BIN", &agent))?;
    let stale = lab::down_stale()?;
    anyhow::ensure!(
        stale.is_empty(),
        "the benchmark left labs behind: {stale:?}"
    );
    Ok(())
}

/// `cargo bench` of one benchmark target of one package.
fn bench(package: &str, name: &str) -> std::process::Command {
    let mut command = cmd::cargo();
    command.args(["bench", "--locked", "-p", package, "--bench", name]);
    command
}
