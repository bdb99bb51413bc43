//! The concentrator's address pool: a range of IPv4 addresses handed to clients,
//! shared by every session's IPCP (hence the mutex).

use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    sync::{Arc, Mutex},
};

use crate::{auth::free_runs::FreeRuns, ppp::ipcp::AddressPool};

/// Addresses `first..=last`, lowest free first.
#[derive(Debug)]
pub struct RangePool {
    first: u32,
    last: u32,
    in_use: BTreeSet<u32>,
    /// The addresses not in use (O(log n) to the lowest).
    free: FreeRuns,
}

impl RangePool {
    /// A pool of `first..=last`; `None` if the range is empty.
    pub fn new(first: Ipv4Addr, last: Ipv4Addr) -> Option<Self> {
        let (first, last) = (u32::from(first), u32::from(last));
        (first <= last).then(|| {
            let mut free = FreeRuns::default();
            free.free_range(first, last);
            Self {
                first,
                last,
                in_use: BTreeSet::new(),
                free,
            }
        })
    }

    /// Addresses handed out.
    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }

    /// Addresses in the pool.
    pub fn size(&self) -> u64 {
        u64::from(self.last - self.first) + 1
    }

    fn take(&mut self) -> Option<Ipv4Addr> {
        let free = self.free.iter_in(self.first, self.last).next()?;
        self.free.take(free);
        self.in_use.insert(free);
        Some(Ipv4Addr::from(free))
    }
}

/// A pool shared by the links of many sessions: each link gets its own handle.
pub trait PoolHandle: Send + Sync {
    fn handle(&self) -> Box<dyn AddressPool + Send>;
    /// How many addresses are handed out, of how many.
    fn usage(&self) -> PoolUsage;
}

/// A pool's fill, as `stats` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolUsage {
    /// Addresses handed out (static ones included).
    pub in_use: u64,
    /// Addresses in the pool's ranges.
    pub size: u64,
}

impl PoolHandle for SharedPool {
    fn handle(&self) -> Box<dyn AddressPool + Send> {
        Box::new(self.clone())
    }

    fn usage(&self) -> PoolUsage {
        let pool = self.0.lock().expect("pool lock");
        PoolUsage {
            in_use: pool.in_use() as u64,
            size: pool.size(),
        }
    }
}

impl PoolHandle for crate::auth::pool::UserPool {
    fn handle(&self) -> Box<dyn AddressPool + Send> {
        Box::new(self.clone())
    }

    fn usage(&self) -> PoolUsage {
        PoolUsage {
            in_use: self.in_use() as u64,
            size: self.size(),
        }
    }
}

/// A range pool shared by the links of many sessions.
#[derive(Clone, Debug)]
pub struct SharedPool(pub Arc<Mutex<RangePool>>);

impl AddressPool for SharedPool {
    fn allocate(&mut self, _user: &[u8]) -> Option<Ipv4Addr> {
        self.0.lock().expect("pool lock").take()
    }

    fn release(&mut self, address: Ipv4Addr) {
        let mut pool = self.0.lock().expect("pool lock");
        if pool.in_use.remove(&u32::from(address)) {
            pool.free.free(u32::from(address));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_each_address_once_and_takes_them_back() {
        let pool =
            RangePool::new(Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 11)).unwrap();
        let mut shared = SharedPool(Arc::new(Mutex::new(pool)));
        let a = shared.allocate(b"u").unwrap();
        let b = shared.allocate(b"u").unwrap();
        assert_eq!(
            (a, b),
            (Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 11))
        );
        assert_eq!(shared.allocate(b"u"), None, "exhausted");
        assert_eq!(shared.usage(), PoolUsage { in_use: 2, size: 2 });
        shared.release(a);
        assert_eq!(shared.usage(), PoolUsage { in_use: 1, size: 2 });
        assert_eq!(shared.allocate(b"u"), Some(a));
        assert!(
            RangePool::new(Ipv4Addr::new(192, 0, 2, 11), Ipv4Addr::new(192, 0, 2, 10)).is_none()
        );
    }
}
