//! Traffic classification on the uplink: which [`GlobalCounter`] a frame belongs to,
//! and the verdict for it.

use aya_ebpf::{macros::map, maps::PerCpuArray, programs::XdpContext};
use pptp_common::{
    counters::{Counter, GlobalCounter},
    wire::*,
};

use crate::{
    packet::{read_u8, read_u16_be},
    verdict,
};

#[map(name = "GLOBAL_COUNTERS")]
static GLOBAL_COUNTERS: PerCpuArray<Counter> = PerCpuArray::pinned(GlobalCounter::COUNT, 0);

/// Classifies the frame, counts it and returns the verdict.
#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let class = classify(ctx);
    count(class, (ctx.data_end() - ctx.data()) as u64);
    match class {
        GlobalCounter::Malformed => verdict::DROP,
        _ => verdict::PASS,
    }
}

#[inline(always)]
fn count(class: GlobalCounter, bytes: u64) {
    if let Some(slot) = GLOBAL_COUNTERS.get_ptr_mut(class.index()) {
        // SAFETY: per-CPU slot; no other program instance touches it concurrently.
        unsafe {
            (*slot).packets += 1;
            (*slot).bytes += bytes;
        }
    }
}

#[inline(always)]
fn classify(ctx: &XdpContext) -> GlobalCounter {
    match read_u16_be(ctx, 12) {
        Some(ETH_P_IP) => {}
        _ => return GlobalCounter::NonIpv4,
    }
    let ip = ETH_HLEN;
    let Some(version_ihl) = read_u8(ctx, ip) else {
        return GlobalCounter::Malformed;
    };
    let ihl = ((version_ihl & 0x0f) as usize) * 4;
    if version_ihl >> 4 != 4 || ihl < IPV4_MIN_HLEN || read_u8(ctx, ip + IPV4_MIN_HLEN - 1).is_none()
    {
        return GlobalCounter::Malformed;
    }
    let (Some(frag), Some(proto)) = (read_u16_be(ctx, ip + 6), read_u8(ctx, ip + 9)) else {
        return GlobalCounter::Malformed;
    };
    if frag & IPV4_OFFSET_MASK != 0 {
        // Not the first fragment: there is no transport header to look at.
        return GlobalCounter::OtherIpv4;
    }
    let l4 = ip + ihl;
    match proto {
        IPPROTO_TCP => classify_tcp(ctx, l4),
        IPPROTO_GRE => classify_gre(ctx, l4),
        _ => GlobalCounter::OtherIpv4,
    }
}

#[inline(always)]
fn classify_tcp(ctx: &XdpContext, l4: usize) -> GlobalCounter {
    let (Some(sport), Some(dport)) = (read_u16_be(ctx, l4), read_u16_be(ctx, l4 + 2)) else {
        return GlobalCounter::Malformed;
    };
    if sport == PPTP_TCP_PORT || dport == PPTP_TCP_PORT {
        GlobalCounter::PptpControl
    } else {
        GlobalCounter::OtherIpv4
    }
}

#[inline(always)]
fn classify_gre(ctx: &XdpContext, l4: usize) -> GlobalCounter {
    let (Some(flags), Some(flags_version), Some(proto)) = (
        read_u8(ctx, l4),
        read_u8(ctx, l4 + 1),
        read_u16_be(ctx, l4 + 2),
    ) else {
        return GlobalCounter::Malformed;
    };
    if flags_version & GRE_VERSION_MASK != GRE_VERSION_ENHANCED {
        return GlobalCounter::GreOther;
    }
    // RFC 2637 §4.1: C, R, s and recursion clear, K set, protocol PPP.
    let forbidden = GRE_FLAG_C | GRE_FLAG_R | GRE_FLAG_STRICT | GRE_RECUR_MASK;
    if proto != GRE_PROTO_PPP
        || flags & forbidden != 0
        || flags & GRE_FLAG_K == 0
        || flags_version & GRE_FLAGS2_MASK != 0
        || read_u8(ctx, l4 + GRE_ENHANCED_MIN_HLEN - 1).is_none()
    {
        return GlobalCounter::Malformed;
    }
    GlobalCounter::GreEnhanced
}
