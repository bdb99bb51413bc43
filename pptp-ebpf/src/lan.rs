//! The LAN program: encapsulate forwarded traffic to a client of a fast-path session
//! in IPv4 + enhanced GRE + PPP and send it out of the uplink, without a trip
//! through the kernel's routing or the agent.
//!
//! Anything else passes: traffic not for a session, sessions on the fallback path
//! (the kernel routes them to the agent's TUN device), packets too big for the
//! tunnel (the kernel fragments them or answers fragmentation-needed on the slow
//! path), TTL about to expire, and destinations without a known next hop.

use aya_ebpf::programs::XdpContext;
use pptp_common::{
    counters::GlobalCounter,
    session::{EncapSession, SESSION_FAST},
    wire::*,
};

use crate::{
    csum,
    forward::{self, PASS},
    maps::{SESSION_SEQ, SESSIONS_BY_CLIENT, count, count_session},
    mss, nexthop,
    packet::{Bytes, addr, be16},
};

/// Outer IPv4 header we add (no options).
const OUTER_IP_LEN: usize = 20;
/// PPP header we add: Address, Control, protocol IPv4 (accepted by every peer,
/// whatever it negotiated for ACFC/PFC).
const PPP_HEADER: [u8; 4] = [0xff, 0x03, 0x00, 0x21];
/// TTL of the outer header.
const OUTER_TTL: u8 = 64;
/// IPv4 "don't fragment".
const IPV4_DF: u16 = 0x4000;
/// IPv4 header + TCP header without options: what MSS excludes.
const TCP_IP_HEADERS: u16 = 40;

pub fn run(ctx: &XdpContext) -> u32 {
    encap(ctx).unwrap_or(PASS)
}

#[inline(always)]
fn encap(ctx: &XdpContext) -> Option<u32> {
    if be16(&ctx.read::<2>(12)?, 0) != ETH_P_IP {
        return None;
    }
    let header = ctx.read::<IPV4_MIN_HLEN>(ETH_HLEN)?;
    let session = unsafe { SESSIONS_BY_CLIENT.get(addr(&header, 16)) }?;
    let frame_len = ctx.len() as u64;
    let slot = session.slot;
    let ihl = ((header[0] & 0x0f) as usize) * 4;
    let inner_len = be16(&header, 2) as usize;
    if header[0] >> 4 != 4
        || ihl < IPV4_MIN_HLEN
        || inner_len < ihl
        || ETH_HLEN + inner_len > ctx.len()
    {
        return None;
    }
    if session.flags & SESSION_FAST == 0 {
        count(GlobalCounter::ToAgent, frame_len);
        count_session(slot, |c| c.to_agent += 1);
        return None;
    }
    if inner_len > session.mtu as usize {
        count(GlobalCounter::TooBig, frame_len);
        count_session(slot, |c| c.too_big += 1);
        return None;
    }
    let hop = match header[8] > 1 {
        true => nexthop::lookup(
            ctx,
            session.local_addr,
            session.peer_addr,
            (inner_len + 40) as u16,
        ),
        false => None,
    };
    let Some(hop) = hop else {
        count(GlobalCounter::NoNextHop, frame_len);
        return None;
    };

    if header[9] == IPPROTO_TCP
        && be16(&header, 6) & IPV4_OFFSET_MASK == 0
        && mss::clamp(
            ctx,
            ETH_HLEN + ihl,
            session.mtu.saturating_sub(TCP_IP_HEADERS),
        )
    {
        count(GlobalCounter::MssClamped, frame_len);
    }
    forward::decrement_ttl(ctx, ETH_HLEN, &header)?;
    forward::trim(ctx, ETH_HLEN + inner_len)?;

    let seq = SESSION_SEQ.get_ptr_mut(slot)?;
    // SAFETY: a valid map value; tx_next is only advanced atomically, by us and
    // by the agent through its mmap of the same array.
    let (seq, ack) = unsafe {
        let ack = ((*seq).rx_valid != 0).then_some((*seq).rx_highest);
        (fetch_add(&mut (*seq).tx_next) as u32, ack)
    };
    let gre_len = GRE_ENHANCED_MIN_HLEN + 4 + if ack.is_some() { 4 } else { 0 };
    let push = OUTER_IP_LEN + gre_len + PPP_HEADER.len();
    forward::adjust_head(ctx, -(push as i32))?;
    forward::write_ethernet(ctx, &hop)?;
    ctx.write(ETH_HLEN, &outer_ipv4(session, push + inner_len))?;
    let gre = ETH_HLEN + OUTER_IP_LEN;
    let payload_len = (PPP_HEADER.len() + inner_len) as u16;
    ctx.write(gre, &gre_header(session, payload_len, seq, ack.is_some()))?;
    match ack {
        Some(ack) => {
            ctx.write(gre + 12, &ack.to_be_bytes())?;
            ctx.write(gre + 16, &PPP_HEADER)?;
        }
        None => ctx.write(gre + 12, &PPP_HEADER)?,
    }
    count(GlobalCounter::Encapsulated, frame_len);
    count_session(slot, |c| {
        c.tx_packets += 1;
        c.tx_bytes += inner_len as u64;
    });
    Some(forward::redirect(&hop))
}

/// Atomically increments `*counter`, returning its previous value (a BPF atomic
/// fetch-and-add; `core::sync::atomic` has no atomics for the BPF target).
///
/// SeqCst, not Relaxed: LLVM's BPF backend compiles a relaxed fetch-and-add into the
/// legacy non-fetching `lock +=` even when the result is used (seen with the pinned
/// toolchain: every packet got the same sequence number); SeqCst gets
/// `atomic64_fetch_add`. The lan tests catch a regression.
#[inline(always)]
unsafe fn fetch_add(counter: *mut u64) -> u64 {
    // SAFETY: the caller passes a valid, aligned pointer into a map value.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::SeqCst }>(
            counter, 1,
        )
    }
}

/// The outer IPv4 header (DF set, ID 0 as RFC 6864 allows for atomic datagrams).
#[inline(always)]
fn outer_ipv4(session: &EncapSession, total_len: usize) -> [u8; OUTER_IP_LEN] {
    let [l0, l1] = (total_len as u16).to_be_bytes();
    let [f0, f1] = IPV4_DF.to_be_bytes();
    let s = session.local_addr;
    let d = session.peer_addr;
    let mut header = [
        0x45,
        0,
        l0,
        l1,
        0,
        0,
        f0,
        f1,
        OUTER_TTL,
        IPPROTO_GRE,
        0,
        0,
        s[0],
        s[1],
        s[2],
        s[3],
        d[0],
        d[1],
        d[2],
        d[3],
    ];
    let [c0, c1] = csum::ipv4_header(&header).to_be_bytes();
    header[10] = c0;
    header[11] = c1;
    header
}

/// Enhanced GRE header with key and sequence number; the acknowledgment flag is
/// set when an acknowledgment number follows.
#[inline(always)]
fn gre_header(session: &EncapSession, payload_len: u16, seq: u32, ack: bool) -> [u8; 12] {
    let [p0, p1] = GRE_PROTO_PPP.to_be_bytes();
    let [l0, l1] = payload_len.to_be_bytes();
    let [c0, c1] = session.peer_call_id.to_be_bytes();
    let [s0, s1, s2, s3] = seq.to_be_bytes();
    let flags2 = GRE_VERSION_ENHANCED | if ack { GRE_FLAG_A } else { 0 };
    [
        GRE_FLAG_K | GRE_FLAG_S,
        flags2,
        p0,
        p1,
        l0,
        l1,
        c0,
        c1,
        s0,
        s1,
        s2,
        s3,
    ]
}
