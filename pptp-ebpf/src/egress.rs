//! TC egress on the session device (`pptp0`): what the box itself sends to a
//! fast-path client (or what XDP left to the kernel's routing) is encapsulated here
//! and sent straight out of the uplink, instead of crossing into the agent.
//!
//! The device is a TUN (layer 3): the packet starts with its IPv4 header. The program
//! makes room for Ethernet + outer IPv4 + GRE + PPP with `bpf_skb_change_head`,
//! writes them (MACs from the next-hop cache, FIB lookup from the egress side) and
//! redirects to the uplink. A session not on the fast path, a packet above its MTU, or
//! a next hop the kernel has not resolved yet goes on to the TUN device: the agent
//! sends it. What is over the session's download limit is dropped (counted). It runs
//! after the kernel's routing, so it cannot beat plain forwarding;
//! it saves the trip through the agent.

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT},
    helpers::{bpf_redirect, bpf_skb_change_head},
    programs::TcContext,
};
use pptp_common::{
    capture::TO_CLIENT,
    counters::GlobalCounter,
    session::SESSION_FAST,
    wire::{ethernet, ipv4},
};

use crate::{
    capture, encap,
    maps::{SESSIONS_BY_CALL, client_session, count, count_event, count_packet},
    nexthop,
    packet::Bytes,
    police,
};

impl Bytes for TcContext {
    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }
    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }
}

pub fn run(ctx: &TcContext) -> i32 {
    encap(ctx).unwrap_or(TC_ACT_OK)
}

#[inline(always)]
fn encap(ctx: &TcContext) -> Option<i32> {
    let header = ipv4::Header(ctx.read::<{ ipv4::HEADER_LEN }>(0)?);
    if header.version() != 4 {
        return None;
    }
    let session = client_session(header.dst())?;
    let slot = session.slot;
    let inner_len = header.total_len();
    let len = ctx.len() as u64;
    if session.flags & SESSION_FAST == 0 {
        count(GlobalCounter::ToAgent, len);
        count_event(slot, |c| c.to_agent += 1);
        return None;
    }
    if inner_len > session.mtu as usize || inner_len != ctx.len() as usize {
        count(GlobalCounter::TooBig, len);
        count_event(slot, |c| c.too_big += 1);
        return None;
    }
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let Some(hop) = nexthop::lookup(
        ctx,
        ifindex,
        session.local_addr,
        session.peer_addr,
        (inner_len + 40) as u16,
    ) else {
        count(GlobalCounter::NoNextHop, len);
        return None;
    };
    if !police::tx(slot, session.flags, inner_len, len) {
        return Some(TC_ACT_SHOT);
    }
    capture::tc(ctx, slot, 0, inner_len, TO_CLIENT);
    let record = SESSIONS_BY_CALL.get_ptr_mut(slot)?;
    let (seq, ack) = encap::next_seq(record);
    let push = ethernet::HEADER_LEN + encap::overhead(ack.is_some());
    // SAFETY: plain helper call on this program's skb.
    if unsafe { bpf_skb_change_head(ctx.skb.skb, push as u32, 0) } != 0 {
        return None;
    }
    encap::write_headers(ctx, hop, &session, inner_len, seq, ack)?;
    count(GlobalCounter::Encapsulated, len);
    // SAFETY: a valid map value.
    unsafe {
        count_packet(
            &raw mut (*record).tx_packets,
            &raw mut (*record).tx_bytes,
            inner_len as u64,
        )
    };
    // SAFETY: plain helper call.
    unsafe { bpf_redirect(hop.ifindex, 0) };
    Some(TC_ACT_REDIRECT)
}
