//! The LAN program: encapsulate forwarded traffic to a client of a fast-path session
//! in IPv4 + enhanced GRE + PPP and send it out of the uplink, without a trip
//! through the kernel's routing or the agent.
//!
//! Anything else passes: traffic not for a session, sessions on the fallback path
//! (the kernel routes them to the agent's TUN device), packets too big for the
//! tunnel (the kernel fragments them or answers fragmentation-needed on the slow
//! path), TTL about to expire, and destinations without a known next hop. What is
//! over the session's download limit is dropped (counted), as it would be by the
//! TC program or the agent on the other paths.

use aya_ebpf::programs::XdpContext;
use pptp_common::{
    capture::TO_CLIENT,
    counters::GlobalCounter,
    session::SESSION_FAST,
    wire::{ethernet, ipv4, tcp},
};

use crate::{
    capture, encap,
    forward::{self, PASS},
    maps::{SESSIONS_BY_CALL, client_session, count, count_event, count_packet},
    mss, nexthop,
    packet::Bytes,
    police,
};

pub fn run(ctx: &XdpContext) -> u32 {
    encap(ctx).unwrap_or(PASS)
}

#[inline(always)]
fn encap(ctx: &XdpContext) -> Option<u32> {
    let ethertype = ctx.read::<2>(ethernet::field::ETHERTYPE.start)?;
    if u16::from_be_bytes(ethertype) != ethernet::ETHERTYPE_IPV4 {
        return None;
    }
    let header = ipv4::Header(ctx.read::<{ ipv4::HEADER_LEN }>(ethernet::HEADER_LEN)?);
    let session = client_session(header.dst())?;
    let frame_len = ctx.len() as u64;
    let slot = session.slot;
    if !header.is_packet_within(ctx.len() - ethernet::HEADER_LEN) {
        return None;
    }
    let inner_len = header.total_len();
    if session.flags & SESSION_FAST == 0 {
        count(GlobalCounter::ToAgent, frame_len);
        count_event(slot, |c| c.to_agent += 1);
        return None;
    }
    if inner_len > session.mtu as usize {
        count(GlobalCounter::TooBig, frame_len);
        count_event(slot, |c| c.too_big += 1);
        return None;
    }
    // SAFETY: ctx.ctx points at the program's xdp_md.
    let ingress = unsafe { (*ctx.ctx).ingress_ifindex };
    let hop = match header.ttl() > 1 {
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

    if !police::tx(slot, session.flags, inner_len, frame_len) {
        return Some(forward::DROP);
    }
    capture::xdp(ctx, slot, ethernet::HEADER_LEN, inner_len, TO_CLIENT);

    if header.protocol() == ipv4::PROTO_TCP
        && !header.is_later_fragment()
        && mss::clamp(
            ctx,
            ethernet::HEADER_LEN + header.header_len(),
            session.mtu.saturating_sub(tcp::TCP_IPV4_HEADERS),
        )
    {
        count(GlobalCounter::MssClamped, frame_len);
    }
    forward::decrement_ttl(ctx, ethernet::HEADER_LEN, &header)?;
    forward::trim(ctx, ethernet::HEADER_LEN + inner_len)?;

    let record = SESSIONS_BY_CALL.get_ptr_mut(slot)?;
    let (seq, ack) = encap::next_seq(record);
    forward::adjust_head(ctx, -(encap::overhead(ack.is_some()) as i32))?;
    encap::write_headers(ctx, hop, &session, inner_len, seq, ack)?;
    count(GlobalCounter::Encapsulated, frame_len);
    // SAFETY: a valid map value.
    unsafe {
        count_packet(
            &raw mut (*record).tx_packets,
            &raw mut (*record).tx_bytes,
            inner_len as u64,
        )
    };
    Some(forward::redirect(hop))
}
