//! The rate limits of the data plane: `pptp_common::police` run on the session's
//! value in `SESSION_POLICE`, one array value per session shared by every CPU. The
//! clock and the window counts move by atomic adds (the same fetch-and-add the
//! sequence numbers use, `encap::fetch_add`); the reasons and the two plain stores
//! are in `pptp_common::police`.
//!
//! The clock is `bpf_ktime_get_coarse_ns` (a jiffy's resolution, read only for a
//! session with a limit): the bucket is 100 ms deep, so a clock a few ms behind moves
//! single decisions by that much and the rate not at all, and it costs a fraction
//! of the precise clock's 25-30 ns (see `pptp_common::session::NEXT_HOP_TTL_JIFFIES`).

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use pptp_common::{
    counters::GlobalCounter,
    police::{Policer, State, Store, WINDOWS, Word, police},
    session::SESSION_POLICED,
};

use crate::{
    encap::fetch_add,
    maps::{SESSION_POLICE, count, count_event},
};

/// A [`State`] in the shared map value.
struct Shared(*mut State);

impl Shared {
    #[inline(always)]
    fn word(&self, word: Word) -> *mut u64 {
        // SAFETY: self.0 points at a map value; the index is reduced below WINDOWS.
        unsafe {
            match word {
                Word::Tat => &raw mut (*self.0).tat,
                Word::Epoch => &raw mut (*self.0).epoch,
                Word::Window(i) => &raw mut (*self.0).windows[i % WINDOWS],
            }
        }
    }
}

impl Store for Shared {
    #[inline(always)]
    fn load(&self, word: Word) -> u64 {
        // SAFETY: a valid, aligned pointer into the map value.
        unsafe { core::ptr::read_volatile(self.word(word)) }
    }
    #[inline(always)]
    fn store(&mut self, word: Word, value: u64) {
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(self.word(word), value) }
    }
    #[inline(always)]
    fn add(&mut self, word: Word, value: u64) -> u64 {
        // SAFETY: as above.
        unsafe { fetch_add(self.word(word), value) }
    }
}

/// Whether a packet of `len` bytes from the client of session `slot` (with
/// `SESSION_*` flags `flags`) passes its limit; a drop is counted. A session without
/// [`SESSION_POLICED`] passes without a read of `SESSION_POLICE`.
#[inline(always)]
pub fn rx(slot: u32, flags: u32, len: usize, frame_len: u64) -> bool {
    if flags & SESSION_POLICED == 0 {
        return true;
    }
    let Some(p) = SESSION_POLICE.get_ptr_mut(slot) else {
        return true;
    };
    // SAFETY: a valid map value.
    let pass = run(unsafe { &raw mut (*p).rx }, len);
    if !pass {
        count(GlobalCounter::Policed, frame_len);
        count_event(slot, |c| c.drop_policed_rx += 1);
    }
    pass
}

/// Whether a packet of `len` bytes to the client of session `slot` (with flags
/// `flags`) passes its limit; a drop is counted, as for [`rx`].
#[inline(always)]
pub fn tx(slot: u32, flags: u32, len: usize, frame_len: u64) -> bool {
    if flags & SESSION_POLICED == 0 {
        return true;
    }
    let Some(p) = SESSION_POLICE.get_ptr_mut(slot) else {
        return true;
    };
    // SAFETY: a valid map value.
    let pass = run(unsafe { &raw mut (*p).tx }, len);
    if !pass {
        count(GlobalCounter::Policed, frame_len);
        count_event(slot, |c| c.drop_policed_tx += 1);
    }
    pass
}

#[inline(always)]
fn run(policer: *mut Policer, len: usize) -> bool {
    // SAFETY: a valid map value; the limit is written only by the agent (a torn
    // read during a change polices one packet by a mix of the old and new limit).
    let limit = unsafe { (*policer).limit };
    if !limit.is_set() {
        return true;
    }
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let mut state = Shared(unsafe { &raw mut (*policer).state });
    police(&limit, &mut state, now, len as u32)
}
