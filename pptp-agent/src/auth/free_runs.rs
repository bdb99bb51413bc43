//! The free addresses of a pool as runs of consecutive addresses, so that "the
//! lowest free address" is found in O(log n) however many are in use (a scan from
//! the range's first address through the in-use set cost O(n) per session: with
//! 50,000 sessions up, each new one walked 50,000 taken addresses).
//!
//! Used by [`super::pool::UserPool`] and `runtime::pool::RangePool`.

use std::collections::BTreeMap;

/// Free addresses (as `u32`) in runs `start..=end`, never overlapping nor adjacent.
#[derive(Debug, Default, Clone)]
pub struct FreeRuns {
    runs: BTreeMap<u32, u32>,
}

impl FreeRuns {
    /// Marks `first..=last` free (merging with the runs it touches).
    pub fn free_range(&mut self, first: u32, last: u32) {
        let (mut start, mut end) = (first, last);
        // Runs that overlap or touch [first, last]: they start at or before last + 1.
        let touching: Vec<(u32, u32)> = self
            .runs
            .range(..=last.saturating_add(1))
            .rev()
            .take_while(|(_, e)| e.saturating_add(1) >= first)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            self.runs.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.runs.insert(start, end);
    }

    /// Marks `addr` free.
    pub fn free(&mut self, addr: u32) {
        self.free_range(addr, addr);
    }

    /// Whether `addr` is free.
    pub fn is_free(&self, addr: u32) -> bool {
        self.runs
            .range(..=addr)
            .next_back()
            .is_some_and(|(_, e)| *e >= addr)
    }

    /// Marks `addr` taken; whether it was free.
    pub fn take(&mut self, addr: u32) -> bool {
        let Some((&s, &e)) = self.runs.range(..=addr).next_back() else {
            return false;
        };
        if e < addr {
            return false;
        }
        self.runs.remove(&s);
        if s < addr {
            self.runs.insert(s, addr - 1);
        }
        if addr < e {
            self.runs.insert(addr + 1, e);
        }
        true
    }

    /// The free addresses of `first..=last`, lowest first.
    pub fn iter_in(&self, first: u32, last: u32) -> impl Iterator<Item = u32> + '_ {
        let before = self
            .runs
            .range(..first)
            .next_back()
            .filter(|(_, e)| **e >= first);
        before
            .into_iter()
            .chain(self.runs.range(first..=last))
            .flat_map(move |(s, e)| (*s).max(first)..=(*e).min(last))
    }

    /// Runs held (a measure of fragmentation, for tests).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taking_and_freeing_keeps_runs_merged() {
        let mut f = FreeRuns::default();
        f.free_range(10, 19);
        assert!(f.take(10));
        assert!(!f.take(10));
        assert!(f.take(15));
        assert_eq!(
            f.iter_in(0, 100).collect::<Vec<_>>(),
            [11, 12, 13, 14, 16, 17, 18, 19]
        );
        assert_eq!(f.iter_in(14, 16).collect::<Vec<_>>(), [14, 16]);
        assert_eq!(f.runs(), 2);
        f.free(15);
        f.free(10);
        assert_eq!(f.runs(), 1);
        assert!(f.is_free(10) && f.is_free(19) && !f.is_free(20));
        f.free_range(20, 29);
        f.free_range(5, 12);
        assert_eq!(f.runs(), 1);
        assert_eq!(f.iter_in(0, 100).count(), 25);
    }

    #[test]
    fn the_lowest_free_address_is_found_without_walking_the_taken_ones() {
        // 131,072 addresses (a /15), 100,000 taken in order, then churn: the
        // lowest free address is always the one just released.
        let mut f = FreeRuns::default();
        f.free_range(0, 131_071);
        for a in 0..100_000 {
            assert_eq!(f.iter_in(0, 131_071).next(), Some(a));
            assert!(f.take(a));
        }
        for i in 0..100_000u32 {
            let a = (i * 7919) % 100_000;
            f.free(a);
            assert_eq!(f.iter_in(0, 131_071).next(), Some(a));
            assert!(f.take(a));
        }
        assert_eq!(f.runs(), 1);
        assert_eq!(f.iter_in(0, 131_071).next(), Some(100_000));
    }
}
