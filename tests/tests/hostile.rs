//! Hostile peers against `pptp-agent serve` in the lab: what one client can do must
//! cost a bounded amount and never cut another session (or its own) off. Frames are
//! forged from the client's namespace with a raw GRE socket, so they carry the
//! client's real outer address and the session's real call ID, as a blind attacker
//! who guessed both would send them. Needs root (namespaces, XDP).

mod peer;

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use pptp_common::wire::{checksum::checksum, ipv4};
use pptp_tests::{
    agents::{self, Agent},
    demo::wait_for,
    lab::{Lab, LabSpec, addr},
    traffic::{self, EchoServer},
};

/// An IPv4 ICMP echo request from `src` to `dst` (`pptp_common::wire`'s writer and checksum).
fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.extend_from_slice(&[0x5a; 24]);
    let sum = checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let header = ipv4::Repr::new(
        src.octets(),
        dst.octets(),
        ipv4::PROTO_ICMP,
        icmp.len() as u16,
    );
    [&header.header()[..], &icmp].concat()
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
    let alice = sessions
        .iter()
        .find(|s| s["user"] == "alice")
        .expect("alice's session is listed");
    let call_id = alice["local_call_id"].as_u64().unwrap() as u16;
    let tunnel = alice["client"].as_str().unwrap().parse().unwrap();
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

#[test]
fn an_mppe_session_holds_one_timer_whatever_its_traffic() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let _server = agents::start_server(
        &mut lab,
        &bin,
        &["--user", "alice:secret-1", "--mppe", "require"],
    )
    .unwrap();
    let client = agents::dial(
        &mut lab,
        &bin,
        0,
        &[
            "--user",
            "alice",
            "--password",
            "secret-1",
            "--mppe",
            "require",
        ],
    )
    .unwrap();
    let client_ns = lab.client_ns(0);
    let echo = EchoServer::start(&lab.lan_ns(), SocketAddrV4::new(addr::LAN_HOST, 9000)).unwrap();
    let sent = traffic::tcp_exchange(&client_ns, echo.address(), 4 << 20).unwrap();
    assert_eq!(sent.payload, 4 << 20);
    // Thousands of frames went through the agent's path: the hub still holds one
    // deadline for its one session (a heap entry per flush grew by one per packet).
    let stats = agents::stats(&mut lab, &bin).unwrap();
    assert_eq!(stats["totals"]["agent"], 1, "{stats}");
    assert_eq!(stats["load"]["timers"], 1, "{}", stats["load"]);
    drop(echo);
    drop(client);
    lab.down().unwrap();
}

/// Bytes of a control message, from the agent's own codec.
fn control(message: impl Into<pptp_agent::pptp::message::Message>) -> Vec<u8> {
    message.into().to_bytes()
}

/// A control connection from `ns` that starts a control connection and a call,
/// then floods Echo-Requests without ever reading (its receive buffer kept small),
/// for at most `budget`. Returns when the concentrator has dropped it (a write
/// fails) or the budget is spent.
fn slow_reader(ns: &str, budget: Duration) -> std::thread::JoinHandle<anyhow::Result<bool>> {
    use pptp_agent::pptp::message::*;
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        pptp_tests::netns::run_in(&ns, move || {
            use std::io::Write as _;
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            socket.set_recv_buffer_size(4096)?;
            let server = std::net::SocketAddrV4::new(addr::CONC_WAN, 1723);
            socket.connect_timeout(&server.into(), Duration::from_secs(5))?;
            let mut stream: std::net::TcpStream = socket.into();
            stream.set_write_timeout(Some(Duration::from_secs(1)))?;
            stream.write_all(&control(StartControlConnectionRequest {
                protocol_version: PROTOCOL_VERSION,
                reserved1: Reserved16,
                framing_capabilities: FramingCaps::ALL,
                bearer_capabilities: BearerCaps::ALL,
                maximum_channels: 1,
                firmware_revision: 1,
                host_name: Text::new("slow"),
                vendor_name: Text::new("reader"),
            }))?;
            stream.write_all(&control(OutgoingCallRequest {
                call_id: 1,
                call_serial_number: 0,
                minimum_bps: 2400,
                maximum_bps: 10_000_000,
                bearer_type: BearerType::Either,
                framing_type: FramingType::Either,
                packet_recv_window_size: 3,
                packet_processing_delay: 0,
                phone_number_length: NumberLength::default(),
                reserved1: Reserved16,
                phone_number: Text::default(),
                subaddress: Text::default(),
            }))?;
            let echoes: Vec<u8> = (0..1000u32)
                .flat_map(|i| control(EchoRequest { identifier: i }))
                .collect();
            let started = std::time::Instant::now();
            while started.elapsed() < budget {
                match stream.write_all(&echoes) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    // Reset or broken pipe: the concentrator dropped us.
                    Err(_) => return Ok(true),
                }
            }
            Ok(false)
        })
    })
}

