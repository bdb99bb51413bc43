//! The agent's side of the XDP data plane (`pptp_agent::dataplane::xdp`): what it
//! installs is what the BPF programs see (through the same pinned maps), the agent
//! and the programs draw from one GRE sequence space, a restarted agent flushes
//! what a crashed one left, shutdown leaves nothing, and refusals say why (a taken
//! address, a taken call ID; every call ID has its slot). Needs root (BPF).

mod support;

use std::net::Ipv4Addr;

use pptp_agent::{
    dataplane::{
        bpffs::PinDir,
        report::installed_calls,
        xdp::{XdpDataplane, XdpOptions},
    },
    engine::kernel::{CallSpec, DataplaneError, NetworkSpec},
};
use pptp_common::{
    maps,
    session::{MAX_SESSIONS, NextHop, SESSION_FAST, SESSION_INSTALLED, Session},
};
use pptp_tests::bpffs::TempBpffs;
use support::*;

const CALL: CallSpec = CallSpec {
    peer_addr: Ipv4Addr::new(198, 51, 100, 10),
    local_addr: Ipv4Addr::new(198, 51, 100, 1),
    local_call_id: 0x1001,
    peer_call_id: 0x2002,
};
const NETWORK: NetworkSpec = NetworkSpec {
    client_addr: Ipv4Addr::new(192, 0, 2, 10),
    mtu: 1400,
    fast: true,
};

fn pinned_calls(pins: &PinDir) -> Vec<(u16, Session)> {
    installed_calls(pins).unwrap()
}

#[test]
fn installs_are_seen_by_the_programs_and_share_one_sequence_space() {
    let bpffs = TempBpffs::for_test("dataplane").unwrap();
    let pins = PinDir::new(bpffs.path(), "agent").unwrap();
    let mut dataplane = XdpDataplane::load(pins.clone(), XdpOptions::default()).unwrap();
    let slot = dataplane.install(CALL).unwrap();
    let key = 0x1001;
    assert_eq!(slot.0, 0x1001, "the slot is our call ID");
    let in_setup = Session {
        peer_addr: [198, 51, 100, 10],
        client_addr: [0; 4],
        flags: SESSION_INSTALLED,
        ..Default::default()
    };
    assert_eq!(
        pinned_calls(&pins),
        vec![(key, in_setup)],
        "in setup: known, frames to the agent"
    );
    dataplane.set_network(slot, NETWORK).unwrap();
    let up = Session {
        peer_addr: [198, 51, 100, 10],
        client_addr: [192, 0, 2, 10],
        flags: SESSION_INSTALLED | SESSION_FAST,
        ..Default::default()
    };
    assert_eq!(pinned_calls(&pins), vec![(key, up)]);
    let other = dataplane
        .install(CallSpec {
            local_call_id: 7,
            ..CALL
        })
        .unwrap();
    assert!(
        matches!(
            dataplane.set_network(other, NETWORK),
            Err(DataplaneError::AddressTaken { address, owner })
                if address == NETWORK.client_addr && owner == slot
        ),
        "one session per client address"
    );
    dataplane.remove(other).unwrap();

    // A second loader on the same pins runs the very programs against the same maps.
    let mut programs = Loaded::sharing(TempBpffs::for_test("unused").unwrap(), pins.path());
    let hop = NextHop {
        ifindex: 5,
        smac: MAC_A,
        dmac: MAC_B,
        expires: u64::MAX,
    };
    programs.add_next_hop([198, 51, 100, 10], hop);
    let ping = Ipv4::new([203, 0, 113, 10], [192, 0, 2, 10], 1, icmp_echo(8));
    let to_client = ethernet(MAC_A, MAC_B, 0x0800, &ping.bytes());
    let seq_of = |frame: &[u8]| u32::from_be_bytes(frame[42..46].try_into().unwrap());

    let (verdict, out) = programs.run(maps::PROG_LAN, &to_client);
    assert_eq!((verdict, seq_of(&out)), (XDP_REDIRECT, 0));
    assert_eq!(
        dataplane.table().take_seq(slot.0),
        1,
        "the agent continues the program's sequence"
    );
    let (_, out) = programs.run(maps::PROG_LAN, &to_client);
    assert_eq!(seq_of(&out), 2, "and the program continues the agent's");
    assert_eq!(dataplane.table().highest_received(slot.0), None);
    assert_eq!(dataplane.session_counters(slot).unwrap().tx_packets, 2);
    // The agent's writes (here: the fast flag) keep what the programs keep in the
    // same record.
    dataplane.set_network(slot, NETWORK).unwrap();
    let record = dataplane.table().get(slot.0);
    assert_eq!(
        (record.tx_next, record.tx_packets, record.tx_bytes),
        (3, 2, 2 * ping.bytes().len() as u64),
        "set_network kept the sequence state and the counters"
    );

    // Moved to the fallback path, the session's traffic goes to the agent.
    dataplane.set_fast(slot, false).unwrap();
    assert_eq!(programs.run(maps::PROG_LAN, &to_client).0, XDP_PASS);
    assert_eq!(dataplane.session_counters(slot).unwrap().to_agent, 1);

    // A session that changes its address gives the old one up; a removed one too.
    let moved = NetworkSpec {
        client_addr: Ipv4Addr::new(192, 0, 2, 11),
        ..NETWORK
    };
    dataplane.set_network(slot, moved).unwrap();
    let other = dataplane
        .install(CallSpec {
            local_call_id: 7,
            ..CALL
        })
        .unwrap();
    dataplane.set_network(other, NETWORK).unwrap();
    dataplane.remove(other).unwrap();

    dataplane.remove(slot).unwrap();
    assert!(pinned_calls(&pins).is_empty());
    assert_eq!(programs.run(maps::PROG_LAN, &to_client).0, XDP_PASS);
    let again = dataplane.install(CALL).unwrap();
    dataplane.set_network(again, moved).unwrap();
    dataplane.remove(again).unwrap();
    drop(programs);
    dataplane.shutdown().unwrap();
    assert!(!pins.path().exists(), "shutdown removes the pins");
}

