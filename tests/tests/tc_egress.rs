//! The TC egress program of the session device (`pptp_egress`) under
//! BPF_PROG_TEST_RUN, with the same fixture table as the XDP programs: exact output
//! bytes of an encapsulation (with and without ack, sequence numbers advancing, the
//! inner packet untouched: the kernel routed it already), and every reason to leave
//! a packet to the TUN device, each with the one counter it moves: MTU exceeded, no
//! next hop, a session on the agent's path, an unknown destination, not IPv4.
//!
//! The program reads IPv4 at offset 0, as on the TUN device; a TC test run hands it
//! the data as given. Each test runs in a network namespace of its own with nothing
//! in it, so a FIB lookup finds no route. Needs root (BPF, namespaces).

mod support;

use nix::sched::{CloneFlags, unshare};
use pptp_common::{
    maps::PROG_EGRESS,
    police::SessionPolicers,
    session::{EncapSession, Session},
};
use support::{
    encap::{MTU, SLOT, SLOW_CLIENT},
    *,
};

/// A client whose peer has no cached next hop (and no route: the FIB lookup fails).
const UNROUTED_CLIENT: [u8; 4] = [192, 0, 2, 12];
const UNROUTED_PEER: [u8; 4] = [198, 51, 100, 12];

/// Runs `test` on a thread in a new, empty network namespace.
fn in_empty_netns(test: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).expect("a network namespace (needs root)");
        test();
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

fn loaded(test: &str) -> Loaded {
    let (mut l, session) = encap::loaded(test);
    l.add_encap(
        UNROUTED_CLIENT,
        EncapSession {
            peer_addr: UNROUTED_PEER,
            slot: 5,
            ..session
        },
    );
    l
}

/// What the uplink must carry for `inner`: the TTL is the kernel's business here.
fn encapsulated(inner: &[u8], seq: u32, ack: Option<u32>) -> Vec<u8> {
    encap::encapsulated(inner, seq, ack)
}

fn check(l: &Loaded, what: &str, packet: &[u8], verdict: u32, counters: &[(&str, u64)]) -> Vec<u8> {
    support::check(l, PROG_EGRESS, what, packet, verdict, counters)
}

/// An echo request from the box to `client` with `len` bytes of data.
fn ping_to(client: [u8; 4], len: usize) -> Vec<u8> {
    Ipv4::new(SERVER, client, 1, icmp_echo(len)).bytes()
}

#[test]
fn encapsulates_what_the_box_sends_to_a_fast_client() {
    in_empty_netns(|| {
        let mut l = loaded("tc-egress-encap");
        let first = ping_to(CLIENT, 32);
        let out = check(
            &l,
            "no ack yet",
            &first,
            TC_ACT_REDIRECT,
            &[("encapsulated", 1)],
        );
        assert_eq!(out, encapsulated(&first, 0, None));
        let out = check(
            &l,
            "second packet",
            &first,
            TC_ACT_REDIRECT,
            &[("encapsulated", 1)],
        );
        assert_eq!(out, encapsulated(&first, 1, None), "sequence advances");

        let seq = l.seq(SLOT);
        l.set_seq(
            SLOT,
            Session {
                rx_highest: 41,
                rx_valid: 1,
                ..seq
            },
        );
        let fits = ping_to(CLIENT, MTU as usize - 28);
        let out = check(
            &l,
            "exactly the MTU, with ack",
            &fits,
            TC_ACT_REDIRECT,
            &[("encapsulated", 1)],
        );
        assert_eq!(out, encapsulated(&fits, 2, Some(41)));
        assert_eq!(l.seq(SLOT).next_seq(), 3);

        let counters = l.session_counters(SLOT);
        assert_eq!(counters.tx_packets, 3);
        assert_eq!(counters.tx_bytes, 2 * (20 + 8 + 32) + u64::from(MTU));
    });
}

#[test]
fn leaves_to_the_tun_device_what_it_must() {
    in_empty_netns(|| {
        let l = loaded("tc-egress-pass");
        let big = ping_to(CLIENT, MTU as usize - 27);
        assert_eq!(
            check(
                &l,
                "one byte over the MTU",
                &big,
                TC_ACT_OK,
                &[("too_big", 1)]
            ),
            big
        );
        assert_eq!(l.session_counters(SLOT).too_big, 1);

        let unrouted = ping_to(UNROUTED_CLIENT, 32);
        assert_eq!(
            check(
                &l,
                "no next hop",
                &unrouted,
                TC_ACT_OK,
                &[("no_next_hop", 1)]
            ),
            unrouted
        );

        let slow = ping_to(SLOW_CLIENT, 32);
        assert_eq!(
            check(
                &l,
                "session on the agent's path",
                &slow,
                TC_ACT_OK,
                &[("to_agent", 1)]
            ),
            slow
        );

        let unknown = ping_to([192, 0, 2, 99], 32);
        assert_eq!(
            check(&l, "unknown destination", &unknown, TC_ACT_OK, &[]),
            unknown
        );

        // IPv6 (version 6) to nobody in particular; the bytes 16..20 spell CLIENT.
        let mut not_ipv4 = ping_to(CLIENT, 32);
        not_ipv4[0] = 0x60;
        assert_eq!(check(&l, "not IPv4", &not_ipv4, TC_ACT_OK, &[]), not_ipv4);
        assert_eq!(
            l.session_counters(SLOT).tx_packets,
            0,
            "nothing was sent for the session"
        );
    });
}

#[test]
fn a_packet_over_the_download_limit_is_shot_and_counted() {
    in_empty_netns(|| {
        let mut l = loaded("tc-egress-police");
        l.set_police(
            SLOT,
            SessionPolicers {
                tx: one_packet_policer(),
                ..Default::default()
            },
        );
        let ping = ping_to(CLIENT, 32);
        let out = check(
            &l,
            "within the limit",
            &ping,
            TC_ACT_REDIRECT,
            &[("encapsulated", 1)],
        );
        assert_eq!(out, encapsulated(&ping, 0, None));
        for _ in 0..3 {
            check(&l, "over the limit", &ping, TC_ACT_SHOT, &[("policed", 1)]);
        }
        let counters = l.session_counters(SLOT);
        assert_eq!((counters.tx_packets, counters.drop_policed_tx), (1, 3));
        assert_eq!(l.seq(SLOT).next_seq(), 1);
    });
}
