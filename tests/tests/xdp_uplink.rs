//! The uplink XDP program under BPF_PROG_TEST_RUN: classification of every kind of
//! frame, and decapsulation with exact expected output bytes for each PPP header
//! form and every drop or pass reason. Needs root (BPF); fails, never skips.

mod support;

use pptp_common::{
    maps::PROG_UPLINK,
    police::SessionPolicers,
    session::{Config, NextHop, SESSION_FAST, SESSION_INSTALLED, Session},
};
use support::*;

const CALL: u16 = 0x1001;
const SLOW_PEER: [u8; 4] = [198, 51, 100, 11];
const SLOW_CALL: u16 = 0x1002;
/// The session's slot: our call ID.
const SLOT: u32 = CALL as u32;
const SLOW_SLOT: u32 = SLOW_CALL as u32;
const LAN_HOP: NextHop = NextHop {
    ifindex: 7,
    smac: [0x02, 0, 0, 0, 7, 1],
    dmac: [0x02, 0, 0, 0, 7, 2],
    expires: u64::MAX,
};

fn outer(src: [u8; 4], gre: Vec<u8>) -> Ipv4 {
    Ipv4::new(src, SERVER, 47, gre)
}

fn uplink_frame(ip: &Ipv4) -> Vec<u8> {
    ethernet(MAC_A, MAC_B, 0x0800, &ip.bytes())
}

/// The inner packet the tests send: ICMP echo from the client to the LAN host.
fn inner(ttl: u8) -> Ipv4 {
    let mut ip = Ipv4::new(CLIENT, LAN_HOST, 1, icmp_echo(32));
    ip.ttl = ttl;
    ip
}

fn loaded() -> Loaded {
    let mut l = Loaded::new("xdp-uplink");
    l.add_decap(
        CALL,
        Session {
            peer_addr: PEER,
            client_addr: CLIENT,
            flags: SESSION_INSTALLED | SESSION_FAST,
            ..Default::default()
        },
    );
    l.add_decap(
        SLOW_CALL,
        Session {
            peer_addr: SLOW_PEER,
            client_addr: [192, 0, 2, 11],
            flags: SESSION_INSTALLED,
            ..Default::default()
        },
    );
    l.add_next_hop(LAN_HOST, LAN_HOP);
    l
}

/// Runs a frame and checks the verdict and exactly which global counters moved.
fn check(l: &Loaded, what: &str, frame: &[u8], verdict: u32, counters: &[(&str, u64)]) -> Vec<u8> {
    support::check(l, PROG_UPLINK, what, frame, verdict, counters)
}

