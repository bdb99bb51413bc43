//! Calls whose peer never sends GRE. PPTP's control connection is TCP 1723 and its
//! data GRE (IP protocol 47): a firewall or NAT that passes the one and drops the
//! other lets the call come up and leaves its PPP link deaf, until LCP gives up
//! (Windows then says 619 or 806; see docs/troubleshooting.md). The engine notices
//! sooner: a session that has heard no GRE from its peer
//! [`EngineConfig::gre_wait`](super::EngineConfig::gre_wait) after its call came
//! up is counted ([`AgentCounter::CallsWithoutGre`]), its owner is told
//! ([`SessionEvent::NoGre`]), the hint is logged once per peer address (a set of
//! at most [`MAX_HINTED_PEERS`], emptied when full), and a client's session ends
//! there (`pptp-agent dial` fails with the hint). A call that ends before the wait
//! is over without any GRE from its peer (a client that gave up sooner) is counted
//! and hinted about as it ends.

use std::time::Instant;

use crate::ppp::link::DownReason;

use super::{
    AgentCounter, Engine, Mode, SessionId,
    action::{Action, SessionEvent},
    session::{PeerGre, Session},
};

/// Peer addresses remembered as already hinted about.
pub const MAX_HINTED_PEERS: usize = 4096;

impl Engine {
    /// When the session's wait for GRE ends, if it is waiting.
    pub(super) fn gre_deadline(&self, session: &Session) -> Option<Instant> {
        (session.peer_gre == PeerGre::Awaited).then(|| session.started + self.config.gre_wait)
    }

    /// Reports a session whose wait for GRE is over without any.
    pub(super) fn on_gre_wait(&mut self, id: SessionId, now: Instant) {
        let Some(session) = self.table.get_mut(id) else {
            return;
        };
        if session.peer_gre != PeerGre::Awaited || now < session.started + self.config.gre_wait {
            return;
        }
        let (owner, waited) = (session.owner, self.config.gre_wait);
        self.gre_missing(id, "within the wait");
        self.actions.push_back(Action::Notify {
            owner,
            event: SessionEvent::NoGre { waited },
        });
        if self.config.mode == Mode::Client {
            self.end_session(id, DownReason::Timeout, now);
        }
    }

    /// Counts a call without GRE from its peer (once), and hints once per peer;
    /// `when`: "within the wait" or "before the call ended".
    pub(super) fn gre_missing(&mut self, id: SessionId, when: &str) {
        let Some(session) = self
            .table
            .get_mut(id)
            .filter(|s| s.peer_gre == PeerGre::Awaited)
        else {
            return;
        };
        session.peer_gre = PeerGre::Missing;
        let peer = session.call.peer_addr;
        self.stats.add(AgentCounter::CallsWithoutGre);
        if self.hinted.len() >= MAX_HINTED_PEERS {
            self.hinted.clear();
        }
        if self.hinted.insert(peer) {
            let wait = self.config.gre_wait.as_secs();
            tracing::warn!(%peer, session = %id, "control connection and call up, but no GRE from the peer {when} ({wait} s): IP protocol 47 (GRE) is probably blocked on the path (a firewall or NAT passing only TCP 1723); counted in calls_without_gre, said once per peer");
        }
    }
}
