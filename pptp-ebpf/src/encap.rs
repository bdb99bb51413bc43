//! The headers the encapsulating programs put in front of an IPv4 packet for a
//! session (outer IPv4, enhanced GRE with sequence and acknowledgment, PPP), shared by
//! the XDP program on the LAN link and the TC program on the session device. The
//! bytes come from `pptp_common::wire`, the builders the agent uses too.

use pptp_common::{
    session::{EncapSession, NextHop, Session},
    wire::{
        ethernet, gre, ipv4,
        ppp::{self, protocol},
    },
};

use crate::packet::Bytes;

/// PPP header we add: Address, Control, protocol IPv4 (accepted by every peer,
/// whatever it negotiated for ACFC/PFC).
const PPP_HEADER: [u8; ppp::MAX_HEADER_LEN] = ppp::Header::uncompressed(protocol::IPV4);
/// GRE header with key and sequence number, without the acknowledgment.
const GRE_SEQ_LEN: usize = gre::FIXED_LEN + 4;

/// The sequence number for the next packet of a session and the acknowledgment
/// (highest sequence number received) to carry, if any.
#[inline(always)]
pub fn next_seq(state: *mut Session) -> (u32, Option<u32>) {
    // SAFETY: a valid map value; tx_next is only advanced atomically, by the
    // programs and by the agent through its mmap of the same array.
    unsafe {
        let ack = ((*state).rx_valid != 0).then_some((*state).rx_highest);
        (fetch_add(&mut (*state).tx_next, 1) as u32, ack)
    }
}

/// Bytes added in front of the inner packet (without the link layer).
#[inline(always)]
pub fn overhead(ack: bool) -> usize {
    ipv4::HEADER_LEN + GRE_SEQ_LEN + if ack { 4 } else { 0 } + PPP_HEADER.len()
}

/// Bytes from the start of the frame to the inner packet, at most: Ethernet, outer
/// IPv4, GRE with acknowledgment, PPP.
const MAX_FRAME_HEADERS: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + GRE_SEQ_LEN + 4 + 4;

/// Writes Ethernet for `hop` + outer IPv4 + GRE + PPP at the start of the frame, in
/// front of an inner packet of `inner_len` bytes (the room was made by the caller).
/// One bounds check covers all of them: the span of the longest headers lies inside
/// any frame with an inner IPv4 header (20 bytes, more than the 4 of an
/// acknowledgment) after the headers.
#[inline(always)]
pub fn write_headers<B: Bytes>(
    pkt: &B,
    hop: &NextHop,
    session: &EncapSession,
    inner_len: usize,
    seq: u32,
    ack: Option<u32>,
) -> Option<()> {
    let span = pkt.span::<MAX_FRAME_HEADERS>(0)?;
    span.write(
        0,
        &ethernet::header(hop.dmac, hop.smac, ethernet::ETHERTYPE_IPV4),
    )?;
    let push = overhead(ack.is_some());
    let outer = ipv4::Repr::new(
        session.local_addr,
        session.peer_addr,
        ipv4::PROTO_GRE,
        (push - ipv4::HEADER_LEN + inner_len) as u16,
    );
    let ip = ethernet::HEADER_LEN;
    span.write(ip, &outer.header())?;
    let gre = ip + ipv4::HEADER_LEN;
    let payload_len = (PPP_HEADER.len() + inner_len) as u16;
    span.write(gre, &gre_header(session, payload_len, seq, ack.is_some()))?;
    match ack {
        Some(ack) => {
            span.write(gre + GRE_SEQ_LEN, &ack.to_be_bytes())?;
            span.write(gre + GRE_SEQ_LEN + 4, &PPP_HEADER)
        }
        None => span.write(gre + GRE_SEQ_LEN, &PPP_HEADER),
    }
}

/// Atomically adds `value` to `*counter`, returning its previous value (a BPF atomic
/// fetch-and-add; `core::sync::atomic` has no atomics for the BPF target).
///
/// SeqCst, not Relaxed: LLVM's BPF backend compiles a relaxed fetch-and-add into the
/// legacy non-fetching `lock +=` even when the result is used (seen with the pinned
/// toolchain: every packet got the same sequence number); SeqCst gets
/// `atomic64_fetch_add`. The lan tests catch a regression.
#[inline(always)]
pub unsafe fn fetch_add(counter: *mut u64, value: u64) -> u64 {
    // SAFETY: the caller passes a valid, aligned pointer into a map value.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::SeqCst }>(
            counter, value,
        )
    }
}

/// Enhanced GRE header with key and sequence number; the acknowledgment flag is
/// set when an acknowledgment number follows.
#[inline(always)]
fn gre_header(session: &EncapSession, payload_len: u16, seq: u32, ack: bool) -> [u8; GRE_SEQ_LEN] {
    let [f0, f1, f2, f3, f4, f5, f6, f7] = gre::fixed(session.peer_call_id, payload_len, true, ack);
    let [s0, s1, s2, s3] = seq.to_be_bytes();
    [f0, f1, f2, f3, f4, f5, f6, f7, s0, s1, s2, s3]
}
