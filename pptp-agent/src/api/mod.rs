//! The agent's local API: a unix socket that `pptp-agent sessions`, `kill` and
//! `stats` talk to, and (in [`metrics`]) the Prometheus endpoint.
//!
//! # Socket
//!
//! `serve` listens on `/run/pptp-xdp/<instance>.sock` ([`default_socket`]) or the path
//! given with `--api-socket`. The socket is created with mode 0600 (root only: the API
//! can hang sessions up), and connections from another user id than the agent's are
//! refused as well. A socket file left by a crashed agent (nothing answers on it) is
//! replaced at start; a live one makes `serve` refuse to start (another agent runs
//! with that instance name, and would share its pinned maps too). The file is removed
//! when the agent stops, unless another agent replaced it meanwhile.
//!
//! # Protocol
//!
//! One request per connection: the client writes one JSON object on one line, the
//! agent answers one JSON object on one line and closes the connection.
//!
//! | request | answer |
//! |---|---|
//! | `{"cmd":"sessions"}` | `{"sessions":[SESSION, ...], "matched":N}` |
//! | `{"cmd":"stats"}` | `{"xdp":BOOL, "counters":[...], "installed_calls":N, "pool":{...}, "call_ids":N, "hub":{...}, "totals":{...}, "sessions":[...], "matched":N}` |
//! | `{"cmd":"kill","id":N}` | `{"killed":N}`: how many sessions were hung up |
//! | `{"cmd":"kill","user":"NAME"}` | the same, every session of that user |
//! | `{"cmd":"kill","all":true}` | the same, every session |
//! | `{"cmd":"capture","id":N}` | `{"capture":NUMBER}`, then session N's packets until it ends (see [`capture`]) |
//! | anything else | `{"error":"..."}` |
//!
//! `sessions` and `stats` take an optional query ([`query::SessionQuery`]):
//! `"user":"NAME"` (only that user's sessions), `"sort":FIELD` (`id`, `user`,
//! `peer`, `client` ascending; `uptime`, `rx_bytes`, `tx_bytes`, `rx_packets`,
//! `tx_packets` descending) and `"limit":N` (at most N rows); `matched` is how many
//! sessions passed the filter before the limit, while `totals` in `stats` counts
//! every session.
//!
//! A SESSION is the hub's [`SessionInfo`] (`id`, `user`, `peer`, `local_call_id`,
//! `peer_call_id`, `client`, `state` `starting|up`, `path` `xdp|agent`, `mppe`,
//! `uptime_secs`, `rx_packets`, `rx_bytes`, `tx_packets`, `tx_bytes`: both paths
//! added up; `rate`, the rate limit in Mikrotik-Rate-Limit form or null;
//! `policed_rx`, `policed_tx`: packets the rate limit dropped, both paths). In `stats`, a session installed in the XDP maps also has a
//! `dataplane` object: its `slot`, frames handed `to_agent`, `drop_spoofed`,
//! `drop_old_seq`, `too_big`. `counters` (the global XDP counters, as
//! `pptp-agent stats --json` prints them from the maps) and `installed_calls` (rows
//! in the XDP session map) are there only when XDP is in use (`xdp` true). `hub`
//! holds the agent path's counters ([`AgentStats`]), `load` what the engine holds
//! now ([`EngineLoad`]: timers, RADIUS requests in flight), `guard` what the guards
//! turned away ([`GuardStats`]: refused connections, calls and logins, dropped
//! dynamic authorization requests), `pool` the address pool's `in_use` and
//! `size`, `call_ids` the live Call IDs of the concentrator, `totals` the number of
//! `sessions`, by state (`up`, `starting`) and by path (`xdp`, `agent`).
//!
//! # Bounds
//!
//! A request line is at most [`Limits::request_bytes`] long and must arrive within
//! [`Limits::read_timeout`]; the answer must be taken within
//! [`Limits::write_timeout`]; at most [`Limits::connections`] connections are served
//! at once (more are told `{"error":"busy"}`); the hub must answer within
//! [`Limits::hub_timeout`]. A slow or hostile local client holds one task and one
//! connection slot for a few seconds at most and never blocks the hub.