#[test]
fn classification() {
    let l = loaded();
    let tcp = |sport: u16, dport: u16| {
        let mut seg = tcp([198, 51, 100, 10], SERVER, 0x02, &[], &[]);
        seg[0..2].copy_from_slice(&sport.to_be_bytes());
        seg[2..4].copy_from_slice(&dport.to_be_bytes());
        uplink_frame(&Ipv4::new(PEER, SERVER, 6, seg))
    };
    let gre_frame = |b0: u8, b1: u8| {
        let mut g = gre(0x7777, Some(1), None, &[0xff, 0x03, 0xc0, 0x21]);
        g[0] = b0;
        g[1] = b1;
        uplink_frame(&outer(PEER, g))
    };
    let mut short_ihl = uplink_frame(&outer(PEER, gre(7, Some(1), None, &[0xff, 0x03])));
    short_ihl[14] = 0x44;
    let mut later_fragment = outer(PEER, vec![0xde, 0xad, 0xbe, 0xef]);
    later_fragment.frag = 0x0010;
    let mut first_fragment = outer(PEER, gre(CALL, Some(1), None, &[0xff, 0x03, 0x00, 0x21]));
    first_fragment.frag = 0x2000;

    type Case = (&'static str, Vec<u8>, u32, Vec<(&'static str, u64)>);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("TCP to port 1723", tcp(40000, 1723), XDP_PASS, vec![("pptp_control", 1)]),
        ("TCP from port 1723", tcp(1723, 40000), XDP_PASS, vec![("pptp_control", 1)]),
        ("TCP to port 80", tcp(40000, 80), XDP_PASS, vec![("other_ipv4", 1)]),
        ("UDP", uplink_frame(&Ipv4::new(PEER, SERVER, 17, vec![0, 53, 0, 53, 0, 8, 0, 0])), XDP_PASS, vec![("other_ipv4", 1)]),
        ("enhanced GRE, unknown session", gre_frame(0x30, 0x01), XDP_PASS, vec![("gre_enhanced", 1), ("unknown_session", 1)]),
        ("GRE version 0", uplink_frame(&outer(PEER, vec![0, 0, 0x08, 0x00, 0x45, 0])), XDP_PASS, vec![("gre_other", 1)]),
        ("non-first fragment", uplink_frame(&later_fragment), XDP_PASS, vec![("other_ipv4", 1)]),
        ("first fragment of GRE", uplink_frame(&first_fragment), XDP_PASS, vec![("gre_enhanced", 1), ("outer_fragment", 1)]),
        ("ARP", ethernet(MAC_A, MAC_B, 0x0806, &[0; 28]), XDP_PASS, vec![("non_ipv4", 1)]),
        ("IPv6", ethernet(MAC_A, MAC_B, 0x86dd, &[0x60; 40]), XDP_PASS, vec![("non_ipv4", 1)]),
        ("IPv4 header cut short", ethernet(MAC_A, MAC_B, 0x0800, &[0x45, 0, 0, 20, 0, 1, 0, 0, 64, 47]), XDP_DROP, vec![("malformed", 1)]),
        ("IHL below 5", short_ihl, XDP_DROP, vec![("malformed", 1)]),
        ("GRE cut after 3 bytes", uplink_frame(&outer(PEER, vec![0x30, 0x01, 0x88])), XDP_DROP, vec![("malformed", 1)]),
        ("enhanced GRE cut after 6 bytes", uplink_frame(&outer(PEER, gre(7, None, None, &[])[..6].to_vec())), XDP_DROP, vec![("malformed", 1)]),
        ("TCP header cut after 3 bytes", uplink_frame(&Ipv4::new(PEER, SERVER, 6, vec![6, 0xbb, 0x9c])), XDP_DROP, vec![("malformed", 1)]),
        ("GRE checksum bit", gre_frame(0xb0, 0x01), XDP_DROP, vec![("malformed", 1)]),
        ("GRE without key bit", gre_frame(0x10, 0x01), XDP_DROP, vec![("malformed", 1)]),
        ("GRE recursion", gre_frame(0x31, 0x01), XDP_DROP, vec![("malformed", 1)]),
        ("GRE reserved flag", gre_frame(0x30, 0x41), XDP_DROP, vec![("malformed", 1)]),
        ("GRE v1 carrying IPv4", uplink_frame(&outer(PEER, vec![0x30, 0x01, 0x08, 0x00, 0, 4, 0, 7, 0, 0, 0, 1])), XDP_DROP, vec![("malformed", 1)]),
    ];
    for (what, frame, verdict, counters) in cases {
        let out = check(&l, what, &frame, verdict, &counters);
        if verdict == XDP_PASS {
            assert_eq!(out, frame, "{what}: a passed frame is unchanged");
        }
    }
}

/// The decapsulated frame the LAN should see: next hop MACs, TTL one lower.
fn forwarded(ttl: u8) -> Vec<u8> {
    ethernet(LAN_HOP.dmac, LAN_HOP.smac, 0x0800, &inner(ttl - 1).bytes())
}

