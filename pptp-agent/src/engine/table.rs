//! The session table: every session in a slab, named by one handle, a generational
//! [`SessionId`], with the indexes the engine finds sessions by, each O(1) (prefixes:
//! one probe per prefix length in use):
//!
//! - the call: (peer's outer address, our call ID), how GRE from the peer names it;
//! - the client's tunnel address, how packets for a client find it;
//! - the user, for `sessions_per_user` and `kill --user`;
//! - the prefixes routed behind it ([`PrefixTable`]).
//!
//! A slot freed by an ended session is reused with a new generation, so an id that
//! outlives its session (a RADIUS verdict, an operator's command) never names the
//! next one. The id is also what operators and RADIUS see (`sessions`,
//! Acct-Session-Id): the slot in its low [`SessionId::SLOT_BITS`] bits plus one,
//! the generation above, so the first sessions are numbered 1, 2, 3...

use std::{
    collections::{HashMap, HashSet},
    net::Ipv4Addr,
};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::prefixes::PrefixTable;

/// One session, for the life of the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(u64);

impl SessionId {
    /// Bits of the slot (plus one): a million sessions at once.
    pub const SLOT_BITS: u32 = 20;

    fn new(slot: usize, generation: u64) -> Self {
        Self(generation << Self::SLOT_BITS | (slot as u64 + 1))
    }

    fn slot(self) -> Option<usize> {
        (self.0 & ((1 << Self::SLOT_BITS) - 1))
            .checked_sub(1)
            .map(|s| s as usize)
    }

    /// The number operators and RADIUS see.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The session's NAS-Port: its slot plus one. Unique among the sessions in the
    /// table (a slot holds one session at a time) and the same for the session's
    /// life (a session never changes slots), whichever control connection or
    /// dialer its call came on; rlm_sqlippool keys address leases on it.
    pub fn port(self) -> u32 {
        (self.0 & ((1 << Self::SLOT_BITS) - 1)) as u32
    }

    /// The session an operator or RADIUS named (it may since have ended).
    pub fn from_number(n: u64) -> Self {
        Self(n)
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How GRE from a peer names a session: its outer address and our call ID.
pub type CallKey = (Ipv4Addr, u16);

/// Why a session could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("call {1} of {0} is already a session's")]
    CallTaken(Ipv4Addr, u16),
    #[error("the session table is full ({0} sessions)")]
    Full(usize),
}

struct Slot<T> {
    generation: u64,
    /// Boxed: the slot vector grows by doubling, and unboxed sessions (2.5 KB
    /// each) made its unused half cost as much again.
    entry: Option<Box<Entry<T>>>,
}

struct Entry<T> {
    value: T,
    call: CallKey,
    client: Option<Ipv4Addr>,
    user: Option<String>,
    prefixes: Vec<Ipv4Net>,
}

/// Sessions of type `T` and their indexes.
pub struct SessionTable<T> {
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
    capacity: usize,
    len: usize,
    by_call: HashMap<CallKey, SessionId>,
    by_client: HashMap<Ipv4Addr, SessionId>,
    by_user: HashMap<String, HashSet<SessionId>>,
    prefixes: PrefixTable<SessionId>,
}

impl<T> SessionTable<T> {
    /// A table of at most `capacity` sessions (at most 2^20 - 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            capacity: capacity.min((1 << SessionId::SLOT_BITS) - 1),
            len: 0,
            by_call: HashMap::new(),
            by_client: HashMap::new(),
            by_user: HashMap::new(),
            prefixes: PrefixTable::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether another session would not fit.
    pub fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    /// Adds the session of `call`.
    pub fn insert(&mut self, call: CallKey, value: T) -> Result<SessionId, TableError> {
        if self.by_call.contains_key(&call) {
            return Err(TableError::CallTaken(call.0, call.1));
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if self.slots.len() < self.capacity => {
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                self.slots.len() - 1
            }
            None => return Err(TableError::Full(self.capacity)),
        };
        let s = &mut self.slots[slot];
        s.entry = Some(Box::new(Entry {
            value,
            call,
            client: None,
            user: None,
            prefixes: Vec::new(),
        }));
        let id = SessionId::new(slot, s.generation);
        self.by_call.insert(call, id);
        self.len += 1;
        Ok(id)
    }

