//! The Prometheus endpoint (`serve --metrics ADDR:PORT`): `GET /metrics` in the text
//! exposition format (version 0.0.4).
//!
//! The HTTP side is written by hand on tokio: one endpoint, GET only, one answer
//! per connection (`Connection: close`). An HTTP crate (hyper, axum) would be the
//! biggest dependency of the agent for forty lines of parsing, and the
//! `prometheus-client` crate only formats (it ships no server); the format is a few
//! `# HELP`/`# TYPE` lines and samples, rendered here from one snapshot per scrape.
//! Requests are bounded like the API's: the request head must fit in
//! [`MAX_HEAD`] bytes and arrive within the read timeout, and at most
//! [`Limits::connections`] scrapes are served at once.
//!
//! Series:
//! - `pptp_sessions{state,path}`: sessions by state (`starting`, `up`) and data path
//!   (`xdp`, `agent`), every combination present (zeros included);
//! - `pptp_xdp_enabled`: 1 when the XDP programs carry the fast path;
//! - `pptp_xdp_packets_total{counter}` / `pptp_xdp_bytes_total{counter}`: the
//!   global XDP counters (`pptp-agent stats`), only when XDP is in use;
//! - `pptp_xdp_installed_calls`: rows in the XDP session map;
//! - `pptp_pool_addresses{state}`: the address pool's `in_use` and `size`;
//! - `pptp_agent_drops_total{reason}`: packets the agent's path dropped;
//!   `pptp_mppe_reset_requests_total`: CCP Reset-Requests sent (stateful MPPE);
//! - `pptp_guard_total{event}`: what the guards turned away (refused connections,
//!   calls and logins, dropped dynamic authorization requests; see `crate::guard`);
//! - with `--metrics-sessions` only (one series per session and counter: mind the
//!   cardinality on a big concentrator): `pptp_session_{rx,tx}_{packets,bytes}_total`
//!   and `pptp_session_uptime_seconds`, labelled `id`, `user`, `client`, `path`.

use std::{fmt::Write as _, sync::Arc};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
};

use super::{Backend, Limits, stopped};
use crate::{
    dataplane::report::Report,
    engine::{AgentStats, DataPath, EngineLoad, SessionInfo, SessionState},
    runtime::pool::PoolUsage,
};

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8192;

/// `value` escaped for a label (backslash, double quote, newline).
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The exposition text for one snapshot.
pub fn render(
    sessions: &[SessionInfo],
    hub: &AgentStats,
    load: &EngineLoad,
    guard: &[(&str, u64)],
    report: Option<&Report>,
    pool: Option<PoolUsage>,
    per_session: bool,
) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "pptp_sessions",
        "gauge",
        "Sessions by state and data path.",
    );
    for (state, state_name) in [
        (SessionState::Starting, "starting"),
        (SessionState::Up, "up"),
    ] {
        for (path, path_name) in [(DataPath::Xdp, "xdp"), (DataPath::Agent, "agent")] {
            let n = sessions
                .iter()
                .filter(|s| s.state == state && s.path == path)
                .count();
            let _ = writeln!(
                out,
                "pptp_sessions{{state=\"{state_name}\",path=\"{path_name}\"}} {n}"
            );
        }
    }
    header(
        &mut out,
        "pptp_xdp_enabled",
        "gauge",
        "1 when the XDP programs carry the fast path.",
    );
    let _ = writeln!(out, "pptp_xdp_enabled {}", u8::from(report.is_some()));
    if let Some(pool) = pool {
        header(
            &mut out,
            "pptp_pool_addresses",
            "gauge",
            "Addresses of the pool, handed out (in_use) and in all (size).",
        );
        let _ = writeln!(
            out,
            "pptp_pool_addresses{{state=\"in_use\"}} {}",
            pool.in_use
        );
        let _ = writeln!(out, "pptp_pool_addresses{{state=\"size\"}} {}", pool.size);
    }
    if let Some(report) = report {
        for (name, what, bytes) in [
            ("pptp_xdp_packets_total", "Frames", false),
            ("pptp_xdp_bytes_total", "Bytes", true),
        ] {
            let help = format!("{what} counted by the XDP programs, by counter.");
            header(&mut out, name, "counter", &help);
            for c in &report.global.counters {
                let value = if bytes { c.bytes } else { c.packets };
                let _ = writeln!(out, "{name}{{counter=\"{}\"}} {value}", c.name);
            }
        }
        header(
            &mut out,
            "pptp_xdp_installed_calls",
            "gauge",
            "Calls installed in the XDP session map.",
        );
        let _ = writeln!(out, "pptp_xdp_installed_calls {}", report.sessions.len());
    }
    header(
        &mut out,
        "pptp_agent_drops_total",
        "counter",
        "Packets dropped on the agent's path, by reason.",
    );
    for (counter, n) in hub.iter().filter(|(c, _)| c.is_drop()) {
        let reason = counter.name();
        let _ = writeln!(out, "pptp_agent_drops_total{{reason=\"{reason}\"}} {n}");
    }
    for (counter, n) in hub.iter() {
        if let Some((metric, help)) = counter.event() {
            header(&mut out, metric, "counter", &format!("{help}."));
            let _ = writeln!(out, "{metric} {n}");
        }
    }
    for (name, help, n) in [
        (
            "pptp_agent_timers",
            "Session timers pending in the agent (at most one per session).",
            load.timers,
        ),
        (
            "pptp_radius_authentications_in_flight",
            "Access-Requests waiting for a verdict.",
            load.authentications,
        ),
        (
            "pptp_radius_accounting_in_flight",
            "Accounting requests waiting for an answer.",
            load.accounting,
        ),
    ] {
        header(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {n}");
    }
    header(
        &mut out,
        "pptp_guard_total",
        "counter",
        "What the guards turned away, by event (see pptp-agent stats).",
    );
    for (event, n) in guard {
        let _ = writeln!(out, "pptp_guard_total{{event=\"{event}\"}} {n}");
    }
    if per_session {
        render_sessions(&mut out, sessions);
    }
    out
}