#[test]
fn decapsulates_every_ppp_header_form() {
    let l = loaded();
    let packet = inner(64).bytes();
    let forms: [(&str, &[u8]); 4] = [
        (
            "address/control + 2-byte protocol",
            &[0xff, 0x03, 0x00, 0x21],
        ),
        ("ACFC", &[0x00, 0x21]),
        ("PFC", &[0xff, 0x03, 0x21]),
        ("ACFC + PFC", &[0x21]),
    ];
    for (seq, (what, header)) in forms.iter().enumerate() {
        let ppp = [*header, &packet[..]].concat();
        let frame = uplink_frame(&outer(PEER, gre(CALL, Some(seq as u32 + 1), None, &ppp)));
        let out = check(
            &l,
            what,
            &frame,
            XDP_REDIRECT,
            &[("gre_enhanced", 1), ("decapsulated", 1)],
        );
        assert_eq!(out, forwarded(64), "{what}: output bytes");
    }
    // With an acknowledgment number and with outer IPv4 options.
    let ppp = [&[0xff, 0x03, 0x00, 0x21][..], &packet].concat();
    let frame = uplink_frame(&outer(PEER, gre(CALL, Some(10), Some(77), &ppp)));
    assert_eq!(
        check(
            &l,
            "with ack",
            &frame,
            XDP_REDIRECT,
            &[("gre_enhanced", 1), ("decapsulated", 1)]
        ),
        forwarded(64)
    );
    let mut with_options = outer(PEER, gre(CALL, Some(11), None, &ppp));
    with_options.options = vec![0x94, 0x04, 0, 0]; // router alert
    assert_eq!(
        check(
            &l,
            "outer options",
            &uplink_frame(&with_options),
            XDP_REDIRECT,
            &[("gre_enhanced", 1), ("decapsulated", 1)]
        ),
        forwarded(64)
    );
    // Ethernet padding after the packet is cut off.
    let mut padded = uplink_frame(&outer(PEER, gre(CALL, Some(12), None, &ppp)));
    padded.extend_from_slice(&[0; 6]);
    assert_eq!(
        check(
            &l,
            "padding",
            &padded,
            XDP_REDIRECT,
            &[("gre_enhanced", 1), ("decapsulated", 1)]
        ),
        forwarded(64)
    );

    let seq = l.seq(SLOT);
    assert_eq!(
        (seq.rx_valid, seq.rx_highest),
        (1, 12),
        "highest sequence recorded for acks"
    );
    let counters = l.session_counters(SLOT);
    assert_eq!(counters.rx_packets, 7);
    assert_eq!(counters.rx_bytes, 7 * packet.len() as u64);
}

