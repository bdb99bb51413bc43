//! One deadline per key: the timer set of every session the hub runs.
//!
//! Each session has at most one entry, its earliest deadline (PPP timers, the
//! accounting clock), replaced whenever the session is flushed and removed when it
//! ends. So the set never holds more entries than there are sessions, whatever the
//! traffic (a heap with an entry per flush grew by one entry per packet on the
//! agent's path and fired all its stale entries together), and every operation is
//! O(log n).

use std::{
    collections::{BTreeSet, HashMap},
    hash::Hash,
    time::Instant,
};

/// Deadlines by key, earliest first.
#[derive(Debug)]
pub struct Deadlines<K> {
    by_time: BTreeSet<(Instant, K)>,
    by_key: HashMap<K, Instant>,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Self {
            by_time: BTreeSet::new(),
            by_key: HashMap::new(),
        }
    }
}

impl<K: Copy + Ord + Hash> Deadlines<K> {
    /// Sets `key`'s deadline to `at` (`None`: it has none), replacing the one it had.
    pub fn set(&mut self, key: K, at: Option<Instant>) {
        if let Some(old) = self.by_key.remove(&key) {
            self.by_time.remove(&(old, key));
        }
        if let Some(at) = at {
            self.by_key.insert(key, at);
            self.by_time.insert((at, key));
        }
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Takes the key whose deadline is earliest, if it is at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        let (at, key) = *self.by_time.first()?;
        if at > now {
            return None;
        }
        self.by_time.pop_first();
        self.by_key.remove(&key);
        Some(key)
    }

    /// Entries held (at most one per key).
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_entry_per_key_whatever_the_updates() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        for i in 0..10_000u64 {
            d.set(1u32, Some(t0 + Duration::from_millis(i % 7)));
            d.set(2, Some(t0 + Duration::from_secs(60)));
        }
        assert_eq!(d.len(), 2);
        assert_eq!(d.next(), Some(t0 + Duration::from_millis(9_999 % 7)));
        d.set(1, None);
        assert_eq!(d.len(), 1);
        assert_eq!(d.next(), Some(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn due_keys_come_out_earliest_first() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.set(3u32, Some(t0 + Duration::from_secs(3)));
        d.set(1, Some(t0 + Duration::from_secs(1)));
        d.set(2, Some(t0 + Duration::from_secs(2)));
        let now = t0 + Duration::from_secs(2);
        assert_eq!(d.pop_due(now), Some(1));
        assert_eq!(d.pop_due(now), Some(2));
        assert_eq!(d.pop_due(now), None);
        assert_eq!(d.len(), 1);
        assert!(!d.is_empty());
    }
}
