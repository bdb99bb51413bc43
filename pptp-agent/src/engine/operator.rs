//! The operator's commands on the engine: the sessions as `pptp-agent sessions`
//! shows them, kill, the counters and what the engine holds, and the capture of a
//! session on the agent's path (`pptp-agent capture`, kept in `capture.rs`).

use std::{net::Ipv4Addr, time::Instant};

use crate::{
    escape::Escaped,
    radius::{
        acct::TerminateCause,
        dae::{Named, Target},
    },
};

use super::{
    Engine, Mode,
    capture::{CaptureError, CaptureLimits, CapturedBatch},
    session::Session,
    table::SessionId,
    views::{AgentStats, DataPath, EngineLoad, Selector, SessionInfo, SessionState},
};

impl Engine {
    /// Arms a capture of session `id`, which must be on the agent's path (the data
    /// plane's sessions are captured from its maps); answers the capture's number,
    /// which [`take_captured`](Self::take_captured) and
    /// [`stop_capture`](Self::stop_capture) name.
    pub fn start_capture(
        &mut self,
        id: SessionId,
        limits: CaptureLimits,
        now: Instant,
    ) -> Result<u64, CaptureError> {
        let session = self.table.get(id).ok_or(CaptureError::NoSession(id))?;
        if session.on_fast_path() {
            return Err(CaptureError::FastPath(id));
        }
        self.captures.start(id, limits, now)
    }

    /// Takes what capture `number` holds; `armed` false once it has ended.
    pub fn take_captured(&mut self, number: u64, now: Instant) -> CapturedBatch {
        self.captures.take(number, now)
    }

    /// Ends capture `number` (its reader went away).
    pub fn stop_capture(&mut self, number: u64) {
        self.captures.stop(number);
    }

    /// Every session, as operators see it, in id order.
    pub fn sessions(&self, now: Instant) -> Vec<SessionInfo> {
        let dp = self.dataplane.as_deref();
        let mut infos: Vec<SessionInfo> = self
            .table
            .iter()
            .map(|(id, s)| {
                let c = s.totals(dp);
                let client = self.client_of(s);
                SessionInfo {
                    id,
                    user: s.user.clone(),
                    peer: s.call.peer_addr,
                    local_call_id: s.call.local_call_id,
                    peer_call_id: s.call.peer_call_id,
                    client,
                    state: if s.up.is_some() {
                        SessionState::Up
                    } else {
                        SessionState::Starting
                    },
                    path: if s.on_fast_path() {
                        DataPath::Xdp
                    } else {
                        DataPath::Agent
                    },
                    mppe: s.up.as_ref().and_then(|up| up.mppe.as_ref()).map(|m| {
                        let bits = match m.params.strength {
                            crate::mppe::KeyStrength::Bits40 => 40,
                            crate::mppe::KeyStrength::Bits56 => 56,
                            crate::mppe::KeyStrength::Bits128 => 128,
                        };
                        let mode = if m.params.stateless {
                            "stateless"
                        } else {
                            "stateful"
                        };
                        format!("{bits}-bit {mode}")
                    }),
                    interface: s.router.map(|i| self.routers[i].name().to_owned()),
                    uptime_secs: now.saturating_duration_since(s.started).as_secs(),
                    rx_packets: c.input_packets,
                    rx_bytes: c.input_octets,
                    tx_packets: c.output_packets,
                    tx_bytes: c.output_octets,
                    rate: s
                        .policing
                        .rate()
                        .is_set()
                        .then(|| s.policing.rate().to_string()),
                    policed_rx: s.policed(dp).0,
                    policed_tx: s.policed(dp).1,
                }
            })
            .collect();
        infos.sort_by_key(|i| i.id);
        infos
    }

    /// The sessions a RADIUS Disconnect- or CoA-Request names (RFC 5176), found
    /// through the table's indexes (the session number its Acct-Session-Id
    /// carries, else the client address, else the user) and checked against every
    /// other attribute it gives; `session_of` maps an Acct-Session-Id to a number.
    pub fn sessions_named(
        &self,
        target: &Target,
        session_of: impl Fn(&[u8]) -> Option<u64>,
    ) -> Vec<SessionId> {
        let candidates: Vec<SessionId> = if let Some(acct) = &target.acct_session_id {
            session_of(acct)
                .map(SessionId::from_number)
                .into_iter()
                .collect()
        } else if let Some(address) = target.address {
            self.table.by_client(address).into_iter().collect()
        } else if let Some(user) = &target.user {
            self.table.of_user(user).collect()
        } else {
            Vec::new()
        };
        let named = candidates.into_iter().filter_map(|id| {
            let s = self.table.get(id)?;
            let named = Named {
                number: id.get(),
                user: s.user.as_deref(),
                client: self.client_of(s),
            };
            Some((id, named))
        });
        target.select(named, session_of)
    }

    /// The client's address inside the tunnel, once IPCP is up: the peer's for a
    /// concentrator, our own for a client.
    fn client_of(&self, s: &Session) -> Option<Ipv4Addr> {
        s.up.as_ref().map(|up| match self.config.mode {
            Mode::Concentrator => up.peer_ip,
            Mode::Client | Mode::Probe => up.local_ip,
        })
    }

    /// Hangs up the sessions selected (LCP Terminate, then the call is cleared);
    /// how many were selected.
    pub fn kill(&mut self, now: Instant, selector: &Selector) -> usize {
        let ids: Vec<SessionId> = match selector {
            Selector::Id(id) => self
                .table
                .contains(*id)
                .then_some(*id)
                .into_iter()
                .collect(),
            Selector::User(user) => self.table.of_user(user).collect(),
            Selector::All => self.table.ids(),
        };
        for id in &ids {
            if let Some(session) = self.table.get_mut(*id) {
                tracing::info!(session = %id, user = ?session.user.as_deref().map(Escaped::str), "killed by the operator");
                session.aaa.cause = Some(TerminateCause::AdminReset);
            }
            self.hang_up(*id, now);
        }
        ids.len()
    }

    /// The agent path's counters.
    pub fn stats(&self) -> AgentStats {
        self.stats
    }

    /// What the engine holds now.
    pub fn load(&self) -> EngineLoad {
        EngineLoad {
            timers: self.timers.len(),
            authentications: self.authenticating,
            accounting: 0,
        }
    }

    /// Sessions in the table.
    pub fn session_count(&self) -> usize {
        self.table.len()
    }
}