#[test]
fn drops_and_passes_by_reason() {
    let mut l = loaded();
    let ppp = |ip: &Ipv4| [&[0xff, 0x03, 0x00, 0x21][..], &ip.bytes()].concat();
    let data = |seq: u32| uplink_frame(&outer(PEER, gre(CALL, Some(seq), None, &ppp(&inner(64)))));

    check(
        &l,
        "first",
        &data(100),
        XDP_REDIRECT,
        &[("gre_enhanced", 1), ("decapsulated", 1)],
    );
    check(
        &l,
        "duplicate",
        &data(100),
        XDP_DROP,
        &[("gre_enhanced", 1), ("old_sequence", 1)],
    );
    check(
        &l,
        "older",
        &data(99),
        XDP_DROP,
        &[("gre_enhanced", 1), ("old_sequence", 1)],
    );
    // Wrap-around: 0xffff_fff0 is older than 100 (serial number arithmetic) ...
    check(
        &l,
        "older across wrap",
        &data(0xffff_fff0),
        XDP_DROP,
        &[("gre_enhanced", 1), ("old_sequence", 1)],
    );
    // ... and 5 is newer than 0xffff_fff0.
    let record = l.seq(SLOT);
    l.set_seq(
        SLOT,
        Session {
            rx_highest: 0xffff_fff0,
            rx_valid: 1,
            ..record
        },
    );
    check(
        &l,
        "newer across wrap",
        &data(5),
        XDP_REDIRECT,
        &[("gre_enhanced", 1), ("decapsulated", 1)],
    );
    assert_eq!(l.session_counters(SLOT).drop_old_seq, 3);

    let mut spoofed = inner(64);
    spoofed.src = [192, 0, 2, 99];
    let frame = uplink_frame(&outer(PEER, gre(CALL, Some(6), None, &ppp(&spoofed))));
    check(
        &l,
        "spoofed inner source",
        &frame,
        XDP_DROP,
        &[("gre_enhanced", 1), ("spoofed_source", 1)],
    );
    assert_eq!(l.session_counters(SLOT).drop_spoofed, 1);

    let unknown_call = uplink_frame(&outer(PEER, gre(0x9999, Some(1), None, &ppp(&inner(64)))));
    check(
        &l,
        "unknown call ID",
        &unknown_call,
        XDP_PASS,
        &[("gre_enhanced", 1), ("unknown_session", 1)],
    );
    let wrong_source = uplink_frame(&outer(
        [198, 51, 100, 77],
        gre(CALL, Some(7), None, &ppp(&inner(64))),
    ));
    check(
        &l,
        "known call ID, wrong outer source",
        &wrong_source,
        XDP_PASS,
        &[("gre_enhanced", 1), ("unknown_session", 1)],
    );
    l.set_config(Config {
        drop_unknown: 1,
        ..Default::default()
    });
    check(
        &l,
        "unknown call ID, dropping",
        &unknown_call,
        XDP_DROP,
        &[("gre_enhanced", 1), ("unknown_session", 1)],
    );

    let mut truncated = gre(CALL, Some(8), None, &ppp(&inner(64)));
    truncated[4..6].copy_from_slice(&200u16.to_be_bytes());
    check(
        &l,
        "GRE payload length beyond the packet",
        &uplink_frame(&outer(PEER, truncated)),
        XDP_DROP,
        &[("gre_enhanced", 1), ("malformed", 1)],
    );
    let mut short_inner = ppp(&inner(64));
    short_inner.truncate(4 + 30);
    check(
        &l,
        "inner IPv4 longer than its GRE payload",
        &uplink_frame(&outer(PEER, gre(CALL, Some(9), None, &short_inner))),
        XDP_DROP,
        &[("gre_enhanced", 1), ("malformed", 1)],
    );

    let lcp = uplink_frame(&outer(
        PEER,
        gre(
            CALL,
            Some(10),
            None,
            &[0xff, 0x03, 0xc0, 0x21, 9, 1, 0, 8, 1, 2, 3, 4],
        ),
    ));
    assert_eq!(
        check(
            &l,
            "LCP to the agent",
            &lcp,
            XDP_PASS,
            &[("gre_enhanced", 1), ("to_agent", 1)]
        ),
        lcp
    );
    let mppe = uplink_frame(&outer(
        PEER,
        gre(CALL, Some(11), None, &[0x00, 0xfd, 0x90, 0x00, 0xaa]),
    ));
    check(
        &l,
        "MPPE to the agent",
        &mppe,
        XDP_PASS,
        &[("gre_enhanced", 1), ("to_agent", 1)],
    );
    // A DHCPINFORM from the client (UDP 68 -> 67, broadcast): for the agent to answer.
    let mut dhcp = Ipv4::new(
        CLIENT,
        [255, 255, 255, 255],
        17,
        vec![0, 68, 0, 67, 0, 12, 0, 0, 1, 1, 6, 0],
    );
    dhcp.ttl = 128;
    let inform = uplink_frame(&outer(PEER, gre(CALL, Some(12), None, &ppp(&dhcp))));
    assert_eq!(
        check(
            &l,
            "DHCP to the agent",
            &inform,
            XDP_PASS,
            &[("gre_enhanced", 1), ("to_agent", 1)]
        ),
        inform
    );
    let slow = uplink_frame(&outer(
        SLOW_PEER,
        gre(SLOW_CALL, Some(1), None, &ppp(&inner(64))),
    ));
    assert_eq!(
        check(
            &l,
            "session on the fallback path",
            &slow,
            XDP_PASS,
            &[("gre_enhanced", 1), ("to_agent", 1)]
        ),
        slow
    );
    assert_eq!(l.session_counters(SLOW_SLOT).to_agent, 1);

    let ack_only = uplink_frame(&outer(PEER, gre(CALL, None, Some(3), &[])));
    check(
        &l,
        "ack-only",
        &ack_only,
        XDP_DROP,
        &[("gre_enhanced", 1), ("ack_only", 1)],
    );

    // TTL 1: decapsulated, but the kernel must answer (time exceeded): passed up
    // with the Ethernet header it came with.
    let expiring = uplink_frame(&outer(PEER, gre(CALL, Some(13), None, &ppp(&inner(1)))));
    let out = check(
        &l,
        "TTL 1",
        &expiring,
        XDP_PASS,
        &[("gre_enhanced", 1), ("no_next_hop", 1)],
    );
    assert_eq!(out, ethernet(MAC_A, MAC_B, 0x0800, &inner(1).bytes()));
}

