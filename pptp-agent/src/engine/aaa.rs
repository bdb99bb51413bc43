//! RADIUS in the engine: claims out as [`Action::Authenticate`], verdicts in through
//! [`Engine::handle_verdict`] (bound to the claim they answer), accounting records
//! out as [`Action::Account`], Session-Timeout and Idle-Timeout, and CoA (which
//! may change the rate limit too: `super::rates`). What each
//! session keeps for it is in [`super::accounting`].
//!
//! What many concentrators sharing one AAA service need (docs/fleet.md): every
//! request names the session by its NAS-Port ([`SessionId::port`], unique on this
//! concentrator and stable for the session) and every record by an Acct-Session-Id
//! unique across the fleet ([`AcctSessionIds`](crate::radius::nas::AcctSessionIds));
//! Accounting-On when the engine starts afresh and Accounting-Off when it
//! finishes ([`Action::AccountNas`]).

use std::time::{Duration, Instant};

use crate::{
    escape::Escaped,
    ppp::{
        auth::{Claim, Verdict},
        link::ClaimTicket,
    },
    radius::{
        AuthJob, Authorized,
        acct::{Due, Record, SessionClock, Status, TerminateCause},
        auth::Authorization,
        nas::{NasRecord, NasStatus},
    },
};

use super::{Engine, accounting::Arrival, action::Action, table::SessionId};

impl Engine {
    /// A link's claim for external judgement: to RADIUS (an earlier request for
    /// this session is cancelled: the link restarted and claimed again).
    pub(super) fn authenticate(
        &mut self,
        id: SessionId,
        ticket: ClaimTicket,
        claim: Claim,
        now: std::time::Instant,
    ) {
        let Some(session) = self.table.get_mut(id) else {
            return;
        };
        if !self.config.aaa.radius {
            tracing::error!("a link asked for external judgement without RADIUS: rejected");
            session.link.verified(now, ticket, Verdict::Reject);
            self.flush(id, now);
            return;
        }
        if session.aaa.asking {
            self.actions
                .push_back(Action::CancelAuthentication { session: id });
        } else {
            session.aaa.asking = true;
            self.authenticating += 1;
        }
        let job = AuthJob {
            claim,
            port: id.port(),
            calling_station: session.call.peer_addr,
        };
        self.actions.push_back(Action::Authenticate {
            session: id,
            ticket,
            job,
        });
    }

    /// A RADIUS verdict: to the link, if the session and the claim it answers are
    /// still there.
    pub fn handle_verdict(
        &mut self,
        now: Instant,
        id: SessionId,
        ticket: ClaimTicket,
        authorized: Authorized,
    ) {
        let Some(session) = self.table.get_mut(id) else {
            return;
        };
        if session.aaa.asking {
            session.aaa.asking = false;
            self.authenticating -= 1;
        }
        if session
            .link
            .verified_with(now, ticket, authorized.verdict, authorized.grant)
        {
            session.aaa.authorization = authorized.authorization.map(Box::new);
        }
        self.flush(id, now);
    }

    /// Starts the session's clock and sends Accounting-Start (if accounting).
    pub(super) fn start_accounting(&mut self, id: SessionId, now: Instant) {
        let aaa = self.config.aaa;
        if !aaa.radius {
            return;
        }
        // Once per session (an IPCP renegotiation brings the link up again).
        let Some(session) = self.table.get_mut(id).filter(|s| s.aaa.clock.is_none()) else {
            return;
        };
        let limits = session.aaa.limits(aaa.interim, aaa.accounting);
        session.aaa.clock = Some(SessionClock::new(now, limits));
        self.account(id, Status::Start, None, now);
    }

    /// Interim-Update due, or a timeout that ends the session.
    pub(super) fn on_session_clock(&mut self, id: SessionId, now: Instant) {
        let dp = self.dataplane.as_deref();
        let Some(session) = self.table.get_mut(id).filter(|s| s.aaa.clock.is_some()) else {
            return;
        };
        let c = session.totals(dp);
        let packets = c.input_packets + c.output_packets;
        let octets = c.input_octets + c.output_octets;
        let due = session
            .aaa
            .clock
            .as_mut()
            .and_then(|clock| clock.handle_timeout(now, packets, octets));
        match due {
            Some(Due::Interim) => self.account(id, Status::InterimUpdate, None, now),
            Some(Due::Terminate(cause)) => {
                tracing::info!(session = %id, user = ?session.user.as_deref().map(Escaped::str), ?cause, "session ended by its RADIUS limits");
                session.aaa.cause = Some(cause);
                session.link.close(now);
            }
            None => {}
        }
    }

    /// CoA: new timeouts, rate limit or quota for session `id`; whether it exists.
    pub fn reauthorize(&mut self, now: Instant, id: SessionId, update: &Authorization) -> bool {
        let accounting = self.config.aaa.accounting;
        let Some(session) = self.table.get_mut(id) else {
            return false;
        };
        session.aaa.reauthorize(now, update, accounting);
        if let Some(rate) = update.rate_limit {
            self.set_rate(id, rate, true);
        }
        self.flush(id, now);
        true
    }

    /// An accounting record for the session.
    pub(super) fn account(
        &mut self,
        id: SessionId,
        status: Status,
        cause: Option<TerminateCause>,
        now: Instant,
    ) {
        if !self.config.aaa.accounting {
            return;
        }
        let dp = self.dataplane.as_deref();
        let Some(session) = self.table.get(id) else {
            return;
        };
        let record = Record {
            status,
            session_id: self.config.acct_ids.of(id.get()),
            user: session.user.clone().unwrap_or_default(),
            address: session.up.as_ref().map(|up| up.peer_ip),
            calling_station: session.call.peer_addr,
            port: id.port(),
            class: session
                .aaa
                .authorization
                .as_ref()
                .map(|a| a.class.clone())
                .unwrap_or_default(),
            session_time: session
                .aaa
                .clock
                .as_ref()
                .map_or(Duration::ZERO, |c| c.elapsed(now)),
            counters: session.totals(dp),
            cause,
            radius_authenticated: session.aaa.authorization.is_some(),
        };
        self.actions.push_back(Action::Account {
            session: id,
            record,
        });
    }
}

impl Engine {
    /// Accounting-On, when the engine starts the NAS afresh.
    pub(super) fn announce_arrival(&mut self) {
        if self.config.aaa.accounting && self.config.arrival == Arrival::Fresh {
            self.account_nas(NasStatus::On);
        }
    }

    /// Accounting-Off, once, when the engine finishes.
    pub(super) fn announce_departure(&mut self) {
        if self.config.aaa.accounting && !self.departed {
            self.departed = true;
            self.account_nas(NasStatus::Off);
        }
    }

    fn account_nas(&mut self, status: NasStatus) {
        let record = NasRecord {
            status,
            session_id: self.config.acct_ids.nas(),
        };
        self.actions.push_back(Action::AccountNas { record });
    }
}
