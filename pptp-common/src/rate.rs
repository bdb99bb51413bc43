//! Rate limits in MikroTik's Mikrotik-Rate-Limit format, the one the configuration
//! (`rate = "10M/20M"`), RADIUS (vendor 14988, attribute 8) and CoA use:
//!
//! `rx-rate[/tx-rate] [rx-burst-rate[/tx-burst-rate] [rx-burst-threshold[/tx-burst-threshold]
//! [rx-burst-time[/tx-burst-time] [priority] [rx-rate-min[/tx-rate-min]]]]]`
//!
//! from the concentrator's side: rx is what the client sends (its upload), tx what
//! it receives. Rates are bits per second with an optional `k` (1,000) or `M`
//! (1,000,000), `G` accepted too; a missing tx part is the rx part; a burst rate
//! without thresholds uses the rates as thresholds; burst times are seconds (an `s`
//! may follow) and default to 1 s. A rate of 0 is no limit. Priority and the
//! minimum rates are accepted and ignored: a policer has no queue to prioritise or
//! guarantee in. [`Direction::limit`] compiles one direction for [`crate::police`].

use core::fmt;

use crate::police::{COST_SHIFT, DEPTH_NS, Limit, WINDOWS};

/// One direction of a rate limit, in bits per second and seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Direction {
    /// The rate; 0: none.
    pub rate: u64,
    /// The rate while bursting; at or below `rate`: no bursts.
    pub burst_rate: u64,
    /// Bursts are on while the average over `burst_time` is below this.
    pub burst_threshold: u64,
    /// The period the average is taken over, in seconds.
    pub burst_time: u32,
}

/// Both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// What the client sends (upload).
    pub rx: Direction,
    /// What the client receives (download).
    pub tx: Direction,
}

/// Why a rate limit did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateError {
    /// Nothing at all.
    Empty,
    /// A rate, threshold or time that is not a number with an allowed suffix.
    BadNumber,
    /// A priority outside 1..=8.
    BadPriority,
    /// More fields than the format has.
    TooManyFields,
}

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RateError::Empty => "empty rate limit",
            RateError::BadNumber => "a rate is not a number with an optional k, M or G",
            RateError::BadPriority => "the priority is not 1..8",
            RateError::TooManyFields => {
                "more fields than rx/tx rate, burst rate, threshold, time, priority, minimum rate"
            }
        })
    }
}

/// Largest rate accepted: 1 Tbit/s (the cost arithmetic is exact far beyond).
const MAX_RATE: u64 = 1_000_000_000_000;
/// Longest burst time accepted (MikroTik's queues take no more than this either).
const MAX_BURST_TIME: u64 = 3600;

impl RateLimit {
    /// The same limit both ways.
    pub const fn symmetric(rate: u64) -> Self {
        let d = Direction {
            rate,
            burst_rate: 0,
            burst_threshold: 0,
            burst_time: 0,
        };
        Self { rx: d, tx: d }
    }

    /// Whether either direction is limited.
    pub const fn is_set(&self) -> bool {
        self.rx.rate != 0 || self.tx.rate != 0
    }

    /// Parses the Mikrotik-Rate-Limit format (see the module documentation).
    pub fn parse(s: &str) -> Result<Self, RateError> {
        let mut fields = s.split_ascii_whitespace();
        let (rx_rate, tx_rate) = pair(fields.next().ok_or(RateError::Empty)?, rate)?;
        let burst = fields.next().map(|f| pair(f, rate)).transpose()?;
        let threshold = fields.next().map(|f| pair(f, rate)).transpose()?;
        let time = fields.next().map(|f| pair(f, seconds)).transpose()?;
        if let Some(priority) = fields.next() {
            match priority.parse::<u8>() {
                Ok(1..=8) => {}
                _ => return Err(RateError::BadPriority),
            }
        }
        if let Some(min) = fields.next() {
            pair(min, rate)?;
        }
        if fields.next().is_some() {
            return Err(RateError::TooManyFields);
        }
        let (rx_burst, tx_burst) = burst.unwrap_or((0, 0));
        let (rx_threshold, tx_threshold) = threshold.unwrap_or((rx_rate, tx_rate));
        let (rx_time, tx_time) = time.unwrap_or((1, 1));
        let direction = |rate, burst_rate, burst_threshold, burst_time: u64| Direction {
            rate,
            burst_rate,
            burst_threshold,
            burst_time: burst_time as u32,
        };
        Ok(Self {
            rx: direction(rx_rate, rx_burst, rx_threshold, rx_time),
            tx: direction(tx_rate, tx_burst, tx_threshold, tx_time),
        })
    }
}

/// `a/b`, or `a` for both.
fn pair(field: &str, parse: fn(&str) -> Result<u64, RateError>) -> Result<(u64, u64), RateError> {
    match field.split_once('/') {
        Some((a, b)) => Ok((parse(a)?, parse(b)?)),
        None => parse(field).map(|a| (a, a)),
    }
}

fn rate(s: &str) -> Result<u64, RateError> {
    let (digits, unit) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1_000),
        Some(b'M') => (&s[..s.len() - 1], 1_000_000),
        Some(b'G') => (&s[..s.len() - 1], 1_000_000_000),
        _ => (s, 1),
    };
    let n = number(digits)?
        .checked_mul(unit)
        .ok_or(RateError::BadNumber)?;
    if n > MAX_RATE {
        return Err(RateError::BadNumber);
    }
    Ok(n)
}

fn seconds(s: &str) -> Result<u64, RateError> {
    let n = number(s.strip_suffix('s').unwrap_or(s))?;
    if n > MAX_BURST_TIME {
        return Err(RateError::BadNumber);
    }
    Ok(n)
}

