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
    /// Sessions to establish, each with its own control connection and call. The
    /// concentrator must allow that many (max_sessions, connections_per_source,
    /// sessions_per_user, pool size).
    #[arg(long, default_value_t = 100)]
    sessions: u32,
    /// Session setups in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: u32,
    /// User name every session authenticates as.
    #[arg(long)]
    user: String,
    /// Its password.
    #[arg(long)]
    password: String,
    /// Once all sessions are up, each sends ICMP echo requests to this address
    /// through its tunnel until one is answered (up to 5 tries).
    #[arg(long, value_name = "ADDR")]
    ping: Option<Ipv4Addr>,
    /// Seconds a session may take from TCP connect to IPCP up.
    #[arg(long, default_value_t = 30)]
    setup_timeout: u64,
    /// Seconds to keep every session up after the traffic check.
    #[arg(long, default_value_t = 0)]
    hold: u64,
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
    let traffic_ok =
        args.ping.is_none() || (report.echo_unanswered == 0 && report.echo_misdelivered == 0);
    anyhow::ensure!(
        report.failed == 0 && traffic_ok,
        "{} of {} sessions failed, {} carried no traffic, {} echo replies came through another session's call",
        report.failed,
        report.attempted,
        report.echo_unanswered,
        report.echo_misdelivered
    );
    Ok(())
}
