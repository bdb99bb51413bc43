//! The uplink XDP program's session lookup under BPF_PROG_TEST_RUN: `SESSIONS_BY_CALL`
//! is an array indexed by our call ID, and GRE that names a call ID whose entry is
//! empty, or that belongs to another peer's session, is an unknown session exactly as
//! when the lookup was a hash keyed by (peer address, call ID): passed to the agent
//! (or dropped with `drop_unknown`), counted as `unknown_session`, and the named
//! session's counters and GRE window untouched. Needs root (BPF); fails, never skips.

mod support;

use pptp_common::{
    maps::PROG_UPLINK,
    session::{Config, NextHop, SESSION_FAST, SESSION_INSTALLED, Session},
};
use support::*;

/// The other peer, with a session of its own.
const OTHER_PEER: [u8; 4] = [198, 51, 100, 20];
const CALL: u16 = 0x1001;
const OTHER_CALL: u16 = 0x1002;
/// The session's slot: our call ID.
const SLOT: u32 = CALL as u32;
const OTHER_SLOT: u32 = OTHER_CALL as u32;
const LAN_HOP: NextHop = NextHop {
    ifindex: 7,
    smac: [0x02, 0, 0, 0, 7, 1],
    dmac: [0x02, 0, 0, 0, 7, 2],
    expires: u64::MAX,
};

/// Fast-path sessions of [`PEER`] (call [`CALL`]) and [`OTHER_PEER`] (call
/// [`OTHER_CALL`], client 192.0.2.20); both windows have accepted sequence 10.
fn loaded(test: &str) -> Loaded {
    let mut l = Loaded::new(test);
    for (call_id, peer, client) in [
        (CALL, PEER, CLIENT),
        (OTHER_CALL, OTHER_PEER, [192, 0, 2, 20]),
    ] {
        l.add_decap(
            call_id,
            Session {
                peer_addr: peer,
                client_addr: client,
                flags: SESSION_INSTALLED | SESSION_FAST,
                rx_highest: 10,
                rx_valid: 1,
                ..Default::default()
            },
        );
    }
    l.add_next_hop(LAN_HOST, LAN_HOP);
    l
}

/// GRE data from `src` with our call ID `call_id` and sequence `seq`, carrying a
/// packet from inner source `client` (the named session's own client: only the
/// outer source or the entry can make it unknown).
fn data(src: [u8; 4], call_id: u16, seq: u32, client: [u8; 4]) -> Vec<u8> {
    let inner = Ipv4::new(client, LAN_HOST, 1, icmp_echo(32)).bytes();
    let ppp = [&[0xff, 0x03, 0x00, 0x21][..], &inner].concat();
    let gre = gre(call_id, Some(seq), None, &ppp);
    ethernet(
        MAC_A,
        MAC_B,
        0x0800,
        &Ipv4::new(src, SERVER, 47, gre).bytes(),
    )
}

fn check(l: &Loaded, what: &str, frame: &[u8], verdict: u32, counters: &[(&str, u64)]) {
    support::check(l, PROG_UPLINK, what, frame, verdict, counters);
}

/// Forged GRE, by kind: (what, frame). Each is an unknown session.
fn forgeries() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "another peer's call ID, from a peer with a session of its own",
            data(OTHER_PEER, CALL, 11, CLIENT),
        ),
        (
            "another peer's call ID, from an address with no session",
            data([198, 51, 100, 77], CALL, 11, CLIENT),
        ),
        (
            "an empty call ID, from a peer with a session",
            data(PEER, 0x9999, 11, CLIENT),
        ),
        (
            "call ID 0 (never ours), from a peer with a session",
            data(PEER, 0, 11, CLIENT),
        ),
        ("call ID 65535, empty", data(PEER, u16::MAX, 11, CLIENT)),
        (
            // An empty entry is all zeros: its peer address would match this
            // source if emptiness were not its own flag.
            "an empty call ID, from source 0.0.0.0",
            data([0; 4], 0x9999, 11, [0; 4]),
        ),
    ]
}

#[test]
fn forged_call_ids_are_unknown_sessions_and_touch_no_session() {
    let mut l = loaded("xdp-call-ids");
    let windows = [l.seq(SLOT), l.seq(OTHER_SLOT)];
    for (what, frame) in forgeries() {
        check(
            &l,
            what,
            &frame,
            XDP_PASS,
            &[("gre_enhanced", 1), ("unknown_session", 1)],
        );
    }
    l.set_config(Config {
        drop_unknown: 1,
        ..Default::default()
    });
    for (what, frame) in forgeries() {
        check(
            &l,
            &format!("{what}, dropping"),
            &frame,
            XDP_DROP,
            &[("gre_enhanced", 1), ("unknown_session", 1)],
        );
    }
    for slot in [SLOT, OTHER_SLOT] {
        assert_eq!(
            l.session_counters(slot),
            Default::default(),
            "slot {slot}: no forged packet counted"
        );
    }
    assert_eq!(
        [l.seq(SLOT), l.seq(OTHER_SLOT)],
        windows,
        "no forged packet moved a window or set a probe"
    );

    // The sessions themselves still forward, each from its own peer only.
    check(
        &l,
        "the session's own peer",
        &data(PEER, CALL, 11, CLIENT),
        XDP_REDIRECT,
        &[("gre_enhanced", 1), ("decapsulated", 1)],
    );
    check(
        &l,
        "the other session's own peer",
        &data(OTHER_PEER, OTHER_CALL, 11, [192, 0, 2, 20]),
        XDP_REDIRECT,
        &[("gre_enhanced", 1), ("decapsulated", 1)],
    );
    assert_eq!(l.session_counters(SLOT).rx_packets, 1);
    assert_eq!(l.session_counters(OTHER_SLOT).rx_packets, 1);
}

#[test]
fn an_emptied_entry_is_an_unknown_session_again() {
    let mut l = loaded("xdp-call-ids-emptied");
    check(
        &l,
        "installed",
        &data(PEER, CALL, 11, CLIENT),
        XDP_REDIRECT,
        &[("gre_enhanced", 1), ("decapsulated", 1)],
    );
    // What the agent writes when it removes the session: an all-zero entry.
    l.add_decap(CALL, Session::default());
    check(
        &l,
        "removed",
        &data(PEER, CALL, 12, CLIENT),
        XDP_PASS,
        &[("gre_enhanced", 1), ("unknown_session", 1)],
    );
    assert_eq!(
        l.seq(SLOT),
        Session::default(),
        "the empty record stays empty"
    );
    // An entry with the peer's address but not marked installed holds no session.
    let uninstalled = Session {
        peer_addr: PEER,
        client_addr: CLIENT,
        flags: SESSION_FAST,
        ..Default::default()
    };
    l.add_decap(CALL, uninstalled);
    check(
        &l,
        "peer address without the installed flag",
        &data(PEER, CALL, 13, CLIENT),
        XDP_PASS,
        &[("gre_enhanced", 1), ("unknown_session", 1)],
    );
    // Neither its window nor its counters moved (the record holds both).
    assert_eq!(l.seq(SLOT), uninstalled);
}
