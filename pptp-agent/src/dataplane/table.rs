//! The session records of `SESSIONS_BY_CALL` (created with `BPF_F_MMAPABLE`), shared
//! with the BPF programs through an mmap of the array: one 64-byte
//! [`Session`] per call ID (`pptp_common::session`).
//!
//! The agent writes a session's identity (peer, client, flags) here, field by field
//! with atomic stores, so that it never overwrites what the programs keep in the
//! same record (sequence state, packet counters) as a whole-value map update would.
//!
//! The encapsulating BPF programs take sequence numbers with an atomic
//! fetch-and-add on `tx_next`; the agent takes its own (LCP echoes and other PPP
//! frames of fast-path sessions) the same way here, so the peer sees one
//! increasing sequence. The receive window (`pptp_common::seq`) is moved by
//! whoever accepts a packet: the uplink program for what it forwards, the agent
//! for what XDP hands it.
//!
//! Reading the records is a memory scan, not one system call per entry: `stats`
//! finds the installed sessions among the 65,536 records of 4 MiB in memory.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

use aya::maps::MapData;
use pptp_common::{
    seq::Judgement,
    session::{CALL_IDS, SESSION_INSTALLED, Session},
};

use super::mapped::Mapped;

/// The mapped `SESSIONS_BY_CALL` array.
pub struct SessionTable {
    records: Mapped<Session>,
}

/// An address as the `u32` of its four bytes in memory order.
fn word(addr: [u8; 4]) -> u32 {
    u32::from_ne_bytes(addr)
}

impl SessionTable {
    /// Maps the array behind `map` (which must be the `SESSIONS_BY_CALL` map).
    pub fn map(map: &MapData) -> anyhow::Result<Self> {
        const _: () = assert!(size_of::<Session>() == 64);
        Ok(Self {
            records: Mapped::map(map, CALL_IDS, "SESSIONS_BY_CALL")?,
        })
    }

    fn record(&self, slot: u32) -> *mut Session {
        self.records.at(slot)
    }

    fn u16_at(&self, slot: u32, field: impl FnOnce(*mut Session) -> *mut u16) -> &AtomicU16 {
        // SAFETY: `field` projects to an aligned u16 inside the mapping, which lives
        // as long as `self`.
        unsafe { AtomicU16::from_ptr(field(self.record(slot))) }
    }

    fn u32_at(&self, slot: u32, field: impl FnOnce(*mut Session) -> *mut u32) -> &AtomicU32 {
        // SAFETY: as for `u16_at`.
        unsafe { AtomicU32::from_ptr(field(self.record(slot))) }
    }

    fn u64_at(&self, slot: u32, field: impl FnOnce(*mut Session) -> *mut u64) -> &AtomicU64 {
        // SAFETY: as for `u16_at`.
        unsafe { AtomicU64::from_ptr(field(self.record(slot))) }
    }

    /// A copy of the record of `slot` (fields the programs are moving may be from
    /// slightly different moments).
    pub fn get(&self, slot: u32) -> Session {
        // SAFETY: an aligned record inside the mapping; a volatile read, since the
        // programs write it concurrently (a torn counter is at most one packet old).
        unsafe { std::ptr::read_volatile(self.record(slot)) }
    }

