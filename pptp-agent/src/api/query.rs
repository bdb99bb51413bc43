//! Which sessions a `sessions` or `stats` request lists: one user's, sorted by a
//! field, at most so many. On a concentrator with 50,000 sessions an operator asks
//! for the 20 busiest or one user's three, and the agent sends those rows instead
//! of 50,000 (the totals in `stats` still count every session).
//!
//! Sorting takes O(n log n) and the limit is applied with a partial selection
//! (`select_nth_unstable_by`) before the sort, so `--limit 20` of 50,000 sorts 20.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use crate::engine::SessionInfo;

/// The field sessions are sorted by. Names sort ascending; counters and uptime
/// descending (the busiest, the oldest first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Id,
    User,
    Peer,
    Client,
    Uptime,
    RxBytes,
    TxBytes,
    RxPackets,
    TxPackets,
}

impl SortKey {
    /// Every key, with the name requests and `--sort` use.
    pub const ALL: [(Self, &'static str); 9] = [
        (Self::Id, "id"),
        (Self::User, "user"),
        (Self::Peer, "peer"),
        (Self::Client, "client"),
        (Self::Uptime, "uptime"),
        (Self::RxBytes, "rx_bytes"),
        (Self::TxBytes, "tx_bytes"),
        (Self::RxPackets, "rx_packets"),
        (Self::TxPackets, "tx_packets"),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("id", |(_, n)| n)
    }

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(k, _)| *k)
    }

    /// `a` before `b`; ties go by session id, so the order is total.
    fn order(self, a: &SessionInfo, b: &SessionInfo) -> Ordering {
        let by = match self {
            Self::Id => Ordering::Equal,
            Self::User => a.user.cmp(&b.user),
            Self::Peer => a.peer.cmp(&b.peer),
            Self::Client => a.client.cmp(&b.client),
            Self::Uptime => b.uptime_secs.cmp(&a.uptime_secs),
            Self::RxBytes => b.rx_bytes.cmp(&a.rx_bytes),
            Self::TxBytes => b.tx_bytes.cmp(&a.tx_bytes),
            Self::RxPackets => b.rx_packets.cmp(&a.rx_packets),
            Self::TxPackets => b.tx_packets.cmp(&a.tx_packets),
        };
        by.then(a.id.cmp(&b.id))
    }
}

/// The sessions a request lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionQuery {
    /// Only this user's sessions.
    pub user: Option<String>,
    pub sort: SortKey,
    /// At most this many (after filtering and sorting).
    pub limit: Option<u64>,
}

impl SessionQuery {
    /// The request fields that carry a query.
    pub const FIELDS: [&'static str; 3] = ["user", "sort", "limit"];

    /// Reads the query fields of a request.
    pub fn parse(fields: &Map<String, Value>) -> Result<Self, String> {
        let user = match fields.get("user") {
            None => None,
            Some(Value::String(u)) => Some(u.clone()),
            Some(_) => return Err("\"user\" must be a string".into()),
        };
        let sort = match fields.get("sort") {
            None => SortKey::default(),
            Some(Value::String(s)) => SortKey::named(s).ok_or_else(|| {
                let names: Vec<&str> = SortKey::ALL.iter().map(|(_, n)| *n).collect();
                format!("unknown sort field {s:?} ({})", names.join(", "))
            })?,
            Some(_) => return Err("\"sort\" must be a string".into()),
        };
        let limit = match fields.get("limit") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or("\"limit\" must be a number")?),
        };
        Ok(Self { user, sort, limit })
    }

    /// The query's fields, added to a request object.
    pub fn add_to(&self, request: &mut Value) {
        let Value::Object(fields) = request else {
            return;
        };
        if let Some(user) = &self.user {
            fields.insert("user".into(), json!(user));
        }
        if self.sort != SortKey::default() {
            fields.insert("sort".into(), json!(self.sort.name()));
        }
        if let Some(limit) = self.limit {
            fields.insert("limit".into(), json!(limit));
        }
    }

    /// The sessions listed, in order, and how many matched before the limit.
    pub fn apply(&self, mut sessions: Vec<SessionInfo>) -> (Vec<SessionInfo>, usize) {
        if let Some(user) = &self.user {
            sessions.retain(|s| s.user.as_deref() == Some(user.as_str()));
        }
        let matched = sessions.len();
        let order = |a: &SessionInfo, b: &SessionInfo| self.sort.order(a, b);
        if let Some(limit) = self.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)) {
            if limit == 0 {
                sessions.clear();
            } else if limit < sessions.len() {
                sessions.select_nth_unstable_by(limit - 1, order);
                sessions.truncate(limit);
            }
        }
        sessions.sort_unstable_by(order);
        (sessions, matched)
    }
}
