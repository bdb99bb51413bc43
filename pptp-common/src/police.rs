//! The per-session policer: one token bucket per session and direction, with
//! MikroTik's burst rule on top, as one pure function ([`police`]) that the BPF
//! programs and the agent's engine both run.
//!
//! The bucket is kept as GCRA (a virtual scheduling clock, the "theoretical arrival
//! time" `tat`): a packet of `len` bytes costs `len / rate` of time; it conforms if the
//! clock is no more than [`Limit::depth_ns`] ahead of now, and then moves the clock on
//! by its cost. A full bucket is a clock at or behind now. Drops cost nothing, so a
//! sender above the rate gets exactly the rate.
//!
//! Bursts follow MikroTik's queues (and so Mikrotik-Rate-Limit, [`crate::rate`]): the
//! rate in force is the burst rate while the average over the last burst time is
//! below the burst threshold, the plain rate otherwise. The average is kept as
//! MikroTik keeps it, in [`WINDOWS`] sub-windows of a sixteenth of the burst time
//! each, counting the bytes that passed.
//!
//! Concurrency (the BPF side): the state is one value per session in an ordinary
//! (not per-CPU) array shared by every CPU, because a per-CPU bucket would give each
//! CPU the whole rate. The clock and the window counts move by atomic adds
//! ([`Store::add`]): two CPUs passing packets at once both pay. The only plain stores
//! are the reset of an idle clock to now and the clearing of a window when time
//! passes into it; two CPUs racing there can lose one packet's cost each, once per
//! idle period or window, which the rate does not notice. The agent's engine runs
//! the same function on its own state with plain fields.

/// Number of sub-windows the burst average is kept in (MikroTik uses 16).
pub const WINDOWS: usize = 16;

/// The fixed-point shift of the per-byte costs: a cost is nanoseconds per byte
/// times 2^16, so that 100 Gbit/s (0.08 ns per byte) still has 1/5000 resolution
/// and a 1 kbit/s cost times a 64 KiB packet fits 64 bits.
pub const COST_SHIFT: u32 = 16;

/// How much the bucket holds, as time at the rate in force: what a sender may send
/// at once after being idle. A TCP sender through a policer (no queue: the path's
/// round trip stays tiny, so it always sends faster than the rate) loses the
/// packets past the bucket, retransmissions included, and waits out a
/// retransmission timeout (200 ms at least) now and then; a bucket deeper than
/// that gives the idle time back as a burst, so the sender averages the rate. With
/// 100 ms it got half the rate in the namespace test (tests/tests/policy.rs).
pub const DEPTH_NS: u64 = 500_000_000;

/// A policer's parameters, compiled for the data plane ([`crate::rate::Direction`]
/// makes them). All zero: no limit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    /// Cost of a byte at the rate, in ns << [`COST_SHIFT`]; zero: unlimited.
    pub rate_cost: u64,
    /// Cost of a byte at the burst rate, likewise; zero: no bursts.
    pub burst_cost: u64,
    /// How far ahead of now the clock may be for a packet to pass.
    pub depth_ns: u64,
    /// Length of one sub-window of the burst average (burst time / 16), in ns.
    pub window_ns: u64,
    /// Bytes over the burst time at the burst threshold: below it, bursts are on.
    pub threshold_bytes: u64,
}

/// A policer's state. All zero: a full bucket, no history.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// The GCRA clock, in ns of the clock the caller passes.
    pub tat: u64,
    /// Number of the sub-window `windows` was last moved to (now / window_ns).
    pub epoch: u64,
    /// Bytes passed in each of the last [`WINDOWS`] sub-windows, by epoch % 16.
    pub windows: [u64; WINDOWS],
}

/// One direction's policer in the `SESSION_POLICERS` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policer {
    pub limit: Limit,
    pub state: State,
}

/// Value of `SESSION_POLICERS` (an array by session slot): both directions, named
/// as MikroTik names them, from the concentrator's side.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionPolicers {
    /// What the client sends (decapsulation, the client's upload).
    pub rx: Policer,
    /// What goes to the client (encapsulation, the client's download).
    pub tx: Policer,
}

/// A word of a [`State`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Word {
    Tat,
    Epoch,
    Window(usize),
}

/// Access to a [`State`]: plain fields in the agent, atomic adds on a shared map
/// value in the BPF programs.
pub trait Store {
    fn load(&self, word: Word) -> u64;
    fn store(&mut self, word: Word, value: u64);
    /// Adds `value` (wrapping) and returns the old value; atomic where shared.
    fn add(&mut self, word: Word, value: u64) -> u64;
}

