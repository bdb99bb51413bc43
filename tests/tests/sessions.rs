//! Real sessions in the lab: `pptp-agent serve` with XDP on the concentrator,
//! `pptp-agent dial` on a client, no MPPE. Ping and a 10 MB TCP exchange cross the
//! tunnel, the XDP counters prove the fast path carried them (the agent's TUN device
//! carried nothing), and hang-ups leave no map entry, route or pin behind. Needs root.

use std::{net::SocketAddrV4, time::Duration};

use pptp_tests::{
    agents::{self, SERVER_INSTANCE},
    demo::wait_for,
    lab::{Lab, LabSpec, addr},
    netns, nft,
    traffic::{self, EchoServer},
};

fn stats(bpffs: &std::path::Path) -> serde_json::Value {
    let out = netns::output(std::process::Command::new(agents::agent_bin()).args([
        "stats",
        "--json",
        "--bpffs",
        &bpffs.display().to_string(),
        "--instance",
        SERVER_INSTANCE,
    ]))
    .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn installed_calls(bpffs: &std::path::Path) -> usize {
    let pins = pptp_agent::dataplane::bpffs::PinDir::new(bpffs, SERVER_INSTANCE).unwrap();
    pptp_agent::dataplane::report::installed_calls(&pins)
        .unwrap()
        .len()
}

/// Routes and addresses without `ip`: the concentrator and the client run with a PATH
/// that finds no program ([`agents::NO_PROGRAMS`], as every agent of these tests);
/// the session's route through `pptp0`, the client's tunnel address and its route to
/// the LAN still appear, carry a ping, and go with the session. (`ip` ran as a
/// subprocess in the hub before: the session failed to come up.)
#[test]
fn routes_and_addresses_need_no_ip_program() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let server = agents::start_server(&mut lab, &bin, &["--user", "alice:secret-1"]).unwrap();
    let client = agents::dial(
        &mut lab,
        &bin,
        0,
        &["--user", "alice", "--password", "secret-1"],
    )
    .unwrap_or_else(|e| panic!("{e:#}\nconcentrator:\n{}", server.log_tail()));
    let client_ns = lab.client_ns(0);
    assert_eq!(agents::tunnel_address(&client_ns), Some(addr::POOL_START));
    assert_eq!(
        agents::tunnel_routes(&lab).unwrap(),
        format!("{} scope link", addr::POOL_START),
        "the session's route through pptp0"
    );
    let client_routes = netns::output(std::process::Command::new("ip").args([
        "-n",
        &client_ns,
        "route",
        "show",
        "dev",
        agents::CLIENT_TUN,
    ]))
    .unwrap();
    assert!(
        String::from_utf8_lossy(&client_routes.stdout).contains("203.0.113.0/24 scope link"),
        "the client's route to the LAN: {}",
        String::from_utf8_lossy(&client_routes.stdout)
    );
    assert!(agents::ping(&client_ns, addr::LAN_HOST, 2).unwrap());
    lab.stop(client.pid, Duration::from_secs(10)).unwrap();
    wait_for(Duration::from_secs(10), || {
        agents::tunnel_routes(&lab).unwrap().is_empty()
    })
    .expect("the route goes with the session");
}

