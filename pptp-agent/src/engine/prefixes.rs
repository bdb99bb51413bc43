//! Which session owns which prefix: the networks behind sessions (a calling router
//! answered by name, a RADIUS Framed-Route), with longest-prefix match for packets
//! the kernel routes to the concentrator's device (destination) and the check that a
//! packet from a session comes from behind it (source).
//!
//! A prefix has one owner: a second session asking for a prefix another session
//! holds does not get it, so a misconfigured peer cannot steal traffic from a
//! session that is up. XDP knows nothing of these prefixes (its maps hold one client
//! address per session): sessions with routes stay on the agent's path.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Which key owns which prefix.
#[derive(Debug, Clone)]
pub struct PrefixTable<K> {
    /// One map per prefix length, indexed by length (0..=32).
    by_len: Vec<HashMap<u32, K>>,
    /// Longest lengths first, only those in use: a lookup probes these.
    lens: Vec<u8>,
}

impl<K> Default for PrefixTable<K> {
    fn default() -> Self {
        Self {
            by_len: (0..=32).map(|_| HashMap::new()).collect(),
            lens: Vec::new(),
        }
    }
}

impl<K: Copy + Eq> PrefixTable<K> {
    /// Gives `prefix` (host bits ignored) to `key`; returns the current owner
    /// instead if another key holds it.
    pub fn insert(&mut self, prefix: Ipv4Net, key: K) -> Result<(), K> {
        let prefix = prefix.trunc();
        let map = &mut self.by_len[usize::from(prefix.prefix_len())];
        match map.get(&u32::from(prefix.network())) {
            Some(owner) if *owner != key => return Err(*owner),
            _ => {}
        }
        map.insert(u32::from(prefix.network()), key);
        if !self.lens.contains(&prefix.prefix_len()) {
            self.lens.push(prefix.prefix_len());
            self.lens.sort_unstable_by(|a, b| b.cmp(a));
        }
        Ok(())
    }

    /// Takes `prefix` away from `key` (nothing if `key` does not hold it).
    pub fn remove(&mut self, prefix: Ipv4Net, key: K) {
        let prefix = prefix.trunc();
        let len = prefix.prefix_len();
        let map = &mut self.by_len[usize::from(len)];
        if map.get(&u32::from(prefix.network())) == Some(&key) {
            map.remove(&u32::from(prefix.network()));
            if map.is_empty() {
                self.lens.retain(|l| *l != len);
            }
        }
    }

    /// The owner of the longest prefix containing `addr`.
    pub fn lookup(&self, addr: Ipv4Addr) -> Option<K> {
        let addr = u32::from(addr);
        self.lens.iter().find_map(|&len| {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            self.by_len[usize::from(len)].get(&(addr & mask)).copied()
        })
    }

    /// Whether no prefix is held.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = PrefixTable::default();
        t.insert(net("198.51.100.0/24"), 1).unwrap();
        t.insert(net("198.51.100.128/25"), 2).unwrap();
        t.insert(net("0.0.0.0/0"), 3).unwrap();
        assert_eq!(t.lookup("198.51.100.1".parse().unwrap()), Some(1));
        assert_eq!(t.lookup("198.51.100.200".parse().unwrap()), Some(2));
        assert_eq!(t.lookup("203.0.113.9".parse().unwrap()), Some(3));
        t.remove(net("0.0.0.0/0"), 3);
        assert_eq!(t.lookup("203.0.113.9".parse().unwrap()), None);
    }

    #[test]
    fn host_bits_are_ignored_and_a_prefix_has_one_owner() {
        let mut t = PrefixTable::default();
        t.insert(net("192.0.2.77/24"), 1).unwrap();
        assert_eq!(t.insert(net("192.0.2.0/24"), 2), Err(1));
        assert_eq!(t.insert(net("192.0.2.0/24"), 1), Ok(()), "same owner again");
        t.remove(net("192.0.2.0/24"), 2);
        assert_eq!(
            t.lookup("192.0.2.5".parse().unwrap()),
            Some(1),
            "only the owner removes"
        );
        t.remove(net("192.0.2.0/24"), 1);
        assert!(t.is_empty());
        assert_eq!(t.lookup("192.0.2.5".parse().unwrap()), None);
    }

    #[test]
    fn host_routes() {
        let mut t = PrefixTable::default();
        t.insert(net("192.0.2.9/32"), 7).unwrap();
        assert_eq!(t.lookup("192.0.2.9".parse().unwrap()), Some(7));
        assert_eq!(t.lookup("192.0.2.8".parse().unwrap()), None);
    }
}
