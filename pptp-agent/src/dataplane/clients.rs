//! Where the encapsulating programs find a client's session: `CLIENT_INDEX`, an
//! mmapable array indexed by the low 16 bits of the client address, and the hash
//! `SESSIONS_BY_CLIENT` for the clients whose index entry another client holds
//! (`pptp_common::session`). A pool of up to 65,536 consecutive addresses never
//! collides; an address that does goes to the hash, and its index entry says so
//! (`overflow`), so that lookups for other addresses with that index do not pay for
//! the hash.
//!
//! Entries are written through the mapping field by field with atomic stores, the
//! installed flag last (and cleared first): a packet racing a write sees no session
//! or the whole one, never a mix of two clients' (on x86-64, where stores stay in
//! order; see `docs/data-plane.md`). An entry freed by its client is not refilled
//! from the hash: the clients there stay there until they go.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    sync::atomic::{AtomicU16, AtomicU32, Ordering},
};

use aya::maps::{HashMap, MapData};
use pptp_common::session::{
    CLIENT_INDEX_ENTRIES, ClientEntry, EncapSession, SESSION_INSTALLED, client_index,
};

use super::mapped::Mapped;
use crate::engine::kernel::DataplaneError;

/// A projection to one field of an entry.
type Field<T> = fn(*mut ClientEntry) -> *mut T;

/// The client index and its overflow hash.
pub struct Clients {
    entries: Mapped<ClientEntry>,
    hash: HashMap<MapData, [u8; 4], EncapSession>,
    /// The clients in the hash, and how many of them each index entry has.
    hashed: BTreeSet<[u8; 4]>,
    overflowed: BTreeMap<u32, usize>,
}

impl Clients {
    /// Maps `index` (the `CLIENT_INDEX` map) and takes `hash` (`SESSIONS_BY_CLIENT`);
    /// both are emptied (what a previous agent left cannot be owned).
    pub fn new(
        index: &MapData,
        hash: HashMap<MapData, [u8; 4], EncapSession>,
    ) -> anyhow::Result<Self> {
        let entries = Mapped::map(index, CLIENT_INDEX_ENTRIES, "CLIENT_INDEX")?;
        let mut clients = Self {
            entries,
            hash,
            hashed: BTreeSet::new(),
            overflowed: BTreeMap::new(),
        };
        for i in 0..CLIENT_INDEX_ENTRIES {
            clients.clear_entry(i);
            // SAFETY (projection): in bounds of a valid entry pointer.
            clients
                .u32_at(i, |e| unsafe { &raw mut (*e).overflow })
                .store(0, Ordering::SeqCst);
        }
        let keys: Vec<[u8; 4]> = clients.hash.keys().collect::<Result<_, _>>()?;
        for key in &keys {
            clients.hash.remove(key)?;
        }
        Ok(clients)
    }

    fn entry(&self, i: u32) -> *mut ClientEntry {
        self.entries.at(i)
    }

    fn u32_at(&self, i: u32, field: impl FnOnce(*mut ClientEntry) -> *mut u32) -> &AtomicU32 {
        // SAFETY: `field` projects to an aligned u32 inside the mapping, which lives
        // as long as `self`.
        unsafe { AtomicU32::from_ptr(field(self.entry(i))) }
    }

    fn u16_at(&self, i: u32, field: impl FnOnce(*mut ClientEntry) -> *mut u16) -> &AtomicU16 {
        // SAFETY: as for `u32_at`.
        unsafe { AtomicU16::from_ptr(field(self.entry(i))) }
    }

    /// The client holding entry `i`, if any.
    fn holder(&self, i: u32) -> Option<[u8; 4]> {
        // SAFETY (projections): in bounds of a valid entry pointer.
        let flags = self.u32_at(i, |e| unsafe { &raw mut (*e).session.flags });
        let client = self.u32_at(i, |e| unsafe { (&raw mut (*e).client_addr).cast() });
        (flags.load(Ordering::SeqCst) & SESSION_INSTALLED != 0)
            .then(|| client.load(Ordering::SeqCst).to_ne_bytes())
    }

