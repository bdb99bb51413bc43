//! Bounds-checked access to packet bytes, in the form the verifier accepts: every
//! read is preceded by a comparison of `start + offset + size` with `data_end`.

use aya_ebpf::programs::XdpContext;

/// Returns a pointer to a `T` at `offset` from the start of the frame, or `None` if
/// the frame is too short.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

/// Reads a big-endian `u16` at `offset`.
#[inline(always)]
pub fn read_u16_be(ctx: &XdpContext, offset: usize) -> Option<u16> {
    let p = ptr_at::<[u8; 2]>(ctx, offset)?;
    // SAFETY: `ptr_at` checked that both bytes lie inside the frame.
    Some(u16::from_be_bytes(unsafe { *p }))
}

/// Reads the byte at `offset`.
#[inline(always)]
pub fn read_u8(ctx: &XdpContext, offset: usize) -> Option<u8> {
    let p = ptr_at::<u8>(ctx, offset)?;
    // SAFETY: `ptr_at` checked that the byte lies inside the frame.
    Some(unsafe { *p })
}
