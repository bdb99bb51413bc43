//! The descriptor budget. Every voluntary client costs the concentrator a TCP socket,
//! so RLIMIT_NOFILE caps the control connections; a process that runs out fails
//! every accept() (EMFILE) and every socket the agent itself needs (RADIUS, the API).
//!
//! At start the soft limit is raised to the hard one ([`raise_nofile_limit`]). Once
//! everything else is open (listeners, the hub's sockets and devices, the BPF maps
//! and programs, the API), the descriptors held are counted and the budget for
//! control connections is what is left of the limit after a reserve for what comes
//! and goes ([`Reserve`]: API and metrics connections, the RADIUS sockets,
//! demand-dial calls). A connection over the budget is closed at once, counted
//! (`connections_over_fd_budget`) and logged once per interval; the box refuses
//! calls, it does not fall over. The listeners also survive accept() errors (EMFILE,
//! ENFILE, ENOBUFS, ENOMEM, ECONNABORTED, ...): counted, logged once per interval,
//! a short pause after the resource errors, and on.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors kept free for what is not a control connection and not open at start:
/// reading the pinned maps for `stats`, name resolution, a log file reopened.
pub const SLACK: u64 = 32;

/// How long a listener pauses after an accept() error that says the process or the
/// system is out of something.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The soft limit before and after [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub was: u64,
    pub now: u64,
}

/// Raises RLIMIT_NOFILE's soft limit to its hard limit.
pub fn raise_nofile_limit() -> io::Result<NofileLimit> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(NofileLimit {
        was: soft,
        now: hard.max(soft),
    })
}

/// Descriptors the process holds now.
pub fn open_descriptors() -> io::Result<u64> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count() as u64)
}

/// What may be open besides control connections and the descriptors held at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reserve {
    /// API connections served at once.
    pub api: u64,
    /// Metrics scrapes served at once.
    pub metrics: u64,
    /// The RADIUS client's UDP sockets (a fixed set, bound at its first exchange).
    pub radius: u64,
    /// Demand-dial interfaces that place calls (a control connection each).
    pub dialing: u64,
}

impl Reserve {
    pub fn total(&self) -> u64 {
        self.api + self.metrics + self.radius + self.dialing + SLACK
    }
}

/// Whether an accept() error means the process or system is short of something
/// (worth a pause) rather than one connection failing.
pub fn is_resource_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The control connections the descriptor limit leaves room for.
#[derive(Debug)]
pub struct FdBudget {
    capacity: u64,
    live: AtomicU64,
}

/// One control connection counted against the budget until this drops.
#[derive(Debug)]
pub struct FdHeld(Arc<FdBudget>);

impl Drop for FdHeld {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for FdBudget {
    /// No budget (tests, and until [`FdBudget::new`] replaces it).
    fn default() -> Self {
        Self {
            capacity: u64::MAX,
            live: AtomicU64::new(0),
        }
    }
}

impl FdBudget {
    /// The budget of a process allowed `limit` descriptors that holds `held` and
    /// keeps `reserve` free.
    pub fn new(limit: u64, held: u64, reserve: &Reserve) -> Self {
        Self {
            capacity: limit.saturating_sub(held + reserve.total()),
            live: AtomicU64::new(0),
        }
    }

    /// Control connections that fit.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Control connections counted now.
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    /// Counts one more control connection, if it fits.
    pub fn take(self: &Arc<Self>) -> Option<FdHeld> {
        self.live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .ok()
            .map(|_| FdHeld(self.clone()))
    }
}

/// The descriptors `max_sessions` voluntary clients need (one control connection
/// each) besides `held` and the `reserve`.
pub fn needed(held: u64, reserve: &Reserve, max_sessions: u32) -> u64 {
    held + reserve.total() + u64::from(max_sessions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_what_the_limit_leaves_and_gives_back() {
        let reserve = Reserve {
            api: 16,
            metrics: 0,
            radius: 0,
            dialing: 2,
        };
        assert_eq!(reserve.total(), 16 + 2 + SLACK);
        let budget = Arc::new(FdBudget::new(100, 40, &reserve));
        assert_eq!(budget.capacity(), 100 - 40 - 50);
        let held: Vec<_> = (0..10).map(|_| budget.take().unwrap()).collect();
        assert!(budget.take().is_none(), "the eleventh does not fit");
        assert_eq!(budget.live(), 10);
        drop(held);
        assert_eq!(budget.live(), 0);
        assert!(budget.take().is_some());
        assert_eq!(
            FdBudget::new(50, 40, &reserve).capacity(),
            0,
            "a limit below the reserve leaves nothing"
        );
        assert_eq!(needed(40, &reserve, 1000), 40 + 50 + 1000);
    }

    #[test]
    fn resource_errors_are_told_from_one_connection_failing() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(is_resource_error(&io::Error::from_raw_os_error(errno)));
        }
        assert!(!is_resource_error(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = raise_nofile_limit().unwrap();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!((soft, hard), (limit.now, limit.now));
        assert!(open_descriptors().unwrap() >= 3);
    }
}
