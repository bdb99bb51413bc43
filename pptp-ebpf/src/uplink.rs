//! The uplink program: classify every frame (the traffic classes of
//! [`GlobalCounter`]) and decapsulate enhanced GRE of installed fast-path sessions.
//!
//! For a GRE packet of an installed session: drop old, duplicate and too-far
//! sequence numbers (`pptp_common::seq`), recording the new highest one (the
//! agent's acks use it) only for packets forwarded here; consume
//! ack-only packets; hand PPP control, MPPE and non-fast sessions to the agent
//! (XDP_PASS reaches its raw GRE socket); for IPv4 data check that the inner
//! source is the client's address, hand DHCP requests (Windows' DHCPINFORM) to the
//! agent, police by the session's upload limit (a drop is counted and does not move
//! the window), strip outer IPv4 + GRE + PPP and forward to the cached next hop, or
//! XDP_PASS the inner packet when no next hop is known.
//!
//! The GRE flag rule, the PPP header and "this is an IPv4 packet" are those of
//! `pptp_common::wire`, which the agent applies to what XDP hands it: what the agent
//! would refuse is refused here too.

use aya_ebpf::programs::XdpContext;
use pptp_common::{
    capture::FROM_CLIENT,
    counters::GlobalCounter,
    seq::Judgement,
    session::SESSION_FAST,
    wire::{
        DHCP_SERVER_PORT, PPTP_TCP_PORT, ethernet, get16, gre, ipv4,
        ppp::{self, protocol},
        tcp, udp,
    },
};

use crate::{
    capture,
    forward::{self, DROP, PASS},
    maps::{SESSIONS_BY_CALL, config, count, count_event, count_packet},
    nexthop,
    packet::Bytes,
    police,
};

/// A frame as far as classification took it.
enum Frame {
    /// Not ours to decapsulate: counted in this class, verdict by class.
    Other(GlobalCounter),
    /// Enhanced GRE whose fixed header (`gre`) has been validated.
    Gre {
        gre: gre::Header,
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
            gre,
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
            decap(ctx, gre, l4, ip_hlen, src).unwrap_or_else(|| {
                count(GlobalCounter::Malformed, frame_len);
                DROP
            })
        }
    }
}

#[inline(always)]
fn classify(ctx: &XdpContext) -> Frame {
    match ctx.read::<2>(ethernet::field::ETHERTYPE.start) {
        Some(ethertype) if u16::from_be_bytes(ethertype) == ethernet::ETHERTYPE_IPV4 => {}
        _ => return Frame::Other(GlobalCounter::NonIpv4),
    }
    let Some(ip) = ctx.read::<{ ipv4::HEADER_LEN }>(ethernet::HEADER_LEN) else {
        return Frame::Other(GlobalCounter::Malformed);
    };
    let ip = ipv4::Header(ip);
    if !ip.is_ipv4() {
        return Frame::Other(GlobalCounter::Malformed);
    }
    if ip.is_later_fragment() {
        // Not the first fragment: there is no transport header to look at.
        return Frame::Other(GlobalCounter::OtherIpv4);
    }
    let l4 = ethernet::HEADER_LEN + ip.header_len();
    match ip.protocol() {
        ipv4::PROTO_TCP => Frame::Other(classify_tcp(ctx, l4)),
        ipv4::PROTO_GRE => match classify_gre(ctx, l4) {
            Ok(gre) => Frame::Gre {
                gre,
                l4,
                ip_hlen: ip.header_len(),
                src: ip.src(),
                fragment: ip.is_fragment(),
            },
            Err(class) => Frame::Other(class),
        },
        _ => Frame::Other(GlobalCounter::OtherIpv4),
    }
}

#[inline(always)]
fn classify_tcp(ctx: &XdpContext, l4: usize) -> GlobalCounter {
    let Some(ports) = ctx.read::<4>(l4) else {
        return GlobalCounter::Malformed;
    };
    if get16(&ports, tcp::field::SRC_PORT) == PPTP_TCP_PORT
        || get16(&ports, tcp::field::DST_PORT) == PPTP_TCP_PORT
    {
        GlobalCounter::PptpControl
    } else {
        GlobalCounter::OtherIpv4
    }
}

/// The fixed header of enhanced GRE at `l4` that passes the flag rule, or the class
/// of anything else (the header is read once and handed on to [`decap`]).
#[inline(always)]
fn classify_gre(ctx: &XdpContext, l4: usize) -> Result<gre::Header, GlobalCounter> {
    let Some(base) = ctx.read::<4>(l4) else {
        return Err(GlobalCounter::Malformed);
    };
    if !gre::is_enhanced(base[gre::field::FLAGS_VERSION]) {
        return Err(GlobalCounter::GreOther);
    }
    match ctx.read::<{ gre::FIXED_LEN }>(l4) {
        Some(fixed) if gre::Header(fixed).check().is_ok() => Ok(gre::Header(fixed)),
        _ => Err(GlobalCounter::Malformed),
    }
}

