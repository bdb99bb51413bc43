//! Each session's rate limit: chosen when the session comes up (Mikrotik-Rate-Limit
//! from the Access-Accept, else the user's `rate` in the configuration, else the
//! default), changed by a CoA, or by a reload of the configuration's rates (SIGHUP)
//! for the sessions whose limit did not come from RADIUS, and enforced on both paths: the data plane's copy in
//! the maps (`Dataplane::set_rate`) for what XDP and TC forward, the session's
//! [`super::session::Policing`] for what the agent carries (MPPE, setup, fallback).
//! Both run `pptp_common::police`, so the two paths limit alike.

use std::time::Instant;

use pptp_common::rate::RateLimit;

use super::{AgentCounter, Engine, RatePolicy, SessionId, session::Sequencing};

/// A direction of the agent's path.
#[derive(Clone, Copy)]
pub(super) enum Way {
    /// From the client.
    Rx,
    /// To the client.
    Tx,
}

impl Engine {
    /// The policers' clock: ns since the engine started.
    fn police_clock(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_nanos() as u64
    }

    /// The session is up: its limit from RADIUS, the configuration's user entry or
    /// its default (once: a renegotiated link keeps what a CoA set).
    pub(super) fn start_policing(&mut self, id: SessionId) {
        let Some(session) = self.table.get(id) else {
            return;
        };
        if session.policing.started {
            return;
        }
        let from_radius = session
            .aaa
            .authorization
            .as_ref()
            .and_then(|a| a.rate_limit);
        match from_radius {
            Some(rate) => self.set_rate(id, rate, true),
            None => self.set_rate(id, self.configured_rate(id), false),
        }
    }

    /// Session `id`'s limit from the configuration: its user's, else the default.
    fn configured_rate(&self, id: SessionId) -> RateLimit {
        self.table
            .get(id)
            .and_then(|s| s.user.as_deref())
            .and_then(|user| self.config.rates.users.get(user))
            .copied()
            .unwrap_or(self.config.rates.default)
    }

    /// The configuration's rates were reloaded (SIGHUP): from now on new sessions
    /// take `rates`, and so does every live session whose limit did not come from
    /// RADIUS (an Access-Accept or a CoA), at once. Answers how many changed.
    pub fn set_rate_policy(&mut self, rates: RatePolicy) -> usize {
        self.config.rates = rates;
        let live: Vec<SessionId> = self
            .table
            .iter()
            .filter(|(_, s)| s.policing.started && !s.policing.from_radius)
            .map(|(id, _)| id)
            .collect();
        let mut changed = 0;
        for id in live {
            let rate = self.configured_rate(id);
            if self
                .table
                .get(id)
                .is_some_and(|s| s.policing.rate() != rate)
            {
                self.set_rate(id, rate, false);
                changed += 1;
            }
        }
        changed
    }

    /// Puts `rate` in force for session `id` on both paths (the buckets as they
    /// are: a new limit starts from what the old one left); `from_radius` says
    /// whether RADIUS gave it.
    pub(super) fn set_rate(&mut self, id: SessionId, rate: RateLimit, from_radius: bool) {
        let Some(session) = self.table.get_mut(id) else {
            return;
        };
        session.policing.change(rate);
        session.policing.from_radius = from_radius;
        if rate.is_set() {
            tracing::info!(session = %id, %rate, "rate limit");
        }
        if let (Some(dp), Sequencing::Shared(slot)) = (self.dataplane.as_deref_mut(), &session.seq)
            && let Err(e) = dp.set_rate(*slot, &rate)
        {
            tracing::error!(session = %id, error = %e, "cannot set the rate limit in the data plane");
        }
    }

    /// Whether `len` bytes of IPv4 on the agent's path pass session `id`'s limit; a
    /// drop is counted (globally and for the session).
    pub(super) fn police(&mut self, id: SessionId, way: Way, len: usize, now: Instant) -> bool {
        let clock = self.police_clock(now);
        let Some(session) = self.table.get_mut(id) else {
            return false;
        };
        let pass = match way {
            Way::Rx => session.policing.rx(clock, len),
            Way::Tx => session.policing.tx(clock, len),
        };
        if !pass {
            match way {
                Way::Rx => session.counters.drop_policed_rx += 1,
                Way::Tx => session.counters.drop_policed_tx += 1,
            }
            self.stats.add(AgentCounter::Policed);
        }
        pass
    }
}
