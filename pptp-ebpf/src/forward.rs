//! What forwarding a packet does to its IPv4 header and link layer, shared by the
//! decapsulating and encapsulating programs.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_redirect, programs::XdpContext};
use pptp_common::{
    session::NextHop,
    wire::{ethernet, ipv4},
};

use crate::packet::Bytes;

/// Decrements the TTL of the IPv4 header at `ip` (whose first 20 bytes are `header`)
/// and updates its checksum. The caller has checked that the TTL is above 1.
#[inline(always)]
pub fn decrement_ttl<B: Bytes>(pkt: &B, ip: usize, header: &ipv4::Header) -> Option<()> {
    pkt.write(ip + ipv4::field::TTL, &header.decremented_ttl())
}

/// Writes the Ethernet header for `hop` at the start of the frame.
#[inline(always)]
pub fn write_ethernet<B: Bytes>(pkt: &B, hop: &NextHop) -> Option<()> {
    pkt.write(
        0,
        &ethernet::header(hop.dmac, hop.smac, ethernet::ETHERTYPE_IPV4),
    )
}

/// Sends the frame out of `hop`'s interface.
#[inline(always)]
pub fn redirect(hop: &NextHop) -> u32 {
    // SAFETY: plain helper call.
    let rc = unsafe { bpf_redirect(hop.ifindex, 0) };
    rc as u32
}

/// Moves the start of the frame by `delta` bytes (positive: shrink).
#[inline(always)]
pub fn adjust_head(ctx: &XdpContext, delta: i32) -> Option<()> {
    // SAFETY: the helper checks the new head against the frame's headroom.
    let rc = unsafe { aya_ebpf::helpers::bpf_xdp_adjust_head(ctx.ctx, delta) };
    (rc == 0).then_some(())
}

/// Cuts the frame to `len` bytes if it is longer (Ethernet padding).
#[inline(always)]
pub fn trim(ctx: &XdpContext, len: usize) -> Option<()> {
    let have = ctx.len();
    if have > len {
        // SAFETY: the helper checks the new tail against the frame.
        let rc = unsafe { aya_ebpf::helpers::bpf_xdp_adjust_tail(ctx.ctx, -((have - len) as i32)) };
        if rc != 0 {
            return None;
        }
    }
    Some(())
}

/// XDP verdicts as `u32`.
pub const PASS: u32 = xdp_action::XDP_PASS;
pub const DROP: u32 = xdp_action::XDP_DROP;
