//! The concentrator's address pool with static addresses: [`UserPool`] implements
//! [`AddressPool`] over several ranges and asks [`UserAddresses`] (the chap-secrets
//! address lists) what each user may get.
//!
//! `allocate(user)`:
//! - a user with a static address (the first plain address of its chap-secrets
//!   list) gets exactly that address, which may lie inside or outside the ranges; if
//!   it is already in use (a second session of the same user) the user gets none and
//!   IPCP fails, rather than two sessions sharing an address;
//! - anyone else gets the lowest free address of the ranges that its address list
//!   permits (`*` permits all), skipping every user's static address and our own
//!   tunnel address;
//! - a user whose list permits nothing (`-`, or a three-word line) gets none.
//!
//! The concentrator shares one among its links (one mutex, cloned into each link),
//! as it shares `runtime::pool::SharedPool` when `serve` runs without a configuration
//! file.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    sync::{Arc, Mutex},
};

use super::{free_runs::FreeRuns, users::UserAddresses};
use crate::ppp::ipcp::AddressPool;

/// Addresses `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    /// First address.
    pub first: Ipv4Addr,
    /// Last address (not before `first`).
    pub last: Ipv4Addr,
}

impl AddressRange {
    /// Number of addresses.
    pub fn size(&self) -> u64 {
        u64::from(u32::from(self.last)) - u64::from(u32::from(self.first)) + 1
    }

    /// Whether `addr` is in the range.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&addr)
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &AddressRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

impl std::fmt::Display for AddressRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

#[derive(Debug)]
struct State {
    ranges: Vec<AddressRange>,
    /// Pools a RADIUS Framed-Pool names.
    named: BTreeMap<String, Vec<AddressRange>>,
    local: Ipv4Addr,
    in_use: BTreeSet<Ipv4Addr>,
    /// The free addresses of every range (default and named).
    free: FreeRuns,
}

impl State {
    fn in_ranges(&self, addr: Ipv4Addr) -> bool {
        self.ranges
            .iter()
            .chain(self.named.values().flatten())
            .any(|r| r.contains(addr))
    }

    fn add_free(&mut self, ranges: &[AddressRange]) {
        for r in ranges {
            self.free.free_range(u32::from(r.first), u32::from(r.last));
        }
        for taken in self.in_use.iter().chain([&self.local]) {
            self.free.take(u32::from(*taken));
        }
    }
}

/// Ranges plus static addresses, shared by every session's IPCP.
#[derive(Clone)]
pub struct UserPool {
    state: Arc<Mutex<State>>,
    users: Arc<dyn UserAddresses + Send + Sync>,
}

impl std::fmt::Debug for UserPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPool")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl UserPool {
    /// A pool handing out `ranges` (never `local`, our tunnel address), asking
    /// `users` for each user's address list.
    pub fn new(
        ranges: Vec<AddressRange>,
        local: Ipv4Addr,
        users: Arc<dyn UserAddresses + Send + Sync>,
    ) -> Self {
        let mut state = State {
            ranges: Vec::new(),
            named: BTreeMap::new(),
            local,
            in_use: BTreeSet::new(),
            free: FreeRuns::default(),
        };
        state.add_free(&ranges);
        state.ranges = ranges;
        UserPool {
            state: Arc::new(Mutex::new(state)),
            users,
        }
    }

    /// Adds the named pools a RADIUS Framed-Pool can pick (ranges apart from the
    /// default ones).
    pub fn with_named(self, named: BTreeMap<String, Vec<AddressRange>>) -> Self {
        {
            let mut state = self.state.lock().expect("pool lock");
            for ranges in named.values() {
                state.add_free(ranges);
            }
            state.named = named;
        }
        self
    }

    /// Addresses handed out (static ones included).
    pub fn in_use(&self) -> usize {
        self.state.lock().expect("pool lock").in_use.len()
    }

    /// Addresses in the ranges.
    pub fn size(&self) -> u64 {
        let state = self.state.lock().expect("pool lock");
        state.ranges.iter().map(AddressRange::size).sum()
    }
}