#[test]
fn plain_sessions_are_forwarded_by_xdp_and_leave_nothing_behind() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let bpffs = lab.bpffs().unwrap();
    let server = agents::start_server(&mut lab, &bin, &["--user", "alice:secret-1"]).unwrap();
    let client = agents::dial(
        &mut lab,
        &bin,
        0,
        &["--user", "alice", "--password", "secret-1"],
    )
    .unwrap();
    let client_ns = lab.client_ns(0);
    assert_eq!(agents::tunnel_address(&client_ns), Some(addr::POOL_START));
    assert_eq!(installed_calls(&bpffs), 1);

    assert!(
        agents::ping(&client_ns, addr::LAN_HOST, 5).unwrap(),
        "ping through the tunnel"
    );
    let echo = EchoServer::start(&lab.lan_ns(), SocketAddrV4::new(addr::LAN_HOST, 9000)).unwrap();
    // The client's own namespace counts too: its TUN queue and its veth
    // towards the WAN drop what a loaded machine cannot take in time.
    let on_the_way = || {
        traffic::link_drops(&client_ns).unwrap()
            + traffic::link_drops(&lab.wan_ns()).unwrap()
            + traffic::link_drops(&lab.concentrator_ns()).unwrap()
    };
    let dropped_before = on_the_way();
    // The namespace's TCP count takes in its control connection's segments too.
    let control_before = agents::counter(&stats(&bpffs), "pptp_control");
    let sent = traffic::tcp_exchange(&client_ns, echo.address(), 10 << 20).unwrap();
    assert_eq!(sent.payload, 10 << 20, "10 MiB echoed back intact");
    // Segments a full queue or veth ring dropped before XDP saw them (a loaded
    // machine), sent again by TCP: counted by the client, never offered to the program.
    let lost = on_the_way() - dropped_before;

    let json = stats(&bpffs);
    let (decapsulated, encapsulated) = (
        agents::counter(&json, "decapsulated"),
        agents::counter(&json, "encapsulated"),
    );
    // Decapsulated packets whose neighbour was not resolved yet go up the stack
    // (no_next_hop): the first one towards the LAN host, while ARP runs.
    let unresolved = agents::counter(&json, "no_next_hop");
    let control = agents::counter(&json, "pptp_control") - control_before;
    assert!(
        unresolved * 100 <= sent.segments,
        "only ARP resolution passes packets up (under 1%): {unresolved} of {}",
        sent.segments
    );
    assert!(
        decapsulated + unresolved + lost + control >= sent.segments + 5,
        "every client segment and ping that reached XDP decapsulated: {decapsulated} + \
         {unresolved} + {lost} dropped by links on the way + {control} control < {}\n{json}",
        sent.segments + 5
    );
    assert!(
        encapsulated >= (10 << 20) / 1400,
        "the echo came back through XDP: {encapsulated}"
    );
    assert_eq!(agents::counter(&json, "spoofed_source"), 0);
    // What the concentrator itself sends to the client is encapsulated by the TC
    // program on pptp0; the replies come back through XDP (and up the stack, being
    // for a local address).
    assert!(
        agents::ping(&lab.concentrator_ns(), addr::POOL_START, 5).unwrap(),
        "ping from the box"
    );
    let encapsulated_after = agents::counter(&stats(&bpffs), "encapsulated");
    assert!(
        encapsulated_after >= encapsulated + 5,
        "the box's pings were encapsulated by TC: {encapsulated} -> {encapsulated_after}"
    );
    let (rx, tx) = agents::link_packets(&lab.concentrator_ns(), "pptp0").unwrap();
    assert_eq!(
        (rx, tx),
        (0, 0),
        "the agent's own data path (TUN) carried nothing"
    );

    // The client hangs up: the session leaves the maps, its route and its address.
    let status = lab.stop(client.pid, Duration::from_secs(10)).unwrap();
    assert!(
        status.success(),
        "client exit: {status}\n{}",
        client.log_tail()
    );
    wait_for(Duration::from_secs(10), || installed_calls(&bpffs) == 0)
        .expect("session removed from the maps");
    assert_eq!(
        agents::tunnel_routes(&lab).unwrap(),
        "",
        "no route left to the client"
    );
    assert!(
        !agents::ping(&client_ns, addr::LAN_HOST, 1).unwrap(),
        "no tunnel, no route"
    );

    let status = lab.stop(server.pid, Duration::from_secs(10)).unwrap();
    assert!(
        status.success(),
        "server exit: {status}\n{}",
        server.log_tail()
    );
    assert!(
        !bpffs.join(SERVER_INSTANCE).exists(),
        "the concentrator removed its pins"
    );
    drop(echo);
}