    fn entry(&self, id: SessionId) -> Option<&Entry<T>> {
        let slot = self.slots.get(id.slot()?)?;
        (SessionId::new(id.slot()?, slot.generation) == id)
            .then_some(slot.entry.as_deref())
            .flatten()
    }

    fn entry_mut(&mut self, id: SessionId) -> Option<&mut Entry<T>> {
        let index = id.slot()?;
        let slot = self.slots.get_mut(index)?;
        (SessionId::new(index, slot.generation) == id)
            .then_some(slot.entry.as_deref_mut())
            .flatten()
    }

    pub fn get(&self, id: SessionId) -> Option<&T> {
        self.entry(id).map(|e| &e.value)
    }

    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut T> {
        self.entry_mut(id).map(|e| &mut e.value)
    }

    pub fn contains(&self, id: SessionId) -> bool {
        self.entry(id).is_some()
    }

    /// Removes a session and every index entry it had.
    pub fn remove(&mut self, id: SessionId) -> Option<T> {
        let index = id.slot()?;
        self.entry(id)?;
        let slot = &mut self.slots[index];
        let entry = slot.entry.take()?;
        slot.generation += 1;
        self.free.push(index);
        self.len -= 1;
        self.by_call.remove(&entry.call);
        if let Some(client) = entry.client {
            self.by_client.remove(&client);
        }
        if let Some(user) = &entry.user {
            self.forget_user(user, id);
        }
        for prefix in &entry.prefixes {
            self.prefixes.remove(*prefix, id);
        }
        Some(entry.value)
    }

    /// The session of a call.
    pub fn by_call(&self, call: CallKey) -> Option<SessionId> {
        self.by_call.get(&call).copied()
    }

    /// The call of a session.
    pub fn call(&self, id: SessionId) -> Option<CallKey> {
        self.entry(id).map(|e| e.call)
    }

    /// Gives the session its client's tunnel address; the session holding it
    /// already, if another does.
    pub fn set_client(&mut self, id: SessionId, client: Ipv4Addr) -> Result<(), SessionId> {
        match self.by_client.get(&client) {
            Some(owner) if *owner != id => return Err(*owner),
            _ => {}
        }
        let Some(entry) = self.entry_mut(id) else {
            return Ok(());
        };
        let old = entry.client.replace(client);
        if let Some(old) = old.filter(|old| *old != client) {
            self.by_client.remove(&old);
        }
        self.by_client.insert(client, id);
        Ok(())
    }

    /// The session whose client has tunnel address `client`.
    pub fn by_client(&self, client: Ipv4Addr) -> Option<SessionId> {
        self.by_client.get(&client).copied()
    }

    /// Records who the session authenticated as.
    pub fn set_user(&mut self, id: SessionId, user: &str) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        let old = entry.user.replace(user.to_owned());
        if let Some(old) = old {
            self.forget_user(&old, id);
        }
        self.by_user.entry(user.to_owned()).or_default().insert(id);
    }