#[test]
fn a_peer_that_stops_reading_is_dropped_while_others_come_up() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 2 }).unwrap();
    let handshake = Duration::from_secs(5);
    let dir = std::env::temp_dir().join(format!("{}-slow-reader", lab.id()));
    let server = agents::start_from_config(
        &mut lab,
        &bin,
        &dir,
        &agents::ConfigSpec {
            xdp: true,
            pools: &["192.0.2.10-192.0.2.250"],
            secrets: "alice * secret-1 *\n",
            auth: "",
            extra: &format!("[limits]\nhandshake_timeout = {}", handshake.as_secs()),
        },
    )
    .unwrap();
    let fds_before = pptp_tests::process::open_fds(server.pid).unwrap();
    let started = std::time::Instant::now();
    let flood = slow_reader(&lab.client_ns(1), Duration::from_secs(30));
    // A session comes up while the slow reader floods.
    let (_alice, _, _) = alice_session(&mut lab, &bin);
    assert!(agents::ping(&lab.client_ns(0), addr::LAN_HOST, 3).unwrap());
    let dropped = flood.join().unwrap().unwrap();
    let gone_after = started.elapsed();
    assert!(dropped, "the slow reader was still connected after 30 s");
    assert!(
        gone_after < handshake + Duration::from_secs(12),
        "dropped after {gone_after:?} (handshake timeout {handshake:?}, write timeout 10 s)"
    );
    // Its call and its descriptor went with it; alice's session stays.
    wait_for(Duration::from_secs(5), || {
        agents::sessions(&mut lab, &bin).len() == 1
    })
    .expect("only alice's session is left");
    let fds_after = pptp_tests::process::open_fds(server.pid).unwrap();
    assert_eq!(
        fds_after,
        fds_before + 1,
        "one descriptor more than before: alice's control connection"
    );
    assert!(agents::ping(&lab.client_ns(0), addr::LAN_HOST, 3).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    lab.down().unwrap();
}

#[test]
fn every_call_of_a_connection_is_cleared_when_its_sessions_end() {
    use pptp_agent::pptp::message::{
        CallDisconnectNotify, DisconnectResult, GeneralError, Message, Reserved16, Text,
    };
    const CALLS: u16 = 100;
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    // An access switch (the PAC) hands us 100 users' calls on one connection (a
    // configured peer may have that many waiting for authentication); their PPP
    // never starts. Killing them all clears every call on the connection at once.
    let _server = agents::start_configured(
        &mut lab,
        &bin,
        "alice * secret-1 *\n",
        "",
        &format!(
            "[[limits.peers]]\naddress = \"{}\"\nunauthenticated_calls_per_connection = {CALLS}\nunauthenticated_calls_per_source = {CALLS}",
            addr::client(0)
        ),
    );
    let server = std::net::SocketAddrV4::new(addr::CONC_WAN, 1723);
    let (calls_tx, calls_rx) = std::sync::mpsc::channel();
    let (cleared_tx, cleared_rx) = std::sync::mpsc::channel();
    let pac = std::thread::spawn({
        let ns = lab.client_ns(0);
        move || {
            pptp_tests::netns::run_in(&ns, move || {
                let mut pac = peer::RawControl::connect(server)?;
                pac.start("access-switch")?;
                let calls: std::collections::HashMap<u16, u16> =
                    pac.incoming_calls(CALLS)?.into_iter().collect();
                calls_tx.send(calls.len())?;
                let mut cleared = 0;
                let started = std::time::Instant::now();
                while cleared < CALLS && started.elapsed() < Duration::from_secs(30) {
                    if let Some(Message::CallClearRequest(clear)) =
                        pac.recv(Duration::from_secs(1))?
                    {
                        cleared += 1;
                        pac.send(CallDisconnectNotify {
                            call_id: calls.get(&clear.call_id).copied().unwrap_or_default(),
                            result: DisconnectResult::Request,
                            error: GeneralError::None,
                            cause_code: 0,
                            reserved1: Reserved16,
                            call_statistics: Text::default(),
                        })?;
                    }
                }
                cleared_tx.send(cleared)?;
                Ok(())
            })
        }
    });
    assert_eq!(
        calls_rx.recv_timeout(Duration::from_secs(20)).unwrap(),
        usize::from(CALLS)
    );
    wait_for(Duration::from_secs(10), || {
        agents::sessions(&mut lab, &bin).len() == usize::from(CALLS)
    })
    .expect("every call has its session");
    let out = agents::operator(&mut lab, &bin, &["kill", "--all"]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cleared = cleared_rx.recv_timeout(Duration::from_secs(40)).unwrap();
    assert_eq!(
        cleared, CALLS,
        "Call-Clear-Requests for {CALLS} sessions ended"
    );
    pac.join().unwrap().unwrap();
    lab.down().unwrap();
}
