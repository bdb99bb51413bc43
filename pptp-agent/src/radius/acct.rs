//! Accounting (RFC 2866) and the per-session limits RADIUS sets.
//!
//! [`Record`] is one Accounting-Request (Start, Interim-Update or Stop) with the
//! session's time and the data plane's octet and packet counters (64-bit, split into
//! Gigawords). [`SessionClock`] is the sans-IO timer of one session: it says when an
//! Interim-Update is due and when Session-Timeout or Idle-Timeout end the session;
//! CoA updates its limits.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::{
    auth::Nas,
    packet::{Packet, PacketError, attr, code},
};

/// Acct-Status-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Start = 1,
    Stop = 2,
    InterimUpdate = 3,
}

/// Acct-Terminate-Cause (RFC 2866 §5.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminateCause {
    UserRequest = 1,
    LostCarrier = 2,
    LostService = 3,
    IdleTimeout = 4,
    SessionTimeout = 5,
    AdminReset = 6,
    AdminReboot = 7,
    NasError = 9,
    NasRequest = 10,
}

/// Octets and packets in both directions, as the data plane counted them
/// ("input" is from the client, as RFC 2866 counts it at the NAS port).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub input_octets: u64,
    pub input_packets: u64,
    pub output_octets: u64,
    pub output_packets: u64,
}

/// One Accounting-Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub status: Status,
    pub session_id: String,
    pub user: String,
    pub address: Option<Ipv4Addr>,
    pub calling_station: Ipv4Addr,
    pub port: u32,
    pub class: Vec<Vec<u8>>,
    pub session_time: Duration,
    pub counters: Counters,
    pub cause: Option<TerminateCause>,
    /// Whether RADIUS authenticated the session (Acct-Authentic RADIUS or Local).
    pub radius_authenticated: bool,
}

impl Record {
    /// The request for one server.
    pub fn encode(&self, id: u8, nas: &Nas, secret: &[u8]) -> Result<Vec<u8>, PacketError> {
        let mut p = request(id, self.status as u32, &self.session_id);
        p.push(attr::USER_NAME, self.user.as_bytes());
        p.push_u32(
            attr::ACCT_AUTHENTIC,
            if self.radius_authenticated { 1 } else { 2 },
        );
        p.push_u32(attr::NAS_PORT, self.port);
        p.push_u32(attr::NAS_PORT_TYPE, 5);
        p.push_u32(attr::SERVICE_TYPE, 2);
        p.push_u32(attr::FRAMED_PROTOCOL, 1);
        p.push(attr::CALLING_STATION_ID, self.calling_station.to_string());
        if let Some(a) = self.address {
            p.push_u32(attr::FRAMED_IP_ADDRESS, a.into());
        }
        for c in &self.class {
            p.push(attr::CLASS, c.clone());
        }
        if self.status != Status::Start {
            let c = &self.counters;
            let low = |v: u64| v as u32;
            let high = |v: u64| (v >> 32) as u32;
            p.push_u32(attr::ACCT_SESSION_TIME, self.session_time.as_secs() as u32);
            p.push_u32(attr::ACCT_INPUT_OCTETS, low(c.input_octets));
            p.push_u32(attr::ACCT_INPUT_GIGAWORDS, high(c.input_octets));
            p.push_u32(attr::ACCT_OUTPUT_OCTETS, low(c.output_octets));
            p.push_u32(attr::ACCT_OUTPUT_GIGAWORDS, high(c.output_octets));
            p.push_u32(attr::ACCT_INPUT_PACKETS, low(c.input_packets));
            p.push_u32(attr::ACCT_OUTPUT_PACKETS, low(c.output_packets));
        }
        if let Some(cause) = self.cause {
            p.push_u32(attr::ACCT_TERMINATE_CAUSE, cause as u32);
        }
        seal(p, nas, secret)
    }
}

/// An Accounting-Request with its Acct-Status-Type and Acct-Session-Id, the
/// attributes every one starts with (a session's, or the NAS's own).
pub(super) fn request(id: u8, status: u32, session_id: &str) -> Packet {
    let mut p = Packet::new(code::ACCOUNTING_REQUEST, id, [0; 16]);
    p.push_u32(attr::ACCT_STATUS_TYPE, status);
    p.push(attr::ACCT_SESSION_ID, session_id.as_bytes());
    p
}

/// Ends an Accounting-Request as every one ends: the time it is sent
/// (Event-Timestamp, Acct-Delay-Time 0), the NAS's identity; encoded with `secret`.
pub(super) fn seal(mut p: Packet, nas: &Nas, secret: &[u8]) -> Result<Vec<u8>, PacketError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    p.push_u32(attr::EVENT_TIMESTAMP, now.as_secs() as u32);
    p.push_u32(attr::ACCT_DELAY_TIME, 0);
    nas.add_to(&mut p);
    p.encode(secret, None)
}