/// Decapsulates one enhanced GRE packet whose fixed header `gre` is at `l4`; `None`
/// means malformed.
#[inline(always)]
fn decap(
    ctx: &XdpContext,
    gre: gre::Header,
    l4: usize,
    ip_hlen: usize,
    src: [u8; 4],
) -> Option<u32> {
    let frame_len = ctx.len() as u64;
    let has_seq = gre.has_seq();
    let payload_len = gre.payload_len() as usize;
    let gre_len = gre.header_len();
    let payload = l4 + gre_len;
    if payload + payload_len > ctx.len() {
        return None;
    }

    // One entry per call ID, which is also the session's slot; an empty one, or
    // another peer's, is no session of this packet's (`Session::accepts`). The
    // entry is the one cache line of the session this packet reads and writes.
    let slot = u32::from(gre.call_id());
    let record = SESSIONS_BY_CALL.get_ptr_mut(slot)?;
    // SAFETY: a valid map value; concurrent receivers of one session race only on
    // which of two accepted sequence numbers is recorded as the highest.
    let session = unsafe { &mut *record };
    if !session.accepts(src) {
        count(GlobalCounter::UnknownSession, frame_len);
        return Some(if config().drop_unknown != 0 {
            DROP
        } else {
            PASS
        });
    }

    // The window moves only when XDP forwards the packet itself (below); what it
    // hands to the agent, the agent judges again and records (`pptp_common::seq`).
    let mut seq = 0;
    if has_seq {
        seq = u32::from_be_bytes(ctx.read::<4>(l4 + gre::FIXED_LEN)?);
        match session.judge(seq) {
            Judgement::New => {}
            Judgement::Duplicate | Judgement::Old => {
                count(GlobalCounter::OldSequence, frame_len);
                count_event(slot, |c| c.drop_old_seq += 1);
                return Some(DROP);
            }
            Judgement::TooFar => {
                session.set_probe(seq);
                count(GlobalCounter::SequenceJump, frame_len);
                count_event(slot, |c| c.drop_old_seq += 1);
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
    // be one byte (PFC); anything but IPv4 (or no PPP header) is the agent's.
    let ppp_len = match ppp::parse(&ctx.read::<{ ppp::MAX_HEADER_LEN }>(payload)?) {
        Ok(header) if header.protocol == protocol::IPV4 => header.header_len,
        _ => return Some(to_agent(slot, frame_len)),
    };
    let inner = payload + ppp_len;
    let header = ipv4::Header(ctx.read::<{ ipv4::HEADER_LEN }>(inner)?);
    if !header.is_packet_within(payload_len.saturating_sub(ppp_len)) {
        return None;
    }
    let inner_len = header.total_len();
    if header.src() != session.client_addr {
        count(GlobalCounter::SpoofedSource, frame_len);
        count_event(slot, |c| c.drop_spoofed += 1);
        return Some(DROP);
    }
    if header.protocol() == ipv4::PROTO_UDP && to_dhcp_server(ctx, inner + header.header_len()) {
        // DHCPINFORM from a Windows client: the agent answers it.
        return Some(to_agent(slot, frame_len));
    }

    if !police::rx(slot, session.flags, inner_len, frame_len) {
        return Some(DROP);
    }
    capture::xdp(ctx, slot, inner, inner_len, FROM_CLIENT);

    let hop = if header.ttl() > 1 {
        // SAFETY: ctx.ctx points at the program's xdp_md.
        let ingress = unsafe { (*ctx.ctx).ingress_ifindex };
        nexthop::lookup(
            ctx,
            ingress,
            session.client_addr,
            header.dst(),
            inner_len as u16,
        )
    } else {
        None
    };
    // With no next hop the inner packet goes up the stack as if it had arrived
    // plain: keep the Ethernet header the frame came with (only then).
    let arrived_with = match hop {
        Some(_) => None,
        None => Some(ctx.read::<{ ethernet::HEADER_LEN }>(0)?),
    };
    forward::adjust_head(ctx, (ip_hlen + gre_len + ppp_len) as i32)?;
    forward::trim(ctx, ethernet::HEADER_LEN + inner_len)?;
    if has_seq {
        session.accept(seq);
    }
    // SAFETY: a valid map value.
    unsafe {
        count_packet(
            &raw mut (*record).rx_packets,
            &raw mut (*record).rx_bytes,
            inner_len as u64,
        )
    };
    match (hop, arrived_with) {
        (Some(hop), _) => {
            forward::decrement_ttl(ctx, ethernet::HEADER_LEN, &header)?;
            forward::write_ethernet(ctx, hop)?;
            count(GlobalCounter::Decapsulated, frame_len);
            Some(forward::redirect(hop))
        }
        (None, ethernet) => {
            ctx.write(0, &ethernet?)?;
            count(GlobalCounter::NoNextHop, frame_len);
            Some(PASS)
        }
    }
}

/// Whether the UDP datagram at `udp` goes to the DHCP server port.
#[inline(always)]
fn to_dhcp_server(ctx: &XdpContext, at: usize) -> bool {
    ctx.read::<4>(at)
        .is_some_and(|ports| get16(&ports, udp::field::DST_PORT) == DHCP_SERVER_PORT)
}

#[inline(always)]
fn to_agent(slot: u32, frame_len: u64) -> u32 {
    count(GlobalCounter::ToAgent, frame_len);
    count_event(slot, |c| c.to_agent += 1);
    PASS
}
