//! The LAN XDP program under BPF_PROG_TEST_RUN: encapsulation with exact expected
//! output bytes (with and without ack, sequence numbers advancing, MSS clamping)
//! and every reason to leave a packet to the kernel. Needs root (BPF).

mod support;

use pptp_common::{maps::PROG_LAN, police::SessionPolicers, session::Session};
use support::{
    encap::{MTU, SLOT, SLOW_CLIENT},
    *,
};

fn loaded() -> Loaded {
    encap::loaded("xdp-lan").0
}

fn lan_frame(ip: &Ipv4) -> Vec<u8> {
    ethernet(MAC_A, MAC_B, 0x0800, &ip.bytes())
}

/// What the uplink must carry for `inner` (already with its TTL lowered).
fn encapsulated(inner: &[u8], seq: u32, ack: Option<u32>) -> Vec<u8> {
    encap::encapsulated(inner, seq, ack)
}

fn check(l: &Loaded, what: &str, frame: &[u8], verdict: u32, counters: &[(&str, u64)]) -> Vec<u8> {
    support::check(l, PROG_LAN, what, frame, verdict, counters)
}

fn ping(ttl: u8, len: usize) -> Ipv4 {
    let mut ip = Ipv4::new(LAN_HOST, CLIENT, 1, icmp_echo(len));
    ip.ttl = ttl;
    ip
}

#[test]
fn encapsulates_with_and_without_ack() {
    let mut l = loaded();
    let out = check(
        &l,
        "no ack yet",
        &lan_frame(&ping(64, 32)),
        XDP_REDIRECT,
        &[("encapsulated", 1)],
    );
    assert_eq!(out, encapsulated(&ping(63, 32).bytes(), 0, None));
    let out = check(
        &l,
        "second packet",
        &lan_frame(&ping(64, 32)),
        XDP_REDIRECT,
        &[("encapsulated", 1)],
    );
    assert_eq!(
        out,
        encapsulated(&ping(63, 32).bytes(), 1, None),
        "sequence advances"
    );

    // Once something was received the highest sequence number rides along as ack.
    let seq = l.seq(SLOT);
    l.set_seq(
        SLOT,
        Session {
            rx_highest: 41,
            rx_valid: 1,
            ..seq
        },
    );
    let out = check(
        &l,
        "with ack",
        &lan_frame(&ping(64, 100)),
        XDP_REDIRECT,
        &[("encapsulated", 1)],
    );
    assert_eq!(out, encapsulated(&ping(63, 100).bytes(), 2, Some(41)));
    assert_eq!(l.seq(SLOT).next_seq(), 3);

    // Ethernet padding after a short packet is not carried into the tunnel.
    let mut padded = lan_frame(&ping(64, 0));
    padded.extend_from_slice(&[0; 10]);
    let out = check(&l, "padding", &padded, XDP_REDIRECT, &[("encapsulated", 1)]);
    assert_eq!(out, encapsulated(&ping(63, 0).bytes(), 3, Some(41)));

    let counters = l.session_counters(SLOT);
    assert_eq!(counters.tx_packets, 4);
    let sizes: u64 = [32, 32, 100, 0].iter().map(|d| (20 + 8 + d) as u64).sum();
    assert_eq!(counters.tx_bytes, sizes);
}

/// A SYN-ACK from the LAN host to the client whose options `options` writes around
/// the MSS value's bytes.
fn syn_ack(options: impl Fn([u8; 2]) -> [u8; 8], mss: u16) -> Ipv4 {
    let options = options(mss.to_be_bytes());
    Ipv4::new(
        LAN_HOST,
        CLIENT,
        6,
        tcp(LAN_HOST, CLIENT, 0x12, &options, &[]),
    )
}

#[test]
fn clamps_the_mss_of_syns() {
    let l = loaded();
    // MSS, NOP, NOP, SACK permitted.
    let syn = |mss: u16| syn_ack(|[h, lo]| [2, 4, h, lo, 1, 1, 4, 2], mss);
    let out = check(
        &l,
        "SYN-ACK with MSS 1460",
        &lan_frame(&syn(1460)),
        XDP_REDIRECT,
        &[("encapsulated", 1), ("mss_clamped", 1)],
    );
    let mut expected = syn(1360);
    expected.ttl = 63;
    assert_eq!(
        out,
        encapsulated(&expected.bytes(), 0, None),
        "MSS 1460 -> 1360, checksums valid"
    );
    let segment = &out[out.len() - 28..];
    assert_eq!(
        tcp_checksum(LAN_HOST, CLIENT, segment),
        u16::from_be_bytes([segment[16], segment[17]])
    );

    let out = check(
        &l,
        "SYN with a small MSS",
        &lan_frame(&syn(1200)),
        XDP_REDIRECT,
        &[("encapsulated", 1)],
    );
    let mut expected = syn(1200);
    expected.ttl = 63;
    assert_eq!(
        out,
        encapsulated(&expected.bytes(), 1, None),
        "MSS below the limit untouched"
    );
}