/// The limits one session lives by (Access-Accept, updated by CoA).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub session_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    /// Interim-Update interval; `None`: no interim updates.
    pub interim: Option<Duration>,
    /// Octets both ways after which the session ends (Mikrotik-Total-Limit).
    pub total_octets: Option<u64>,
}

/// What a session's clock asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send an Interim-Update.
    Interim,
    /// End the session with this cause.
    Terminate(TerminateCause),
}

/// One session's accounting and limit timer.
#[derive(Debug, Clone)]
pub struct SessionClock {
    started: Instant,
    limits: Limits,
    next_interim: Option<Instant>,
    /// When traffic was last seen to move, and the packet count then.
    last_activity: Instant,
    last_packets: u64,
    next_idle_check: Option<Instant>,
    next_quota_check: Option<Instant>,
    /// A timeout ended the session: nothing is due any more.
    ended: bool,
}

/// Idle-Timeout is checked this many times per timeout (so the session ends at
/// most a tenth of the timeout late).
const IDLE_CHECKS: u32 = 10;

/// How often a session with a quota has its octets counted (the XDP counters are
/// read then): it ends at most this late, after what it sent in that time.
pub const QUOTA_CHECK: Duration = Duration::from_secs(1);

impl SessionClock {
    /// A clock for a session that came up at `now`.
    pub fn new(now: Instant, limits: Limits) -> Self {
        SessionClock {
            started: now,
            limits,
            next_interim: limits.interim.map(|i| now + i),
            last_activity: now,
            last_packets: 0,
            next_idle_check: limits.idle_timeout.map(|t| now + t / IDLE_CHECKS),
            next_quota_check: limits.total_octets.map(|_| now + QUOTA_CHECK),
            ended: false,
        }
    }

