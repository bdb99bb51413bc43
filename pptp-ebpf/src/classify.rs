//! Traffic classification on the uplink: which [`GlobalCounter`] a frame belongs to,
//! and the verdict for it.

use aya_ebpf::{macros::map, maps::PerCpuArray, programs::XdpContext};
use pptp_common::{
    counters::{Counter, GlobalCounter},
    wire::*,
};

use crate::{
    packet::{be16, read},
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
    match read::<2>(ctx, 12) {
        Some(ethertype) if be16(&ethertype, 0) == ETH_P_IP => {}
        _ => return GlobalCounter::NonIpv4,
    }
    let Some(ip) = read::<IPV4_MIN_HLEN>(ctx, ETH_HLEN) else {
        return GlobalCounter::Malformed;
    };
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    if ip[0] >> 4 != 4 || ihl < IPV4_MIN_HLEN {
        return GlobalCounter::Malformed;
    }
    if be16(&ip, 6) & IPV4_OFFSET_MASK != 0 {
        // Not the first fragment: there is no transport header to look at.
        return GlobalCounter::OtherIpv4;
    }
    let l4 = ETH_HLEN + ihl;
    match ip[9] {
        IPPROTO_TCP => classify_tcp(ctx, l4),
        IPPROTO_GRE => classify_gre(ctx, l4),
        _ => GlobalCounter::OtherIpv4,
    }
}

#[inline(always)]
fn classify_tcp(ctx: &XdpContext, l4: usize) -> GlobalCounter {
    let Some(ports) = read::<4>(ctx, l4) else {
        return GlobalCounter::Malformed;
    };
    if be16(&ports, 0) == PPTP_TCP_PORT || be16(&ports, 2) == PPTP_TCP_PORT {
        GlobalCounter::PptpControl
    } else {
        GlobalCounter::OtherIpv4
    }
}

#[inline(always)]
fn classify_gre(ctx: &XdpContext, l4: usize) -> GlobalCounter {
    let Some(base) = read::<4>(ctx, l4) else {
        return GlobalCounter::Malformed;
    };
    let (flags, flags_version) = (base[0], base[1]);
    if flags_version & GRE_VERSION_MASK != GRE_VERSION_ENHANCED {
        return GlobalCounter::GreOther;
    }
    // RFC 2637 §4.1: C, R, s and recursion clear, K set, protocol PPP, and room
    // for payload length and call ID.
    let forbidden = GRE_FLAG_C | GRE_FLAG_R | GRE_FLAG_STRICT | GRE_RECUR_MASK;
    if be16(&base, 2) != GRE_PROTO_PPP
        || flags & forbidden != 0
        || flags & GRE_FLAG_K == 0
        || flags_version & GRE_FLAGS2_MASK != 0
        || read::<GRE_ENHANCED_MIN_HLEN>(ctx, l4).is_none()
    {
        return GlobalCounter::Malformed;
    }
    GlobalCounter::GreEnhanced
}
