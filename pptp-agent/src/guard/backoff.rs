//! Backing off repeated failed logins, per source address and per user name.
//!
//! [`Backoff`] is the sans-IO table: `failed_logins` failures of one key within
//! `login_backoff` back it off for `login_backoff`; each further back-off (failures
//! going on once it ends) doubles, up to [`LOGIN_BACKOFF_DOUBLINGS`] times; a key
//! without failures for `login_backoff` after its back-off ends starts again from the
//! first. While a key is backed off, its logins are refused without being judged
//! (and those refusals do not count as failures, so a back-off ends on time).
//! [`LoginGuard`] holds both tables for the whole concentrator: control connections
//! record failures and refuse calls from a backed-off address; credential checks
//! (the secrets file, RADIUS) refuse a backed-off user name or address.
//!
//! Each table holds at most [`CAPACITY`] keys. When it is full, keys neither backed
//! off nor failing recently are dropped; if every key is backed off, failures of new
//! keys are not tracked (counted all the same): a peer cycling user names cannot grow
//! memory, only fill the table with names it has backed off itself.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{
    limits::{LOGIN_BACKOFF_DOUBLINGS, LiveLimits},
    ratelog::LogEvery,
    stats::GuardStats,
};
use crate::escape::Escaped;

/// Keys per table at most.
pub const CAPACITY: usize = 4096;

/// What a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Counted; no back-off yet.
    Counted,
    /// The key is now backed off for this long.
    BackedOff(Duration),
    /// The key was already backed off (a refused login).
    WhileBackedOff,
    /// The table is full of back-offs in force: not tracked.
    Untracked,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    since: Instant,
    until: Option<Instant>,
    level: u32,
}

/// Failures and back-offs of keys of one kind.
#[derive(Debug)]
pub struct Backoff<K> {
    entries: HashMap<K, Entry>,
    capacity: usize,
}

impl<K> Default for Backoff<K> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            capacity: CAPACITY,
        }
    }
}

impl<K: Hash + Eq + Clone> Backoff<K> {
    /// When `key`'s back-off ends, if it is backed off at `now`.
    pub fn until(&self, key: &K, now: Instant) -> Option<Instant> {
        self.entries
            .get(key)
            .and_then(|e| e.until)
            .filter(|until| now < *until)
    }

    /// Records a failed login of `key`; `threshold` failures within `base` back it off
    /// for `base` (doubled per back-off in a row).
    pub fn failure(&mut self, key: &K, now: Instant, threshold: u32, base: Duration) -> Failure {
        if !self.entries.contains_key(key) && !self.make_room(now, base) {
            return Failure::Untracked;
        }
        let e = self.entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            since: now,
            until: None,
            level: 0,
        });
        if let Some(until) = e.until {
            if now < until {
                return Failure::WhileBackedOff;
            }
            if now >= until + base {
                e.level = 0;
                e.until = None;
            }
        }
        if now.duration_since(e.since) > base {
            e.failures = 0;
            e.since = now;
        }
        e.failures += 1;
        if e.failures < threshold {
            return Failure::Counted;
        }
        let length = base * 2u32.pow(e.level.min(LOGIN_BACKOFF_DOUBLINGS));
        e.until = Some(now + length);
        e.level += 1;
        e.failures = 0;
        e.since = now;
        Failure::BackedOff(length)
    }

    /// A successful login of `key`: its failures are forgotten.
    pub fn success(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a new key fits, after dropping keys that no longer matter.
    fn make_room(&mut self, now: Instant, base: Duration) -> bool {
        if self.entries.len() < self.capacity {
            return true;
        }
        self.entries.retain(|_, e| {
            e.until.is_some_and(|until| now < until + base) || now.duration_since(e.since) <= base
        });
        if self.entries.len() < self.capacity {
            return true;
        }
        // Keep back-offs in force; drop the keys that are only counting failures.
        self.entries
            .retain(|_, e| e.until.is_some_and(|until| now < until));
        self.entries.len() < self.capacity
    }
}

