//! What `pptp-agent load-test` reports, for people (`Display`) and programs
//! (JSON), and the arithmetic behind it: percentiles by nearest rank and set-up
//! rates over one-second buckets. The figures are those BNG Blaster gives for
//! PPPoE sessions: set-up rate per second (min, average, max), set-up time p50
//! and p99, time from IPCP up to the first forwarded packet, flaps, failures by
//! cause.

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LoadReport {
    pub attempted: u32,
    /// Control connections opened (one per session, or one per
    /// `calls_per_connection` incoming calls).
    pub connections: u32,
    pub established: u32,
    pub failed: u32,
    /// Failures by cause.
    pub failures: BTreeMap<String, u32>,
    /// Control connections that failed (to connect, or refused), by cause; their
    /// calls are counted in `failures` too.
    pub connection_failures: BTreeMap<String, u32>,
    /// From the first connect to the last session up.
    pub setup_seconds: f64,
    /// `established / setup_seconds`.
    pub sessions_per_second: f64,
    /// Sessions that came up in each whole second of the run, from its start to
    /// the last set-up: the fewest, the average (`sessions_per_second`) and the
    /// most (see [`SetupRate`]).
    pub setup_rate_min: f64,
    pub setup_rate_avg: f64,
    pub setup_rate_max: f64,
    /// Per-session set-up time (TCP connect, or the call's order on a shared
    /// connection, to IPCP up), milliseconds.
    pub setup_ms_p50: f64,
    pub setup_ms_p99: f64,
    pub setup_ms_max: f64,
    /// From IPCP up to the first echo reply through the session's tunnel,
    /// milliseconds (an echo request goes out as soon as the session is up, and
    /// again each second while unanswered, up to [`ECHO_ROUNDS`](super::ECHO_ROUNDS)).
    pub first_packet_ms_p50: f64,
    pub first_packet_ms_p99: f64,
    /// Sessions answered through their own call.
    pub echo_answered: u32,
    /// Up sessions whose echo requests all went unanswered.
    pub echo_unanswered: u32,
    /// Echo replies that arrived through another session's call than the one they
    /// are addressed to, or with another session's identifier.
    pub echo_misdelivered: u32,
    /// With `--recheck`: sessions answered again after the hold, and those that
    /// were not.
    pub recheck_answered: Option<u32>,
    pub recheck_unanswered: Option<u32>,
    /// Sessions that went down after coming up and before we hung up.
    pub flaps: u32,
    /// Sessions that ended within the hang-up time after we hung up.
    pub hung_up: u32,
    /// From our hang-up to the last session's end, seconds.
    pub hangup_seconds: f64,
}

/// The `p`-th percentile (0 < p <= 100) of `sorted` by nearest rank: the smallest
/// value with at least p % of the values at or below it. `None` when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Set-ups per second over a run: `min` and `max` over its whole one-second
/// buckets (counted from the run's start; the last bucket, cut short by the last
/// set-up, only when it is the only one), `avg` over the whole time to the last
/// set-up.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SetupRate {
    pub min: f64,
    pub avg: f64,
    pub max: f64,
}

impl SetupRate {
    /// From the times, since the run's start, at which sessions came up (any order).
    pub fn of(ups: &[Duration]) -> Self {
        let Some(last) = ups.iter().max() else {
            return Self::default();
        };
        let buckets = last.as_secs() as usize + 1;
        let mut counts = vec![0u32; buckets];
        for up in ups {
            counts[up.as_secs() as usize] += 1;
        }
        let whole = if buckets > 1 {
            &counts[..buckets - 1]
        } else {
            &counts[..]
        };
        let avg = if last.is_zero() {
            ups.len() as f64
        } else {
            ups.len() as f64 / last.as_secs_f64()
        };
        Self {
            min: f64::from(*whole.iter().min().unwrap_or(&0)),
            avg,
            max: f64::from(*whole.iter().max().unwrap_or(&0)),
        }
    }
}

/// Milliseconds of an optional duration (0 for none).
pub fn ms(d: Option<Duration>) -> f64 {
    d.map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "sessions: {} attempted over {} control connections, {} established, {} failed, {} flapped",
            self.attempted, self.connections, self.established, self.failed, self.flaps
        )?;
        for (reason, n) in &self.failures {
            writeln!(f, "  {n} failed: {reason}")?;
        }
        for (reason, n) in &self.connection_failures {
            writeln!(f, "  {n} control connections failed: {reason}")?;
        }
        writeln!(
            f,
            "setup: {:.1} s for all; rate per second min {:.0}, avg {:.0}, max {:.0}; per session p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            self.setup_seconds,
            self.setup_rate_min,
            self.setup_rate_avg,
            self.setup_rate_max,
            self.setup_ms_p50,
            self.setup_ms_p99,
            self.setup_ms_max
        )?;
        writeln!(
            f,
            "traffic: {} sessions answered an echo through their own call, {} did not; {} replies misdelivered; IPCP up to first reply p50 {:.0} ms, p99 {:.0} ms",
            self.echo_answered,
            self.echo_unanswered,
            self.echo_misdelivered,
            self.first_packet_ms_p50,
            self.first_packet_ms_p99
        )?;
        if let (Some(answered), Some(unanswered)) = (self.recheck_answered, self.recheck_unanswered)
        {
            writeln!(
                f,
                "after the hold: {answered} sessions answered an echo again, {unanswered} did not"
            )?;
        }
        write!(
            f,
            "hang-up: {} sessions ended in {:.1} s",
            self.hung_up, self.hangup_seconds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_list(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let hundred: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&hundred, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&hundred, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(
            percentile(&hundred, 100.0),
            Some(Duration::from_millis(100))
        );
        // Ten values: p99 is the largest, p50 the fifth.
        let ten = ms_list(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(percentile(&ten, 99.0), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&ten, 50.0), Some(Duration::from_millis(5)));
        assert_eq!(
            percentile(&ms_list(&[7]), 1.0),
            Some(Duration::from_millis(7))
        );
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn setup_rate_over_whole_seconds() {
        // Second 0: 3 up, second 1: 1, second 2: 5, then 2 in the cut-short last one.
        let ups = ms_list(&[
            100, 500, 900, 1500, 2000, 2100, 2200, 2300, 2999, 3100, 3400,
        ]);
        let rate = SetupRate::of(&ups);
        assert_eq!((rate.min, rate.max), (1.0, 5.0));
        assert!((rate.avg - 11.0 / 3.4).abs() < 1e-9, "{rate:?}");
        // Order does not matter.
        let mut reversed = ups.clone();
        reversed.reverse();
        assert_eq!(SetupRate::of(&reversed), rate);
    }

    #[test]
    fn a_second_without_set_ups_is_the_minimum() {
        let rate = SetupRate::of(&ms_list(&[200, 300, 2500, 3100]));
        assert_eq!((rate.min, rate.max), (0.0, 2.0));
    }

    #[test]
    fn a_run_within_one_second_counts_that_second() {
        let rate = SetupRate::of(&ms_list(&[100, 200, 400]));
        assert_eq!((rate.min, rate.max), (3.0, 3.0));
        assert!((rate.avg - 3.0 / 0.4).abs() < 1e-9);
        assert_eq!(SetupRate::of(&[]), SetupRate::default());
    }
}
