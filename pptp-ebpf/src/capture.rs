//! Capture of one session's inner packets for `pptp-agent capture`
//! (`pptp_common::capture`): while `CAPTURE_SESSION` names the session's slot, each
//! program copies the IPv4 packet it forwards for that session into the `CAPTURE`
//! ring buffer (the first `SNAPLEN` bytes). Otherwise it costs one array lookup.
//! A full ring buffer loses the record, not the packet.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_skb_load_bytes, bpf_xdp_load_bytes},
    programs::{TcContext, XdpContext},
};
use pptp_common::capture::{Record, RecordHeader, SNAPLEN};

use crate::maps::{CAPTURE, CAPTURE_SESSION};

/// Whether session `slot` is being captured.
#[inline(always)]
fn wanted(slot: u32) -> bool {
    CAPTURE_SESSION
        .get(0)
        .is_some_and(|captured| *captured == slot + 1)
}

/// Copies `len` bytes at `offset` of the frame with `load` into a new record.
#[inline(always)]
fn record(slot: u32, len: usize, direction: u32, load: impl FnOnce(*mut u8, u32) -> i64) {
    let Some(mut entry) = CAPTURE.reserve::<Record>(0) else {
        return;
    };
    // Through a volatile slot, so that the bounds are checked on the very register
    // the helper gets (LLVM otherwise tests `len` and passes a copy the verifier
    // knows no lower bound of).
    let mut slot_len = 0usize;
    // SAFETY: a local variable.
    let caplen = unsafe {
        core::ptr::write_volatile(&mut slot_len, len);
        core::ptr::read_volatile(&slot_len)
    };
    let caplen = if caplen > SNAPLEN { SNAPLEN } else { caplen };
    if caplen == 0 {
        entry.discard(0);
        return;
    }
    let record = entry.as_mut_ptr();
    // SAFETY: the entry is a reserved Record; the load writes at most caplen
    // (<= SNAPLEN) bytes into its data.
    let loaded = unsafe {
        (*record).header = RecordHeader {
            time_ns: bpf_ktime_get_ns(),
            len: len as u32,
            caplen: caplen as u32,
            direction,
            slot,
        };
        load((*record).data.as_mut_ptr(), caplen as u32)
    };
    if loaded == 0 {
        entry.submit(0);
    } else {
        entry.discard(0);
    }
}

/// Captures the `len`-byte packet at `offset` of an XDP frame for session `slot`.
#[inline(always)]
pub fn xdp(ctx: &XdpContext, slot: u32, offset: usize, len: usize, direction: u32) {
    if wanted(slot) {
        record(slot, len, direction, |to, n| unsafe {
            // SAFETY: plain helper call; the kernel checks the range.
            bpf_xdp_load_bytes(ctx.ctx, offset as u32, to.cast(), n)
        });
    }
}

/// Captures the `len`-byte packet at `offset` of a TC packet for session `slot`.
#[inline(always)]
pub fn tc(ctx: &TcContext, slot: u32, offset: usize, len: usize, direction: u32) {
    if wanted(slot) {
        record(slot, len, direction, |to, n| unsafe {
            // SAFETY: plain helper call; the kernel checks the range.
            bpf_skb_load_bytes(ctx.skb.skb.cast(), offset as u32, to.cast(), n)
        });
    }
}