struct Tables {
    sources: Backoff<IpAddr>,
    users: Backoff<String>,
    started: LogEvery,
    refused: LogEvery,
}

/// The concentrator's login back-off (cheap to clone; clones share).
#[derive(Clone)]
pub struct LoginGuard {
    tables: Arc<Mutex<Tables>>,
    limits: LiveLimits,
    stats: Arc<GuardStats>,
}

impl LoginGuard {
    /// Back-offs by the `failed_logins` and `login_backoff` of `limits` (read at each
    /// failure: SIGHUP changes them).
    pub fn new(limits: LiveLimits, stats: Arc<GuardStats>) -> Self {
        Self {
            tables: Arc::new(Mutex::new(Tables {
                sources: Backoff::default(),
                users: Backoff::default(),
                started: LogEvery::default(),
                refused: LogEvery::default(),
            })),
            limits,
            stats,
        }
    }

    /// Whether calls from `source` are refused now (counted and logged when so).
    pub fn refuses_calls_from(&self, source: IpAddr, now: Instant) -> bool {
        let mut t = self.tables.lock().expect("login back-off");
        let Some(until) = t.sources.until(&source, now) else {
            return false;
        };
        GuardStats::count(&self.stats.calls_source_backoff);
        if let Some(count) = t.refused.hit(now) {
            tracing::warn!(%source, remaining = ?until - now, count, "refused: backing off after failed logins (count: refusals since the last such line)");
        }
        true
    }

    /// Whether a login as `user` from `source` is refused now without being judged
    /// (counted and logged when so).
    pub fn refuses_login(&self, user: &[u8], source: IpAddr, now: Instant) -> bool {
        let mut t = self.tables.lock().expect("login back-off");
        let name = String::from_utf8_lossy(user).into_owned();
        let Some(until) = t.users.until(&name, now).or(t.sources.until(&source, now)) else {
            return false;
        };
        GuardStats::count(&self.stats.logins_user_backoff);
        if let Some(count) = t.refused.hit(now) {
            tracing::warn!(user = %Escaped(user), %source, remaining = ?until - now, count, "login refused: backing off after failed logins (count: refusals since the last such line)");
        }
        true
    }

    /// A login as `user` from `source` failed.
    pub fn failed(&self, user: &str, source: IpAddr, now: Instant) {
        let limits = self.limits.get();
        let Some(threshold) = limits.failed_logins else {
            return;
        };
        let base = limits.login_backoff;
        let mut t = self.tables.lock().expect("login back-off");
        let by_source = t.sources.failure(&source, now, threshold, base);
        let by_user = t.users.failure(&user.to_owned(), now, threshold, base);
        for (what, failure) in [("source address", by_source), ("user name", by_user)] {
            if let Failure::BackedOff(length) = failure {
                GuardStats::count(&self.stats.login_backoffs);
                if let Some(count) = t.started.hit(now) {
                    tracing::warn!(%source, user = %Escaped::str(user), backs_off = what, ?length, count, "too many failed logins: backing off (count: back-offs since the last such line)");
                }
            }
        }
    }

