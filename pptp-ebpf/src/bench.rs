//! Programs for `cargo xtask bench` only (a second object, `pptp-bench`; the agent
//! embeds it only with its `bench` feature):
//!
//! - `bench_gen`: the load generator, run with BPF_PROG_TEST_RUN in live-frames mode
//!   on the generator's veth. Every frame gets the first [`TEMPLATE_LEN`] bytes of
//!   template `(n / burst) % count` (one template per session: trains of `burst`
//!   frames per session, round robin over the sessions), the next GRE sequence
//!   number of its session when the templates are enhanced GRE, and is sent with
//!   `XDP_TX`.
//!   Rewriting the headers of every frame is needed: live-frames pages are recycled
//!   with whatever the receivers wrote into them (decapsulation overwrites the GRE
//!   header with an Ethernet header, forwarding decrements the TTL).
//! - `bench_sink`: counts every frame per CPU by kind and drops it.
//! - `bench_redirect`: the "bare redirect" baseline: sends every frame, unparsed,
//!   to the interface in `REDIRECT_TO[0]`.
//! - `bench_pass`: `XDP_PASS`, the empty program of the per-packet timings.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_redirect,
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use pptp_common::wire::{ethernet, get16, gre, ipv4};

/// Bytes of each frame the generator rewrites from its template.
const TEMPLATE_LEN: usize = 72;
/// The same in 64-bit words (templates are stored as words: copied word by word).
const TEMPLATE_WORDS: usize = TEMPLATE_LEN / 8;
/// Offset of the GRE sequence number in a template (Ethernet, IPv4 without options,
/// the fixed part of the GRE header).
const SEQ_OFFSET: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + gre::FIXED_LEN;
/// Room for this many templates.
const MAX_TEMPLATES: u32 = 60_000;

/// Generator settings, written by the bench before each run.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GenConfig {
    /// Number of templates in use (at least 1).
    pub count: u32,
    /// Non-zero: write the GRE sequence number at [`SEQ_OFFSET`].
    pub gre_seq: u32,
    /// Frames per session in a row (at least 1).
    pub burst: u32,
    pub _pad: u32,
}

#[map(name = "GEN_CONFIG")]
static GEN_CONFIG: Array<GenConfig> = Array::with_max_entries(1, 0);

/// Frames generated so far (one generator runs at a time: a plain counter).
#[map(name = "GEN_COUNTER")]
static GEN_COUNTER: Array<u64> = Array::with_max_entries(1, 0);

#[map(name = "GEN_TEMPLATES")]
static GEN_TEMPLATES: Array<[u64; TEMPLATE_WORDS]> = Array::with_max_entries(MAX_TEMPLATES, 0);

/// Sink counters: [`SINK_ALL`], [`SINK_UDP`], [`SINK_GRE`], [`SINK_OTHER`].
#[map(name = "SINK_COUNTERS")]
static SINK_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(4, 0);

const SINK_ALL: u32 = 0;
const SINK_UDP: u32 = 1;
const SINK_GRE: u32 = 2;
const SINK_OTHER: u32 = 3;

#[map(name = "REDIRECT_TO")]
static REDIRECT_TO: Array<u32> = Array::with_max_entries(1, 0);

#[xdp]
pub fn bench_gen(ctx: XdpContext) -> u32 {
    generate(&ctx).unwrap_or(xdp_action::XDP_ABORTED)
}

#[inline(always)]
fn generate(ctx: &XdpContext) -> Option<u32> {
    let config = GEN_CONFIG.get(0)?;
    let counter = GEN_COUNTER.get_ptr_mut(0)?;
    // SAFETY: a valid map value; only one generator runs at a time.
    let n = unsafe {
        let n = *counter;
        *counter = n + 1;
        n
    };
    let count = u64::from(config.count.max(1));
    let burst = u64::from(config.burst.max(1));
    let train = n / burst;
    let template = GEN_TEMPLATES.get((train % count) as u32)?;
    let start = ctx.data();
    if start + TEMPLATE_LEN > ctx.data_end() {
        return None;
    }
    // Nine word stores, volatile so that LLVM does not turn them back into a call to
    // a byte-wise memmove (it did: the copy then cost more than the rest).
    let words = start as *mut u64;
    for (i, word) in template.iter().enumerate() {
        // SAFETY: the comparison above proves the bytes lie inside the frame; live
        // frames start 8-byte aligned (XDP_PACKET_HEADROOM after an aligned header).
        unsafe { words.add(i).write_volatile(*word) };
    }
    if config.gre_seq != 0 {
        // Session `train % count`'s trains so far, times `burst`, plus the place in
        // this one: strictly increasing per session.
        let seq = ((train / count * burst + n % burst) as u32).wrapping_add(1);
        // SAFETY: SEQ_OFFSET + 4 <= TEMPLATE_LEN, checked above.
        unsafe { *((start + SEQ_OFFSET) as *mut [u8; 4]) = seq.to_be_bytes() };
    }
    Some(xdp_action::XDP_TX)
}

#[xdp]
pub fn bench_sink(ctx: XdpContext) -> u32 {
    let kind = match kind(&ctx) {
        Some(ipv4::PROTO_UDP) => SINK_UDP,
        Some(ipv4::PROTO_GRE) => SINK_GRE,
        _ => SINK_OTHER,
    };
    for index in [SINK_ALL, kind] {
        if let Some(slot) = SINK_COUNTERS.get_ptr_mut(index) {
            // SAFETY: per-CPU slot.
            unsafe { *slot += 1 };
        }
    }
    xdp_action::XDP_DROP
}

/// The IPv4 protocol of an Ethernet frame.
#[inline(always)]
fn kind(ctx: &XdpContext) -> Option<u8> {
    const LEN: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
    let start = ctx.data();
    if start + LEN > ctx.data_end() {
        return None;
    }
    // SAFETY: the comparison above proves the bytes lie inside the frame.
    let frame = unsafe { *(start as *const [u8; LEN]) };
    let is_ipv4 = get16(&frame, ethernet::field::ETHERTYPE) == ethernet::ETHERTYPE_IPV4;
    is_ipv4.then_some(frame[ethernet::HEADER_LEN + ipv4::field::PROTOCOL])
}

#[xdp]
pub fn bench_redirect(_ctx: XdpContext) -> u32 {
    match REDIRECT_TO.get(0) {
        // SAFETY: plain helper call.
        Some(ifindex) => unsafe { bpf_redirect(*ifindex, 0) as u32 },
        None => xdp_action::XDP_ABORTED,
    }
}

#[xdp]
pub fn bench_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
