//! The API's answers as the CLI reads and prints them: `|`-separated tables in the
//! style of `accel-cmd show sessions`.
//!
//! Fields the CLI does not know are ignored, so that a newer agent's answers still
//! print. User names come from the clients: control characters are escaped before
//! they reach a terminal.

use std::{collections::BTreeMap, fmt::Write as _, net::Ipv4Addr};

use serde::Deserialize;

use super::Totals;
use crate::{
    engine::{AgentCounter, EngineLoad},
    runtime::pool::PoolUsage,
};

/// One session of an API answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SessionView {
    pub id: u64,
    pub user: Option<String>,
    pub peer: Ipv4Addr,
    #[serde(default)]
    pub local_call_id: u16,
    pub client: Option<Ipv4Addr>,
    pub state: String,
    pub path: String,
    pub mppe: Option<String>,
    pub uptime_secs: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Its rate limit (Mikrotik-Rate-Limit form); none: unlimited.
    #[serde(default)]
    pub rate: Option<String>,
    /// Packets its rate limit dropped, from and to the client.
    #[serde(default)]
    pub policed_rx: u64,
    #[serde(default)]
    pub policed_tx: u64,
    /// Its row in the XDP maps (`stats` only).
    #[serde(default)]
    pub dataplane: Option<DataplaneView>,
}

/// A session's counters kept by the XDP programs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DataplaneView {
    pub slot: u32,
    pub to_agent: u64,
    pub drop_spoofed: u64,
    pub drop_old_seq: u64,
    pub too_big: u64,
}

/// One global XDP counter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CounterView {
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
}

/// The answer to `{"cmd":"stats"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StatsView {
    pub xdp: bool,
    #[serde(default)]
    pub counters: Vec<CounterView>,
    #[serde(default)]
    pub installed_calls: Option<u64>,
    #[serde(default)]
    pub pool: Option<PoolUsage>,
    #[serde(default)]
    pub call_ids: Option<u64>,
    pub hub: BTreeMap<String, u64>,
    #[serde(default)]
    pub load: Option<EngineLoad>,
    /// What the guards turned away, by event.
    #[serde(default)]
    pub guard: BTreeMap<String, u64>,
    pub totals: Totals,
    pub sessions: Vec<SessionView>,
    /// Sessions that passed the request's filter (before its limit).
    #[serde(default)]
    pub matched: Option<u64>,
}

/// `1d 02:03:04`, `00:01:05`.
pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// `s` with control characters (terminal escapes) and `|` escaped.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '|' => "\\|".to_owned(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A `|`-separated table with a header, a `-+-` rule and right-aligned numbers
/// (columns whose `numeric` flag is set).
pub fn table(headers: &[&str], numeric: &[bool], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = (usize, &str)>| {
        let parts: Vec<String> = cells
            .map(|(i, cell)| {
                let pad = widths[i] - cell.chars().count();
                if numeric.get(i).copied().unwrap_or(false) {
                    format!("{}{cell}", " ".repeat(pad))
                } else {
                    format!("{cell}{}", " ".repeat(pad))
                }
            })
            .collect();
        format!(" {}\n", parts.join(" | ")).replace(" \n", "\n")
    };
    let mut out = line(&mut headers.iter().copied().enumerate());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
    out.push_str(rule.join("+").trim_end());
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str).enumerate()));
    }
    out
}

const SESSION_HEADERS: [&str; 14] = [
    "id", "user", "peer", "client", "path", "mppe", "state", "uptime", "rx-pkts", "rx-bytes",
    "tx-pkts", "tx-bytes", "rate", "policed",
];
const SESSION_NUMERIC: [bool; 14] = [
    true, false, false, false, false, false, false, true, true, true, true, true, false, true,
];

