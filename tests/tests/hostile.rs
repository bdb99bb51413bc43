//! Hostile peers against `pptp-agent serve` in the lab: what one client can do must
//! cost a bounded amount and never cut another session (or its own) off. Frames are
//! forged from the client's namespace with a raw GRE socket, so they carry the
//! client's real outer address and the session's real call ID, as a blind attacker
//! who guessed both would send them. Needs root (namespaces, XDP).

use std::{net::Ipv4Addr, time::Duration};

use pptp_agent::inet::checksum;
use pptp_tests::{
    agents::{self, Agent},
    demo::wait_for,
    lab::{Lab, LabSpec, addr},
    traffic,
};

/// An IPv4 ICMP echo request from `src` to `dst` (the agent's checksum).
fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.extend_from_slice(&[0x5a; 24]);
    let sum = checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

/// A PPP frame of protocol IPv4 carrying `bytes`.
fn ppp_ipv4(bytes: &[u8]) -> Vec<u8> {
    [&[0xff, 0x03, 0x00, 0x21][..], bytes].concat()
}

/// Client 0 dialled in as alice; the session's call ID and tunnel address.
fn alice_session(lab: &mut Lab, bin: &std::path::Path) -> (Agent, u16, Ipv4Addr) {
    let client = agents::dial(lab, bin, 0, &["--user", "alice", "--password", "secret-1"]).unwrap();
    assert!(agents::ping(&lab.client_ns(0), addr::LAN_HOST, 2).unwrap());
    let sessions = agents::sessions(lab, bin);
    let call_id = sessions[0]["local_call_id"].as_u64().unwrap() as u16;
    let tunnel = sessions[0]["client"].as_str().unwrap().parse().unwrap();
    (client, call_id, tunnel)
}

#[test]
fn forged_gre_does_not_cut_an_xdp_session_off() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let _server = agents::start_server(&mut lab, &bin, &["--user", "alice:secret-1"]).unwrap();
    let (_client, call_id, _) = alice_session(&mut lab, &bin);
    let client_ns = lab.client_ns(0);
    // A foreign inner source a little ahead in the window, then one 100,000 ahead:
    // neither may move the window, or every genuine packet after them is "old".
    let foreign = ppp_ipv4(&icmp_echo(Ipv4Addr::new(192, 0, 2, 99), addr::LAN_HOST));
    let forged = [2_000, 100_000].map(|seq| traffic::enhanced_gre(call_id, seq, &foreign));
    traffic::send_gre_packets(&client_ns, addr::CONC_WAN, forged.into_iter()).unwrap();
    assert!(
        agents::ping(&client_ns, addr::LAN_HOST, 10).unwrap(),
        "the session answers its pings after the forged frames"
    );
    let stats = agents::stats(&mut lab, &bin).unwrap();
    assert_eq!(agents::counter(&stats, "spoofed_source"), 1, "{stats}");
    assert_eq!(agents::counter(&stats, "sequence_jump"), 1, "{stats}");
    assert_eq!(agents::counter(&stats, "old_sequence"), 0, "{stats}");
    lab.down().unwrap();
}

#[test]
fn forged_frames_on_the_agents_path_are_dropped_and_counted() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let _server =
        agents::start_server_on(&mut lab, &bin, "missing0", &["--user", "alice:secret-1"]).unwrap();
    let (_client, call_id, tunnel) = alice_session(&mut lab, &bin);
    let client_ns = lab.client_ns(0);
    let (tun_rx_before, _) = agents::link_packets(&lab.concentrator_ns(), "pptp0").unwrap();

    // An IPv6 header (no next header) whose bytes 12..16, where an IPv4 header has
    // its source, hold the client's tunnel address: 2001:db8:c000:20a::1 for
    // 192.0.2.10.
    let mut ipv6 = vec![0x60, 0, 0, 0, 0, 0, 59, 64, 0x20, 0x01, 0x0d, 0xb8];
    ipv6.extend_from_slice(&tunnel.octets());
    ipv6.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
    ipv6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(ipv6.len(), 40);
    let spoofed = ppp_ipv4(&icmp_echo(Ipv4Addr::new(192, 0, 2, 99), addr::LAN_HOST));
    let forged = [
        traffic::enhanced_gre(call_id, 1_500, &ppp_ipv4(&ipv6)),
        traffic::enhanced_gre(call_id, 2_000, &spoofed),
        traffic::enhanced_gre(call_id, 100_000, &spoofed),
    ];
    traffic::send_gre_packets(&client_ns, addr::CONC_WAN, forged.into_iter()).unwrap();
    let mut stats = serde_json::Value::Null;
    wait_for(Duration::from_secs(5), || {
        stats = agents::stats(&mut lab, &bin).unwrap();
        stats["hub"]["spoofed_source"].as_u64() >= Some(1)
    })
    .unwrap_or_else(|e| panic!("the forged frames were not judged: {e}: {stats}"));
    let (tun_rx, _) = agents::link_packets(&lab.concentrator_ns(), "pptp0").unwrap();
    assert_eq!(tun_rx, tun_rx_before, "a forged frame reached the kernel");
    let hub = &stats["hub"];
    assert_eq!(hub["spoofed_source"], 1, "{hub}");
    assert_eq!(hub["malformed_ip"], 1, "{hub}");
    assert_eq!(hub["sequence_jump"], 1, "{hub}");
    assert!(
        agents::ping(&client_ns, addr::LAN_HOST, 10).unwrap(),
        "the session answers its pings after the forged frames"
    );
    let hub = &agents::stats(&mut lab, &bin).unwrap()["hub"];
    assert_eq!(hub["old_sequence"], 0, "{hub}");
    lab.down().unwrap();
}
