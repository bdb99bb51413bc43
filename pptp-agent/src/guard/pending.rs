//! Calls accepted and not yet authenticated. Each costs a PPP link in the hub, an
//! address-pool query and, with RADIUS, Access-Requests, and a peer that never
//! authenticates can place thousands on one control connection (RFC 2637 sets no
//! limit). They are capped per control connection and per source address
//! ([`PeerCaps`]); a call over a cap is refused with Outgoing-Call-Reply (or
//! Incoming-Call-Reply) General Error No-Resource, and counted. A call stops counting
//! when its session is up (authenticated, an address negotiated) or gone.
//!
//! [`PerSource`] is also what counts control connections per source address.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

use super::limits::PeerCaps;

/// Counts per source address; each unit is held by a [`Held`] and given back when it
/// drops. An address is in the map only while it holds something, so the map is
/// bounded by what is held (connections, calls).
#[derive(Debug, Clone, Default)]
pub struct PerSource(Arc<Mutex<HashMap<IpAddr, u32>>>);

/// One unit of a [`PerSource`] count.
#[derive(Debug)]
pub struct Held {
    counts: PerSource,
    source: IpAddr,
}

impl PerSource {
    /// One more for `source`, unless it already holds `limit`.
    pub fn take(&self, source: IpAddr, limit: Option<u32>) -> Option<Held> {
        let mut map = self.0.lock().expect("per-source counts");
        let live = map.entry(source).or_insert(0);
        if limit.is_some_and(|limit| *live >= limit) {
            if *live == 0 {
                map.remove(&source);
            }
            return None;
        }
        *live += 1;
        Some(Held {
            counts: self.clone(),
            source,
        })
    }

    /// What `source` holds now.
    pub fn count(&self, source: IpAddr) -> u32 {
        let map = self.0.lock().expect("per-source counts");
        map.get(&source).copied().unwrap_or(0)
    }

    /// Addresses holding something.
    pub fn sources(&self) -> usize {
        self.0.lock().expect("per-source counts").len()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().expect("per-source counts");
        if let Some(live) = map.get_mut(&self.source) {
            *live -= 1;
            if *live == 0 {
                map.remove(&self.source);
            }
        }
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallRefused {
    #[error("{0} calls of this control connection are waiting for authentication")]
    PerConnection(u32),
    #[error("{0} calls from this address are waiting for authentication")]
    PerSource(u32),
}

/// The unauthenticated calls of every source address.
#[derive(Debug, Clone, Default)]
pub struct PendingCalls(PerSource);

/// The unauthenticated calls of one control connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectionCalls(Arc<AtomicU32>);

impl ConnectionCalls {
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A call counted as waiting for authentication until this drops.
#[derive(Debug)]
pub struct PendingCall {
    _source: Held,
    connection: ConnectionCalls,
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        self.connection.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PendingCalls {
    /// Counts a new call of `connection` from `source`, or says which cap it is over.
    pub fn admit(
        &self,
        connection: &ConnectionCalls,
        source: IpAddr,
        caps: PeerCaps,
    ) -> Result<PendingCall, CallRefused> {
        if let Some(cap) = caps.unauthenticated_calls_per_connection
            && connection.count() >= cap
        {
            return Err(CallRefused::PerConnection(cap));
        }
        let held = self
            .0
            .take(source, caps.unauthenticated_calls_per_source)
            .ok_or(CallRefused::PerSource(
                caps.unauthenticated_calls_per_source.unwrap_or(0),
            ))?;
        connection.0.fetch_add(1, Ordering::Relaxed);
        Ok(PendingCall {
            _source: held,
            connection: connection.clone(),
        })
    }

    /// Calls waiting from `source`.
    pub fn from_source(&self, source: IpAddr) -> u32 {
        self.0.count(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 10));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 11));

    fn caps(per_connection: u32, per_source: u32) -> PeerCaps {
        PeerCaps {
            connections_per_source: None,
            unauthenticated_calls_per_connection: Some(per_connection),
            unauthenticated_calls_per_source: Some(per_source),
        }
    }

    #[test]
    fn caps_per_connection_and_per_source_and_calls_give_back_on_drop() {
        let pending = PendingCalls::default();
        let (one, two) = (ConnectionCalls::default(), ConnectionCalls::default());
        let caps = caps(2, 3);
        let a1 = pending.admit(&one, A, caps).unwrap();
        let _a2 = pending.admit(&one, A, caps).unwrap();
        assert_eq!(
            pending.admit(&one, A, caps).unwrap_err(),
            CallRefused::PerConnection(2)
        );
        let _a3 = pending.admit(&two, A, caps).unwrap();
        assert_eq!(
            pending.admit(&two, A, caps).unwrap_err(),
            CallRefused::PerSource(3),
            "the address's third call was the last"
        );
        assert!(pending.admit(&two, B, caps).is_ok(), "another address");
        assert_eq!(pending.from_source(A), 3);
        drop(a1);
        assert_eq!((one.count(), pending.from_source(A)), (1, 2));
        let _again = pending.admit(&one, A, caps).unwrap();
        let unlimited = PeerCaps {
            connections_per_source: None,
            unauthenticated_calls_per_connection: None,
            unauthenticated_calls_per_source: None,
        };
        let many: Vec<_> = (0..100)
            .map(|_| pending.admit(&one, A, unlimited).unwrap())
            .collect();
        assert_eq!(one.count(), 102);
        drop(many);
        assert_eq!(one.count(), 2);
    }

    #[test]
    fn per_source_map_holds_only_addresses_that_hold_something() {
        let counts = PerSource::default();
        let held = counts.take(A, Some(1)).unwrap();
        assert!(counts.take(A, Some(1)).is_none());
        assert!(counts.take(B, Some(0)).is_none());
        assert_eq!(counts.sources(), 1, "a refused address leaves no entry");
        drop(held);
        assert_eq!(counts.sources(), 0);
    }
}