#[test]
fn wrong_password_is_refused() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let _server = agents::start_server(&mut lab, &bin, &["--user", "alice:secret-1"]).unwrap();
    let err = agents::dial(
        &mut lab,
        &bin,
        0,
        &["--user", "alice", "--password", "wrong"],
    )
    .err();
    let message = format!(
        "{:#}",
        err.expect("a wrong password must not bring a session up")
    );
    assert!(
        message.contains("exited"),
        "the client gives up at once: {message}"
    );
    assert!(
        message.contains("authentication failed"),
        "and says why: {message}"
    );
    let stats = agents::stats(&mut lab, &bin).unwrap();
    assert_eq!(
        stats["hub"]["auth_failures"], 1,
        "the refusal is counted: {stats}"
    );
    assert_eq!(stats["pool"]["in_use"], 0, "and its address was never kept");
}

/// An MPPE session (the agent's own path, through its TUN device) with every
/// `loss_every`-th GRE packet lost in each direction at the client: ping and 10 MiB
/// of TCP cross, byte for byte. (Stateful MPPE discards everything after a loss
/// until the sender flushes, which it does on its next packet; under TCP backoff that
/// makes heavy loss slow, so the stateful case loses less.)
fn mppe_session_survives_loss(client_policy: &[&str], stateful: bool, loss_every: u32) {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let bpffs = lab.bpffs().unwrap();
    let mut server_args = vec![
        "--user",
        "alice:secret-1",
        "--mppe",
        "prefer",
        "--mppe-bits",
        "128,40",
    ];
    if stateful {
        server_args.push("--mppe-stateful");
    }
    let server = agents::start_server(&mut lab, &bin, &server_args).unwrap();
    let mut client_args = vec![
        "--user",
        "alice",
        "--password",
        "secret-1",
        "--mppe",
        "require",
    ];
    client_args.extend_from_slice(client_policy);
    let client = agents::dial(&mut lab, &bin, 0, &client_args).unwrap();
    let client_ns = lab.client_ns(0);
    nft::induce_gre_loss(&client_ns, loss_every).unwrap();

    assert!(
        agents::ping(&client_ns, addr::LAN_HOST, 10).unwrap(),
        "ping through MPPE"
    );
    let echo = EchoServer::start(&lab.lan_ns(), SocketAddrV4::new(addr::LAN_HOST, 9000)).unwrap();
    let sent = traffic::tcp_exchange(&client_ns, echo.address(), 10 << 20).unwrap();
    assert_eq!(sent.payload, 10 << 20);
    // nftables dropped the first of every `loss_every` GRE packets each way.
    let (entering, leaving) = nft::gre_loss(&client_ns).unwrap();
    for (way, lost) in [("to the client", entering), ("from the client", leaving)] {
        assert!(
            // (One packet may be between the two rules while the counters are read.)
            lost.packets > 1000
                && lost
                    .dropped
                    .abs_diff(lost.packets.div_ceil(loss_every.into()))
                    <= 1,
            "GRE {way}: {} packets, {} dropped (every {loss_every}th expected)",
            lost.packets,
            lost.dropped
        );
    }
    eprintln!("GRE dropped: {entering:?} to the client, {leaving:?} from it");

    let json = stats(&bpffs);
    assert_eq!(
        agents::counter(&json, "decapsulated"),
        0,
        "MPPE never takes the XDP fast path"
    );
    assert!(
        agents::counter(&json, "to_agent") >= sent.segments / 2,
        "the agent carried the session"
    );
    let (rx, tx) = agents::link_packets(&lab.concentrator_ns(), "pptp0").unwrap();
    assert!(
        rx > 1000 && tx > 1000,
        "through the agent's TUN device: {rx}/{tx}"
    );
    if stateful {
        let logs = [server.log_tail(), client.log_tail()].join("\n");
        let all = std::fs::read_to_string(&server.log).unwrap()
            + &std::fs::read_to_string(&client.log).unwrap();
        assert!(
            all.contains("CCP Reset-Request"),
            "losses resynchronised with Reset-Request:\n{logs}"
        );
    }
    assert!(
        lab.stop(client.pid, Duration::from_secs(10))
            .unwrap()
            .success()
    );
    wait_for(Duration::from_secs(10), || installed_calls(&bpffs) == 0).expect("session removed");
    assert!(
        lab.stop(server.pid, Duration::from_secs(10))
            .unwrap()
            .success()
    );
    drop(echo);
}

