//! The uplink program: classify every frame (the traffic classes of
//! [`GlobalCounter`]) and decapsulate enhanced GRE of installed fast-path sessions.
//!
//! For a GRE packet of an installed session: drop old, duplicate and too-far
//! sequence numbers (`pptp_common::seq`), recording the new highest one (the
//! agent's acks use it) only for packets forwarded here; consume
//! ack-only packets; hand PPP control, MPPE and non-fast sessions to the agent
//! (XDP_PASS reaches its raw GRE socket); for IPv4 data check that the inner
//! source is the client's address, hand DHCP requests (Windows' DHCPINFORM) to the
//! agent, strip outer IPv4 + GRE + PPP and forward to the cached next hop, or
//! XDP_PASS the inner packet when no next hop is known.

use aya_ebpf::programs::XdpContext;
use pptp_common::{
    counters::GlobalCounter,
    seq::Judgement,
    session::{CallKey, SESSION_FAST},
    wire::*,
};

use crate::{
    forward::{self, DROP, PASS},
    maps::{SESSION_SEQ, SESSIONS_BY_CALL, config, count, count_session},
    nexthop,
    packet::{Bytes, addr, be16, be32},
};

/// PPP protocol number of IPv4 datagrams.
const PPP_IPV4: u16 = 0x0021;

/// A frame as far as classification took it.
enum Frame {
    /// Not ours to decapsulate: counted in this class, verdict by class.
    Other(GlobalCounter),
    /// Enhanced GRE whose fixed header has been validated.
    Gre {
        l4: usize,
        ip_hlen: usize,
        src: [u8; 4],
        fragment: bool,
    },
}

pub fn run(ctx: &XdpContext) -> u32 {
    let frame_len = ctx.len() as u64;
    match classify(ctx) {
        Frame::Other(class) => {
            count(class, frame_len);
            match class {
                GlobalCounter::Malformed => DROP,
                _ => PASS,
            }
        }
        Frame::Gre {
            l4,
            ip_hlen,
            src,
            fragment,
        } => {
            count(GlobalCounter::GreEnhanced, frame_len);
            if fragment {
                count(GlobalCounter::OuterFragment, frame_len);
                return PASS;
            }
            decap(ctx, l4, ip_hlen, src).unwrap_or_else(|| {
                count(GlobalCounter::Malformed, frame_len);
                DROP
            })
        }
    }
}

#[inline(always)]
fn classify(ctx: &XdpContext) -> Frame {
    match ctx.read::<2>(12) {
        Some(ethertype) if be16(&ethertype, 0) == ETH_P_IP => {}
        _ => return Frame::Other(GlobalCounter::NonIpv4),
    }
    let Some(ip) = ctx.read::<IPV4_MIN_HLEN>(ETH_HLEN) else {
        return Frame::Other(GlobalCounter::Malformed);
    };
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    if ip[0] >> 4 != 4 || ihl < IPV4_MIN_HLEN {
        return Frame::Other(GlobalCounter::Malformed);
    }
    let frag = be16(&ip, 6);
    if frag & IPV4_OFFSET_MASK != 0 {
        // Not the first fragment: there is no transport header to look at.
        return Frame::Other(GlobalCounter::OtherIpv4);
    }
    let l4 = ETH_HLEN + ihl;
    match ip[9] {
        IPPROTO_TCP => Frame::Other(classify_tcp(ctx, l4)),
        IPPROTO_GRE => match classify_gre(ctx, l4) {
            GlobalCounter::GreEnhanced => Frame::Gre {
                l4,
                ip_hlen: ihl,
                src: addr(&ip, 12),
                fragment: frag & IPV4_MF != 0,
            },
            class => Frame::Other(class),
        },
        _ => Frame::Other(GlobalCounter::OtherIpv4),
    }
}

