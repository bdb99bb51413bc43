//! Finding a running agent, shared by the subcommands: where its maps are pinned, its
//! API socket; and `serve`'s side of them (binding the API socket and the metrics port).

use std::path::PathBuf;

use clap::Args;
use pptp_agent::dataplane::bpffs::{self, PinDir};

/// Where an agent's maps are pinned; `serve` and `stats` must agree on it.
#[derive(Args, Debug, Clone)]
pub struct PinArgs {
    /// bpffs mount point; mounted by `serve` if it is not a bpffs yet.
    #[arg(long, default_value = bpffs::DEFAULT_ROOT, value_name = "DIR")]
    bpffs: PathBuf,
    /// Name of this agent's directory under the bpffs root (several agents can
    /// run on one host under different names).
    #[arg(long, default_value = bpffs::DEFAULT_INSTANCE, value_name = "NAME")]
    pub(super) instance: String,
}

impl PinArgs {
    pub(super) fn pin_dir(&self) -> anyhow::Result<PinDir> {
        PinDir::new(&self.bpffs, &self.instance)
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
    pub(super) fn socket(&self, instance: &str) -> PathBuf {
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
    pub(super) fn call(
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
    pub(super) fn bind(&self, instance: &str) -> anyhow::Result<BoundApi> {
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
    pub(super) fn connections(&self) -> u64 {
        let each = pptp_agent::api::Limits::default().connections as u64;
        each * (1 + u64::from(self.metrics.is_some()))
    }

    /// Serves the API (and metrics) from the hub and, when XDP is in use, its pins,
    /// until `stop` turns true.
    pub(super) fn start(
        self,
        hub: tokio::sync::mpsc::Sender<pptp_agent::runtime::hub::HubCommand>,
        pins: Option<PinDir>,
        pool: std::sync::Arc<dyn pptp_agent::runtime::pool::PoolHandle>,
        call_ids: pptp_agent::pptp::call_id::SharedCallIds,
        guard: std::sync::Arc<pptp_agent::guard::GuardStats>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<RunningApi> {
        use pptp_agent::api::{Backend, Limits, metrics};
        let limits = Limits::default();
        let backend = std::sync::Arc::new(Backend {
            hub,
            pins,
            pool: Some(pool),
            call_ids: Some(call_ids),
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
    pub(super) async fn finish(self) {
        for task in self.0 {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
        }
    }
}
