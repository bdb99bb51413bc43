//! Command-line interface: argument parsing and one module per subcommand.

mod check_config;
mod dial;
mod interfaces;
mod kill;
mod load_test;
mod options;
mod serve;
mod sessions;
mod stats;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use pptp_agent::dataplane::bpffs::{self, PinDir};

/// PPTP VPN concentrator and calling router with an XDP data plane.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the concentrator: accept PPTP calls, run PPP, forward sessions in XDP
    /// (or through the agent), until SIGINT or SIGTERM; then hang every session up
    /// and remove every map, route and pin.
    Serve(Box<serve::ServeArgs>),
    /// Dial a PPTP server as a client and route traffic through the tunnel until
    /// SIGINT or SIGTERM.
    Dial(dial::DialArgs),
    /// Print counters and sessions: from the running agent's API, or from its
    /// pinned maps when no agent answers.
    Stats(stats::StatsArgs),
    /// List the running agent's sessions (id, user, peer, address, path, MPPE,
    /// state, uptime, counters).
    Sessions(sessions::SessionsArgs),
    /// Hang sessions up (LCP Terminate-Request, then the call is cleared).
    Kill(kill::KillArgs),
    /// List the running agent's demand-dial interfaces (state, bound session,
    /// calls, idle hang-ups, queued and dropped packets).
    Interfaces(interfaces::InterfacesArgs),
    /// Validate a configuration file and the chap-secrets file it names.
    CheckConfig(check_config::CheckConfigArgs),
    /// Capacity test: establish many sessions against a concentrator from this one
    /// process, ping through each, hang them up, report setup rate and failures.
    /// Traffic goes only to --server and --ping.
    LoadTest(load_test::LoadTestArgs),
}

/// Where an agent's maps are pinned; `serve` and `stats` must agree on it.
#[derive(Args, Debug, Clone)]
pub struct PinArgs {
    /// bpffs mount point; mounted by `serve` if it is not a bpffs yet.
    #[arg(long, default_value = bpffs::DEFAULT_ROOT, value_name = "DIR")]
    bpffs: PathBuf,
    /// Name of this agent's directory under the bpffs root (several agents can
    /// run on one host under different names).
    #[arg(long, default_value = bpffs::DEFAULT_INSTANCE, value_name = "NAME")]
    instance: String,
}

impl PinArgs {
    fn pin_dir(&self) -> anyhow::Result<PinDir> {
        PinDir::new(&self.bpffs, &self.instance)
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Dial(args) => dial::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Sessions(args) => sessions::run(args),
        Command::Kill(args) => kill::run(args),
        Command::Interfaces(args) => interfaces::run(args),
        Command::CheckConfig(args) => check_config::run(args),
        Command::LoadTest(args) => load_test::run(args),
    }
}

/// The running agent's API socket (`sessions`, `kill`, `stats`).
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// The agent's API socket [default: /run/pptp-xdp/<instance>.sock].
    #[arg(long, value_name = "PATH")]
    api_socket: Option<PathBuf>,
}

impl ApiArgs {
    fn socket(&self, instance: &str) -> PathBuf {
        self.api_socket
            .clone()
            .unwrap_or_else(|| pptp_agent::api::default_socket(instance))
    }
}

/// The agent to talk to, for commands that need no pins (`sessions`, `kill`).
#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// The agent's instance name (as given to `serve`).
    #[arg(long, default_value = bpffs::DEFAULT_INSTANCE, value_name = "NAME")]
    instance: String,
    #[command(flatten)]
    api: ApiArgs,
}

impl AgentArgs {
    fn call(
        &self,
        request: &pptp_agent::api::Request,
    ) -> Result<serde_json::Value, pptp_agent::api::client::ClientError> {
        pptp_agent::api::client::call(
            &self.api.socket(&self.instance),
            request,
            std::time::Duration::from_secs(10),
        )
    }
}

/// `serve`'s API socket and Prometheus endpoint.
#[derive(Args, Debug)]
pub struct ServeApiArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Serve Prometheus metrics (GET /metrics) on ADDR:PORT; off by default.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<std::net::SocketAddr>,
    /// Add per-session series (packets, bytes, uptime; labelled by id, user and
    /// address) to the metrics: one series per session and counter.
    #[arg(long, requires = "metrics")]
    metrics_sessions: bool,
}

/// The API socket and metrics port, bound but not served yet.
pub struct BoundApi {
    socket: pptp_agent::api::ApiSocket,
    metrics: Option<std::net::TcpListener>,
    per_session: bool,
}

/// The API and metrics tasks.
pub struct RunningApi(Vec<tokio::task::JoinHandle<()>>);

impl ServeApiArgs {
    /// Binds the API socket and the metrics port. `serve` does this before it
    /// touches the data plane: a second agent with the same instance stops here.
    fn bind(&self, instance: &str) -> anyhow::Result<BoundApi> {
        use anyhow::Context as _;
        let socket = pptp_agent::api::ApiSocket::bind(&self.api.socket(instance))?;
        let metrics = self
            .metrics
            .map(|addr| {
                let listener = std::net::TcpListener::bind(addr)
                    .with_context(|| format!("binding the metrics endpoint {addr}"))?;
                listener.set_nonblocking(true)?;
                anyhow::Ok(listener)
            })
            .transpose()?;
        Ok(BoundApi {
            socket,
            metrics,
            per_session: self.metrics_sessions,
        })
    }
}

impl BoundApi {
    /// Connections the API and the metrics endpoint may hold at once.
    fn connections(&self) -> u64 {
        let each = pptp_agent::api::Limits::default().connections as u64;
        each * (1 + u64::from(self.metrics.is_some()))
    }

    /// Serves the API (and metrics) from the hub and, when XDP is in use, its pins,
    /// until `stop` turns true.
    fn start(
        self,
        hub: tokio::sync::mpsc::Sender<pptp_agent::runtime::hub::HubCommand>,
        pins: Option<PinDir>,
        pool: std::sync::Arc<dyn pptp_agent::runtime::pool::PoolHandle>,
        guard: std::sync::Arc<pptp_agent::guard::GuardStats>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<RunningApi> {
        use pptp_agent::api::{Backend, Limits, metrics};
        let limits = Limits::default();
        let backend = std::sync::Arc::new(Backend {
            hub,
            pins,
            pool: Some(pool),
            guard,
            timeout: limits.hub_timeout,
        });
        let mut tasks = Vec::new();
        if let Some(listener) = self.metrics {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tracing::info!(addr = %listener.local_addr()?, "metrics on /metrics");
            tasks.push(tokio::spawn(metrics::serve(
                listener,
                backend.clone(),
                self.per_session,
                limits,
                stop.clone(),
            )));
        }
        let socket = self.socket;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = socket.serve(backend, limits, stop).await {
                tracing::error!(error = format!("{e:#}"), "API stopped");
            }
        }));
        Ok(RunningApi(tasks))
    }
}

impl RunningApi {
    /// Waits (bounded) for the tasks to end after `stop`; the socket is removed.
    async fn finish(self) {
        for task in self.0 {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
        }
    }
}