impl UserPool {
    /// `addr` (inside the ranges or not) unless it is in use or our own.
    fn take_exact(&self, addr: Ipv4Addr) -> Option<Ipv4Addr> {
        let mut state = self.state.lock().expect("pool lock");
        if state.in_use.contains(&addr) || addr == state.local {
            return None;
        }
        state.in_use.insert(addr);
        state.free.take(u32::from(addr));
        Some(addr)
    }

    /// The lowest free address that `permits` allows of the default ranges, or of
    /// the pool `named`, never our own nor any user's static address.
    fn take_free(
        &self,
        named: Option<&str>,
        permits: impl Fn(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        let mut state = self.state.lock().expect("pool lock");
        let ranges = match named {
            None => &state.ranges,
            Some(name) => match state.named.get(name) {
                Some(ranges) => ranges,
                None => {
                    tracing::warn!(
                        pool = name,
                        "Framed-Pool names no pool of [radius.pools]: no address"
                    );
                    return None;
                }
            },
        };
        // Only free addresses are visited: what is skipped are the ones `permits`
        // refuses and users' static addresses, not the addresses in use.
        let found = ranges.iter().find_map(|r| {
            state
                .free
                .iter_in(u32::from(r.first), u32::from(r.last))
                .map(Ipv4Addr::from)
                .find(|&a| a != state.local && permits(a) && !self.users.is_reserved(a))
        })?;
        state.in_use.insert(found);
        state.free.take(u32::from(found));
        Some(found)
    }
}

impl AddressPool for UserPool {
    fn allocate(&mut self, user: &[u8]) -> Option<Ipv4Addr> {
        let list = self.users.addresses(user)?;
        if let Some(addr) = list.static_address {
            let taken = self.take_exact(addr);
            if taken.is_none() {
                tracing::warn!(
                    user = %crate::escape::Escaped(user), %addr,
                    "static address already in use: no address for this session"
                );
            }
            return taken;
        }
        if list.is_none() {
            return None;
        }
        self.take_free(None, |a| list.permits(a))
    }

    fn allocate_authorized(
        &mut self,
        wanted: Option<Ipv4Addr>,
        named: Option<&str>,
    ) -> Option<Ipv4Addr> {
        match wanted {
            Some(addr) => self.take_exact(addr),
            None => self.take_free(named, |_| true),
        }
    }