#[test]
fn the_window_moves_only_for_packets_xdp_forwards() {
    let l = loaded();
    let ppp = |ip: &Ipv4| [&[0xff, 0x03, 0x00, 0x21][..], &ip.bytes()].concat();
    let data = |seq: u32| uplink_frame(&outer(PEER, gre(CALL, Some(seq), None, &ppp(&inner(64)))));
    let mut foreign = inner(64);
    foreign.src = [192, 0, 2, 99];
    let spoofed = |seq: u32| uplink_frame(&outer(PEER, gre(CALL, Some(seq), None, &ppp(&foreign))));
    let highest = || (l.seq(SLOT).rx_valid, l.seq(SLOT).rx_highest);

    check(
        &l,
        "first",
        &data(100),
        XDP_REDIRECT,
        &[("gre_enhanced", 1), ("decapsulated", 1)],
    );
    check(
        &l,
        "foreign inner source, in the window",
        &spoofed(3000),
        XDP_DROP,
        &[("gre_enhanced", 1), ("spoofed_source", 1)],
    );
    assert_eq!(
        highest(),
        (1, 100),
        "a dropped packet does not move the window"
    );
    check(
        &l,
        "foreign inner source, 100,000 ahead",
        &spoofed(100_100),
        XDP_DROP,
        &[("gre_enhanced", 1), ("sequence_jump", 1)],
    );
    check(
        &l,
        "the genuine packet after the injections",
        &data(101),
        XDP_REDIRECT,
        &[("gre_enhanced", 1), ("decapsulated", 1)],
    );
    let lcp = uplink_frame(&outer(
        PEER,
        gre(
            CALL,
            Some(102),
            None,
            &[0xff, 0x03, 0xc0, 0x21, 9, 1, 0, 8, 1, 2, 3, 4],
        ),
    ));
    check(
        &l,
        "LCP to the agent",
        &lcp,
        XDP_PASS,
        &[("gre_enhanced", 1), ("to_agent", 1)],
    );
    assert_eq!(
        highest(),
        (1, 101),
        "what XDP hands over, the agent records"
    );
    // A genuine jump (the peer sent 250,000 packets we never saw): the first
    // packet is refused, the one that follows it is taken.
    check(
        &l,
        "250,000 ahead",
        &data(250_000),
        XDP_DROP,
        &[("gre_enhanced", 1), ("sequence_jump", 1)],
    );
    check(
        &l,
        "the packet after it",
        &data(250_001),
        XDP_REDIRECT,
        &[("gre_enhanced", 1), ("decapsulated", 1)],
    );
    assert_eq!(highest(), (1, 250_001));
}

/// Frames the agent's own path refuses (`pptp-agent/src/gre.rs`, `Ipv4Packet::parse`)
/// are refused here too: XDP and the agent apply the one rule of
/// `pptp_common::wire`, so a peer cannot get past XDP what the agent would drop.
#[test]
fn refuses_what_the_agent_refuses() {
    let l = loaded();
    let ppp = |ip: &[u8]| [&[0xff, 0x03, 0x00, 0x21][..], ip].concat();
    let packet = inner(64).bytes();
    let mut ihl_4 = packet.clone();
    ihl_4[0] = 0x44;
    let mut ihl_beyond_total = packet.clone();
    ihl_beyond_total[0] = 0x4f;
    ihl_beyond_total[2..4].copy_from_slice(&40u16.to_be_bytes());

    type Case = (&'static str, Vec<u8>, Vec<(&'static str, u64)>);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("data without a sequence number", gre(CALL, None, None, &ppp(&packet)), vec![("malformed", 1)]),
        ("data with an ack but no sequence number", gre(CALL, None, Some(1), &ppp(&packet)), vec![("malformed", 1)]),
        ("neither sequence nor ack number", gre(CALL, None, None, &[]), vec![("malformed", 1)]),
        ("inner header length below 20", gre(CALL, Some(1), None, &ppp(&ihl_4)), vec![("gre_enhanced", 1), ("malformed", 1)]),
        ("inner header longer than its packet", gre(CALL, Some(2), None, &ppp(&ihl_beyond_total[..40])), vec![("gre_enhanced", 1), ("malformed", 1)]),
    ];
    for (what, gre, counters) in cases {
        check(
            &l,
            what,
            &uplink_frame(&outer(PEER, gre)),
            XDP_DROP,
            &counters,
        );
    }
    assert_eq!(l.session_counters(SLOT).rx_packets, 0, "nothing forwarded");
}