    /// The records that hold a session, by slot (our call ID).
    pub fn installed(&self) -> impl Iterator<Item = (u32, Session)> + '_ {
        (0..CALL_IDS).filter_map(|slot| {
            // SAFETY (projection): in bounds of a valid record pointer.
            let flags = self.u32_at(slot, |s| unsafe { &raw mut (*s).flags });
            (flags.load(Ordering::Acquire) & SESSION_INSTALLED != 0).then(|| (slot, self.get(slot)))
        })
    }

    /// Starts the record of `slot` afresh (nothing sent, received or counted) for a
    /// session with these identity fields; the installed flag is written last.
    pub fn install(&self, slot: u32, peer: [u8; 4], client: [u8; 4], flags: u32) {
        self.reset(slot);
        self.set_identity(slot, peer, client, flags);
    }

    /// Zeroes the sequence state and the counters of `slot`.
    fn reset(&self, slot: u32) {
        // SAFETY (projections): in bounds of a valid record pointer; the slot holds
        // no installed session while it is reset.
        unsafe {
            for field in [
                &raw mut (*self.record(slot)).tx_next,
                &raw mut (*self.record(slot)).rx_packets,
                &raw mut (*self.record(slot)).rx_bytes,
                &raw mut (*self.record(slot)).tx_packets,
                &raw mut (*self.record(slot)).tx_bytes,
            ] {
                AtomicU64::from_ptr(field).store(0, Ordering::SeqCst);
            }
            self.u32_at(slot, |s| &raw mut (*s).rx_highest)
                .store(0, Ordering::SeqCst);
            self.u32_at(slot, |s| &raw mut (*s).rx_probe)
                .store(0, Ordering::SeqCst);
            self.u16_at(slot, |s| &raw mut (*s).rx_valid)
                .store(0, Ordering::SeqCst);
            self.u16_at(slot, |s| &raw mut (*s).rx_probe_valid)
                .store(0, Ordering::SeqCst);
        }
    }

    /// Writes the identity fields of the installed session of `slot`, the flags
    /// (`flags` and [`SESSION_INSTALLED`]) last: the programs check the installed
    /// flag before anything else.
    pub fn set_identity(&self, slot: u32, peer: [u8; 4], client: [u8; 4], flags: u32) {
        self.write_identity(slot, peer, client, flags | SESSION_INSTALLED);
    }

    fn write_identity(&self, slot: u32, peer: [u8; 4], client: [u8; 4], flags: u32) {
        // SAFETY (projections): in bounds of a valid record pointer.
        unsafe {
            self.u32_at(slot, |s| (&raw mut (*s).peer_addr).cast())
                .store(word(peer), Ordering::SeqCst);
            self.u32_at(slot, |s| (&raw mut (*s).client_addr).cast())
                .store(word(client), Ordering::SeqCst);
            self.u32_at(slot, |s| &raw mut (*s).flags)
                .store(flags, Ordering::SeqCst);
        }
    }

    /// Empties the record of `slot`: the flags first, so that no program takes the
    /// half-cleared record for a session.
    pub fn clear(&self, slot: u32) {
        // SAFETY (projection): in bounds of a valid record pointer.
        self.u32_at(slot, |s| unsafe { &raw mut (*s).flags })
            .store(0, Ordering::SeqCst);
        self.reset(slot);
        self.write_identity(slot, [0; 4], [0; 4], 0);
    }

    /// Takes the next sequence number of `slot` for a frame the agent sends.
    pub fn take_seq(&self, slot: u32) -> u32 {
        // SAFETY (projection): `tx_next` is only ever advanced atomically (here and
        // by the BPF programs).
        self.u64_at(slot, |s| unsafe { &raw mut (*s).tx_next })
            .fetch_add(1, Ordering::SeqCst) as u32
    }

    /// The highest sequence number accepted on `slot`, if any (to acknowledge).
    pub fn highest_received(&self, slot: u32) -> Option<u32> {
        // SAFETY (projections): in bounds of a valid record pointer.
        let valid = self.u16_at(slot, |s| unsafe { &raw mut (*s).rx_valid });
        let highest = self.u32_at(slot, |s| unsafe { &raw mut (*s).rx_highest });
        (valid.load(Ordering::Acquire) != 0).then(|| highest.load(Ordering::Acquire))
    }

    /// How a received `seq` stands against `slot`'s window; a packet too far ahead
    /// becomes the probe (`pptp_common::seq`). The window itself does not move.
    pub fn judge(&self, slot: u32, seq: u32) -> Judgement {
        // SAFETY (projections): in bounds of a valid record pointer.
        let probe_valid = self.u16_at(slot, |s| unsafe { &raw mut (*s).rx_probe_valid });
        let probe = self.u32_at(slot, |s| unsafe { &raw mut (*s).rx_probe });
        let probe =
            (probe_valid.load(Ordering::Acquire) != 0).then(|| probe.load(Ordering::Acquire));
        let judgement = pptp_common::seq::judge(self.highest_received(slot), probe, seq);
        if judgement == Judgement::TooFar {
            self.u32_at(slot, |s| unsafe { &raw mut (*s).rx_probe })
                .store(seq, Ordering::Release);
            probe_valid.store(1, Ordering::Release);
        }
        judgement
    }

    /// Records a packet the agent accepted on `slot`: the window moves to `seq`.
    pub fn accept(&self, slot: u32, seq: u32) {
        // SAFETY (projections): in bounds of a valid record pointer.
        self.u32_at(slot, |s| unsafe { &raw mut (*s).rx_highest })
            .store(seq, Ordering::Release);
        self.u16_at(slot, |s| unsafe { &raw mut (*s).rx_valid })
            .store(1, Ordering::Release);
        self.u16_at(slot, |s| unsafe { &raw mut (*s).rx_probe_valid })
            .store(0, Ordering::Release);
    }
}
