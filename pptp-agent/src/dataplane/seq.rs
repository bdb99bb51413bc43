//! The GRE sequence space of every session, shared with the BPF programs through an
//! mmap of the `SESSION_SEQ` array (created with `BPF_F_MMAPABLE`).
//!
//! The encapsulating BPF program takes sequence numbers with an atomic
//! fetch-and-add on `tx_next`; the agent takes its own (LCP echoes and other PPP
//! frames of fast-path sessions) the same way here, so the peer sees one
//! increasing sequence. The receive window (`pptp_common::seq`) is moved by
//! whoever accepts a packet: the uplink program for what it forwards, the agent
//! for what XDP hands it.

use std::{
    os::fd::AsFd,
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
};

use anyhow::{Context as _, ensure};
use aya::maps::MapData;
use pptp_common::{
    seq::Judgement,
    session::{MAX_SESSIONS, SeqState},
};

/// The mapped `SESSION_SEQ` array.
pub struct SeqSpace {
    base: NonNull<SeqState>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory accessed only through atomics.
unsafe impl Send for SeqSpace {}
// SAFETY: as above.
unsafe impl Sync for SeqSpace {}

impl SeqSpace {
    /// Maps the array behind `map` (which must be the `SESSION_SEQ` map).
    pub fn map(map: &MapData) -> anyhow::Result<Self> {
        const STRIDE: usize = size_of::<SeqState>().next_multiple_of(8);
        const _: () = assert!(STRIDE == size_of::<SeqState>());
        let len = MAX_SESSIONS as usize * STRIDE;
        // SAFETY: mapping a BPF array map fd, as the kernel documents for
        // BPF_F_MMAPABLE arrays; the length is the map's value area.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&map.fd().as_fd()),
                0,
            )
        };
        ensure!(
            ptr != libc::MAP_FAILED,
            "mmap of SESSION_SEQ failed: {}",
            std::io::Error::last_os_error()
        );
        let base = NonNull::new(ptr.cast()).context("mmap returned null")?;
        Ok(Self { base, len })
    }

    fn slot(&self, slot: u32) -> *mut SeqState {
        assert!(slot < MAX_SESSIONS, "session slot {slot} out of range");
        // SAFETY: in bounds of the mapping (checked above).
        unsafe { self.base.as_ptr().add(slot as usize) }
    }

    /// Takes the next sequence number of `slot` for a frame the agent sends.
    pub fn take_seq(&self, slot: u32) -> u32 {
        // SAFETY: `tx_next` is an aligned u64 inside the mapping, only ever
        // advanced atomically (here and by the BPF program).
        let tx = unsafe { AtomicU64::from_ptr(&raw mut (*self.slot(slot)).tx_next) };
        tx.fetch_add(1, Ordering::SeqCst) as u32
    }

    /// The receive field `field` of `slot`, as an atomic.
    fn rx(&self, slot: u32, field: impl FnOnce(*mut SeqState) -> *mut u32) -> &AtomicU32 {
        // SAFETY: `field` projects to an aligned u32 inside the mapping, which lives
        // as long as `self`.
        unsafe { AtomicU32::from_ptr(field(self.slot(slot))) }
    }

    /// The highest sequence number accepted on `slot`, if any (to acknowledge).
    pub fn highest_received(&self, slot: u32) -> Option<u32> {
        // SAFETY (projections): in bounds of a valid slot pointer.
        let valid = self.rx(slot, |s| unsafe { &raw mut (*s).rx_valid });
        let highest = self.rx(slot, |s| unsafe { &raw mut (*s).rx_highest });
        (valid.load(Ordering::Acquire) != 0).then(|| highest.load(Ordering::Acquire))
    }

    /// How a received `seq` stands against `slot`'s window; a packet too far ahead
    /// becomes the probe (`pptp_common::seq`). The window itself does not move.
    pub fn judge(&self, slot: u32, seq: u32) -> Judgement {
        // SAFETY (projections): in bounds of a valid slot pointer.
        let probe_valid = self.rx(slot, |s| unsafe { &raw mut (*s).rx_probe_valid });
        let probe = self.rx(slot, |s| unsafe { &raw mut (*s).rx_probe });
        let probe =
            (probe_valid.load(Ordering::Acquire) != 0).then(|| probe.load(Ordering::Acquire));
        let judgement = pptp_common::seq::judge(self.highest_received(slot), probe, seq);
        if judgement == Judgement::TooFar {
            self.rx(slot, |s| unsafe { &raw mut (*s).rx_probe })
                .store(seq, Ordering::Release);
            probe_valid.store(1, Ordering::Release);
        }
        judgement
    }

    /// Records a packet the agent accepted on `slot`: the window moves to `seq`.
    pub fn accept(&self, slot: u32, seq: u32) {
        // SAFETY (projections): in bounds of a valid slot pointer.
        self.rx(slot, |s| unsafe { &raw mut (*s).rx_highest })
            .store(seq, Ordering::Release);
        self.rx(slot, |s| unsafe { &raw mut (*s).rx_valid })
            .store(1, Ordering::Release);
        self.rx(slot, |s| unsafe { &raw mut (*s).rx_probe_valid })
            .store(0, Ordering::Release);
    }

    /// Starts `slot` afresh: nothing sent or received yet.
    pub fn reset(&self, slot: u32) {
        let state = self.slot(slot);
        // SAFETY: aligned fields inside the mapping; the slot is not in use by any
        // installed session while it is reset.
        unsafe {
            AtomicU64::from_ptr(&raw mut (*state).tx_next).store(0, Ordering::SeqCst);
            AtomicU32::from_ptr(&raw mut (*state).rx_highest).store(0, Ordering::SeqCst);
            AtomicU32::from_ptr(&raw mut (*state).rx_valid).store(0, Ordering::SeqCst);
            AtomicU32::from_ptr(&raw mut (*state).rx_probe_valid).store(0, Ordering::SeqCst);
        }
    }
}

impl Drop for SeqSpace {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