    fn forget_user(&mut self, user: &str, id: SessionId) {
        if let Some(ids) = self.by_user.get_mut(user) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_user.remove(user);
            }
        }
    }

    /// The sessions of `user`.
    pub fn of_user(&self, user: &str) -> impl Iterator<Item = SessionId> + '_ {
        self.by_user.get(user).into_iter().flatten().copied()
    }

    /// Routes `prefix` to the session; the session holding it, if another does.
    pub fn attach_prefix(&mut self, id: SessionId, prefix: Ipv4Net) -> Result<(), SessionId> {
        let prefix = prefix.trunc();
        if !self.contains(id) {
            return Ok(());
        }
        self.prefixes.insert(prefix, id)?;
        if let Some(entry) = self.entry_mut(id)
            && !entry.prefixes.contains(&prefix)
        {
            entry.prefixes.push(prefix);
        }
        Ok(())
    }

    /// Takes every prefix away from the session; returns them.
    pub fn detach_prefixes(&mut self, id: SessionId) -> Vec<Ipv4Net> {
        let Some(entry) = self.entry_mut(id) else {
            return Vec::new();
        };
        let prefixes = std::mem::take(&mut entry.prefixes);
        for prefix in &prefixes {
            self.prefixes.remove(*prefix, id);
        }
        prefixes
    }

    /// The prefixes routed to the session.
    pub fn prefixes(&self, id: SessionId) -> &[Ipv4Net] {
        self.entry(id).map_or(&[], |e| &e.prefixes)
    }

    /// The session packets to `dst` go to: its client's, or the longest prefix's.
    pub fn route(&self, dst: Ipv4Addr) -> Option<SessionId> {
        self.by_client(dst).or_else(|| {
            if self.prefixes.is_empty() {
                None
            } else {
                self.prefixes.lookup(dst)
            }
        })
    }

    /// Every session, oldest slot first.
    pub fn iter(&self) -> impl Iterator<Item = (SessionId, &T)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            let entry = slot.entry.as_ref()?;
            Some((SessionId::new(index, slot.generation), &entry.value))
        })
    }

    /// Every session's id.
    pub fn ids(&self) -> Vec<SessionId> {
        self.iter().map(|(id, _)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(n: u16) -> CallKey {
        (Ipv4Addr::new(198, 51, 100, 10), n)
    }

    #[test]
    fn ids_are_numbered_from_one_and_never_name_a_later_session() {
        let mut t = SessionTable::new(8);
        let a = t.insert(call(1), "a").unwrap();
        let b = t.insert(call(2), "b").unwrap();
        assert_eq!((a.get(), b.get()), (1, 2));
        assert_eq!(t.remove(a), Some("a"));
        let c = t.insert(call(3), "c").unwrap();
        assert_ne!(c, a, "the slot is reused under a new generation");
        assert_eq!(t.get(a), None);
        assert_eq!(t.remove(a), None);
        assert_eq!(t.get(c), Some(&"c"));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(SessionId::from_number(0)), None);
        assert_eq!(t.get(SessionId::from_number(u64::MAX)), None);
    }

    #[test]
    fn calls_are_unique_and_the_table_is_bounded() {
        let mut t = SessionTable::new(2);
        t.insert(call(1), ()).unwrap();
        assert_eq!(
            t.insert(call(1), ()),
            Err(TableError::CallTaken(call(1).0, 1))
        );
        t.insert(call(2), ()).unwrap();
        assert_eq!(t.insert(call(3), ()), Err(TableError::Full(2)));
    }

    #[test]
    fn indexes_follow_the_session_and_leave_with_it() {
        let mut t = SessionTable::new(8);
        let a = t.insert(call(1), ()).unwrap();
        let b = t.insert(call(2), ()).unwrap();
        let client = Ipv4Addr::new(192, 0, 2, 10);
        t.set_client(a, client).unwrap();
        assert_eq!(
            t.set_client(b, client),
            Err(a),
            "one client address, one owner"
        );
        t.set_user(a, "alice");
        t.set_user(b, "alice");
        let net: Ipv4Net = "203.0.113.0/24".parse().unwrap();
        t.attach_prefix(a, net).unwrap();
        assert_eq!(t.attach_prefix(b, net), Err(a));
        assert_eq!(t.route(client), Some(a));
        assert_eq!(t.route("203.0.113.7".parse().unwrap()), Some(a));
        assert_eq!(t.of_user("alice").count(), 2);
        assert_eq!(t.by_call(call(1)), Some(a));

        t.remove(a);
        assert_eq!(t.route(client), None);
        assert_eq!(t.route("203.0.113.7".parse().unwrap()), None);
        assert_eq!(t.of_user("alice").collect::<Vec<_>>(), vec![b]);
        assert_eq!(t.by_call(call(1)), None);
        t.attach_prefix(b, net).unwrap();
        assert_eq!(t.detach_prefixes(b), vec![net]);
        assert_eq!(t.route("203.0.113.7".parse().unwrap()), None);
    }
}