/// An MSS option at an odd offset (after one NOP, as some stacks and middleboxes
/// write it): its value straddles two 16-bit words of the checksum.
#[test]
fn clamps_an_mss_at_an_odd_offset() {
    let l = loaded();
    // NOP, MSS, SACK permitted, End.
    let syn = |mss: u16| syn_ack(|[h, lo]| [1, 2, 4, h, lo, 4, 2, 0], mss);
    let out = check(
        &l,
        "SYN-ACK with MSS 1460 at offset 21",
        &lan_frame(&syn(1460)),
        XDP_REDIRECT,
        &[("encapsulated", 1), ("mss_clamped", 1)],
    );
    let segment = &out[out.len() - 28..];
    assert_eq!(
        &segment[20..28],
        &[1, 2, 4, 0x05, 0x50, 4, 2, 0],
        "MSS 1360"
    );
    assert_eq!(
        tcp_checksum(LAN_HOST, CLIENT, segment),
        u16::from_be_bytes([segment[16], segment[17]]),
        "the TCP checksum verifies"
    );
    let mut expected = syn(1360);
    expected.ttl = 63;
    assert_eq!(out, encapsulated(&expected.bytes(), 0, None));
}

#[test]
fn leaves_to_the_kernel_what_it_must() {
    let l = loaded();
    let unrelated = lan_frame(&Ipv4::new(LAN_HOST, [203, 0, 113, 20], 1, icmp_echo(8)));
    assert_eq!(
        check(&l, "not for a session", &unrelated, XDP_PASS, &[]),
        unrelated
    );

    let slow = lan_frame(&Ipv4::new(LAN_HOST, SLOW_CLIENT, 1, icmp_echo(8)));
    assert_eq!(
        check(&l, "fallback session", &slow, XDP_PASS, &[("to_agent", 1)]),
        slow
    );

    let fits = lan_frame(&ping(64, MTU as usize - 28));
    check(
        &l,
        "exactly the MTU",
        &fits,
        XDP_REDIRECT,
        &[("encapsulated", 1)],
    );
    let big = lan_frame(&ping(64, MTU as usize - 27));
    assert_eq!(
        check(
            &l,
            "one byte over the MTU",
            &big,
            XDP_PASS,
            &[("too_big", 1)]
        ),
        big
    );
    assert_eq!(l.session_counters(SLOT).too_big, 1);

    let expiring = lan_frame(&ping(1, 8));
    assert_eq!(
        check(&l, "TTL 1", &expiring, XDP_PASS, &[("no_next_hop", 1)]),
        expiring
    );

    let arp = ethernet(MAC_A, MAC_B, 0x0806, &[0; 28]);
    assert_eq!(check(&l, "ARP", &arp, XDP_PASS, &[]), arp);
}

#[test]
fn a_packet_over_the_download_limit_is_dropped_and_counted() {
    let mut l = loaded();
    l.set_police(
        SLOT,
        SessionPolicers {
            tx: one_packet_policer(),
            ..Default::default()
        },
    );
    let out = check(
        &l,
        "within the limit",
        &lan_frame(&ping(64, 32)),
        XDP_REDIRECT,
        &[("encapsulated", 1)],
    );
    assert_eq!(out, encapsulated(&ping(63, 32).bytes(), 0, None));
    for _ in 0..3 {
        check(
            &l,
            "over the limit",
            &lan_frame(&ping(64, 32)),
            XDP_DROP,
            &[("policed", 1)],
        );
    }
    let counters = l.session_counters(SLOT);
    assert_eq!((counters.tx_packets, counters.drop_policed_tx), (1, 3));
    assert_eq!(counters.drop_policed_rx, 0);
    assert_eq!(
        l.seq(SLOT).next_seq(),
        1,
        "a policed packet takes no sequence number"
    );
}

/// Two clients whose addresses agree in their low 16 bits share a `CLIENT_INDEX`
/// entry: the second is found in the hash the entry points to, each packet gets its
/// own session's GRE, and an address of that index with no session is not ours.
#[test]
fn clients_sharing_an_index_entry_are_both_found() {
    let (mut l, session) = encap::loaded("xdp-lan-index");
    let twin = [198, 18, 2, 10]; // 192.0.2.10's low 16 bits
    let twin_session = pptp_common::session::EncapSession {
        peer_call_id: 0x3003,
        slot: 6,
        ..session
    };
    l.add_encap(twin, twin_session);
    let entry = l.client_index_entry(CLIENT);
    assert_eq!(
        (entry.client_addr, entry.overflow),
        (CLIENT, 1),
        "the first client keeps the entry, the twin went to the hash"
    );
    let out = check(
        &l,
        "the indexed client",
        &lan_frame(&ping(64, 32)),
        XDP_REDIRECT,
        &[("encapsulated", 1)],
    );
    assert_eq!(out, encapsulated(&ping(63, 32).bytes(), 0, None));
    let mut to_twin = Ipv4::new(LAN_HOST, twin, 1, icmp_echo(32));
    let out = check(
        &l,
        "the client in the hash",
        &lan_frame(&to_twin),
        XDP_REDIRECT,
        &[("encapsulated", 1)],
    );
    to_twin.ttl -= 1;
    assert_eq!(
        out,
        support::encapsulated(0x3003, &encap::UPLINK_HOP, &to_twin.bytes(), 0, None)
    );
    assert_eq!(l.session_counters(6).tx_packets, 1);
    let stranger = Ipv4::new(LAN_HOST, [203, 0, 2, 10], 1, icmp_echo(32));
    check(&l, "no session", &lan_frame(&stranger), XDP_PASS, &[]);
}