fn render_sessions(out: &mut String, sessions: &[SessionInfo]) {
    let labels: Vec<String> = sessions
        .iter()
        .map(|s| {
            format!(
                "id=\"{}\",user=\"{}\",client=\"{}\",path=\"{}\"",
                s.id,
                escape_label(s.user.as_deref().unwrap_or("")),
                s.client.map(|a| a.to_string()).unwrap_or_default(),
                match s.path {
                    DataPath::Xdp => "xdp",
                    DataPath::Agent => "agent",
                }
            )
        })
        .collect();
    type Field = fn(&SessionInfo) -> u64;
    let series: [(&str, &str, &str, Field); 5] = [
        (
            "pptp_session_rx_packets_total",
            "counter",
            "IPv4 packets received from the session's client (both paths).",
            |s| s.rx_packets,
        ),
        (
            "pptp_session_rx_bytes_total",
            "counter",
            "IPv4 bytes received from the session's client (both paths).",
            |s| s.rx_bytes,
        ),
        (
            "pptp_session_tx_packets_total",
            "counter",
            "IPv4 packets sent to the session's client (both paths).",
            |s| s.tx_packets,
        ),
        (
            "pptp_session_tx_bytes_total",
            "counter",
            "IPv4 bytes sent to the session's client (both paths).",
            |s| s.tx_bytes,
        ),
        (
            "pptp_session_uptime_seconds",
            "gauge",
            "Seconds since the session's call came up.",
            |s| s.uptime_secs,
        ),
    ];
    for (name, kind, help, field) in series {
        header(out, name, kind, help);
        for (s, labels) in sessions.iter().zip(&labels) {
            let _ = writeln!(out, "{name}{{{labels}}} {}", field(s));
        }
    }
}

/// What to answer a request head: status line and body.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Metrics,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Routes a complete request head (up to the empty line).
pub fn route(head: &[u8]) -> Route {
    let Some(line) = head.split(|&b| b == b'\n').next() else {
        return Route::BadRequest;
    };
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    if method != "GET" && method != "HEAD" {
        return Route::MethodNotAllowed;
    }
    let path = target.split('?').next().unwrap_or_default();
    if path == "/metrics" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

/// Serves scrapes on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    backend: Arc<Backend>,
    per_session: bool,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.connections));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => return,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let _ = stream.try_write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            continue;
        };
        let backend = backend.clone();
        tokio::spawn(async move {
            scrape(stream, &backend, per_session, limits).await;
            drop(permit);
        });
    }
}

/// Reads the request head: up to the empty line, at most [`MAX_HEAD`] bytes.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() >= MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(head)
}

async fn scrape(mut stream: TcpStream, backend: &Backend, per_session: bool, limits: Limits) {
    let Ok(head) = tokio::time::timeout(limits.read_timeout, read_head(&mut stream)).await else {
        return;
    };
    let (status, content_type, body) = match head.as_deref().map(route) {
        None | Some(Route::BadRequest) => ("400 Bad Request", "text/plain", "bad request\n".into()),
        Some(Route::NotFound) => ("404 Not Found", "text/plain", "try /metrics\n".into()),
        Some(Route::MethodNotAllowed) => {
            ("405 Method Not Allowed", "text/plain", "GET only\n".into())
        }
        Some(Route::Metrics) => match snapshot(backend, per_session).await {
            Ok(text) => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", text),
            Err(e) => ("503 Service Unavailable", "text/plain", format!("{e}\n")),
        },
    };
    let head_only = head.as_deref().is_some_and(|h| h.starts_with(b"HEAD "));
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(&body);
    }
    let _ = tokio::time::timeout(limits.write_timeout, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

async fn snapshot(backend: &Backend, per_session: bool) -> Result<String, String> {
    let sessions = backend.sessions().await?;
    let hub = backend.hub_stats().await?;
    let load = backend.hub_load().await?;
    let report = backend.report().await?;
    let pool = backend.pool.as_ref().map(|p| p.usage());
    Ok(render(
        &sessions,
        &hub,
        &load,
        &backend.guard.snapshot(),
        report.as_ref(),
        pool,
        per_session,
    ))
}
