//! What `pptp-agent stats` shows, read from the pinned maps of a running agent: the
//! global counters and one row per installed session with its path and counters.

use std::net::Ipv4Addr;

use anyhow::Context as _;
use aya::maps::{Array, Map, MapData, PerCpuArray};
use pptp_common::{
    maps,
    session::{CALL_IDS, DecapSession, SESSION_FAST, SESSION_INSTALLED, SessionCounters},
};
use serde::Serialize;

use super::{bpffs::PinDir, counters::GlobalCounters};

/// Which path carries a session's IPv4 data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    /// Forwarded by the XDP programs.
    Xdp,
    /// Handled by the agent (MPPE, fallback, or still negotiating).
    Agent,
}

/// One session as the data plane sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    pub slot: u32,
    pub peer: Ipv4Addr,
    pub call_id: u16,
    /// The client's address (none while PPP negotiates).
    pub client: Option<Ipv4Addr>,
    pub path: Path,
    #[serde(flatten)]
    pub counters: SessionCounters,
}

/// The installed entries of the pinned `SESSIONS_BY_CALL` in `pins`, by our call
/// ID (every one of the [`CALL_IDS`] entries is read: a few tens of milliseconds).
pub fn installed_calls(pins: &PinDir) -> anyhow::Result<Vec<(u16, DecapSession)>> {
    let data = MapData::from_pin(pins.object(maps::SESSIONS_BY_CALL))
        .with_context(|| format!("opening the pinned map {}", maps::SESSIONS_BY_CALL))?;
    let calls: Array<MapData, DecapSession> = Array::try_from(Map::Array(data))?;
    let mut installed = Vec::new();
    for call_id in 0..CALL_IDS {
        let entry = calls.get(&call_id, 0)?;
        if entry.flags & SESSION_INSTALLED != 0 {
            installed.push((call_id as u16, entry));
        }
    }
    Ok(installed)
}

/// Everything `stats` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub global: GlobalCounters,
    pub sessions: Vec<SessionRow>,
}

impl Report {
    /// Reads the maps pinned in `pins`.
    pub fn read(pins: &PinDir) -> anyhow::Result<Self> {
        let global = GlobalCounters::read_pinned(&pins.object(maps::GLOBAL_COUNTERS))?;
        let open = |name: &str| {
            MapData::from_pin(pins.object(name))
                .with_context(|| format!("opening the pinned map {name}"))
        };
        let counters: PerCpuArray<MapData, SessionCounters> =
            PerCpuArray::try_from(Map::PerCpuArray(open(maps::SESSION_COUNTERS)?))?;
        let mut sessions = Vec::new();
        for (call_id, session) in installed_calls(pins)? {
            let mut sum = SessionCounters::default();
            counters
                .get(&session.slot, 0)?
                .iter()
                .for_each(|c| sum.add(c));
            sessions.push(SessionRow {
                slot: session.slot,
                peer: Ipv4Addr::from(session.peer_addr),
                call_id,
                client: (session.client_addr != [0; 4])
                    .then(|| Ipv4Addr::from(session.client_addr)),
                path: if session.flags & SESSION_FAST != 0 {
                    Path::Xdp
                } else {
                    Path::Agent
                },
                counters: sum,
            });
        }
        sessions.sort_by_key(|s| s.slot);
        Ok(Self { global, sessions })
    }

    /// Human-readable: the counters, then a `|`-separated session table (as
    /// `accel-cmd show sessions` prints it).
    pub fn render(&self) -> String {
        let mut out = self.global.render_table();
        out.push_str(&format!("\nsessions: {}\n", self.sessions.len()));
        if self.sessions.is_empty() {
            return out;
        }
        out.push_str(" slot | peer            | call  | client          | path  | rx-pkts    | rx-bytes     | tx-pkts    | tx-bytes     | to-agent | drops\n");
        for s in &self.sessions {
            let c = &s.counters;
            let client = s.client.map_or("-".to_owned(), |a| a.to_string());
            let path = match s.path {
                Path::Xdp => "xdp",
                Path::Agent => "agent",
            };
            out.push_str(&format!(
                " {:>4} | {:<15} | {:>5} | {:<15} | {:<5} | {:>10} | {:>12} | {:>10} | {:>12} | {:>8} | {}\n",
                s.slot,
                s.peer,
                s.call_id,
                client,
                path,
                c.rx_packets,
                c.rx_bytes,
                c.tx_packets,
                c.tx_bytes,
                c.to_agent,
                c.drop_spoofed + c.drop_old_seq
            ));
        }
        out
    }
}
