//! The guards' counters: what they turned away, by reason (`pptp-agent stats`, the
//! API's `guard` object, Prometheus `pptp_guard_total{event}`).

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! guard_stats {
    ($($(#[$doc:meta])* $field:ident: $help:literal,)*) => {
        /// Counters of what the guards turned away (shared by the listeners, the
        /// control connections, the RADIUS client and the API).
        #[derive(Debug, Default)]
        pub struct GuardStats {
            $($(#[$doc])* pub $field: AtomicU64,)*
        }

        impl GuardStats {
            /// Every counter: (field name in the API and the metric's `event`
            /// label, what it counts).
            pub const HELP: &[(&str, &str)] = &[$((stringify!($field), $help),)*];

            /// The counters now, in [`GuardStats::HELP`]'s order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), self.$field.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

guard_stats! {
    connections_over_fd_budget: "Control connections refused: the descriptor budget is spent",
    connections_per_source: "Control connections refused: their source address has as many as allowed",
    accept_errors: "accept() failures on the control listeners (EMFILE, ENFILE, ENOBUFS, ...)",
    calls_unauthenticated_per_connection: "Calls refused: their control connection has as many calls waiting for authentication as allowed",
    calls_unauthenticated_per_source: "Calls refused: their source address has as many calls waiting for authentication as allowed",
    calls_source_backoff: "Calls refused: their source address is backing off after failed logins",
    logins_user_backoff: "Logins refused: the user name (or its source address) is backing off after failed logins",
    login_backoffs: "Back-offs started: a source address or user name had too many failed logins",
    dae_unknown_client: "Dynamic authorization requests dropped: not from a configured client",
    dae_bad_packet: "Dynamic authorization requests dropped: malformed, wrong authenticator or Message-Authenticator",
    dae_no_event_timestamp: "Dynamic authorization requests dropped: no Event-Timestamp",
    dae_stale_event_timestamp: "Dynamic authorization requests dropped: Event-Timestamp outside the window",
    dae_duplicates: "Dynamic authorization requests seen before (replayed or retransmitted): answered again, not acted on",
    dae_replay_cache_full: "Dynamic authorization requests dropped: the duplicate cache is full",
    radius_unmatched: "RADIUS datagrams dropped: they answer no request in flight",
    radius_late: "RADIUS answers dropped: late, for a request already answered or given up",
    radius_unverified: "RADIUS answers dropped: wrong Response Authenticator or Message-Authenticator",
    radius_queue_full: "RADIUS requests refused: too many were waiting for an identifier",
}

impl GuardStats {
    /// Adds one to `counter`.
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_every_counter_in_help_order() {
        let stats = GuardStats::default();
        GuardStats::count(&stats.accept_errors);
        GuardStats::count(&stats.accept_errors);
        let snapshot = stats.snapshot();
        let names: Vec<&str> = snapshot.iter().map(|(n, _)| *n).collect();
        let help: Vec<&str> = GuardStats::HELP.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, help);
        assert!(snapshot.contains(&("accept_errors", 2)));
    }
}