#[test]
fn a_restarted_agent_flushes_what_a_crashed_one_left() {
    let bpffs = TempBpffs::for_test("dataplane-restart").unwrap();
    let pins = PinDir::new(bpffs.path(), "agent").unwrap();
    let mut crashed = XdpDataplane::load(pins.clone(), XdpOptions::default()).unwrap();
    let slot = crashed.install(CALL).unwrap();
    crashed.set_network(slot, NETWORK).unwrap();
    crashed
        .install(CallSpec {
            local_call_id: 2,
            ..CALL
        })
        .unwrap();
    std::mem::forget(crashed); // no shutdown: as if the process had died
    assert_eq!(pinned_calls(&pins).len(), 2);

    let restarted = XdpDataplane::load(pins.clone(), XdpOptions::default()).unwrap();
    assert!(pinned_calls(&pins).is_empty(), "stale sessions flushed");
    assert_eq!(restarted.sessions().count(), 0);
    restarted.shutdown().unwrap();
}

#[test]
fn every_call_id_has_its_slot_and_a_taken_one_is_refused() {
    let bpffs = TempBpffs::for_test("dataplane-full").unwrap();
    let pins = PinDir::new(bpffs.path(), "agent").unwrap();
    let mut dataplane = XdpDataplane::load(pins.clone(), XdpOptions::default()).unwrap();
    // As many call IDs as slots: every one installs, in the slot of its number; a
    // call beyond them (peer .11) reuses call ID 0 and is refused.
    let call = |n: u32| CallSpec {
        peer_addr: Ipv4Addr::new(198, 51, 100, 10 + (n >> 16) as u8),
        local_call_id: n as u16,
        ..CALL
    };
    let slots: Vec<_> = (0..MAX_SESSIONS)
        .map(|n| dataplane.install(call(n)).unwrap())
        .collect();
    assert!(slots.iter().zip(0..).all(|(slot, n)| slot.0 == n));
    assert_eq!(pinned_calls(&pins).len(), MAX_SESSIONS as usize);
    dataplane.remove(slots[7]).unwrap();
    assert!(
        matches!(
            dataplane.install(call(MAX_SESSIONS)),
            Err(DataplaneError::CallIdTaken { call_id: 0, owner }) if owner == slots[0]
        ),
        "a free slot, but call ID 0 is still call(0)'s"
    );
    assert_eq!(dataplane.install(call(MAX_SESSIONS + 7)).unwrap(), slots[7]);
    assert!(matches!(
        dataplane.remove(slots[7]).and_then(|()| dataplane.remove(slots[7])),
        Err(DataplaneError::NoSuchSlot(s)) if s == slots[7]
    ));
    dataplane.shutdown().unwrap();
}

