//! Replay protection for dynamic authorization (RFC 5176 §3.5, RFC 5080 §2.2.2),
//! sans-IO.
//!
//! A Disconnect-Request or CoA-Request carries no nonce: its Request Authenticator is a
//! hash of its own content, so a captured request verifies for ever. Two checks make a
//! replay end nothing:
//! - Event-Timestamp (attribute 55) is required and must be within `window` of our
//!   clock, either way; a request without one, or older, is dropped;
//! - every request accepted is remembered for `window` by (client address,
//!   identifier, Request Authenticator) with the answer we sent: the same request
//!   again (a replay, or the client retransmitting because our answer was lost) gets
//!   that answer again and is not carried out a second time.
//!
//! The cache holds at most `capacity` requests. When it is full of requests still
//! within the window, new requests are dropped (never acted on unremembered: that
//! would let a replay through later); only configured clients with the secret can fill
//! it, and it drains as the window passes.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::packet::{Packet, attr};

/// Requests remembered at most.
pub const CAPACITY: usize = 4096;

/// Why a request that verified is not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no Event-Timestamp")]
    NoEventTimestamp,
    #[error("Event-Timestamp {skew} s away from our clock (window {window} s)")]
    StaleEventTimestamp { skew: i64, window: u64 },
    #[error("the duplicate cache is full ({CAPACITY} requests within the window)")]
    CacheFull,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// New: carry it out, then [`ReplayCache::answered`].
    Fresh,
    /// Seen within the window: send this answer again (`None`: still being
    /// carried out), do nothing else.
    Duplicate(Option<Vec<u8>>),
}

type Key = (IpAddr, u8, [u8; 16]);

/// The requests seen within the window.
#[derive(Debug)]
pub struct ReplayCache {
    window: Duration,
    require_timestamp: bool,
    capacity: usize,
    answers: HashMap<Key, Option<Vec<u8>>>,
    /// When each entry expires, oldest first.
    expiry: VecDeque<(Instant, Key)>,
}

impl ReplayCache {
    /// Remembers requests for `window`; Event-Timestamp is required (and checked
    /// against `window`) when `require_timestamp`.
    pub fn new(window: Duration, require_timestamp: bool) -> Self {
        Self::with_capacity(window, require_timestamp, CAPACITY)
    }

    fn with_capacity(window: Duration, require_timestamp: bool, capacity: usize) -> Self {
        Self {
            window,
            require_timestamp,
            capacity,
            answers: HashMap::new(),
            expiry: VecDeque::new(),
        }
    }

    /// Requests remembered now.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// Judges `packet` (already verified) from `from`, received at `now` when the
    /// wall clock said `wall`.
    pub fn admit(
        &mut self,
        from: IpAddr,
        packet: &Packet,
        wall: SystemTime,
        now: Instant,
    ) -> Result<Admission, Refused> {
        self.expire(now);
        let key = (from, packet.id, packet.authenticator);
        if let Some(answer) = self.answers.get(&key) {
            return Ok(Admission::Duplicate(answer.clone()));
        }
        if self.require_timestamp {
            let stamp = packet
                .get_u32(attr::EVENT_TIMESTAMP)
                .ok_or(Refused::NoEventTimestamp)?;
            let ours = wall
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let skew = ours as i64 - i64::from(stamp);
            if skew.unsigned_abs() > self.window.as_secs() {
                return Err(Refused::StaleEventTimestamp {
                    skew,
                    window: self.window.as_secs(),
                });
            }
        }
        if self.answers.len() >= self.capacity {
            return Err(Refused::CacheFull);
        }
        self.answers.insert(key, None);
        self.expiry.push_back((now + self.window, key));
        Ok(Admission::Fresh)
    }