mod ask;
mod capture;
pub mod client;
pub mod metrics;
pub mod query;
pub mod view;

use std::{
    collections::HashMap,
    io,
    os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{Semaphore, mpsc, oneshot, watch},
};

use self::query::SessionQuery;
use crate::{
    dataplane::{bpffs::PinDir, report::Report},
    engine::{
        AgentStats, DataPath, EngineLoad, InterfaceInfo, Selector, SessionId, SessionInfo,
        SessionState,
    },
    guard::GuardStats,
    pptp::call_id::SharedCallIds,
    runtime::{
        hub::HubCommand,
        pool::{PoolHandle, PoolUsage},
    },
};

/// Where sockets live by default.
pub const DEFAULT_SOCKET_DIR: &str = "/run/pptp-xdp";

/// The default socket of the agent running as `instance`.
pub fn default_socket(instance: &str) -> PathBuf {
    Path::new(DEFAULT_SOCKET_DIR).join(format!("{instance}.sock"))
}

/// How much a client may ask of the agent.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest request line, newline included.
    pub request_bytes: usize,
    /// Time to send the request.
    pub read_timeout: Duration,
    /// Time to take the answer.
    pub write_timeout: Duration,
    /// Time the hub (and the map reader) has to answer.
    pub hub_timeout: Duration,
    /// Connections served at once.
    pub connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_bytes: 4096,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            hub_timeout: Duration::from_secs(5),
            connections: 16,
        }
    }
}

/// A request to the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Sessions(SessionQuery),
    /// The demand-dial interfaces.
    Interfaces,
    Stats(SessionQuery),
    Kill(Selector),
    /// Stream a session's packets (one on the agent's path).
    Capture(SessionId),
}

impl Request {
    /// Parses one request line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Self, String> {
        let value: Value =
            serde_json::from_slice(line).map_err(|e| format!("not a JSON request: {e}"))?;
        let Value::Object(fields) = value else {
            return Err("the request must be a JSON object".into());
        };
        let cmd = fields
            .get("cmd")
            .and_then(Value::as_str)
            .ok_or("the request has no \"cmd\" string")?;
        let allowed: &[&str] = match cmd {
            "sessions" | "stats" => &["cmd", "user", "sort", "limit"],
            "interfaces" => &["cmd"],
            "kill" => &["cmd", "id", "user", "all"],
            "capture" => &["cmd", "id"],
            other => {
                return Err(format!(
                    "unknown cmd {other:?} (sessions, stats, kill, interfaces, capture)"
                ));
            }
        };
        if let Some(extra) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!("unexpected field {extra:?} for {cmd:?}"));
        }
        match cmd {
            "sessions" => SessionQuery::parse(&fields).map(Self::Sessions),
            "interfaces" => Ok(Self::Interfaces),
            "stats" => SessionQuery::parse(&fields).map(Self::Stats),
            "capture" => fields
                .get("id")
                .and_then(Value::as_u64)
                .map(|id| Self::Capture(SessionId::from_number(id)))
                .ok_or_else(|| "capture takes \"id\", a session id (a number)".into()),
            _ => {
                let mut selectors = Vec::new();
                if let Some(id) = fields.get("id") {
                    let id = id
                        .as_u64()
                        .ok_or("\"id\" must be a session id (a number)")?;
                    selectors.push(Selector::Id(SessionId::from_number(id)));
                }
                if let Some(user) = fields.get("user") {
                    let user = user.as_str().ok_or("\"user\" must be a string")?;
                    selectors.push(Selector::User(user.to_owned()));
                }
                match fields.get("all") {
                    None | Some(Value::Bool(false)) => {}
                    Some(Value::Bool(true)) => selectors.push(Selector::All),
                    Some(_) => return Err("\"all\" must be true or false".into()),
                }
                match <[Selector; 1]>::try_from(selectors) {
                    Ok([selector]) => Ok(Self::Kill(selector)),
                    Err(_) => Err("kill takes exactly one of \"id\", \"user\", \"all\"".into()),
                }
            }
        }
    }

    /// The request as the client sends it.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Sessions(query) => {
                let mut request = json!({"cmd": "sessions"});
                query.add_to(&mut request);
                request
            }
            Self::Interfaces => json!({"cmd": "interfaces"}),
            Self::Stats(query) => {
                let mut request = json!({"cmd": "stats"});
                query.add_to(&mut request);
                request
            }
            Self::Kill(Selector::Id(id)) => json!({"cmd": "kill", "id": id}),
            Self::Kill(Selector::User(user)) => json!({"cmd": "kill", "user": user}),
            Self::Kill(Selector::All) => json!({"cmd": "kill", "all": true}),
            Self::Capture(id) => json!({"cmd": "capture", "id": id}),
        }
    }
}