impl Store for State {
    #[inline(always)]
    fn load(&self, word: Word) -> u64 {
        *self.word(word)
    }
    #[inline(always)]
    fn store(&mut self, word: Word, value: u64) {
        *self.word_mut(word) = value;
    }
    #[inline(always)]
    fn add(&mut self, word: Word, value: u64) -> u64 {
        let w = self.word_mut(word);
        let old = *w;
        *w = old.wrapping_add(value);
        old
    }
}

impl State {
    #[inline(always)]
    fn word(&self, word: Word) -> &u64 {
        match word {
            Word::Tat => &self.tat,
            Word::Epoch => &self.epoch,
            Word::Window(i) => &self.windows[i % WINDOWS],
        }
    }
    #[inline(always)]
    fn word_mut(&mut self, word: Word) -> &mut u64 {
        match word {
            Word::Tat => &mut self.tat,
            Word::Epoch => &mut self.epoch,
            Word::Window(i) => &mut self.windows[i % WINDOWS],
        }
    }
}

impl Limit {
    /// Whether this limit limits anything.
    #[inline(always)]
    pub const fn is_set(&self) -> bool {
        self.rate_cost != 0
    }
}

/// Whether a packet of `len` bytes at `now` (ns, any monotonic origin) passes the
/// policer `limit` with state `state`; a passing packet is charged.
#[inline(always)]
pub fn police<S: Store>(limit: &Limit, state: &mut S, now: u64, len: u32) -> bool {
    if limit.rate_cost == 0 {
        return true;
    }
    let bursting = limit.burst_cost != 0 && limit.window_ns != 0;
    let epoch = if bursting { now / limit.window_ns } else { 0 };
    let cost_per_byte = if bursting && below_threshold(limit, state, epoch) {
        limit.burst_cost
    } else {
        limit.rate_cost
    };
    let cost = (len as u64 * cost_per_byte) >> COST_SHIFT;
    if state.load(Word::Tat) <= now {
        // Idle: the bucket is full; the clock restarts from now.
        state.store(Word::Tat, now + cost);
    } else {
        let before = state.add(Word::Tat, cost);
        if before > now + limit.depth_ns {
            state.add(Word::Tat, cost.wrapping_neg());
            return false;
        }
    }
    if bursting {
        state.add(Word::Window(epoch as usize % WINDOWS), len as u64);
    }
    true
}