#[test]
fn a_packet_over_the_upload_limit_is_dropped_and_counted() {
    let mut l = loaded();
    l.set_police(
        SLOT,
        SessionPolicers {
            rx: one_packet_policer(),
            ..Default::default()
        },
    );
    let ppp = [&[0xff, 0x03, 0x00, 0x21][..], &inner(64).bytes()].concat();
    let data = |seq: u32| uplink_frame(&outer(PEER, gre(CALL, Some(seq), None, &ppp)));
    let out = check(
        &l,
        "within the limit",
        &data(1),
        XDP_REDIRECT,
        &[("gre_enhanced", 1), ("decapsulated", 1)],
    );
    assert_eq!(out, forwarded(64));
    for seq in 2..5 {
        check(
            &l,
            "over the limit",
            &data(seq),
            XDP_DROP,
            &[("gre_enhanced", 1), ("policed", 1)],
        );
    }
    let counters = l.session_counters(SLOT);
    assert_eq!((counters.rx_packets, counters.drop_policed_rx), (1, 3));
    assert_eq!(counters.drop_policed_tx, 0);
    assert_eq!(
        l.seq(SLOT).rx_highest,
        1,
        "a policed packet does not move the window"
    );
    let state = l.police(SLOT).rx.state;
    assert_ne!(state.tat, 0, "the passed packet was charged");
    // The other direction's limit and other sessions are not touched.
    assert_eq!(l.police(SLOT).tx, Default::default());
    assert_eq!(l.session_counters(SLOW_SLOT).drop_policed_rx, 0);

    // Lifting the limit (what the agent does on a CoA without one) lets all pass.
    l.set_police(SLOT, SessionPolicers::default());
    check(
        &l,
        "limit lifted",
        &data(5),
        XDP_REDIRECT,
        &[("gre_enhanced", 1), ("decapsulated", 1)],
    );
    // With bursts, the program keeps MikroTik's sub-windows: the bytes it passed
    // are in the one of now.
    let bursty = pptp_common::rate::RateLimit::parse("8M 16M 8M 16").unwrap();
    l.set_police(
        SLOT,
        SessionPolicers {
            rx: pptp_common::police::Policer {
                limit: bursty.rx.limit(),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    check(
        &l,
        "bursting",
        &data(6),
        XDP_REDIRECT,
        &[("gre_enhanced", 1), ("decapsulated", 1)],
    );
    let state = l.police(SLOT).rx.state;
    assert_ne!(state.epoch, 0);
    assert_eq!(
        state.windows[state.epoch as usize % 16],
        inner(64).bytes().len() as u64
    );
    assert_eq!(
        state.windows.iter().sum::<u64>(),
        inner(64).bytes().len() as u64
    );
}

#[test]
fn a_captured_session_is_copied_to_the_ring_buffer_and_no_other() {
    use aya::maps::{Array, RingBuf};
    use pptp_common::capture::{FROM_CLIENT, Record};
    let mut l = loaded();
    let ppp = [&[0xff, 0x03, 0x00, 0x21][..], &inner(64).bytes()].concat();
    let data = |seq: u32| uplink_frame(&outer(PEER, gre(CALL, Some(seq), None, &ppp)));
    // What the agent's capture command does: the session in `slot` is the captured one.
    let arm = |l: &mut Loaded, slot: u32| {
        let mut armed: Array<_, u32> =
            Array::try_from(l.ebpf.map_mut(pptp_common::maps::CAPTURE_SESSION).unwrap()).unwrap();
        armed.set(0, slot + 1, 0).unwrap();
    };
    // Nothing is captured while no capture runs.
    check(
        &l,
        "no capture",
        &data(1),
        XDP_REDIRECT,
        &[("gre_enhanced", 1), ("decapsulated", 1)],
    );
    arm(&mut l, SLOW_SLOT);
    check(
        &l,
        "another session captured",
        &data(2),
        XDP_REDIRECT,
        &[("gre_enhanced", 1), ("decapsulated", 1)],
    );
    arm(&mut l, SLOT);
    check(
        &l,
        "captured",
        &data(3),
        XDP_REDIRECT,
        &[("gre_enhanced", 1), ("decapsulated", 1)],
    );
    let mut ring = RingBuf::try_from(l.ebpf.map_mut(pptp_common::maps::CAPTURE).unwrap()).unwrap();
    let records: Vec<Vec<u8>> = std::iter::from_fn(|| ring.next().map(|r| r.to_vec())).collect();
    assert_eq!(
        records.len(),
        1,
        "one packet of the captured session, none before"
    );
    let (header, bytes) = Record::parse(&records[0]).unwrap();
    assert_eq!(
        (header.slot, header.direction, header.len as usize),
        (SLOT, FROM_CLIENT, inner(64).bytes().len())
    );
    assert_eq!(
        bytes,
        &inner(64).bytes()[..],
        "the inner packet as the client sent it"
    );
}