/// `SESSIONS_BY_CALL` is indexed by our call ID alone: a second call with a live
/// call ID, from another peer, is refused (never written over the first), and the
/// first keeps its entry; once the first is removed, the ID is free again.
#[test]
fn a_live_call_id_is_refused_to_another_peer() {
    let bpffs = TempBpffs::for_test("dataplane-call-ids").unwrap();
    let pins = PinDir::new(bpffs.path(), "agent").unwrap();
    let mut dataplane = XdpDataplane::load(pins.clone(), XdpOptions::default()).unwrap();
    let first = dataplane.install(CALL).unwrap();
    dataplane.set_network(first, NETWORK).unwrap();
    let before = pinned_calls(&pins);
    let other_peer = CallSpec {
        peer_addr: Ipv4Addr::new(198, 51, 100, 20),
        peer_call_id: 9,
        ..CALL
    };
    assert!(
        matches!(
            dataplane.install(other_peer),
            Err(DataplaneError::CallIdTaken { call_id: 0x1001, owner }) if owner == first
        ),
        "the call ID is live"
    );
    assert_eq!(
        pinned_calls(&pins),
        before,
        "the first call's entry is intact"
    );
    assert_eq!(dataplane.sessions().count(), 1);

    dataplane.remove(first).unwrap();
    assert!(pinned_calls(&pins).is_empty());
    assert_eq!(dataplane.install(other_peer).unwrap().0, 0x1001);
    assert_eq!(
        pinned_calls(&pins),
        vec![(
            0x1001,
            Session {
                peer_addr: [198, 51, 100, 20],
                client_addr: [0; 4],
                flags: SESSION_INSTALLED,
                ..Default::default()
            }
        )]
    );
    dataplane.shutdown().unwrap();
}

/// Pins left by an agent from before the array (`SESSIONS_BY_CALL` a hash keyed by
/// peer address and call ID, made here with bpftool) do not stop a new agent from
/// loading.
#[test]
fn an_older_agents_session_hash_is_unpinned() {
    let bpffs = TempBpffs::for_test("dataplane-old-pins").unwrap();
    let pins = PinDir::new(bpffs.path(), "agent").unwrap();
    pins.prepare().unwrap();
    let old = pins.object(maps::SESSIONS_BY_CALL);
    let status = std::process::Command::new("bpftool")
        .args(["map", "create"])
        .arg(&old)
        .args(["type", "hash", "key", "8", "value", "12", "entries", "16"])
        .args(["name", "SESSIONS_BY_CAL"])
        .status()
        .expect("bpftool (run `cargo xtask setup`)");
    assert!(
        status.success() && old.exists(),
        "bpftool map create failed"
    );
    let dataplane = XdpDataplane::load(pins.clone(), XdpOptions::default()).unwrap();
    assert!(pinned_calls(&pins).is_empty());
    dataplane.shutdown().unwrap();
}

/// Pins of the layout before the session records (`SESSIONS_BY_CALL` an array of
/// 16-byte entries, `SESSION_SEQ` and `SESSION_COUNTERS` beside it) do not stop a
/// new agent from loading, and do not stay behind.
#[test]
fn an_older_agents_session_arrays_are_unpinned() {
    let bpffs = TempBpffs::for_test("dataplane-old-arrays").unwrap();
    let pins = PinDir::new(bpffs.path(), "agent").unwrap();
    pins.prepare().unwrap();
    let create = |name: &str, args: &[&str]| {
        let path = pins.object(name);
        let status = std::process::Command::new("bpftool")
            .args(["map", "create"])
            .arg(&path)
            .args(args)
            .args(["name", &name[..name.len().min(15)]])
            .status()
            .expect("bpftool (run `cargo xtask setup`)");
        assert!(
            status.success() && path.exists(),
            "bpftool map create {name} failed"
        );
        path
    };
    let by_call = create(
        maps::SESSIONS_BY_CALL,
        &[
            "type", "array", "key", "4", "value", "16", "entries", "65536",
        ],
    );
    let old: Vec<_> = maps::OLD_MAPS
        .iter()
        .map(|name| {
            create(
                name,
                &["type", "array", "key", "4", "value", "24", "entries", "16"],
            )
        })
        .collect();
    let dataplane = XdpDataplane::load(pins.clone(), XdpOptions::default()).unwrap();
    assert!(pinned_calls(&pins).is_empty());
    assert!(
        by_call.exists(),
        "the new SESSIONS_BY_CALL is pinned in its place"
    );
    for path in &old {
        assert!(!path.exists(), "{} was left pinned", path.display());
    }
    dataplane.shutdown().unwrap();
}