    /// Records the answer sent to an admitted request.
    pub fn answered(&mut self, from: IpAddr, packet: &Packet, answer: Vec<u8>) {
        if let Some(slot) = self
            .answers
            .get_mut(&(from, packet.id, packet.authenticator))
        {
            *slot = Some(answer);
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, key)) = self.expiry.front().copied()
            && at <= now
        {
            self.expiry.pop_front();
            self.answers.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::packet::code;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const WINDOW: Duration = Duration::from_secs(300);

    fn disconnect(id: u8, stamp: Option<u64>, user: &str) -> Packet {
        let mut p = Packet::new(code::DISCONNECT_REQUEST, id, [0; 16]);
        p.push(attr::USER_NAME, user);
        if let Some(s) = stamp {
            p.push_u32(attr::EVENT_TIMESTAMP, s as u32);
        }
        // As received: the authenticator is what the client computed.
        Packet::parse(&p.encode(b"dae", None).unwrap()).unwrap()
    }

    fn unix(wall: SystemTime) -> u64 {
        wall.duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn a_replay_gets_the_first_answer_and_is_not_carried_out_again() {
        let (wall, now) = (SystemTime::now(), Instant::now());
        let mut cache = ReplayCache::new(WINDOW, true);
        let p = disconnect(1, Some(unix(wall)), "dave");
        assert_eq!(cache.admit(CLIENT, &p, wall, now), Ok(Admission::Fresh));
        assert_eq!(
            cache.admit(CLIENT, &p, wall, now),
            Ok(Admission::Duplicate(None)),
            "still being carried out"
        );
        cache.answered(CLIENT, &p, b"ack".to_vec());
        let later = Duration::from_secs(200);
        assert_eq!(
            cache.admit(CLIENT, &p, wall + later, now + later),
            Ok(Admission::Duplicate(Some(b"ack".to_vec())))
        );
        let other = IpAddr::from([127, 0, 0, 2]);
        assert_eq!(
            cache.admit(other, &p, wall, now),
            Ok(Admission::Fresh),
            "another client's request is another request"
        );
        // Once the window has passed the entry goes, and the timestamp refuses it.
        let after = WINDOW + Duration::from_secs(1);
        assert!(matches!(
            cache.admit(CLIENT, &p, wall + after, now + after),
            Err(Refused::StaleEventTimestamp {
                skew: 301,
                window: 300
            })
        ));
        assert!(cache.is_empty(), "expired entries are gone");
    }

    #[test]
    fn event_timestamp_is_required_within_the_window_either_way() {
        let (wall, now) = (SystemTime::now(), Instant::now());
        let mut cache = ReplayCache::new(WINDOW, true);
        assert_eq!(
            cache.admit(CLIENT, &disconnect(1, None, "a"), wall, now),
            Err(Refused::NoEventTimestamp)
        );
        let t = unix(wall);
        assert!(matches!(
            cache.admit(CLIENT, &disconnect(2, Some(t - 3600), "a"), wall, now),
            Err(Refused::StaleEventTimestamp { skew: 3600, .. })
        ));
        assert!(matches!(
            cache.admit(CLIENT, &disconnect(3, Some(t + 301), "a"), wall, now),
            Err(Refused::StaleEventTimestamp { skew: -301, .. })
        ));
        for (id, stamp) in [(4, t - 300), (5, t + 300), (6, t)] {
            assert_eq!(
                cache.admit(CLIENT, &disconnect(id, Some(stamp), "a"), wall, now),
                Ok(Admission::Fresh)
            );
        }
        let mut lax = ReplayCache::new(WINDOW, false);
        let p = disconnect(7, None, "a");
        assert_eq!(lax.admit(CLIENT, &p, wall, now), Ok(Admission::Fresh));
        assert_eq!(
            lax.admit(CLIENT, &p, wall, now),
            Ok(Admission::Duplicate(None)),
            "duplicates are caught without timestamps too"
        );
    }

    #[test]
    fn a_full_cache_refuses_until_the_window_drains_it() {
        let (wall, now) = (SystemTime::now(), Instant::now());
        let mut cache = ReplayCache::with_capacity(WINDOW, true, 3);
        let t = unix(wall);
        for id in 0..3 {
            let p = disconnect(id, Some(t), "a");
            assert_eq!(cache.admit(CLIENT, &p, wall, now), Ok(Admission::Fresh));
        }
        let fourth = disconnect(3, Some(t), "a");
        assert_eq!(
            cache.admit(CLIENT, &fourth, wall, now),
            Err(Refused::CacheFull)
        );
        assert_eq!(cache.len(), 3, "bounded");
        let later = Duration::from_secs(299);
        let p = disconnect(4, Some(t + 299), "a");
        assert_eq!(
            cache.admit(CLIENT, &p, wall + later, now + WINDOW),
            Ok(Admission::Fresh),
            "the first three expired"
        );
        assert_eq!(cache.len(), 1);
    }
}
