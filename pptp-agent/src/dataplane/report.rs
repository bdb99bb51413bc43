//! What `pptp-agent stats` shows, read from the pinned maps of a running agent: the
//! global counters and one row per installed session with its path and counters.

use std::net::Ipv4Addr;

use anyhow::Context as _;
use aya::maps::{Map, MapData, PerCpuArray};
use pptp_common::{
    maps,
    session::{SESSION_FAST, Session, SessionCounters, SessionEvents},
};
use serde::Serialize;

use super::{bpffs::PinDir, counters::GlobalCounters, table::SessionTable};

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

/// The pinned `SESSIONS_BY_CALL` in `pins`, mapped: its installed records are found
/// by a scan of memory, not one system call per entry.
pub fn pinned_table(pins: &PinDir) -> anyhow::Result<SessionTable> {
    let data = MapData::from_pin(pins.object(maps::SESSIONS_BY_CALL))
        .with_context(|| format!("opening the pinned map {}", maps::SESSIONS_BY_CALL))?;
    SessionTable::map(&data)
}

/// The installed records of the pinned `SESSIONS_BY_CALL` in `pins`, by our call ID
/// (the slot).
pub fn installed_calls(pins: &PinDir) -> anyhow::Result<Vec<(u16, Session)>> {
    Ok(pinned_table(pins)?
        .installed()
        .map(|(slot, session)| (slot as u16, session))
        .collect())
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
        let events: PerCpuArray<MapData, SessionEvents> =
            PerCpuArray::try_from(Map::PerCpuArray(open(maps::SESSION_EVENTS)?))?;
        let mut sessions = Vec::new();
        // Only the installed sessions' per-CPU events are read.
        for (call_id, session) in installed_calls(pins)? {
            let mut sum = SessionEvents::default();
            events
                .get(&u32::from(call_id), 0)?
                .iter()
                .for_each(|c| sum.add(c));
            sessions.push(SessionRow {
                slot: u32::from(call_id),
                peer: Ipv4Addr::from(session.peer_addr),
                call_id,
                client: (session.client_addr != [0; 4])
                    .then(|| Ipv4Addr::from(session.client_addr)),
                path: if session.flags & SESSION_FAST != 0 {
                    Path::Xdp
                } else {
                    Path::Agent
                },
                counters: SessionCounters::new(&session, &sum),
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