/// A rate limit sets the policed flag in the session's record and in its client
/// entry (the programs read `SESSION_POLICE` only with it); lifting it clears both.
#[test]
fn a_rate_limit_sets_the_policed_flag() {
    use pptp_common::{rate::RateLimit, session::SESSION_POLICED};
    let bpffs = TempBpffs::for_test("dataplane-policed").unwrap();
    let pins = PinDir::new(bpffs.path(), "agent").unwrap();
    let mut dataplane = XdpDataplane::load(pins.clone(), XdpOptions::default()).unwrap();
    let slot = dataplane.install(CALL).unwrap();
    dataplane.set_network(slot, NETWORK).unwrap();
    let programs = Loaded::sharing(TempBpffs::for_test("unused-policed").unwrap(), pins.path());
    let flags = |dataplane: &XdpDataplane| {
        let client = programs.encap_entry(NETWORK.client_addr.octets()).flags;
        (
            dataplane.table().get(slot.0).flags & SESSION_POLICED,
            client & SESSION_POLICED,
        )
    };
    assert_eq!(flags(&dataplane), (0, 0));
    dataplane
        .set_rate(slot, &RateLimit::parse("1M/2M").unwrap())
        .unwrap();
    assert_eq!(flags(&dataplane), (SESSION_POLICED, SESSION_POLICED));
    dataplane.set_rate(slot, &RateLimit::default()).unwrap();
    assert_eq!(flags(&dataplane), (0, 0));
    drop(programs);
    dataplane.shutdown().unwrap();
}

/// Clients whose addresses agree in their low 16 bits: the agent puts the second in
/// the hash and marks the shared index entry; each keeps being found by the LAN
/// program when the other goes, and the mark goes with the last client in the hash.
#[test]
fn clients_sharing_an_index_entry_stay_reachable() {
    let bpffs = TempBpffs::for_test("dataplane-index").unwrap();
    let pins = PinDir::new(bpffs.path(), "agent").unwrap();
    let mut dataplane = XdpDataplane::load(pins.clone(), XdpOptions::default()).unwrap();
    let first = dataplane.install(CALL).unwrap();
    dataplane.set_network(first, NETWORK).unwrap();
    let twin_addr = Ipv4Addr::new(198, 18, 2, 10); // 192.0.2.10's low 16 bits
    let twin = dataplane
        .install(CallSpec {
            local_call_id: 7,
            peer_call_id: 0x3003,
            ..CALL
        })
        .unwrap();
    dataplane
        .set_network(
            twin,
            NetworkSpec {
                client_addr: twin_addr,
                ..NETWORK
            },
        )
        .unwrap();
    let mut programs = Loaded::sharing(TempBpffs::for_test("unused-index").unwrap(), pins.path());
    programs.add_next_hop(
        [198, 51, 100, 10],
        NextHop {
            ifindex: 5,
            smac: MAC_A,
            dmac: MAC_B,
            expires: u64::MAX,
        },
    );
    let key_of = |programs: &Loaded, to: Ipv4Addr| {
        let ping = Ipv4::new([203, 0, 113, 10], to.octets(), 1, icmp_echo(8));
        let (verdict, out) = programs.run(
            maps::PROG_LAN,
            &ethernet(MAC_A, MAC_B, 0x0800, &ping.bytes()),
        );
        (verdict == XDP_REDIRECT).then(|| u16::from_be_bytes([out[40], out[41]]))
    };
    assert_eq!(programs.client_index_entry(twin_addr.octets()).overflow, 1);
    assert_eq!(key_of(&programs, NETWORK.client_addr), Some(0x2002));
    assert_eq!(key_of(&programs, twin_addr), Some(0x3003));
    dataplane.remove(first).unwrap();
    assert_eq!(key_of(&programs, NETWORK.client_addr), None);
    assert_eq!(
        key_of(&programs, twin_addr),
        Some(0x3003),
        "still found in the hash"
    );
    dataplane.remove(twin).unwrap();
    assert_eq!(key_of(&programs, twin_addr), None);
    assert_eq!(
        programs.client_index_entry(twin_addr.octets()),
        Default::default(),
        "the entry and its mark are gone"
    );
    drop(programs);
    dataplane.shutdown().unwrap();
}
