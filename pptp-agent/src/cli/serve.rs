//! `pptp-agent serve`.

use clap::Args;
use pptp_agent::dataplane::uplink::Uplink;
use tokio::signal::unix::{SignalKind, signal};

use super::PinArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Interface facing the PPTP clients (receives TCP 1723 and GRE).
    #[arg(long, value_name = "IFACE")]
    uplink: String,
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
        let uplink = Uplink::attach(&args.uplink, args.pins.pin_dir()?)?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        uplink.detach()
    })
}
