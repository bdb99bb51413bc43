//! The LAN program: encapsulate forwarded traffic to a client of a fast-path session
//! in IPv4 + enhanced GRE + PPP and send it out of the uplink, without a trip
//! through the kernel's routing or the agent.
//!
//! Anything else passes: traffic not for a session, sessions on the fallback path
//! (the kernel routes them to the agent's TUN device), packets too big for the
//! tunnel (the kernel fragments them or answers fragmentation-needed on the slow
//! path), TTL about to expire, and destinations without a known next hop.

use aya_ebpf::programs::XdpContext;
use pptp_common::{counters::GlobalCounter, session::SESSION_FAST, wire::*};

use crate::{
    encap,
    forward::{self, PASS},
    maps::{SESSION_SEQ, SESSIONS_BY_CLIENT, count, count_session},
    mss, nexthop,
    packet::{Bytes, addr, be16},
};

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
    // SAFETY: ctx.ctx points at the program's xdp_md.
    let ingress = unsafe { (*ctx.ctx).ingress_ifindex };
    let hop = match header[8] > 1 {
        true => nexthop::lookup(
            ctx,
            ingress,
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

    let (seq, ack) = encap::next_seq(SESSION_SEQ.get_ptr_mut(slot)?);
    forward::adjust_head(ctx, -(encap::overhead(ack.is_some()) as i32))?;
    forward::write_ethernet(ctx, &hop)?;
    encap::write_headers(ctx, ETH_HLEN, session, inner_len, seq, ack)?;
    count(GlobalCounter::Encapsulated, frame_len);
    count_session(slot, |c| {
        c.tx_packets += 1;
        c.tx_bytes += inner_len as u64;
    });
    Some(forward::redirect(&hop))
}
