//! What a session keeps for RADIUS: the authorization it got, its accounting and
//! limit clock from the moment it is up, why we ended it; how a link's end maps
//! to an Acct-Terminate-Cause; and how the engine came to its sessions
//! ([`Arrival`]: whether it says Accounting-On).

use std::time::{Duration, Instant};

use crate::{
    ppp::link::DownReason,
    radius::{
        acct::{Limits, SessionClock, TerminateCause},
        auth::Authorization,
    },
};

/// How the engine comes to the NAS's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The NAS starts: no session of an earlier run is alive, and the AAA service
    /// is told so with Accounting-On (it closes them and frees their leases).
    Fresh,
    /// The sessions of an earlier process live on in this one (an upgrade in
    /// place): nothing is said, since Accounting-On would end them at the server.
    Takeover,
}

/// A session's RADIUS state in the engine.
#[derive(Debug, Default)]
pub struct SessionAaa {
    /// What the Access-Accept said (`None`: judged by the secrets file). Boxed:
    /// sessions without RADIUS need not carry its 300-odd bytes.
    pub authorization: Option<Box<Authorization>>,
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
            total_octets: a.and_then(|a| a.total_limit),
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
            if update.total_limit.is_some() {
                limits.total_octets = update.total_limit;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A session holds its RADIUS authorization boxed: one without RADIUS (the
    /// secrets file, and every session of the 50,000-session benchmark) carries a
    /// pointer, not the Access-Accept's attributes (408 bytes in all before, 176 after).
    #[test]
    fn a_session_without_radius_carries_no_authorization_inline() {
        let size = std::mem::size_of::<SessionAaa>();
        assert!(size <= 192, "{size} bytes");
    }

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
        aaa.authorization = Some(Box::new(Authorization {
            interim_interval: Some(s(30)),
            idle_timeout: Some(s(9)),
            ..Authorization::default()
        }));
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