/// What the API serves from: the hub, and the pinned maps when XDP is in use.
pub struct Backend {
    pub hub: mpsc::Sender<HubCommand>,
    /// The data plane's pins; `None` when every session takes the agent's path.
    pub pins: Option<PinDir>,
    /// The address pool, for its fill.
    pub pool: Option<Arc<dyn PoolHandle>>,
    /// The Call IDs the control connections draw from, for how many are live.
    pub call_ids: Option<SharedCallIds>,
    /// What the guards turned away (descriptor budget, unauthenticated calls, login
    /// back-off, dynamic authorization).
    pub guard: Arc<GuardStats>,
    pub timeout: Duration,
}

impl Backend {
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> HubCommand,
    ) -> Result<T, String> {
        ask::ask(&self.hub, self.timeout, command).await
    }

    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, String> {
        self.ask(HubCommand::Sessions).await
    }

    pub async fn interfaces(&self) -> Result<Vec<InterfaceInfo>, String> {
        self.ask(HubCommand::Interfaces).await
    }

    pub async fn hub_stats(&self) -> Result<AgentStats, String> {
        self.ask(HubCommand::Stats).await
    }

    pub async fn hub_load(&self) -> Result<EngineLoad, String> {
        self.ask(HubCommand::Load).await
    }

    pub async fn kill(&self, selector: Selector) -> Result<usize, String> {
        self.ask(|tx| HubCommand::Kill(selector, tx)).await
    }

    /// The data plane's report, when XDP is in use (read off the runtime's thread).
    pub async fn report(&self) -> Result<Option<Report>, String> {
        let Some(pins) = self.pins.clone() else {
            return Ok(None);
        };
        let read = tokio::task::spawn_blocking(move || Report::read(&pins));
        match tokio::time::timeout(self.timeout, read).await {
            Ok(Ok(Ok(report))) => Ok(Some(report)),
            Ok(Ok(Err(e))) => Err(format!("reading the XDP maps: {e:#}")),
            Ok(Err(e)) => Err(format!("reading the XDP maps: {e}")),
            Err(_) => Err("reading the XDP maps took too long".into()),
        }
    }

    /// Everything `{"cmd":"stats"}` answers, sessions listed as `query` asks.
    pub async fn stats(&self, query: &SessionQuery) -> Result<Value, String> {
        let sessions = self.sessions().await?;
        let hub = self.hub_stats().await?;
        let load = self.hub_load().await?;
        let report = self.report().await?;
        let held = Held {
            pool: self.pool.as_ref().map(|p| p.usage()),
            call_ids: self.call_ids.as_ref().map(SharedCallIds::live),
        };
        Ok(stats_document(
            &hub,
            &load,
            &self.guard.snapshot(),
            &sessions,
            query,
            report.as_ref(),
            held,
        ))
    }

    /// The answer to one request.
    pub async fn answer(&self, request: Request) -> Value {
        let result = match request {
            Request::Sessions(query) => self.sessions().await.map(|all| {
                let (listed, matched) = query.apply(all);
                json!({ "sessions": listed, "matched": matched })
            }),
            Request::Interfaces => self.interfaces().await.map(|i| json!({ "interfaces": i })),
            Request::Stats(query) => self.stats(&query).await,
            Request::Kill(selector) => self.kill(selector).await.map(|n| json!({ "killed": n })),
            Request::Capture(_) => Err("a capture is a stream: see `pptp-agent capture`".into()),
        };
        result.unwrap_or_else(|e| json!({ "error": e }))
    }
}

