//! RADIUS in the engine: what it keeps per session (the authorization the session
//! got, its accounting/limit clock from the moment it is up, why we ended it), how a
//! link's end maps to an Acct-Terminate-Cause, and the engine's side of the
//! exchanges: claims out as [`Action::Authenticate`], verdicts in through
//! [`Engine::handle_verdict`] (bound to the claim they answer), accounting records
//! out as [`Action::Account`], Session-Timeout and Idle-Timeout, and CoA.

use std::time::{Duration, Instant};

use crate::{
    escape::Escaped,
    ppp::{
        auth::{Claim, Verdict},
        link::{ClaimTicket, DownReason},
    },
    radius::{
        AuthJob, Authorized,
        acct::{Due, Limits, Record, SessionClock, Status, TerminateCause},
        auth::Authorization,
    },
};

use super::{Action, Engine, SessionId};

/// A session's RADIUS state in the engine.
#[derive(Debug, Default)]
pub struct SessionAaa {
    /// What the Access-Accept said (`None`: judged by the secrets file).
    pub authorization: Option<Authorization>,
    /// Running from the moment the session is up (Accounting-Start sent).
    pub clock: Option<SessionClock>,
    /// Why we closed the session, if we did.
    pub cause: Option<TerminateCause>,
    /// An Access-Request is in flight for the session's current claim.
    pub asking: bool,
}

impl SessionAaa {
    /// The limits the session starts with: the Access-Accept's timeouts, and its
    /// Acct-Interim-Interval or else the configured interval (when accounting).
    pub fn limits(&self, configured_interim: Option<Duration>, accounting: bool) -> Limits {
        let a = self.authorization.as_ref();
        Limits {
            session_timeout: a.and_then(|a| a.session_timeout),
            idle_timeout: a.and_then(|a| a.idle_timeout),
            interim: accounting
                .then(|| a.and_then(|a| a.interim_interval).or(configured_interim))
                .flatten(),
        }
    }

    /// Applies a CoA: the attributes it carries replace the current values
    /// (Acct-Interim-Interval only when `accounting`).
    pub fn reauthorize(&mut self, now: Instant, update: &Authorization, accounting: bool) {
        if let Some(clock) = &mut self.clock {
            let mut limits = clock.limits();
            if update.session_timeout.is_some() {
                limits.session_timeout = update.session_timeout;
            }
            if update.idle_timeout.is_some() {
                limits.idle_timeout = update.idle_timeout;
            }
            if update.interim_interval.is_some() && accounting {
                limits.interim = update.interim_interval;
            }
            clock.update(now, limits);
        }
    }

    /// The Acct-Terminate-Cause for a session that went down for `reason`.
    pub fn terminate_cause(&self, reason: &DownReason) -> TerminateCause {
        match (self.cause, reason) {
            (Some(cause), _) => cause,
            (None, DownReason::PeerTerminated) => TerminateCause::UserRequest,
            (None, DownReason::LowerLayerDown) => TerminateCause::LostCarrier,
            (None, DownReason::EchoTimeout | DownReason::Timeout) => TerminateCause::LostService,
            (None, DownReason::Closed) => TerminateCause::NasRequest,
            (None, _) => TerminateCause::NasError,
        }
    }
}

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
            port: u32::from(session.call.local_call_id),
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
            session.aaa.authorization = authorized.authorization;
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
        let due = session
            .aaa
            .clock
            .as_mut()
            .and_then(|clock| clock.handle_timeout(now, packets));
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

    /// CoA: new timeouts for session `id`; whether it exists.
    pub fn reauthorize(&mut self, now: Instant, id: SessionId, update: &Authorization) -> bool {
        let accounting = self.config.aaa.accounting;
        let Some(session) = self.table.get_mut(id) else {
            return false;
        };
        session.aaa.reauthorize(now, update, accounting);
        self.flush(id, now);
        true
    }

    /// An accounting record for the session (its Acct-Session-Id is the runtime's
    /// to write, from the session's id).
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
            session_id: String::new(),
            user: session.user.clone().unwrap_or_default(),
            address: session.up.as_ref().map(|up| up.peer_ip),
            calling_station: session.call.peer_addr,
            port: u32::from(session.call.local_call_id),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_and_limits() {
        let mut aaa = SessionAaa::default();
        assert_eq!(
            aaa.terminate_cause(&DownReason::PeerTerminated),
            TerminateCause::UserRequest
        );
        assert_eq!(
            aaa.terminate_cause(&DownReason::LowerLayerDown),
            TerminateCause::LostCarrier
        );
        assert_eq!(
            aaa.terminate_cause(&DownReason::EchoTimeout),
            TerminateCause::LostService
        );
        aaa.cause = Some(TerminateCause::AdminReset);
        assert_eq!(
            aaa.terminate_cause(&DownReason::Closed),
            TerminateCause::AdminReset
        );

        let s = Duration::from_secs;
        assert_eq!(
            aaa.limits(Some(s(60)), false).interim,
            None,
            "no accounting, no interim"
        );
        assert_eq!(aaa.limits(Some(s(60)), true).interim, Some(s(60)));
        aaa.authorization = Some(Authorization {
            interim_interval: Some(s(30)),
            idle_timeout: Some(s(9)),
            ..Authorization::default()
        });
        let limits = aaa.limits(Some(s(60)), true);
        assert_eq!(
            (limits.interim, limits.idle_timeout),
            (Some(s(30)), Some(s(9))),
            "the server's interval wins"
        );

        let now = Instant::now();
        aaa.clock = Some(SessionClock::new(now, limits));
        aaa.reauthorize(
            now,
            &Authorization {
                session_timeout: Some(s(5)),
                ..Authorization::default()
            },
            true,
        );
        let after = aaa.clock.as_ref().unwrap().limits();
        assert_eq!(
            (after.session_timeout, after.idle_timeout),
            (Some(s(5)), Some(s(9))),
            "CoA replaces only what it carries"
        );
        aaa.reauthorize(
            now,
            &Authorization {
                interim_interval: Some(s(10)),
                ..Authorization::default()
            },
            false,
        );
        assert_eq!(
            aaa.clock.as_ref().unwrap().limits().interim,
            Some(s(30)),
            "no accounting: kept"
        );
        aaa.reauthorize(
            now,
            &Authorization {
                interim_interval: Some(s(10)),
                ..Authorization::default()
            },
            true,
        );
        assert_eq!(aaa.clock.as_ref().unwrap().limits().interim, Some(s(10)));
    }
}
