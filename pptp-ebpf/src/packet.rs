//! Bounds-checked access to packet bytes, in the form the verifier accepts: every
//! read is preceded by a comparison of `start + offset + size` with `data_end`.
//!
//! Reads are of whole header chunks (`N >= 2` bytes): for a one-byte read at a
//! variable offset LLVM rewrites `p + 1 > end` as `p >= end`, from which the
//! verifier learns no readable range.

use aya_ebpf::programs::XdpContext;

/// Copies `N` bytes at `offset` out of the frame, or `None` if the frame is too short.
#[inline(always)]
pub fn read<const N: usize>(ctx: &XdpContext, offset: usize) -> Option<[u8; N]> {
    let start = ctx.data();
    if start + offset + N > ctx.data_end() {
        return None;
    }
    // SAFETY: the comparison above proves all N bytes lie inside the frame.
    Some(unsafe { *((start + offset) as *const [u8; N]) })
}

/// Big-endian `u16` from two bytes of a header chunk.
#[inline(always)]
pub fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}