/// Sessions by state and path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    pub sessions: u64,
    pub up: u64,
    pub starting: u64,
    pub xdp: u64,
    pub agent: u64,
}

impl Totals {
    pub fn of(sessions: &[SessionInfo]) -> Self {
        let mut t = Self::default();
        for s in sessions {
            t.sessions += 1;
            match s.state {
                SessionState::Up => t.up += 1,
                SessionState::Starting => t.starting += 1,
            }
            match s.path {
                DataPath::Xdp => t.xdp += 1,
                DataPath::Agent => t.agent += 1,
            }
        }
        t
    }
}

/// What the runtime holds besides the engine's sessions: the pool's fill and the
/// live Call IDs (both back to their idle value once every session has ended).
#[derive(Debug, Clone, Copy, Default)]
pub struct Held {
    pub pool: Option<PoolUsage>,
    pub call_ids: Option<usize>,
}

/// The `stats` answer: the totals over `sessions`, the ones `query` lists joined
/// with their rows in the XDP maps (by peer address and our call ID, through a hash
/// map: linear in the sessions, not quadratic), the hub's drops, the guards'
/// counters and the global XDP counters.
pub fn stats_document(
    hub: &AgentStats,
    load: &EngineLoad,
    guard: &[(&str, u64)],
    sessions: &[SessionInfo],
    query: &SessionQuery,
    report: Option<&Report>,
    held: Held,
) -> Value {
    let totals = Totals::of(sessions);
    let (listed, matched) = query.apply(sessions.to_vec());
    let in_maps: HashMap<_, _> = report
        .map(|r| {
            r.sessions
                .iter()
                .map(|d| ((d.peer, d.call_id), d))
                .collect()
        })
        .unwrap_or_default();
    let rows: Vec<Value> = listed
        .iter()
        .map(|s| {
            let mut row = serde_json::to_value(s).unwrap_or(Value::Null);
            let dp = in_maps.get(&(s.peer, s.local_call_id));
            if let (Some(d), Value::Object(fields)) = (dp, &mut row) {
                let c = &d.counters;
                fields.insert(
                    "dataplane".into(),
                    json!({
                        "slot": d.slot,
                        "to_agent": c.to_agent,
                        "drop_spoofed": c.drop_spoofed,
                        "drop_old_seq": c.drop_old_seq,
                        "too_big": c.too_big,
                    }),
                );
            }
            row
        })
        .collect();
    let mut doc = json!({
        "xdp": report.is_some(),
        "pool": held.pool,
        "call_ids": held.call_ids,
        "hub": hub,
        "load": load,
        "guard": guard.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "totals": totals,
        "sessions": rows,
        "matched": matched,
    });
    if let (Some(report), Value::Object(fields)) = (report, &mut doc) {
        fields.insert("counters".into(), json!(report.global.counters));
        fields.insert("installed_calls".into(), json!(report.sessions.len()));
    }
    doc
}

/// The API's socket, bound (before the data plane is touched, so that a second
/// agent with the same instance stops before it flushes the first one's maps).
/// Dropping it removes the socket file if it is still ours.
pub struct ApiSocket {
    listener: Option<std::os::unix::net::UnixListener>,
    path: PathBuf,
    /// (device, inode) of the file we created.
    identity: (u64, u64),
}

