//! The headers the encapsulating programs put in front of an IPv4 packet for a
//! session (outer IPv4, enhanced GRE with sequence and acknowledgment, PPP), shared by
//! the XDP program on the LAN link and the TC program on the session device.

use pptp_common::{
    session::{EncapSession, SeqState},
    wire::*,
};

use crate::{csum, packet::Bytes};

/// Outer IPv4 header we add (no options).
pub const OUTER_IP_LEN: usize = 20;
/// PPP header we add: Address, Control, protocol IPv4 (accepted by every peer,
/// whatever it negotiated for ACFC/PFC).
pub const PPP_HEADER: [u8; 4] = [0xff, 0x03, 0x00, 0x21];
/// TTL of the outer header.
const OUTER_TTL: u8 = 64;
/// IPv4 "don't fragment".
const IPV4_DF: u16 = 0x4000;

/// The sequence number for the next packet of a session and the acknowledgment
/// (highest sequence number received) to carry, if any.
#[inline(always)]
pub fn next_seq(state: *mut SeqState) -> (u32, Option<u32>) {
    // SAFETY: a valid map value; tx_next is only advanced atomically, by the
    // programs and by the agent through its mmap of the same array.
    unsafe {
        let ack = ((*state).rx_valid != 0).then_some((*state).rx_highest);
        (fetch_add(&mut (*state).tx_next) as u32, ack)
    }
}

/// Bytes added in front of the inner packet (without the link layer).
#[inline(always)]
pub fn overhead(ack: bool) -> usize {
    OUTER_IP_LEN + GRE_ENHANCED_MIN_HLEN + 4 + if ack { 4 } else { 0 } + PPP_HEADER.len()
}

/// Writes outer IPv4 + GRE + PPP at `at` for an inner packet of `inner_len` bytes
/// (the room was made by the caller).
#[inline(always)]
pub fn write_headers<B: Bytes>(
    pkt: &B,
    at: usize,
    session: &EncapSession,
    inner_len: usize,
    seq: u32,
    ack: Option<u32>,
) -> Option<()> {
    let push = overhead(ack.is_some());
    pkt.write(at, &outer_ipv4(session, push + inner_len))?;
    let gre = at + OUTER_IP_LEN;
    let payload_len = (PPP_HEADER.len() + inner_len) as u16;
    pkt.write(gre, &gre_header(session, payload_len, seq, ack.is_some()))?;
    match ack {
        Some(ack) => {
            pkt.write(gre + 12, &ack.to_be_bytes())?;
            pkt.write(gre + 16, &PPP_HEADER)
        }
        None => pkt.write(gre + 12, &PPP_HEADER),
    }
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
