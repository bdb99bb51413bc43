//! `pptp-agent dial`: a voluntary PPTP client (PNS), or with `--incoming` a PAC
//! placing an incoming call toward a PNS on behalf of a user (an ISP-initiated,
//! compulsory tunnel).

use std::{net::Ipv4Addr, time::Duration};

use clap::Args;
use pptp_agent::{
    engine::SessionEvent,
    ppp::auth::Credentials,
    pptp::control::ControlConfig,
    runtime::client::{CallKind, DialSettings, dial},
};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, watch},
};

use super::options::PolicyArgs;

#[derive(Args, Debug)]
pub struct DialArgs {
    /// The PPTP server.
    #[arg(long, value_name = "ADDR")]
    server: Ipv4Addr,
    /// User name.
    #[arg(long)]
    user: String,
    /// Password (see also --password-file).
    #[arg(
        long,
        conflicts_with = "password_file",
        required_unless_present = "password_file"
    )]
    password: Option<String>,
    /// File whose first line is the password.
    #[arg(long, value_name = "FILE")]
    password_file: Option<std::path::PathBuf>,
    /// Name of the TUN device to create.
    #[arg(long, default_value = "pptp-client0")]
    tun: String,
    /// Route through the tunnel once it is up, a.b.c.d/n (repeatable).
    #[arg(long = "route", value_name = "PREFIX")]
    routes: Vec<String>,
    /// Give up (and say IP protocol 47 is probably blocked) when the call is up
    /// but the server has sent no GRE within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    gre_wait: u64,
    /// The MRU we ask for.
    #[arg(long, default_value_t = 1400)]
    mru: u16,
    /// Act as a PAC (an ISP's remote access switch): place an Incoming-Call-Request
    /// toward the server, which answers as PNS, instead of an Outgoing-Call-Request.
    #[arg(long)]
    incoming: bool,
    #[command(flatten)]
    policy: PolicyArgs,
}

pub fn run(args: DialArgs) -> anyhow::Result<()> {
    super::options::init_logging();
    let password = match (&args.password, &args.password_file) {
        (Some(p), _) => p.clone(),
        (None, Some(file)) => std::fs::read_to_string(file)?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        (None, None) => unreachable!("clap requires one"),
    };
    let settings = DialSettings {
        server: args.server,
        kind: if args.incoming {
            CallKind::Incoming
        } else {
            CallKind::Outgoing
        },
        credentials: Credentials {
            user: args.user.clone().into_bytes(),
            password: password.into_bytes(),
        },
        auth: args.policy.auth_policy(),
        mppe: args.policy.mppe_policy(),
        mru: args.mru,
        tun_name: args.tun.clone(),
        routes: args.routes.clone(),
        control: ControlConfig::default(),
        connect_timeout: Duration::from_secs(10),
        gre_wait: Duration::from_secs(args.gre_wait),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Room for the session's Up and Down (dial drops an event that finds it full).
        let (events_tx, mut events) = mpsc::channel(4);
        let (hangup_tx, hangup_rx) = watch::channel(false);
        let session = tokio::spawn(dial(settings, events_tx, hangup_rx));
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut went_up = false;
        let mut failure = None;
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(SessionEvent::Up(up)) => {
                        went_up = true;
                        tracing::info!(local = %up.local_ip, remote = %up.peer_ip, mppe = up.mppe.is_some(), "connected");
                    }
                    Some(SessionEvent::NoGre { waited }) => {
                        failure = Some(format!(
                            "control connection and call up, but no GRE from the server within {} s: \
                             IP protocol 47 (GRE) is probably blocked on the path \
                             (a firewall or NAT that passes TCP 1723 only)",
                            waited.as_secs()
                        ));
                    }
                    Some(SessionEvent::Down(reason)) => {
                        tracing::info!(%reason, "disconnected");
                        failure.get_or_insert_with(|| format!("the session never came up: {reason}"));
                        break;
                    }
                    None => break,
                },
                _ = term.recv() => { let _ = hangup_tx.send(true); }
                _ = int.recv() => { let _ = hangup_tx.send(true); }
            }
        }
        let _ = hangup_tx.send(true);
        let placed = session.await?;
        if !went_up {
            let failure = failure.unwrap_or_else(|| "the session never came up".into());
            return Err(match placed {
                Err(e) => e.context(failure),
                Ok(()) => anyhow::anyhow!(failure),
            });
        }
        placed
    })
}