    /// Writes (or rewrites) the session of `client`: into its index entry unless
    /// another client holds that entry or `client` is in the hash already.
    pub fn set(&mut self, client: Ipv4Addr, session: EncapSession) -> Result<(), DataplaneError> {
        let addr = client.octets();
        let i = client_index(addr);
        let other_holds = self.holder(i).is_some_and(|holder| holder != addr);
        if !other_holds && !self.hashed.contains(&addr) {
            self.write_entry(i, addr, &session);
            return Ok(());
        }
        self.hash.insert(addr, session, 0).map_err(kernel)?;
        if self.hashed.insert(addr) {
            *self.overflowed.entry(i).or_default() += 1;
        }
        // SAFETY (projection): in bounds of a valid entry pointer.
        self.u32_at(i, |e| unsafe { &raw mut (*e).overflow })
            .store(1, Ordering::SeqCst);
        Ok(())
    }

    /// Removes `client`'s session.
    pub fn remove(&mut self, client: Ipv4Addr) -> Result<(), DataplaneError> {
        let addr = client.octets();
        let i = client_index(addr);
        if !self.hashed.remove(&addr) {
            if self.holder(i) == Some(addr) {
                self.clear_entry(i);
            }
            return Ok(());
        }
        self.hash.remove(&addr).map_err(kernel)?;
        let count = self.overflowed.entry(i).or_default();
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.overflowed.remove(&i);
            // SAFETY (projection): in bounds of a valid entry pointer.
            self.u32_at(i, |e| unsafe { &raw mut (*e).overflow })
                .store(0, Ordering::SeqCst);
        }
        Ok(())
    }

    fn write_entry(&self, i: u32, addr: [u8; 4], s: &EncapSession) {
        // SAFETY (projections): in bounds of a valid entry pointer.
        unsafe {
            let u32s: [(Field<u32>, u32); 4] = [
                (
                    |e| (&raw mut (*e).session.peer_addr).cast(),
                    u32::from_ne_bytes(s.peer_addr),
                ),
                (
                    |e| (&raw mut (*e).session.local_addr).cast(),
                    u32::from_ne_bytes(s.local_addr),
                ),
                (|e| &raw mut (*e).session.slot, s.slot),
                (
                    |e| (&raw mut (*e).client_addr).cast(),
                    u32::from_ne_bytes(addr),
                ),
            ];
            for (field, value) in u32s {
                self.u32_at(i, field).store(value, Ordering::SeqCst);
            }
            self.u16_at(i, |e| &raw mut (*e).session.peer_call_id)
                .store(s.peer_call_id, Ordering::SeqCst);
            self.u16_at(i, |e| &raw mut (*e).session.mtu)
                .store(s.mtu, Ordering::SeqCst);
            self.u32_at(i, |e| &raw mut (*e).session.flags)
                .store(s.flags | SESSION_INSTALLED, Ordering::SeqCst);
        }
    }

    /// Empties entry `i` (its overflow mark stays): the flags first.
    fn clear_entry(&self, i: u32) {
        // SAFETY (projections): in bounds of a valid entry pointer.
        unsafe {
            self.u32_at(i, |e| &raw mut (*e).session.flags)
                .store(0, Ordering::SeqCst);
            for field in [
                (|e| (&raw mut (*e).client_addr).cast()) as Field<u32>,
                |e| (&raw mut (*e).session.peer_addr).cast(),
                |e| (&raw mut (*e).session.local_addr).cast(),
                |e| &raw mut (*e).session.slot,
            ] {
                self.u32_at(i, field).store(0, Ordering::SeqCst);
            }
            self.u16_at(i, |e| &raw mut (*e).session.peer_call_id)
                .store(0, Ordering::SeqCst);
            self.u16_at(i, |e| &raw mut (*e).session.mtu)
                .store(0, Ordering::SeqCst);
        }
    }
}

/// A map operation the kernel refused.
fn kernel(e: impl std::error::Error + Send + Sync + 'static) -> DataplaneError {
    DataplaneError::Kernel(Box::new(e))
}
