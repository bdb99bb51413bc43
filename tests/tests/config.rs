//! `serve --config`: a TOML file and a pppd chap-secrets file drive the concentrator
//! in the lab. A password user and an NT-hash user connect, a user whose dial-in
//! permission is denied is refused with the right password, and SIGHUP adds a user
//! and changes the rate limits of the sessions that are up (the default's and a
//! user's) without dropping them. Needs root.

use std::time::Duration;

use pptp_tests::{
    agents::{self, start_configured},
    lab::{Lab, LabSpec, addr},
};

#[test]
fn config_file_users_dial_in_permission_and_reload() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 4 }).unwrap();
    let bob_hash = nt_hash_line();
    let configured = start_configured(
        &mut lab,
        &bin,
        &format!(
            "# client server secret addresses\nalice * \"alice secret\" *\nbob * {bob_hash} *\ncarol * carol-secret *\n"
        ),
        "methods = [\"mschapv2\"]\nrate = \"1M\"",
        "[users.carol]\ndial_in = \"deny\"",
    );
    let (server, secrets) = (&configured.server, configured.secrets.clone());

    let alice = agents::dial(
        &mut lab,
        &bin,
        0,
        &["--user", "alice", "--password", "alice secret"],
    )
    .unwrap();
    assert!(
        agents::ping(&lab.client_ns(0), addr::LAN_HOST, 2).unwrap(),
        "alice's session forwards"
    );
    agents::dial(
        &mut lab,
        &bin,
        1,
        &["--user", "bob", "--password", "bob-secret"],
    )
    .expect("bob authenticates against his NT hash");
    let denied = agents::dial(
        &mut lab,
        &bin,
        2,
        &["--user", "carol", "--password", "carol-secret"],
    );
    let message = format!(
        "{:#}",
        denied.err().expect("carol's dial-in permission is denied")
    );
    assert!(message.contains("authentication failed"), "{message}");

    let rates = |lab: &mut Lab| {
        let all = agents::sessions(lab, &bin);
        let of = |user: &str| {
            all.iter()
                .find(|s| s["user"] == user)
                .map(|s| s["rate"].as_str().unwrap_or("-").to_owned())
        };
        (of("alice"), of("bob"))
    };
    let default = Some("1M/1M".to_owned());
    assert_eq!(rates(&mut lab), (default.clone(), default));

    // SIGHUP: dave is added, the limit lowered to 3 sessions, the default rate
    // raised and alice given one of her own; alice's session stays up.
    let config_path = configured.dir.join("pptp-agent.toml");
    let mut config_text = std::fs::read_to_string(&config_path)
        .unwrap()
        .replace("rate = \"1M\"", "rate = \"3M\"");
    config_text.push_str("[limits]\nmax_sessions = 3\n[users.alice]\nrate = \"2M/4M\"\n");
    std::fs::write(&config_path, config_text).unwrap();
    std::fs::write(
        &secrets,
        format!(
            "alice * \"alice secret\" *\nbob * {bob_hash} *\ncarol * carol-secret *\ndave * dave-secret *\n"
        ),
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    pptp_tests::demo::wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&server.log)
            .unwrap_or_default()
            .contains("reloaded")
    })
    .expect("the agent reloads on SIGHUP");
    let reloaded = (Some("2M/4M".to_owned()), Some("3M/3M".to_owned()));
    pptp_tests::demo::wait_for(Duration::from_secs(5), || rates(&mut lab) == reloaded)
        .unwrap_or_else(|_| {
            panic!(
                "the live sessions' rates after SIGHUP: {:?}",
                rates(&mut lab)
            )
        });
    assert!(
        lab.exited(alice.pid).is_none(),
        "alice's session survived the reload"
    );
    assert!(
        agents::ping(&lab.client_ns(0), addr::LAN_HOST, 2).unwrap(),
        "and still forwards"
    );
    // Client 2 (refused as carol, exited) dials again as dave.
    agents::dial(
        &mut lab,
        &bin,
        2,
        &["--user", "dave", "--password", "dave-secret"],
    )
    .expect("dave was added by SIGHUP");
    // A fourth session is over the reloaded limit.
    let fourth = agents::dial(
        &mut lab,
        &bin,
        3,
        &["--user", "alice", "--password", "alice secret"],
    );
    assert!(fourth.is_err(), "max_sessions = 3 is in force after SIGHUP");
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("the concentrator is full"), "{log}");
}

/// The chap-secrets secret for bob: his NT hash (no password on the concentrator),
/// computed with the agent's MD4, which the PPP tests check against RFC 2759.
fn nt_hash_line() -> String {
    let hash = pptp_agent::ppp::auth::Secret::Password(b"bob-secret".to_vec()).nt_hash();
    let hex: String = hash.iter().map(|b| format!("{b:02X}")).collect();
    format!("nthash:{hex}")
}

