//! The pptp-xdp BPF programs.
//!
//! - `pptp_uplink` (XDP, uplink): counts every frame by traffic class and
//!   decapsulates enhanced GRE of installed fast-path sessions ([`uplink`]).
//! - `pptp_lan` (XDP, LAN link): encapsulates forwarded traffic towards clients of
//!   fast-path sessions ([`lan`]).
//! - `pptp_egress` (TC egress, the session device): encapsulates what the box itself
//!   sends to those clients ([`egress`]).
//!
//! Session state lives in the maps of [`maps`], written by the agent. Each of the
//! three polices what it forwards by the session's rate limits ([`police`]) and,
//! while `pptp-agent capture` runs for the session, copies it to the capture ring
//! buffer ([`capture`]).
#![no_std]
#![no_main]
// atomic_xadd: the BPF target has no core::sync::atomic integers.
#![allow(internal_features)]
#![feature(core_intrinsics, adt_const_params)]

mod capture;
mod egress;
mod encap;
mod forward;
mod lan;
mod maps;
mod mss;
mod nexthop;
mod packet;
mod police;
mod uplink;

use aya_ebpf::{
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

#[xdp]
pub fn pptp_uplink(ctx: XdpContext) -> u32 {
    uplink::run(&ctx)
}

#[xdp]
pub fn pptp_lan(ctx: XdpContext) -> u32 {
    lan::run(&ctx)
}

#[classifier]
pub fn pptp_egress(ctx: TcContext) -> i32 {
    egress::run(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