#[test]
fn mppe_128_stateless_survives_loss() {
    mppe_session_survives_loss(&["--mppe-bits", "128"], false, 30);
}

#[test]
fn mppe_128_stateful_survives_loss() {
    mppe_session_survives_loss(&["--mppe-bits", "128", "--mppe-stateful"], true, 200);
}

#[test]
fn mppe_40_survives_loss() {
    mppe_session_survives_loss(&["--mppe-bits", "40"], false, 30);
}

#[test]
fn without_xdp_plain_sessions_take_the_agents_path() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let server =
        agents::start_server_on(&mut lab, &bin, "missing0", &["--user", "alice:secret-1"]).unwrap();
    let _client = agents::dial(
        &mut lab,
        &bin,
        0,
        &["--user", "alice", "--password", "secret-1"],
    )
    .unwrap();
    let client_ns = lab.client_ns(0);
    assert!(agents::ping(&client_ns, addr::LAN_HOST, 3).unwrap());
    let echo = EchoServer::start(&lab.lan_ns(), SocketAddrV4::new(addr::LAN_HOST, 9000)).unwrap();
    let sent = traffic::tcp_exchange(&client_ns, echo.address(), 4 << 20).unwrap();
    assert_eq!(sent.payload, 4 << 20);
    let (rx, tx) = agents::link_packets(&lab.concentrator_ns(), "pptp0").unwrap();
    assert!(
        rx >= sent.segments && tx > 1000,
        "the agent's TUN carried the session: {rx}/{tx}"
    );
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("XDP unavailable"),
        "the fallback is said in the log:\n{log}"
    );
    drop(echo);
}

/// A DHCPINFORM as Windows sends it after IPCP: from its tunnel address, to the
/// broadcast address, asking for the domain name and classless static routes.
fn dhcp_inform(ciaddr: std::net::Ipv4Addr, xid: u32) -> Vec<u8> {
    let mut m = vec![1, 1, 6, 0];
    m.extend_from_slice(&xid.to_be_bytes());
    m.extend_from_slice(&[0; 4]);
    m.extend_from_slice(&ciaddr.octets());
    m.extend_from_slice(&[0; 12]);
    m.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x0a]);
    m.resize(236, 0);
    m.extend_from_slice(&[99, 130, 83, 99, 53, 1, 8, 55, 3, 15, 121, 249, 255]);
    m.resize(300, 0);
    m
}

/// The options of a DHCP reply: (code, data) in order.
fn dhcp_options(reply: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut options = Vec::new();
    let mut i = 240;
    while i + 1 < reply.len() && reply[i] != 255 {
        if reply[i] == 0 {
            i += 1;
            continue;
        }
        let len = usize::from(reply[i + 1]);
        options.push((reply[i], reply[i + 2..i + 2 + len].to_vec()));
        i += 2 + len;
    }
    options
}

