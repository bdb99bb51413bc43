//! What keeps one hostile or careless peer from costing the concentrator more than its
//! share, outside the session hub: each guard has a bound, a stated behaviour when the
//! bound is reached, and a counter in [`GuardStats`] (`pptp-agent stats`, the API's
//! `guard` object, Prometheus `pptp_guard_total{event}`).
//!
//! - [`fds`]: the descriptor budget. RLIMIT_NOFILE is raised to its hard limit at
//!   start; new control connections are refused (closed at once) before the limit is
//!   reached, and accept() errors never end a listener.
//! - [`pending`]: calls still waiting for authentication, capped per control
//!   connection and per source address (larger for configured peers).
//! - [`backoff`]: repeated failed logins back a source address or a user name off.
//! - [`ratelog`]: what is refused is logged once per interval, with a count.

pub mod backoff;
pub mod fds;
pub mod limits;
pub mod pending;
pub mod ratelog;
pub mod stats;

use std::sync::{Arc, Mutex, atomic::AtomicU64};

use self::limits::LiveLimits;
pub use self::stats::GuardStats;

/// The guards of one concentrator, shared by its listeners and control connections
/// (cheap to clone; clones share).
#[derive(Clone)]
pub struct Guards {
    pub stats: Arc<GuardStats>,
    /// The descriptor budget (unlimited until [`Guards::with_fd_budget`]).
    pub fds: Arc<fds::FdBudget>,
    /// Control connections per source address.
    pub connections: pending::PerSource,
    /// Calls waiting for authentication per source address.
    pub pending: pending::PendingCalls,
    pub logins: backoff::LoginGuard,
    /// One log line per interval for each [`Log`].
    logs: Arc<[Mutex<ratelog::LogEvery>; 3]>,
}

/// What the control side logs once per interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// accept() errors.
    Accept,
    /// Control connections refused.
    Connection,
    /// Calls refused.
    Call,
}

impl Guards {
    /// Guards by `limits` (read at each check: SIGHUP changes them).
    pub fn new(limits: LiveLimits, stats: Arc<GuardStats>) -> Self {
        Self {
            logins: backoff::LoginGuard::new(limits, stats.clone()),
            stats,
            fds: Arc::default(),
            connections: pending::PerSource::default(),
            pending: pending::PendingCalls::default(),
            logs: Arc::default(),
        }
    }

    /// The same guards with `budget` for control connections.
    pub fn with_fd_budget(mut self, budget: fds::FdBudget) -> Self {
        self.fds = Arc::new(budget);
        self
    }

    /// Counts a refusal (or an error) and says whether to log it now: `Some(n)`, the
    /// occurrences of its kind since the last line.
    pub fn refused(&self, counter: &AtomicU64, log: Log) -> Option<u64> {
        GuardStats::count(counter);
        self.logs[log as usize]
            .lock()
            .expect("refusal log")
            .hit(std::time::Instant::now())
    }
}