/// A peer that stops answering LCP echoes (frozen with SIGSTOP) is declared dead
/// within the configured keepalive; its session leaves the maps, its route goes, and
/// its address returns to the pool (the next client gets it). Needs root.
#[test]
fn echo_timeout_tears_a_dead_peer_down() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 2 }).unwrap();
    let configured = start_configured(
        &mut lab,
        &bin,
        "alice * alice-secret *\n",
        "",
        "[keepalive]\nlcp_echo_interval = 1\nlcp_echo_failures = 2",
    );
    let server = &configured.server;
    let frozen = agents::dial(
        &mut lab,
        &bin,
        0,
        &["--user", "alice", "--password", "alice-secret"],
    )
    .unwrap();
    assert_eq!(
        agents::tunnel_address(&lab.client_ns(0)),
        Some(addr::POOL_START)
    );
    let conc = lab.concentrator_ns();
    let route_to = |client: std::net::Ipv4Addr| {
        let out = pptp_tests::netns::output(std::process::Command::new("ip").args([
            "-n",
            &conc,
            "route",
            "show",
            &client.to_string(),
        ]))
        .unwrap();
        !out.stdout.is_empty()
    };
    assert!(route_to(addr::POOL_START));

    let pid = nix::unistd::Pid::from_raw(frozen.pid as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let started = std::time::Instant::now();
    pptp_tests::demo::wait_for(Duration::from_secs(15), || !route_to(addr::POOL_START))
        .expect("the dead peer's session is torn down");
    let took = started.elapsed();
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("echo"), "the log says why:\n{log}");
    let stats = agents::stats(&mut lab, &bin).unwrap();
    assert_eq!(stats["installed_calls"], 0, "no map entry left: {stats}");
    assert_eq!(
        stats["pool"]["in_use"], 0,
        "the address is back in the pool"
    );
    assert_eq!(stats["sessions"], serde_json::json!([]));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();

    // The address went back to the pool: the next client gets it.
    agents::dial(
        &mut lab,
        &bin,
        1,
        &["--user", "alice", "--password", "alice-secret"],
    )
    .unwrap();
    assert_eq!(
        agents::tunnel_address(&lab.client_ns(1)),
        Some(addr::POOL_START)
    );
    assert!(
        took < Duration::from_secs(10),
        "declared dead after {took:?}"
    );
}

/// `[limits]`: a second session of one user is hung up after authentication, a call
/// beyond `max_sessions` is refused, and a source address past its control-connection
/// allowance is turned away at once. Needs root.
#[test]
fn limits_are_enforced() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 3 }).unwrap();
    let configured = start_configured(
        &mut lab,
        &bin,
        "alice * alice-secret *\nbob * bob-secret *\ncarol * carol-secret *\n",
        "",
        "[limits]\nmax_sessions = 2\nsessions_per_user = 1\nconnections_per_source = 2\nhandshake_timeout = 4",
    );
    let server = &configured.server;
    agents::dial(
        &mut lab,
        &bin,
        0,
        &["--user", "alice", "--password", "alice-secret"],
    )
    .unwrap();
    let twice = agents::dial(
        &mut lab,
        &bin,
        1,
        &["--user", "alice", "--password", "alice-secret"],
    );
    assert!(twice.is_err(), "a second session of alice is refused");
    agents::dial(
        &mut lab,
        &bin,
        1,
        &["--user", "bob", "--password", "bob-secret"],
    )
    .expect("bob fits");
    let full = agents::dial(
        &mut lab,
        &bin,
        2,
        &["--user", "carol", "--password", "carol-secret"],
    );
    assert!(full.is_err(), "a third session exceeds max_sessions");
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("as many sessions as allowed"), "{log}");
    assert!(log.contains("the concentrator is full"), "{log}");

    // Client 0 holds one control connection; a second is allowed, a third is not.
    // The second never starts a session: the handshake timeout closes it.
    let server_addr = std::net::SocketAddrV4::new(addr::CONC_WAN, 1723);
    let (second_open, third_closed, second_closed_after) =
        pptp_tests::netns::run_in(&lab.client_ns(0), move || {
            use std::io::Read as _;
            let timeout = Duration::from_secs(2);
            let opened = std::time::Instant::now();
            let second = std::net::TcpStream::connect_timeout(&server_addr.into(), timeout)?;
            let third = std::net::TcpStream::connect_timeout(&server_addr.into(), timeout)?;
            third.set_read_timeout(Some(timeout))?;
            second.set_read_timeout(Some(Duration::from_millis(500)))?;
            let mut buf = [0u8; 1];
            // Closed means EOF or a reset; a read timeout is a connection held open.
            let third_closed = match (&third).read(&mut buf) {
                Ok(0) => Ok("EOF"),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok("reset"),
                Ok(n) => Err(format!("{n} bytes read")),
                Err(e) => Err(format!("{:?} after {timeout:?}", e.kind())),
            };
            let second_open = matches!((&second).read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut);
            second.set_read_timeout(Some(Duration::from_secs(10)))?;
            let closed = matches!((&second).read(&mut buf), Ok(0));
            Ok((second_open, third_closed, closed.then(|| opened.elapsed())))
        })
        .unwrap();
    assert!(
        second_open,
        "the second control connection from one address is served"
    );
    let how = third_closed.unwrap_or_else(|e| {
        panic!("the third control connection from one address is closed at once: {e}")
    });
    eprintln!("the third control connection ended with {how}");
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert_eq!(
        log.matches("refused: too many control connections from this address")
            .count(),
        1,
        "the refusal is logged once:\n{log}"
    );
    let after = second_closed_after.expect("an idle control connection is closed");
    assert!(
        after >= Duration::from_millis(3900) && after < Duration::from_secs(9),
        "closed {after:?} after connecting; the handshake timeout is 4 s"
    );
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("no session up within the handshake timeout"),
        "{log}"
    );
    // The sessions that came up are not touched by it.
    let out = agents::operator(&mut lab, &bin, &["sessions", "--json"]).unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        listed["sessions"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
}