#[test]
fn windows_dhcpinform_is_answered_through_the_tunnel() {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};

    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let _server = agents::start_server(
        &mut lab,
        &bin,
        &[
            "--user",
            "alice:secret-1",
            "--dhcp-domain",
            "corp.example",
            "--dhcp-route",
            "203.0.113.0/24",
        ],
    )
    .unwrap();
    let _client = agents::dial(
        &mut lab,
        &bin,
        0,
        &["--user", "alice", "--password", "secret-1"],
    )
    .unwrap();
    let client = addr::POOL_START;
    let reply = netns::run_in(&lab.client_ns(0), move || {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_broadcast(true)?;
        socket.bind_device(Some(agents::CLIENT_TUN.as_bytes()))?;
        socket.bind(&SockAddr::from(std::net::SocketAddrV4::new(client, 68)))?;
        socket.set_read_timeout(Some(Duration::from_secs(5)))?;
        let to = SockAddr::from(std::net::SocketAddrV4::new(
            std::net::Ipv4Addr::BROADCAST,
            67,
        ));
        socket.send_to(&dhcp_inform(client, 0x1234_5678), &to)?;
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
        let n = socket.recv(&mut buf)?;
        // SAFETY: recv initialised the first n bytes.
        Ok(buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect::<Vec<u8>>())
    })
    .expect("a DHCPACK comes back through the tunnel");
    assert_eq!(reply[0], 2, "BOOTREPLY");
    assert_eq!(
        &reply[4..8],
        &0x1234_5678u32.to_be_bytes(),
        "same transaction"
    );
    let options = dhcp_options(&reply);
    assert!(options.contains(&(53, vec![5])), "DHCPACK: {options:?}");
    assert!(
        options.contains(&(54, vec![192, 0, 2, 1])),
        "server identifier: {options:?}"
    );
    assert!(
        options.contains(&(15, b"corp.example".to_vec())),
        "domain: {options:?}"
    );
    let route = vec![24, 203, 0, 113, 192, 0, 2, 1];
    assert!(
        options.contains(&(121, route.clone())),
        "RFC 3442 route: {options:?}"
    );
    assert!(
        options.contains(&(249, route)),
        "Microsoft's copy: {options:?}"
    );
    assert!(
        !options.iter().any(|(code, _)| *code == 51),
        "no lease time for an INFORM"
    );
}

/// Every authentication method brings a session up against our concentrator and
/// carries a ping: PAP, CHAP-MD5, MS-CHAPv1 and MS-CHAPv2 without MPPE, and the
/// MS-CHAPs (the methods that key MPPE) with MPPE-128.
#[test]
fn sessions_of_every_authentication_method() {
    let bin = agents::agent_bin();
    let cases: [(&str, &str); 6] = [
        ("pap", "deny"),
        ("chap", "deny"),
        ("mschap", "deny"),
        ("mschapv2", "deny"),
        ("mschap", "require"),
        ("mschapv2", "require"),
    ];
    let mut lab = Lab::up(&LabSpec {
        clients: cases.len(),
    })
    .unwrap();
    let _server = agents::start_server(
        &mut lab,
        &bin,
        &[
            "--user",
            "alice:secret-1",
            "--auth",
            "mschapv2,mschap,chap,pap",
            "--mppe",
            "prefer",
        ],
    )
    .unwrap();
    for (i, (auth, mppe)) in cases.iter().enumerate() {
        agents::dial(
            &mut lab,
            &bin,
            i,
            &[
                "--user",
                "alice",
                "--password",
                "secret-1",
                "--auth",
                auth,
                "--mppe",
                mppe,
            ],
        )
        .unwrap_or_else(|e| panic!("{auth} with MPPE {mppe}: {e:#}"));
        assert!(
            agents::ping(&lab.client_ns(i), addr::LAN_HOST, 2).unwrap(),
            "{auth} with MPPE {mppe}: ping"
        );
    }
    let out = netns::output(std::process::Command::new(&bin).args([
        "sessions",
        "--json",
        "--api-socket",
        &agents::api_socket(&lab).display().to_string(),
    ]))
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sessions = json["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), cases.len());
    let encrypted = sessions.iter().filter(|s| s["mppe"].is_string()).count();
    assert_eq!(
        encrypted, 2,
        "the two MPPE sessions, and only they, are encrypted"
    );
}