    fn release(&mut self, address: Ipv4Addr) {
        let mut state = self.state.lock().expect("pool lock");
        if state.in_use.remove(&address) && state.in_ranges(address) && address != state.local {
            state.free.free(u32::from(address));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::auth::{
        chap_secrets::ChapSecrets,
        users::{DialIn, UserDb, Users},
    };

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn users(text: &str) -> Users {
        Users::new(UserDb::new(
            ChapSecrets::parse(Path::new("s"), text.as_bytes()).unwrap(),
            "pptp-xdp",
            Default::default(),
            DialIn::Allow,
        ))
    }

    fn range(first: &str, last: &str) -> AddressRange {
        AddressRange {
            first: a(first),
            last: a(last),
        }
    }

    #[test]
    fn static_addresses_dynamic_ones_and_lists() {
        let users = users(
            "any * pw *\n\
             fixed * pw 10.0.0.11\n\
             outside * pw 172.16.0.9\n\
             restricted * pw !10.0.0.10 10.0.0.8/29\n\
             nothing * pw\n",
        );
        let mut pool = UserPool::new(
            vec![
                range("10.0.0.10", "10.0.0.13"),
                range("10.0.1.1", "10.0.1.1"),
            ],
            a("10.0.0.12"),
            Arc::new(users.clone()),
        );
        assert_eq!(pool.size(), 5);
        // Static address, inside a range or outside every range.
        assert_eq!(pool.allocate(b"fixed"), Some(a("10.0.0.11")));
        assert_eq!(pool.allocate(b"outside"), Some(a("172.16.0.9")));
        // A second session of a static user gets nothing.
        assert_eq!(pool.allocate(b"fixed"), None);
        // Restricted: not .10 (excluded), not .11 (in use, and reserved), not .12
        // (our address): .13.
        assert_eq!(pool.allocate(b"restricted"), Some(a("10.0.0.13")));
        assert_eq!(pool.allocate(b"restricted"), None, "nothing else permitted");
        // Dynamic users skip the static, the local address and what is taken.
        assert_eq!(pool.allocate(b"any"), Some(a("10.0.0.10")));
        assert_eq!(pool.allocate(b"any"), Some(a("10.0.1.1")));
        assert_eq!(pool.allocate(b"any"), None, "exhausted");
        // No list (three words) or unknown user: no address.
        assert_eq!(pool.allocate(b"nothing"), None);
        assert_eq!(pool.allocate(b"stranger"), None);
        assert_eq!(pool.in_use(), 5);

        pool.release(a("10.0.0.11"));
        // Reserved for "fixed" even while free.
        assert_eq!(pool.allocate(b"any"), None);
        assert_eq!(pool.allocate(b"fixed"), Some(a("10.0.0.11")));
        pool.release(a("10.0.0.10"));
        assert_eq!(pool.allocate(b"any"), Some(a("10.0.0.10")));
    }

    #[test]
    fn reload_changes_reservations_without_touching_allocations() {
        let users = users("any * pw *\n");
        let mut pool = UserPool::new(
            vec![range("10.0.0.1", "10.0.0.3")],
            a("10.0.0.254"),
            Arc::new(users.clone()),
        );
        assert_eq!(pool.allocate(b"any"), Some(a("10.0.0.1")));
        users.replace(UserDb::new(
            ChapSecrets::parse(Path::new("s"), b"any * pw *\nnew * pw 10.0.0.2\n").unwrap(),
            "pptp-xdp",
            Default::default(),
            DialIn::Allow,
        ));
        assert_eq!(
            pool.allocate(b"any"),
            Some(a("10.0.0.3")),
            ".2 is now reserved"
        );
        assert_eq!(pool.allocate(b"new"), Some(a("10.0.0.2")));
        assert_eq!(
            pool.in_use(),
            3,
            "the allocation made before the reload stays"
        );
    }

    #[test]
    fn ranges() {
        let r = range("10.0.0.1", "10.0.0.10");
        assert_eq!(r.size(), 10);
        assert!(r.contains(a("10.0.0.10")) && !r.contains(a("10.0.0.11")));
        assert!(r.overlaps(&range("10.0.0.10", "10.0.0.20")));
        assert!(!r.overlaps(&range("10.0.0.11", "10.0.0.20")));
        assert_eq!(range("0.0.0.0", "255.255.255.255").size(), 1 << 32);
        assert_eq!(r.to_string(), "10.0.0.1-10.0.0.10");
    }

    #[test]
    fn addresses_for_users_authorized_by_radius() {
        let users = users("fixed * pw 10.0.0.11\n");
        let mut named = BTreeMap::new();
        named.insert("gold".to_owned(), vec![range("10.0.2.1", "10.0.2.2")]);
        let mut pool = UserPool::new(
            vec![range("10.0.0.10", "10.0.0.12")],
            a("10.0.0.12"),
            Arc::new(users),
        )
        .with_named(named);
        // Framed-IP-Address: exactly that one, once, never our own.
        assert_eq!(
            pool.allocate_authorized(Some(a("192.0.2.77")), None),
            Some(a("192.0.2.77"))
        );
        assert_eq!(pool.allocate_authorized(Some(a("192.0.2.77")), None), None);
        assert_eq!(pool.allocate_authorized(Some(a("10.0.0.12")), None), None);
        // No address: the default ranges, skipping static addresses (.11).
        assert_eq!(pool.allocate_authorized(None, None), Some(a("10.0.0.10")));
        assert_eq!(
            pool.allocate_authorized(None, None),
            None,
            ".11 is fixed's, .12 ours"
        );
        // Framed-Pool: that pool only; an unknown name gets nothing.
        assert_eq!(
            pool.allocate_authorized(None, Some("gold")),
            Some(a("10.0.2.1"))
        );
        assert_eq!(
            pool.allocate_authorized(None, Some("gold")),
            Some(a("10.0.2.2"))
        );
        assert_eq!(pool.allocate_authorized(None, Some("gold")), None);
        assert_eq!(pool.allocate_authorized(None, Some("silver")), None);
        pool.release(a("10.0.2.1"));
        assert_eq!(
            pool.allocate_authorized(None, Some("gold")),
            Some(a("10.0.2.1"))
        );
    }
}