fn session_cells(s: &SessionView) -> Vec<String> {
    vec![
        s.id.to_string(),
        s.user.as_deref().map_or("-".into(), printable),
        s.peer.to_string(),
        s.client.map_or("-".into(), |a| a.to_string()),
        printable(&s.path),
        s.mppe.as_deref().map_or("-".into(), printable),
        printable(&s.state),
        uptime(s.uptime_secs),
        s.rx_packets.to_string(),
        s.rx_bytes.to_string(),
        s.tx_packets.to_string(),
        s.tx_bytes.to_string(),
        s.rate.as_deref().map_or("-".into(), printable),
        (s.policed_rx + s.policed_tx).to_string(),
    ]
}

/// `pptp-agent sessions`.
pub fn render_sessions(sessions: &[SessionView]) -> String {
    let rows: Vec<Vec<String>> = sessions.iter().map(session_cells).collect();
    table(&SESSION_HEADERS, &SESSION_NUMERIC, &rows)
}

/// `pptp-agent stats` from a running agent.
pub fn render_stats(stats: &StatsView) -> String {
    let t = &stats.totals;
    let mut out = format!(
        "sessions: {} (up {}, starting {}; path xdp {}, agent {})\n",
        t.sessions, t.up, t.starting, t.xdp, t.agent
    );
    if let Some(pool) = stats.pool {
        let _ = writeln!(
            out,
            "pool: {} of {} addresses in use",
            pool.in_use, pool.size
        );
    }
    if let Some(call_ids) = stats.call_ids {
        let _ = writeln!(out, "call IDs: {call_ids} live");
    }
    if let Some(load) = stats.load {
        let _ = writeln!(
            out,
            "agent holds: {} session timers, {} RADIUS authentications and {} accounting requests in flight",
            load.timers, load.authentications, load.accounting
        );
    }
    out.push('\n');
    if stats.xdp {
        out.push_str("XDP counters\n");
        let _ = writeln!(out, "{:<16} {:>14} {:>16}", "class", "packets", "bytes");
        for c in &stats.counters {
            let _ = writeln!(out, "{:<16} {:>14} {:>16}", c.name, c.packets, c.bytes);
        }
        if let Some(n) = stats.installed_calls {
            let _ = writeln!(out, "calls installed in the XDP maps: {n}");
        }
    } else {
        out.push_str("XDP: not in use (every session takes the agent's path)\n");
    }
    out.push_str("\nagent path drops\n");
    let drops = |name: &String| AgentCounter::named(name).is_none_or(AgentCounter::is_drop);
    for (reason, n) in stats.hub.iter().filter(|(r, _)| drops(r)) {
        let _ = writeln!(out, "{reason:<28} {n:>14}");
    }
    for (name, n) in &stats.hub {
        if let Some((_, help)) = AgentCounter::named(name).and_then(AgentCounter::event) {
            let _ = writeln!(out, "{help}: {n}");
        }
    }
    if !stats.guard.is_empty() {
        out.push_str("\nguards\n");
        for (event, n) in &stats.guard {
            let _ = writeln!(out, "{event:<40} {n:>10}");
        }
    }
    out.push('\n');
    let mut headers = SESSION_HEADERS.to_vec();
    headers.extend(["to-agent", "drops"]);
    let mut numeric = SESSION_NUMERIC.to_vec();
    numeric.extend([true, true]);
    let rows: Vec<Vec<String>> = stats
        .sessions
        .iter()
        .map(|s| {
            let mut cells = session_cells(s);
            match &s.dataplane {
                Some(d) => {
                    cells.push(d.to_agent.to_string());
                    cells.push((d.drop_spoofed + d.drop_old_seq).to_string());
                }
                None => cells.extend(["-".into(), "-".into()]),
            }
            cells
        })
        .collect();
    out.push_str(&table(&headers, &numeric, &rows));
    if let Some(matched) = stats.matched.filter(|m| *m > rows.len() as u64) {
        let _ = writeln!(out, "({} of {matched} matching sessions shown)", rows.len());
    }
    out
}
