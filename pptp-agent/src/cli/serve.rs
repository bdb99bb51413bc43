//! `pptp-agent serve`: the concentrator.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
};

use anyhow::{Context as _, bail};
use clap::Args;
use pptp_agent::{
    dataplane::xdp::{XdpDataplane, XdpOptions},
    ppp::auth::{Secret, SecretSource},
    pptp::control::ControlConfig,
    session::{
        gre_socket::GreSocket,
        hub::{Hub, TunMode},
        pool::{RangePool, SharedPool},
        server::{ServerSettings, serve},
        tun::Tun,
    },
};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, oneshot, watch},
};

use super::{PinArgs, options::PolicyArgs};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Interface facing the PPTP clients: the XDP program decapsulating GRE goes
    /// here. Without it no XDP is used and every session takes the agent's path.
    #[arg(long, value_name = "IFACE")]
    uplink: Option<String>,
    /// Interface facing the LAN: traffic to clients arriving here is encapsulated
    /// in XDP. Without it, return traffic goes through the kernel and the agent.
    #[arg(long, value_name = "IFACE")]
    lan: Option<String>,
    /// Drop GRE of unknown sessions in XDP instead of passing it to the kernel.
    #[arg(long)]
    drop_unknown: bool,
    /// Address and port to accept control connections on.
    #[arg(long, default_value = "0.0.0.0:1723")]
    listen: SocketAddr,
    /// Our address inside the tunnels.
    #[arg(long, value_name = "ADDR")]
    local_ip: Ipv4Addr,
    /// Client addresses, FIRST-LAST.
    #[arg(long, value_name = "FIRST-LAST", value_parser = parse_range)]
    pool: (Ipv4Addr, Ipv4Addr),
    /// DNS servers handed to clients (at most two).
    #[arg(long, value_name = "ADDR")]
    dns: Vec<Ipv4Addr>,
    /// A user allowed to dial in, NAME:PASSWORD (repeatable).
    #[arg(long = "user", value_name = "NAME:PASSWORD", value_parser = parse_user, required = true)]
    users: Vec<(String, String)>,
    /// Our CHAP name.
    #[arg(long, default_value = "pptp-xdp")]
    name: String,
    /// The MRU we ask for.
    #[arg(long, default_value_t = 1400)]
    mru: u16,
    /// Name of the TUN device for sessions handled by the agent.
    #[arg(long, default_value = "pptp0")]
    tun: String,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    pins: PinArgs,
    #[command(flatten)]
    api: super::ServeApiArgs,
}

fn parse_range(s: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected FIRST-LAST, e.g. 192.0.2.10-192.0.2.250")?;
    let first: Ipv4Addr = a.trim().parse().map_err(|e| format!("{a}: {e}"))?;
    let last: Ipv4Addr = b.trim().parse().map_err(|e| format!("{b}: {e}"))?;
    if first > last {
        return Err(format!("{first} comes after {last}"));
    }
    Ok((first, last))
}

fn parse_user(s: &str) -> Result<(String, String), String> {
    let (name, password) = s.split_once(':').ok_or("expected NAME:PASSWORD")?;
    if name.is_empty() {
        return Err("empty user name".into());
    }
    Ok((name.to_owned(), password.to_owned()))
}

/// Users given on the command line.
struct Users(Vec<(String, String)>);

impl SecretSource for Users {
    fn secret(&self, user: &[u8]) -> Option<Secret> {
        self.0
            .iter()
            .find(|(name, _)| name.as_bytes() == user)
            .map(|(_, password)| Secret::Password(password.clone().into_bytes()))
    }
}

/// Loads the XDP programs and attaches them to the uplink (and LAN link).
fn start_xdp(args: &ServeArgs, uplink: &str) -> anyhow::Result<XdpDataplane> {
    let mut xdp = XdpDataplane::load(
        args.pins.pin_dir()?,
        XdpOptions {
            drop_unknown: args.drop_unknown,
        },
    )?;
    let attached = xdp.attach_uplink(uplink).and_then(|()| match &args.lan {
        Some(lan) => xdp.attach_lan(lan),
        None => Ok(()),
    });
    match attached {
        Ok(()) => Ok(xdp),
        Err(e) => {
            // Leave no pins or programs behind for the fallback that follows.
            let _ = xdp.shutdown();
            Err(e)
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    super::options::init_logging();
    if args.dns.len() > 2 {
        bail!("at most two --dns servers");
    }
    let pool = RangePool::new(args.pool.0, args.pool.1).context("empty pool")?;
    if (args.pool.0..=args.pool.1).contains(&args.local_ip) {
        bail!("--local-ip {} lies inside the pool", args.local_ip);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let api = args.api.bind(&args.pins.instance)?;
        let mut xdp = match &args.uplink {
            Some(uplink) => match start_xdp(&args, uplink) {
                Ok(xdp) => Some(xdp),
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "XDP unavailable: every session takes the agent's path (TUN + raw GRE socket)"
                    );
                    None
                }
            },
            None => {
                tracing::warn!("no --uplink: XDP not used, every session takes the agent's path");
                None
            }
        };
        let gre = GreSocket::open().context("opening the raw GRE socket (needs CAP_NET_RAW)")?;
        let tun = Tun::create(&args.tun, args.local_ip, None, args.mru)?;
        if let Some(xdp) = &mut xdp
            && let Err(e) = xdp.attach_session_device(tun.name())
        {
            tracing::warn!(
                error = format!("{e:#}"),
                "TC unavailable: what the box itself sends to clients goes through the agent"
            );
        }
        let pins = xdp.as_ref().map(|_| args.pins.pin_dir()).transpose()?;
        let hub = Hub::new(gre, TunMode::Concentrator(tun), xdp);
        let (hub_tx, hub_rx) = mpsc::unbounded_channel();
        let hub_task = tokio::spawn(hub.run(hub_rx));

        let settings = Arc::new(ServerSettings {
            name: args.name.clone(),
            auth: args.policy.auth_policy(),
            local_ip: args.local_ip,
            dns: [args.dns.first().copied(), args.dns.get(1).copied()],
            nbns: [None, None],
            pool: SharedPool(Arc::new(Mutex::new(pool))),
            secrets: Arc::new(Users(args.users.clone())),
            mppe: args.policy.mppe_policy(),
            mru: args.mru,
            control: ControlConfig::default(),
        });
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        tracing::info!(listen = %args.listen, "accepting control connections");
        let (stop_tx, stop_rx) = watch::channel(false);
        let api = api.start(hub_tx.clone(), pins, stop_rx.clone())?;
        let server = tokio::spawn(serve(listener, settings, hub_tx.clone(), stop_rx));

        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        let (done, wait) = oneshot::channel();
        let _ = hub_tx.send(pptp_agent::session::hub::HubCommand::Shutdown(done));
        let _ = wait.await;
        let _ = stop_tx.send(true);
        api.finish().await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
        let _ = hub_task.await;
        Ok(())
    })
}
