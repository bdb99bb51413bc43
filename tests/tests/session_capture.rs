//! `pptp-agent capture` in the lab: two fast-path sessions and one MPPE session
//! (the agent's path) carry pings at the same time; a capture of one fast-path
//! session, read by tshark, holds that session's packets in both directions
//! (decapsulated by the uplink program, encapsulated by the LAN program and by TC
//! egress for what the concentrator itself sends) and not one of the other
//! sessions'; a capture of the MPPE session (the agent tees its decrypted packets
//! and streams them over the API socket) holds its own packets both ways, the
//! concentrator's pings to it included, and no other session's, and ends when the
//! session does. Needs root, tshark.

use std::{process::Command, time::Duration};

use aya::maps::{Array, Map, MapData};
use pptp_common::maps;
use pptp_tests::{
    agents::{self, SERVER_INSTANCE, start_configured},
    capture::tshark,
    demo::wait_for,
    lab::{Lab, LabSpec, addr},
    netns,
};

/// Pings `dst` from `ns` `count` times, 0.1 s apart (answered or not).
fn pings(ns: &str, dst: std::net::Ipv4Addr, count: u32) {
    let mut ping = Command::new("ping");
    ping.args(["-c", &count.to_string(), "-i", "0.1", "-w", "5"])
        .arg(dst.to_string());
    let _ = netns::run_in_ns(ns, &mut ping);
}

