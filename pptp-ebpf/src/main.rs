//! The pptp-xdp BPF programs.
//!
//! `pptp_uplink` runs as XDP on the concentrator's uplink. For now it classifies
//! every frame (PPTP control, enhanced GRE, other GRE, other IPv4, non-IPv4,
//! malformed) into the per-CPU `GLOBAL_COUNTERS` map and passes it on; malformed
//! frames are dropped. The GRE decapsulation data plane replaces the classification
//! step; the counter plumbing stays.
#![no_std]
#![no_main]

mod classify;
mod packet;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn pptp_uplink(ctx: XdpContext) -> u32 {
    classify::run(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Verdicts as `u32`, the type XDP programs return.
pub(crate) mod verdict {
    use super::xdp_action;
    pub const PASS: u32 = xdp_action::XDP_PASS;
    pub const DROP: u32 = xdp_action::XDP_DROP;
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