    /// The session's age.
    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    /// New limits (CoA): timeouts count from the session's start and last activity.
    pub fn update(&mut self, now: Instant, limits: Limits) {
        if limits.interim != self.limits.interim {
            self.next_interim = limits.interim.map(|i| now + i);
        }
        self.limits = limits;
        self.next_idle_check = limits.idle_timeout.map(|t| now + t / IDLE_CHECKS);
        // At once: a CoA may set a quota the session is already over.
        self.next_quota_check = limits.total_octets.map(|_| now);
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// When [`SessionClock::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let session = self.limits.session_timeout.map(|t| self.started + t);
        [
            session,
            self.next_idle_check,
            self.next_interim,
            self.next_quota_check,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// What is due at `now`, given the session's packet and octet counts (both
    /// directions). A [`Due::Terminate`] is said once; the clock is then stopped.
    pub fn handle_timeout(&mut self, now: Instant, packets: u64, octets: u64) -> Option<Due> {
        if self.ended {
            return None;
        }
        let due = self.due(now, packets, octets);
        self.ended = matches!(due, Some(Due::Terminate(_)));
        due
    }

    fn due(&mut self, now: Instant, packets: u64, octets: u64) -> Option<Due> {
        if packets != self.last_packets {
            self.last_packets = packets;
            self.last_activity = now;
        }
        if let Some(quota) = self.limits.total_octets {
            // RFC 2866 has no cause for a quota: Session-Timeout is the limit
            // RADIUS gave the session running out, and what CoovaChilli reports
            // for its octet limits, so billing that knows it needs nothing new.
            if octets >= quota {
                return Some(Due::Terminate(TerminateCause::SessionTimeout));
            }
            if self.next_quota_check.is_some_and(|at| now >= at) {
                self.next_quota_check = Some(now + QUOTA_CHECK);
            }
        }
        if self
            .limits
            .session_timeout
            .is_some_and(|t| now >= self.started + t)
        {
            return Some(Due::Terminate(TerminateCause::SessionTimeout));
        }
        if let Some(t) = self.limits.idle_timeout {
            if now >= self.last_activity + t {
                return Some(Due::Terminate(TerminateCause::IdleTimeout));
            }
            if self.next_idle_check.is_some_and(|at| now >= at) {
                self.next_idle_check = Some((now + t / IDLE_CHECKS).min(self.last_activity + t));
            }
        }
        match (self.next_interim, self.limits.interim) {
            (Some(at), Some(interval)) if now >= at => {
                self.next_interim = Some(now + interval);
                Some(Due::Interim)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: Status) -> Record {
        Record {
            status,
            session_id: "0000000100000002".into(),
            user: "alice".into(),
            address: Some(Ipv4Addr::new(192, 0, 2, 10)),
            calling_station: Ipv4Addr::new(198, 51, 100, 2),
            port: 7,
            class: vec![b"gold".to_vec()],
            session_time: Duration::from_secs(61),
            counters: Counters {
                input_octets: (5 << 32) + 100,
                input_packets: 10,
                output_octets: 200,
                output_packets: 20,
            },
            cause: (status == Status::Stop).then_some(TerminateCause::IdleTimeout),
            radius_authenticated: true,
        }
    }

    #[test]
    fn records_carry_counters_with_gigawords_and_verify() {
        let nas = Nas {
            identifier: Some("nas".into()),
            ip: None,
        };
        let bytes = record(Status::Stop).encode(3, &nas, b"s").unwrap();
        let p = Packet::verify_request(&bytes, b"s", false).unwrap();
        assert_eq!(p.get_u32(attr::ACCT_STATUS_TYPE), Some(2));
        assert_eq!(p.get_u32(attr::ACCT_INPUT_OCTETS), Some(100));
        assert_eq!(p.get_u32(attr::ACCT_INPUT_GIGAWORDS), Some(5));
        assert_eq!(p.get_u32(attr::ACCT_OUTPUT_PACKETS), Some(20));
        assert_eq!(p.get_u32(attr::ACCT_SESSION_TIME), Some(61));
        assert_eq!(p.get_u32(attr::ACCT_TERMINATE_CAUSE), Some(4));
        assert_eq!(p.get(attr::CLASS), Some(&b"gold"[..]));
        let start = Packet::parse(&record(Status::Start).encode(4, &nas, b"s").unwrap()).unwrap();
        assert_eq!(
            start.get(attr::ACCT_INPUT_OCTETS),
            None,
            "no counters in a Start"
        );
    }

    #[test]
    fn interim_updates_and_session_timeout() {
        let t0 = Instant::now();
        let s = |n| Duration::from_secs(n);
        let mut c = SessionClock::new(
            t0,
            Limits {
                session_timeout: Some(s(100)),
                idle_timeout: None,
                interim: Some(s(30)),
                total_octets: None,
            },
        );
        assert_eq!(c.poll_timeout(), Some(t0 + s(30)));
        assert_eq!(c.handle_timeout(t0 + s(29), 1, 0), None);
        assert_eq!(c.handle_timeout(t0 + s(30), 1, 0), Some(Due::Interim));
        assert_eq!(c.poll_timeout(), Some(t0 + s(60)));
        // CoA: a longer timeout and no more interim updates.
        c.update(
            t0 + s(50),
            Limits {
                session_timeout: Some(s(200)),
                idle_timeout: None,
                interim: None,
                total_octets: None,
            },
        );
        assert_eq!(c.poll_timeout(), Some(t0 + s(200)));
        assert_eq!(c.handle_timeout(t0 + s(150), 1, 0), None);
        assert_eq!(
            c.handle_timeout(t0 + s(200), 1, 0),
            Some(Due::Terminate(TerminateCause::SessionTimeout))
        );
        assert_eq!(
            (c.handle_timeout(t0 + s(201), 1, 0), c.poll_timeout()),
            (None, None),
            "said once, then the clock stops"
        );
    }

    #[test]
    fn idle_timeout_counts_from_the_last_traffic() {
        let t0 = Instant::now();
        let s = |n| Duration::from_secs(n);
        let mut c = SessionClock::new(
            t0,
            Limits {
                session_timeout: None,
                idle_timeout: Some(s(100)),
                interim: None,
                total_octets: None,
            },
        );
        let mut now = t0;
        let mut packets = 0;
        // Traffic for 300 s keeps it up.
        while now < t0 + s(300) {
            now = c.poll_timeout().unwrap();
            packets += 1;
            assert_eq!(c.handle_timeout(now, packets, 0), None);
        }
        let last = now;
        // Then silence: it ends between 100 and 110 s later.
        let end = loop {
            now = c.poll_timeout().unwrap();
            if let Some(d) = c.handle_timeout(now, packets, 0) {
                assert_eq!(d, Due::Terminate(TerminateCause::IdleTimeout));
                break now;
            }
        };
        assert!(
            end >= last + s(100) && end <= last + s(110),
            "{:?}",
            end - last
        );
    }

    #[test]
    fn a_quota_is_checked_every_second_and_ends_the_session() {
        let t0 = Instant::now();
        let s = |n| Duration::from_secs(n);
        let quota = Limits {
            total_octets: Some(10_000),
            ..Limits::default()
        };
        let mut c = SessionClock::new(t0, quota);
        assert_eq!(c.poll_timeout(), Some(t0 + QUOTA_CHECK));
        assert_eq!(c.handle_timeout(t0 + s(1), 10, 9_999), None);
        assert_eq!(c.poll_timeout(), Some(t0 + s(2)));
        assert_eq!(
            c.handle_timeout(t0 + s(2), 11, 10_000),
            Some(Due::Terminate(TerminateCause::SessionTimeout))
        );
        assert_eq!(c.poll_timeout(), None);

        // A CoA that sets a quota below what the session used: checked at once.
        let mut c = SessionClock::new(t0, Limits::default());
        assert_eq!(c.poll_timeout(), None, "no quota, nothing to poll");
        c.update(t0 + s(5), quota);
        assert_eq!(c.poll_timeout(), Some(t0 + s(5)));
        assert_eq!(
            c.handle_timeout(t0 + s(5), 1, 50_000),
            Some(Due::Terminate(TerminateCause::SessionTimeout))
        );
    }
}
