//! `pptp-agent serve`.

use clap::Args;
use pptp_agent::dataplane::xdp::{XdpDataplane, XdpOptions};
use tokio::signal::unix::{SignalKind, signal};

use super::PinArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Interface facing the PPTP clients (receives TCP 1723 and GRE).
    #[arg(long, value_name = "IFACE")]
    uplink: String,
    /// Interface facing the LAN: traffic to clients arriving here is encapsulated
    /// in XDP. Without it, return traffic takes the kernel's routing.
    #[arg(long, value_name = "IFACE")]
    lan: Option<String>,
    /// Drop GRE of unknown sessions in XDP instead of passing it to the kernel.
    #[arg(long)]
    drop_unknown: bool,
    #[command(flatten)]
    pins: PinArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut dataplane = XdpDataplane::load(
            args.pins.pin_dir()?,
            XdpOptions {
                drop_unknown: args.drop_unknown,
            },
        )?;
        dataplane.attach_uplink(&args.uplink)?;
        if let Some(lan) = &args.lan {
            dataplane.attach_lan(lan)?;
        }
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        dataplane.shutdown()
    })
}
