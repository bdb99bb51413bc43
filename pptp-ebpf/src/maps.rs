//! Every map of the BPF object. All are pinned by name, so that `stats` and
//! `bpftool` can read them and an agent restart finds the sessions still installed.

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use pptp_common::{
    capture::RING_BYTES,
    counters::{Counter, GlobalCounter},
    police::SessionPolicers,
    session::{
        CALL_IDS, CLIENT_INDEX_ENTRIES, ClientEntry, Config, EncapSession, MAX_SESSIONS, NextHop,
        Session, SessionEvents, client_index,
    },
};

#[map(name = "GLOBAL_COUNTERS")]
pub static GLOBAL_COUNTERS: PerCpuArray<Counter> = PerCpuArray::pinned(GlobalCounter::COUNT, 0);

#[map(name = "SESSIONS_BY_CALL")]
pub static SESSIONS_BY_CALL: Array<Session> = Array::pinned(CALL_IDS, BPF_F_MMAPABLE);

#[map(name = "CLIENT_INDEX")]
pub static CLIENT_INDEX: Array<ClientEntry> = Array::pinned(CLIENT_INDEX_ENTRIES, BPF_F_MMAPABLE);

#[map(name = "SESSIONS_BY_CLIENT")]
pub static SESSIONS_BY_CLIENT: HashMap<[u8; 4], EncapSession> = HashMap::pinned(MAX_SESSIONS, 0);

#[map(name = "SESSION_EVENTS")]
pub static SESSION_EVENTS: PerCpuArray<SessionEvents> = PerCpuArray::pinned(MAX_SESSIONS, 0);

#[map(name = "SESSION_POLICE")]
pub static SESSION_POLICE: Array<SessionPolicers> = Array::pinned(MAX_SESSIONS, 0);

#[map(name = "CAPTURE")]
pub static CAPTURE: RingBuf = RingBuf::pinned(RING_BYTES, 0);

#[map(name = "CAPTURE_SESSION")]
pub static CAPTURE_SESSION: Array<u32> = Array::pinned(1, 0);

#[map(name = "CONFIG")]
pub static CONFIG: Array<Config> = Array::pinned(1, 0);

#[map(name = "NEXT_HOPS")]
pub static NEXT_HOPS: LruHashMap<[u8; 4], NextHop> = LruHashMap::pinned(16_384, 0);

/// The session of client address `addr`: its `CLIENT_INDEX` entry, or the hash when
/// that entry is another client's and says clients overflowed into the hash.
#[inline(always)]
pub fn client_session(addr: [u8; 4]) -> Option<EncapSession> {
    let entry = CLIENT_INDEX.get(client_index(addr))?;
    if let Some(session) = entry.session_of(addr) {
        return Some(*session);
    }
    if entry.overflow == 0 {
        return None;
    }
    // SAFETY: a plain hash lookup; the value is copied out.
    unsafe { SESSIONS_BY_CLIENT.get(addr) }.copied()
}

/// Adds one frame of `bytes` to a global counter.
#[inline(always)]
pub fn count(counter: GlobalCounter, bytes: u64) {
    if let Some(slot) = GLOBAL_COUNTERS.get_ptr_mut(counter.index()) {
        // SAFETY: per-CPU slot; no other program instance touches it concurrently.
        unsafe {
            (*slot).packets += 1;
            (*slot).bytes += bytes;
        }
    }
}

/// Counts a rare event of session `slot` in its per-CPU `SESSION_EVENTS`.
#[inline(always)]
pub fn count_event(slot: u32, update: impl FnOnce(&mut SessionEvents)) {
    if let Some(counters) = SESSION_EVENTS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot; no other program instance touches it concurrently.
        update(unsafe { &mut *counters });
    }
}

/// Counts one forwarded packet of `bytes` in a session record's `packets` and
/// `bytes` counters (atomic adds: another CPU may count on the same record).
///
/// # Safety
/// Both pointers point into a valid map value.
#[inline(always)]
pub unsafe fn count_packet(packets: *mut u64, bytes: *mut u64, len: u64) {
    // SAFETY: the caller's pointers; relaxed adds whose result is unused compile to
    // BPF's non-fetching atomic add (see `encap::fetch_add` for the fetching one).
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            packets, 1,
        );
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            bytes, len,
        );
    }
}

/// The data-plane configuration (all zero until the agent writes it).
#[inline(always)]
pub fn config() -> Config {
    CONFIG.get(0).copied().unwrap_or_default()
}