#[inline(always)]
fn classify_tcp(ctx: &XdpContext, l4: usize) -> GlobalCounter {
    let Some(ports) = ctx.read::<4>(l4) else {
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
    let Some(base) = ctx.read::<4>(l4) else {
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
        || ctx.read::<GRE_ENHANCED_MIN_HLEN>(l4).is_none()
    {
        return GlobalCounter::Malformed;
    }
    GlobalCounter::GreEnhanced
}

/// Decapsulates one enhanced GRE packet; `None` means malformed.
#[inline(always)]
fn decap(ctx: &XdpContext, l4: usize, ip_hlen: usize, src: [u8; 4]) -> Option<u32> {
    let frame_len = ctx.len() as u64;
    let gre = ctx.read::<GRE_ENHANCED_MIN_HLEN>(l4)?;
    let has_seq = gre[0] & GRE_FLAG_S != 0;
    let has_ack = gre[1] & GRE_FLAG_A != 0;
    let payload_len = be16(&gre, 4) as usize;
    let call_id = be16(&gre, 6);
    let gre_len = GRE_ENHANCED_MIN_HLEN + if has_seq { 4 } else { 0 } + if has_ack { 4 } else { 0 };
    let payload = l4 + gre_len;
    if payload + payload_len > ctx.len() {
        return None;
    }

    let Some(session) = (unsafe { SESSIONS_BY_CALL.get(CallKey::new(src, call_id)) }) else {
        count(GlobalCounter::UnknownSession, frame_len);
        return Some(if config().drop_unknown != 0 {
            DROP
        } else {
            PASS
        });
    };
    let slot = session.slot;

    // The window moves only when XDP forwards the packet itself (below); what it
    // hands to the agent, the agent judges again and records (`pptp_common::seq`).
    // SAFETY: a valid map value; concurrent receivers of one session race only on
    // which of two accepted sequence numbers is recorded as the highest.
    let state = unsafe { &mut *SESSION_SEQ.get_ptr_mut(slot)? };
    let mut seq = 0;
    if has_seq {
        seq = be32(&ctx.read::<4>(l4 + GRE_ENHANCED_MIN_HLEN)?, 0);
        match state.judge(seq) {
            Judgement::New => {}
            Judgement::Duplicate | Judgement::Old => {
                count(GlobalCounter::OldSequence, frame_len);
                count_session(slot, |c| c.drop_old_seq += 1);
                return Some(DROP);
            }
            Judgement::TooFar => {
                state.set_probe(seq);
                count(GlobalCounter::SequenceJump, frame_len);
                count_session(slot, |c| c.drop_old_seq += 1);
                return Some(DROP);
            }
        }
    }
    if payload_len == 0 {
        count(GlobalCounter::AckOnly, frame_len);
        return Some(DROP);
    }
    if session.flags & SESSION_FAST == 0 {
        return Some(to_agent(slot, frame_len));
    }

    // PPP header: Address/Control may be compressed away (ACFC), the protocol may
    // be one byte (PFC: an odd first byte).
    let ppp = ctx.read::<4>(payload)?;
    let acf = if ppp[0] == 0xff && ppp[1] == 0x03 {
        2
    } else {
        0
    };
    let (protocol, protocol_len) = if ppp[acf] & 1 == 1 {
        (ppp[acf] as u16, 1)
    } else {
        (be16(&ppp, acf), 2)
    };
    if protocol != PPP_IPV4 {
        return Some(to_agent(slot, frame_len));
    }
    let ppp_len = acf + protocol_len;
    let inner = payload + ppp_len;
    let header = ctx.read::<IPV4_MIN_HLEN>(inner)?;
    let inner_len = be16(&header, 2) as usize;
    if header[0] >> 4 != 4 || inner_len < IPV4_MIN_HLEN || ppp_len + inner_len > payload_len {
        return None;
    }
    if addr(&header, 12) != session.client_addr {
        count(GlobalCounter::SpoofedSource, frame_len);
        count_session(slot, |c| c.drop_spoofed += 1);
        return Some(DROP);
    }
    if header[9] == IPPROTO_UDP && to_dhcp_server(ctx, inner, header[0]) {
        // DHCPINFORM from a Windows client: the agent answers it.
        return Some(to_agent(slot, frame_len));
    }

    let hop = if header[8] > 1 {
        // SAFETY: ctx.ctx points at the program's xdp_md.
        let ingress = unsafe { (*ctx.ctx).ingress_ifindex };
        let dst = addr(&header, 16);
        nexthop::lookup(ctx, ingress, session.client_addr, dst, inner_len as u16)
    } else {
        None
    };
    // With no next hop the inner packet goes up the stack as if it had arrived
    // plain: keep the Ethernet header the frame came with (only then).
    let arrived_with = match hop {
        Some(_) => None,
        None => Some(ctx.read::<ETH_HLEN>(0)?),
    };
    forward::adjust_head(ctx, (ip_hlen + gre_len + ppp_len) as i32)?;
    forward::trim(ctx, ETH_HLEN + inner_len)?;
    if has_seq {
        state.accept(seq);
    }
    count_session(slot, |c| {
        c.rx_packets += 1;
        c.rx_bytes += inner_len as u64;
    });
    match (hop, arrived_with) {
        (Some(hop), _) => {
            forward::decrement_ttl(ctx, ETH_HLEN, &header)?;
            forward::write_ethernet(ctx, &hop)?;
            count(GlobalCounter::Decapsulated, frame_len);
            Some(forward::redirect(&hop))
        }
        (None, ethernet) => {
            ctx.write(0, &ethernet?)?;
            count(GlobalCounter::NoNextHop, frame_len);
            Some(PASS)
        }
    }
}

/// Whether the UDP datagram in the IPv4 packet at `ip` goes to the DHCP server port.
#[inline(always)]
fn to_dhcp_server(ctx: &XdpContext, ip: usize, version_ihl: u8) -> bool {
    let ihl = ((version_ihl & 0x0f) as usize) * 4;
    ihl >= IPV4_MIN_HLEN
        && ctx
            .read::<4>(ip + ihl)
            .is_some_and(|ports| be16(&ports, 2) == DHCP_SERVER_PORT)
}

#[inline(always)]
fn to_agent(slot: u32, frame_len: u64) -> u32 {
    count(GlobalCounter::ToAgent, frame_len);
    count_session(slot, |c| c.to_agent += 1);
    PASS
}
