//! `pptp-agent load-test`: establish many sessions against a concentrator from one
//! process, check each carries traffic, hang them up, and report.

use std::{net::Ipv4Addr, time::Duration};

use clap::Args;
use pptp_agent::{
    ppp::auth::Credentials,
    runtime::load::{self, LoadSettings},
};

use super::options::PolicyArgs;

#[derive(Args, Debug)]
pub struct LoadTestArgs {
    /// The concentrator.
    #[arg(long, value_name = "ADDR")]
    server: Ipv4Addr,
    /// Sessions to establish: each with its own control connection and outgoing
    /// call, or, with --incoming, as incoming calls sharing control connections.
    /// The concentrator must allow that many (limits.max_sessions,
    /// connections_per_source, unauthenticated_calls_per_source and, for
    /// --incoming, unauthenticated_calls_per_connection; sessions_per_user; pool
    /// size).
    #[arg(long, default_value_t = 100)]
    sessions: u32,
    /// Place incoming calls as a PAC (an ISP's access switch, as `dial
    /// --incoming`) instead of outgoing calls as a PNS.
    #[arg(long)]
    incoming: bool,
    /// With --incoming: calls on each control connection (Call IDs allow up to
    /// 65,535).
    #[arg(long, default_value_t = 1000, requires = "incoming",
          value_parser = clap::value_parser!(u32).range(1..=65535))]
    calls_per_connection: u32,
    /// Session setups in flight at once (over all control connections).
    #[arg(long, default_value_t = 64)]
    concurrency: u32,
    /// User name every session authenticates as.
    #[arg(long)]
    user: String,
    /// Its password.
    #[arg(long)]
    password: String,
    /// As soon as it is up, each session sends ICMP echo requests to this address
    /// through its tunnel, one a second until one is answered (up to 5).
    #[arg(long, value_name = "ADDR")]
    ping: Option<Ipv4Addr>,
    /// Seconds a session may take from TCP connect to IPCP up.
    #[arg(long, default_value_t = 30)]
    setup_timeout: u64,
    /// Seconds to keep every session up after the traffic check.
    #[arg(long, default_value_t = 0)]
    hold: u64,
    /// After the hold, check every session's traffic again (with --ping): do they
    /// all still carry it (after something else happened to the concentrator)?
    #[arg(long, requires = "ping")]
    recheck: bool,
    /// The MRU we ask for.
    #[arg(long, default_value_t = 1400)]
    mru: u16,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    policy: PolicyArgs,
}

pub fn run(args: LoadTestArgs) -> anyhow::Result<()> {
    super::options::init_logging();
    anyhow::ensure!(args.sessions > 0, "--sessions must be at least 1");
    let settings = LoadSettings {
        server: args.server,
        sessions: args.sessions,
        concurrency: args.concurrency,
        incoming: args.incoming.then_some(args.calls_per_connection),
        credentials: Credentials {
            user: args.user.clone().into_bytes(),
            password: args.password.clone().into_bytes(),
        },
        auth: args.policy.auth_policy(),
        mppe: args.policy.mppe_policy(),
        mru: args.mru,
        ping: args.ping,
        setup_timeout: Duration::from_secs(args.setup_timeout),
        hold: Duration::from_secs(args.hold),
        recheck: args.recheck,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(load::run(settings))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    let unanswered_again = report.recheck_unanswered.unwrap_or(0);
    let traffic_ok = args.ping.is_none()
        || (report.echo_unanswered == 0 && report.echo_misdelivered == 0 && unanswered_again == 0);
    anyhow::ensure!(
        report.failed == 0 && traffic_ok,
        "{} of {} sessions failed, {} carried no traffic, {} no longer after the hold, {} echo replies came through another session's call",
        report.failed,
        report.attempted,
        report.echo_unanswered,
        unanswered_again,
        report.echo_misdelivered
    );
    Ok(())
}