fn number(s: &str) -> Result<u64, RateError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RateError::BadNumber);
    }
    s.parse().map_err(|_| RateError::BadNumber)
}

impl Direction {
    /// Whether bursts are on at all.
    pub const fn bursts(&self) -> bool {
        self.rate != 0 && self.burst_rate > self.rate && self.burst_time != 0
    }

    /// The policer parameters for this direction.
    pub fn limit(&self) -> Limit {
        if self.rate == 0 {
            return Limit::default();
        }
        let cost = |rate: u64| ((8 * 1_000_000_000u64) << COST_SHIFT) / rate;
        let mut limit = Limit {
            rate_cost: cost(self.rate).max(1),
            depth_ns: DEPTH_NS,
            ..Limit::default()
        };
        if self.bursts() {
            let time = self.burst_time as u64;
            limit.burst_cost = cost(self.burst_rate).max(1);
            limit.window_ns = time * 1_000_000_000 / WINDOWS as u64;
            limit.threshold_bytes = self.burst_threshold / 8 * time;
        }
        limit
    }
}

/// A rate in MikroTik's notation: `M` or `k` when exact.
struct Bits(u64);

impl fmt::Display for Bits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n != 0 && n % 1_000_000 == 0 => write!(f, "{}M", n / 1_000_000),
            n if n != 0 && n % 1_000 == 0 => write!(f, "{}k", n / 1_000),
            n => write!(f, "{n}"),
        }
    }
}

impl fmt::Display for RateLimit {
    /// The Mikrotik-Rate-Limit form, as short as it says the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (rx, tx) = (&self.rx, &self.tx);
        write!(f, "{}/{}", Bits(rx.rate), Bits(tx.rate))?;
        if rx.bursts() || tx.bursts() {
            write!(
                f,
                " {}/{} {}/{} {}/{}",
                Bits(rx.burst_rate),
                Bits(tx.burst_rate),
                Bits(rx.burst_threshold),
                Bits(tx.burst_threshold),
                rx.burst_time,
                tx.burst_time
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    fn d(rate: u64, burst_rate: u64, burst_threshold: u64, burst_time: u32) -> Direction {
        Direction {
            rate,
            burst_rate,
            burst_threshold,
            burst_time,
        }
    }

    #[test]
    fn mikrotik_examples() {
        let p = |s| RateLimit::parse(s).unwrap();
        // The examples MikroTik's RADIUS documentation gives.
        assert_eq!(
            p("128k"),
            RateLimit {
                rx: d(128_000, 0, 128_000, 1),
                tx: d(128_000, 0, 128_000, 1)
            }
        );
        assert_eq!(
            p("64k/128M"),
            RateLimit {
                rx: d(64_000, 0, 64_000, 1),
                tx: d(128_000_000, 0, 128_000_000, 1)
            }
        );
        assert_eq!(
            p("64k 256k"),
            RateLimit {
                rx: d(64_000, 256_000, 64_000, 1),
                tx: d(64_000, 256_000, 64_000, 1)
            }
        );
        assert_eq!(
            p("64k/64k 256k/256k 128k/128k 10/10"),
            RateLimit {
                rx: d(64_000, 256_000, 128_000, 10),
                tx: d(64_000, 256_000, 128_000, 10)
            }
        );
        assert_eq!(p("10M/20M").tx.rate, 20_000_000);
        assert_eq!(
            p("1M/2M 4M/8M 1M/2M 16s/8s 8 512k/1M").tx,
            d(2_000_000, 8_000_000, 2_000_000, 8)
        );
        assert_eq!(p("  5M\t"), p("5M"));
    }

    #[test]
    fn bad_limits_are_refused() {
        for (s, e) in [
            ("", RateError::Empty),
            ("10X", RateError::BadNumber),
            ("1.5M", RateError::BadNumber),
            ("-1", RateError::BadNumber),
            ("10M/", RateError::BadNumber),
            ("2T", RateError::BadNumber),
            ("18446744073709551615M", RateError::BadNumber),
            ("1M 2M 1M 10 9", RateError::BadPriority),
            ("1M 2M 1M 10 1 1M 1", RateError::TooManyFields),
        ] {
            assert_eq!(RateLimit::parse(s), Err(e), "{s:?}");
        }
    }

    #[test]
    fn display_parses_back_to_the_same_limit() {
        for s in [
            "10M/20M",
            "64k/128k",
            "1M/2M 4M/8M 1M/2M 16/8",
            "0/1500",
            "1234/5k",
        ] {
            let r = RateLimit::parse(s).unwrap();
            let shown = r.to_string();
            assert_eq!(RateLimit::parse(&shown).unwrap(), r, "{s} shown as {shown}");
        }
        assert_eq!(RateLimit::parse("10M/20M").unwrap().to_string(), "10M/20M");
    }

    #[test]
    fn burst_limits_compile_to_windows_and_a_threshold() {
        let l = d(1_000_000, 2_000_000, 1_500_000, 16).limit();
        assert_eq!(l.window_ns, 1_000_000_000);
        assert_eq!(l.threshold_bytes, 3_000_000);
        assert_eq!(l.burst_cost * 2, l.rate_cost);
        assert_eq!(
            d(1_000_000, 500_000, 1, 16).limit().burst_cost,
            0,
            "a burst rate below the rate is none"
        );
        assert_eq!(
            d(0, 5_000_000, 1, 16).limit(),
            Limit::default(),
            "rate 0: no limit"
        );
    }
}
