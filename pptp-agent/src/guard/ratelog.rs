//! Logging what repeats without flooding the log: a hostile peer can make the agent
//! refuse thousands of things a second, and one log line each would be its own
//! denial of service (disk, journald's rate limit hiding everything else).

use std::time::{Duration, Instant};

/// The interval the guards log at.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Says when an event may be logged: its first occurrence at once, then at most once
/// per interval, with how many occurred since the last line. Occurrences after the
/// last line are not logged until the next one comes (the counters have them).
#[derive(Debug, Clone)]
pub struct LogEvery {
    interval: Duration,
    next: Option<Instant>,
    since: u64,
}

impl LogEvery {
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            next: None,
            since: 0,
        }
    }

    /// One occurrence at `now`: `Some(n)` to log it now, `n` counting it and those
    /// not logged since the last line.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        self.since += 1;
        if self.next.is_some_and(|next| now < next) {
            return None;
        }
        self.next = Some(now + self.interval);
        Some(std::mem::take(&mut self.since))
    }
}

impl Default for LogEvery {
    fn default() -> Self {
        Self::new(INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_at_once_then_once_per_interval_with_a_count() {
        let t0 = Instant::now();
        let mut log = LogEvery::new(Duration::from_secs(10));
        assert_eq!(log.hit(t0), Some(1));
        for i in 1..1000 {
            assert_eq!(log.hit(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(log.hit(t0 + Duration::from_secs(10)), Some(1000));
        assert_eq!(log.hit(t0 + Duration::from_secs(11)), None);
        assert_eq!(log.hit(t0 + Duration::from_secs(60)), Some(2));
    }
}