impl ApiSocket {
    /// Binds `path` with mode 0600, replacing a stale socket file.
    pub fn bind(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("creating the API socket's directory {}", dir.display())
            })?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(_) => bail!(
                        "another agent answers on {} (use another --instance or --api-socket)",
                        path.display()
                    ),
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        tracing::info!(path = %path.display(), "replacing a stale API socket");
                        std::fs::remove_file(path).with_context(|| {
                            format!("removing the stale socket {}", path.display())
                        })?;
                    }
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("checking the existing socket {}", path.display())
                        });
                    }
                }
            }
            Ok(_) => bail!(
                "{} exists and is not a socket: not replacing it",
                path.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
        }
        // Created 0600 from the start (the umask is the process's: restored at once).
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = std::os::unix::net::UnixListener::bind(path);
        nix::sys::stat::umask(old);
        let listener =
            bound.with_context(|| format!("binding the API socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            listener: Some(listener),
            path: path.to_owned(),
            identity: (meta.dev(), meta.ino()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves requests until `stop` turns true; the socket file goes with `self`.
    pub async fn serve(
        mut self,
        backend: Arc<Backend>,
        limits: Limits,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let std_listener = self
            .listener
            .take()
            .context("the API socket was already served")?;
        std_listener.set_nonblocking(true)?;
        let listener = UnixListener::from_std(std_listener)?;
        tracing::info!(path = %self.path.display(), "API listening");
        let slots = Arc::new(Semaphore::new(limits.connections));
        let me = nix::unistd::geteuid().as_raw();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "API accept");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = stopped(&mut stop) => break,
            };
            if stream.peer_cred().map(|c| c.uid()).ok() != Some(me) {
                let _ = stream.try_write(b"{\"error\":\"permission denied\"}\n");
                continue;
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                let _ = stream.try_write(b"{\"error\":\"busy\"}\n");
                continue;
            };
            let backend = backend.clone();
            tokio::spawn(async move {
                handle(stream, &backend, limits).await;
                drop(permit);
            });
        }
        Ok(())
    }
}

impl Drop for ApiSocket {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Returns once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Reads one request line of at most `limit` bytes (newline excluded from the
/// result); `Err` with what to answer.
pub(crate) async fn read_line<R: tokio::io::AsyncRead + Unpin>(
    reader: R,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let mut line = Vec::new();
    let mut reader = BufReader::new(reader).take(limit as u64);
    reader
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("reading the request: {e}"))?;
    match line.last() {
        Some(b'\n') => {
            line.pop();
            Ok(line)
        }
        _ if line.len() >= limit => Err(format!("request longer than {limit} bytes")),
        _ if line.is_empty() => Err("empty request".into()),
        // The client closed its side after a request without a newline.
        _ => Ok(line),
    }
}

async fn handle(mut stream: UnixStream, backend: &Backend, limits: Limits) {
    let (mut read, mut write) = stream.split();
    let answer = match tokio::time::timeout(
        limits.read_timeout,
        read_line(&mut read, limits.request_bytes),
    )
    .await
    {
        Err(_) => json!({"error": "request not received in time"}),
        Ok(Err(e)) => json!({ "error": e }),
        Ok(Ok(line)) => match Request::parse(&line) {
            Ok(Request::Capture(id)) => {
                let hub = (&backend.hub, backend.timeout);
                return capture::serve(read, write, hub, limits.write_timeout, id).await;
            }
            Ok(request) => backend.answer(request).await,
            Err(e) => json!({ "error": e }),
        },
    };
    let mut text = answer.to_string();
    text.push('\n');
    let _ = tokio::time::timeout(limits.write_timeout, async {
        write.write_all(text.as_bytes()).await?;
        write.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests;