    /// A session of `source` came up: the address's failures are forgotten (the
    /// user's are not: a valid login from the same address must not clear a guess
    /// at another account).
    pub fn succeeded(&self, source: IpAddr) {
        self.tables
            .lock()
            .expect("login back-off")
            .sources
            .success(&source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(60);

    #[test]
    fn five_failures_back_off_and_back_offs_double_while_failures_go_on() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        let key = "mallory".to_owned();
        for i in 0..4 {
            assert_eq!(
                b.failure(&key, t0 + Duration::from_secs(i), 5, BASE),
                Failure::Counted
            );
        }
        assert_eq!(b.until(&key, t0), None);
        let t = t0 + Duration::from_secs(4);
        assert_eq!(b.failure(&key, t, 5, BASE), Failure::BackedOff(BASE));
        assert_eq!(b.until(&key, t), Some(t + BASE));
        assert_eq!(
            b.failure(&key, t + Duration::from_secs(1), 5, BASE),
            Failure::WhileBackedOff,
            "refusals during the back-off do not count"
        );
        // Failures go on right after it ends: the next back-off doubles, up to 16x.
        let mut at = t + BASE;
        let mut lengths = Vec::new();
        for _ in 0..6 {
            let mut last = Failure::Counted;
            for _ in 0..5 {
                last = b.failure(&key, at, 5, BASE);
            }
            let Failure::BackedOff(length) = last else {
                panic!("{last:?}")
            };
            lengths.push(length.as_secs());
            at += length;
        }
        assert_eq!(lengths, [120, 240, 480, 960, 960, 960]);
        // Quiet for a back-off's length after the last one: forgiven.
        let later = at + BASE;
        for _ in 0..4 {
            b.failure(&key, later, 5, BASE);
        }
        assert_eq!(b.failure(&key, later, 5, BASE), Failure::BackedOff(BASE));
    }

    #[test]
    fn failures_spread_wider_than_the_window_never_back_off_and_success_forgets() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        for i in 0..20u64 {
            assert_eq!(
                b.failure(&1u8, t0 + BASE * 2 * i as u32 / 5, 5, BASE),
                Failure::Counted,
                "failure {i}"
            );
        }
        for _ in 0..4 {
            b.failure(&2u8, t0, 5, BASE);
        }
        b.success(&2u8);
        assert_eq!(b.failure(&2u8, t0, 5, BASE), Failure::Counted);
    }

    #[test]
    fn a_full_table_drops_what_no_longer_matters_and_never_grows() {
        let t0 = Instant::now();
        let mut b = Backoff {
            entries: HashMap::new(),
            capacity: 3,
        };
        for k in 0..3u32 {
            b.failure(&k, t0, 1, BASE);
        }
        assert_eq!(
            b.failure(&9, t0, 1, BASE),
            Failure::Untracked,
            "full of back-offs in force"
        );
        assert_eq!(b.len(), 3);
        let later = t0 + BASE * 3;
        assert_eq!(b.failure(&9, later, 1, BASE), Failure::BackedOff(BASE));
        assert_eq!(b.len(), 1, "the old back-offs were dropped");
        let mut counting = Backoff {
            entries: HashMap::new(),
            capacity: 2,
        };
        counting.failure(&1u32, t0, 1, BASE);
        counting.failure(&2u32, t0, 5, BASE);
        assert_eq!(
            counting.failure(&3u32, t0, 5, BASE),
            Failure::Counted,
            "a key only counting failures makes room"
        );
        assert!(counting.until(&1, t0).is_some(), "the back-off stays");
    }

    #[test]
    fn the_guard_refuses_backed_off_users_and_addresses_and_counts() {
        let stats = Arc::new(GuardStats::default());
        let limits = crate::guard::limits::Limits {
            failed_logins: Some(2),
            ..Default::default()
        };
        let guard = LoginGuard::new(LiveLimits::new(limits), stats.clone());
        let (a, b) = (
            IpAddr::from([198, 51, 100, 10]),
            IpAddr::from([198, 51, 100, 11]),
        );
        let now = Instant::now();
        guard.failed("bob", a, now);
        assert!(!guard.refuses_login(b"bob", b, now));
        guard.failed("bob", b, now);
        assert!(guard.refuses_login(b"bob", b, now), "bob is backed off");
        assert!(!guard.refuses_calls_from(b, now), "b failed once only");
        guard.failed("carol", a, now);
        assert!(guard.refuses_calls_from(a, now), "a failed twice");
        assert!(guard.refuses_login(b"dave", a, now), "so are its logins");
        guard.succeeded(a);
        assert!(!guard.refuses_calls_from(a, now));
        let counted =
            |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(counted(&stats.login_backoffs), 2);
        assert_eq!(counted(&stats.logins_user_backoff), 2);
        assert_eq!(counted(&stats.calls_source_backoff), 1);
    }
}