#[test]
fn a_capture_holds_its_sessions_packets_and_no_others() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 3 }).unwrap();
    let configured = start_configured(
        &mut lab,
        &bin,
        "alice * alice-pw *\nbob * bob-pw *\ncarol * carol-pw *\n",
        "methods = [\"mschapv2\", \"pap\"]",
        "[mppe]\npolicy = \"prefer\"\n",
    );
    let server = &configured.server;
    for (i, user, auth, mppe) in [
        (0, "alice", "pap", "deny"),
        (1, "bob", "pap", "deny"),
        (2, "carol", "mschapv2", "require"),
    ] {
        agents::dial_as(&mut lab, &bin, i, user, &format!("{user}-pw"), auth, mppe)
            .unwrap_or_else(|e| panic!("{user}: {e:#}\n{}", server.log_tail()));
    }
    let all = agents::sessions(&mut lab, &bin);
    let of = |user: &str| {
        all.iter()
            .find(|s| s["user"] == user)
            .unwrap_or_else(|| panic!("no session of {user}: {all:?}"))
            .clone()
    };
    let (alice, bob, carol) = (of("alice"), of("bob"), of("carol"));
    assert_eq!(
        (alice["path"].as_str(), bob["path"].as_str()),
        (Some("xdp"), Some("xdp"))
    );
    let alice_addr: std::net::Ipv4Addr = alice["client"].as_str().unwrap().parse().unwrap();
    let bob_addr = bob["client"].as_str().unwrap().to_owned();

    let file = std::env::temp_dir().join(format!("{}-alice.pcap", lab.id()));
    let bpffs = lab.bpffs().unwrap();
    let socket = agents::api_socket(&lab);
    let command = |id: &serde_json::Value, extra: &[&str]| {
        let mut cmd = Command::new(&bin);
        cmd.args(["capture", &id.to_string()])
            .args(extra)
            .arg("--api-socket")
            .arg(&socket)
            .args(["--instance", SERVER_INSTANCE])
            .arg("--bpffs")
            .arg(&bpffs);
        cmd
    };

    let mut capture = command(
        &alice["id"],
        &["-w", file.to_str().unwrap(), "--seconds", "4"],
    );
    let capturing =
        std::thread::spawn(move || agents::output_within(&mut capture, Duration::from_secs(30)));
    // Armed once CAPTURE_SESSION names a slot.
    let pinned = lab
        .bpffs()
        .unwrap()
        .join(SERVER_INSTANCE)
        .join(maps::CAPTURE_SESSION);
    wait_for(Duration::from_secs(10), || {
        MapData::from_pin(&pinned)
            .ok()
            .and_then(|m| Array::<MapData, u32>::try_from(Map::Array(m)).ok())
            .and_then(|a| a.get(&0, 0).ok())
            .is_some_and(|slot| slot != 0)
    })
    .expect("the capture did not start");
    // Both sessions at once; and the concentrator itself to alice (TC egress).
    let (alice_ns, bob_ns) = (lab.client_ns(0), lab.client_ns(1));
    let bob_pings = std::thread::spawn(move || pings(&bob_ns, addr::LAN_HOST, 10));
    pings(&alice_ns, addr::LAN_HOST, 10);
    pings(&lab.concentrator_ns(), alice_addr, 3);
    bob_pings.join().unwrap();
    let out = capturing.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stderr).trim());

    let lines = read(&file);
    let packets: Vec<Vec<&str>> = lines.lines().map(|l| l.split('\t').collect()).collect();
    let alice_s = alice_addr.to_string();
    let lan = addr::LAN_HOST.to_string();
    let count = |src: &str, dst: &str, icmp: &str| {
        packets.iter().filter(|p| p[..] == [src, dst, icmp]).count()
    };
    assert!(
        packets
            .iter()
            .all(|p| p.contains(&alice_s.as_str()) && !p.contains(&bob_addr.as_str())),
        "only alice's packets: {lines}"
    );
    assert_eq!(
        count(&alice_s, &lan, "8"),
        10,
        "echo requests from alice (decapsulated): {lines}"
    );
    assert_eq!(
        count(&lan, &alice_s, "0"),
        10,
        "echo replies to alice (LAN program): {lines}"
    );
    assert_eq!(
        count(&agents::SERVER_TUNNEL_ADDR.to_string(), &alice_s, "8")
            + count("198.51.100.1", &alice_s, "8"),
        3,
        "the concentrator's own echo requests to alice (TC egress): {lines}"
    );

    let _ = std::fs::remove_file(&file);

    // The MPPE session, from the agent: everyone pings again, and the concentrator
    // pings carol; then carol's session ends, and so does the capture.
    assert_eq!(carol["path"].as_str(), Some("agent"), "{carol}");
    let carol_addr: std::net::Ipv4Addr = carol["client"].as_str().unwrap().parse().unwrap();
    let file = std::env::temp_dir().join(format!("{}-carol.pcap", lab.id()));
    let mut capture = command(&carol["id"], &["-w", file.to_str().unwrap()]);
    let capturing =
        std::thread::spawn(move || agents::output_within(&mut capture, Duration::from_secs(60)));
    // Armed once the agent says so in its log.
    wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&server.log).is_ok_and(|l| l.contains("capture started"))
    })
    .unwrap_or_else(|_| panic!("the capture did not start\n{}", server.log_tail()));
    let (alice_ns, bob_ns, carol_ns) = (lab.client_ns(0), lab.client_ns(1), lab.client_ns(2));
    let others = std::thread::spawn(move || {
        pings(&alice_ns, addr::LAN_HOST, 10);
        pings(&bob_ns, addr::LAN_HOST, 10);
    });
    pings(&carol_ns, addr::LAN_HOST, 10);
    pings(&lab.concentrator_ns(), carol_addr, 3);
    others.join().unwrap();
    let killed = agents::operator(&mut lab, &bin, &["kill", &carol["id"].to_string()]).unwrap();
    assert!(killed.status.success(), "{killed:?}");
    let out = capturing.join().unwrap().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("the session ended"), "{said}");
    eprintln!("{}", said.trim());

    let lines = read(&file);
    let packets: Vec<Vec<&str>> = lines.lines().map(|l| l.split('\t').collect()).collect();
    let carol_s = carol_addr.to_string();
    let count = |src: &str, dst: &str, icmp: &str| {
        packets.iter().filter(|p| p[..] == [src, dst, icmp]).count()
    };
    assert!(
        packets.iter().all(|p| p.contains(&carol_s.as_str())
            && !p.contains(&alice_s.as_str())
            && !p.contains(&bob_addr.as_str())),
        "only carol's packets: {lines}"
    );
    assert_eq!(
        count(&carol_s, &lan, "8"),
        10,
        "echo requests from carol: {lines}"
    );
    assert_eq!(
        count(&lan, &carol_s, "0"),
        10,
        "echo replies to carol: {lines}"
    );
    assert_eq!(
        count(&agents::SERVER_TUNNEL_ADDR.to_string(), &carol_s, "8")
            + count("198.51.100.1", &carol_s, "8"),
        3,
        "the concentrator's own echo requests to carol: {lines}"
    );

    let _ = std::fs::remove_file(&file);
    lab.stop(server.pid, Duration::from_secs(10)).unwrap();
}

/// Source, destination and ICMP type of each packet of the pcap `file`, as tshark
/// reads them (one line each, tab-separated).
fn read(file: &std::path::Path) -> String {
    tshark(&[
        "-r",
        file.to_str().unwrap(),
        "-T",
        "fields",
        "-e",
        "ip.src",
        "-e",
        "ip.dst",
        "-e",
        "icmp.type",
    ])
    .unwrap()
}