/// Moves the sub-windows on to `epoch` (clearing those time passed into) and
/// whether the bytes of the last burst time are below the threshold.
#[inline(always)]
fn below_threshold<S: Store>(limit: &Limit, state: &mut S, epoch: u64) -> bool {
    let last = state.load(Word::Epoch);
    if epoch != last {
        let passed = epoch.wrapping_sub(last);
        for i in 0..WINDOWS as u64 {
            // Clear every window from last + 1 up to epoch (all of them after a
            // pause of a whole burst time, or a clock that went back).
            if passed >= WINDOWS as u64 || i < passed {
                state.store(Word::Window((epoch - i) as usize % WINDOWS), 0);
            }
        }
        state.store(Word::Epoch, epoch);
    }
    let mut total = 0u64;
    for i in 0..WINDOWS {
        total += state.load(Word::Window(i));
    }
    total < limit.threshold_bytes
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: repr(C), only u64 fields, valid for any bits.
    unsafe impl aya::Pod for SessionPolicers {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::Direction;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    /// Offers `offered` bit/s in `size`-byte packets from `from` to `to` (ns);
    /// returns the bytes that passed.
    fn offer(limit: &Limit, st: &mut State, from: u64, to: u64, offered: u64, size: u32) -> u64 {
        let gap = size as u64 * 8 * S / offered;
        let (mut t, mut passed) = (from, 0);
        while t < to {
            if police(limit, st, t, size) {
                passed += size as u64;
            }
            t += gap;
        }
        passed
    }

    fn rate(s: &str) -> (Limit, Limit) {
        let r = crate::rate::RateLimit::parse(s).unwrap();
        (r.rx.limit(), r.tx.limit())
    }

    #[test]
    fn no_limit_passes_everything() {
        let mut st = State::default();
        for t in 0..1000 {
            assert!(police(&Limit::default(), &mut st, t, 1500));
        }
        assert_eq!(st, State::default(), "an unlimited policer keeps no state");
    }

    #[test]
    fn a_sender_above_the_rate_gets_the_rate_plus_one_bucket() {
        let (limit, _) = rate("10M");
        let mut st = State::default();
        // 10 s at 25 Mbit/s offered, starting at an arbitrary clock value.
        let start = 5 * S;
        let passed = offer(&limit, &mut st, start, start + 10 * S, 25_000_000, 1500);
        // 10 s and one bucket.
        let expected = 10_000_000 / 8 * 10 + 10_000_000 / 8 * DEPTH_NS / S;
        assert!(
            passed.abs_diff(expected) <= 3000,
            "passed {passed}, expected {expected}"
        );
    }

    #[test]
    fn a_sender_below_the_rate_loses_nothing() {
        let (limit, _) = rate("10M");
        let mut st = State::default();
        let (mut t, mut offered, mut passed) = (0, 0, 0);
        while t < 10 * S {
            offered += 1;
            passed += police(&limit, &mut st, t, 1000) as u64;
            t += 1000 * 8 * S / 9_000_000;
        }
        assert_eq!(passed, offered);
    }

    #[test]
    fn an_idle_bucket_refills_to_its_depth_and_no_further() {
        let (limit, _) = rate("8M"); // 1 MB/s: the bucket holds DEPTH_NS of it
        let bucket = 1_000_000 * DEPTH_NS / S;
        let mut st = State::default();
        let passed = offer(&limit, &mut st, S, 2 * S, 100_000_000, 1000);
        assert!(
            passed.abs_diff(1_000_000 + bucket) <= 1000,
            "passed {passed}"
        );
        // A back-to-back burst after 10 s idle: one bucket (plus the packet that
        // finds the clock at now) and then nothing.
        let t = 12 * S;
        let burst = (0..10_000)
            .filter(|_| police(&limit, &mut st, t, 1000))
            .count();
        assert_eq!(burst as u64, bucket / 1000 + 1);
    }

    #[test]
    fn drops_cost_nothing() {
        let (limit, _) = rate("8M");
        let mut st = State::default();
        // Saturate, then a long flood at the same instant: the clock stays put.
        while police(&limit, &mut st, 0, 1000) {}
        let tat = st.tat;
        for _ in 0..10_000 {
            assert!(!police(&limit, &mut st, 0, 1000));
        }
        assert_eq!(st.tat, tat);
        // One packet's time later exactly one more passes.
        assert!(police(&limit, &mut st, MS, 1000));
        assert!(!police(&limit, &mut st, MS, 1000));
    }

    #[test]
    fn bursts_follow_mikrotik_threshold_and_time() {
        // 1M rate, 2M burst, 1.5M threshold, 16 s: from idle, 2M for
        // 1.5 * 16 / 2 = 12 s (MikroTik's formula), then 1M until enough 2M
        // windows have left the 16 s average; from then on the average stays at
        // the threshold, as on MikroTik when the threshold is above the rate.
        let (limit, _) = rate("1M 2M 1500k 16");
        let mut st = State::default();
        let mut per_second = [0u64; 60];
        for (s, slot) in per_second.iter_mut().enumerate() {
            let s = s as u64;
            *slot = offer(&limit, &mut st, s * S, (s + 1) * S, 4_000_000, 500) * 8;
        }
        for (s, &bits) in per_second.iter().enumerate().take(11).skip(1) {
            assert!(
                bits.abs_diff(2_000_000) < 20_000,
                "second {s}: {bits} bit/s, expected the burst rate"
            );
        }
        for (s, &bits) in per_second.iter().enumerate().take(17).skip(13) {
            assert!(
                bits.abs_diff(1_000_000) < 20_000,
                "second {s}: {bits} bit/s, expected the rate"
            );
        }
        let late = per_second[30..].iter().sum::<u64>() / 30;
        assert!(
            late.abs_diff(1_500_000) < 50_000,
            "average after the burst {late}"
        );
    }

    #[test]
    fn bursts_come_back_after_a_quiet_burst_time() {
        let (limit, _) = rate("1M 2M 1500k 16");
        let mut st = State::default();
        offer(&limit, &mut st, 0, 30 * S, 4_000_000, 500);
        // 20 s of silence, then a full second at the burst rate again (plus one
        // bucket at the burst rate).
        let bits = offer(&limit, &mut st, 50 * S, 51 * S, 4_000_000, 500) * 8;
        let expected = 2_000_000 + 2_000_000 * DEPTH_NS / S;
        assert!(bits.abs_diff(expected) < 20_000, "{bits} bit/s");
    }

    #[test]
    fn direction_limits_are_what_mikrotik_says() {
        let (rx, tx) = rate("64k/128k");
        assert_eq!(
            rx,
            Direction {
                rate: 64_000,
                ..Default::default()
            }
            .limit()
        );
        assert_eq!(
            tx,
            Direction {
                rate: 128_000,
                ..Default::default()
            }
            .limit()
        );
        assert_eq!(
            rx.rate_cost,
            125_000u64 << COST_SHIFT,
            "64 kbit/s: 125 µs a byte"
        );
    }
}
