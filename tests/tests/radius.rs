//! RADIUS against a real FreeRADIUS (Debian's package) in the concentrator's
//! namespace, on loopback. The concentrator's first authentication server is down,
//! so every request fails over to FreeRADIUS. Sessions of every method come up with
//! what RADIUS said (Framed-IP-Address, Framed-Pool; MS-CHAP MPPE keys that only
//! RADIUS knows, since the secrets file is empty); a Framed-Route sends a network
//! behind a client through its session while it is up; Idle-Timeout ends an idle
//! session; accounting Start/Interim/Stop land in FreeRADIUS's detail file with the
//! session's counters; `radclient` sends a CoA-Request whose Session-Timeout ends a
//! session, and a Disconnect-Request that ends another and clears its maps. A
//! Disconnect-Request replayed later ends nothing (answered again from the duplicate
//! cache), nor do requests without Event-Timestamp, with a stale one, or without
//! Message-Authenticator; a user name carrying a newline cannot forge a log line.
//! Needs root.

use std::{collections::BTreeMap, time::Duration};

use pptp_tests::{
    agents::{self, SERVER_INSTANCE, start_configured},
    demo::wait_for,
    freeradius::{self, FreeRadius, dae, num, unix_now},
    lab::{Lab, LabSpec, addr},
    netns,
};

const SECRET: &str = "radius-secret";
const DAE_SECRET: &str = "dae-secret";

const USERS: &str = r#"
alice   Cleartext-Password := "alice-pw"
        Framed-IP-Address = 192.0.2.77,
        Class = "gold",
        Reply-Message = "welcome alice"

bob     Cleartext-Password := "bob-pw"
        Framed-Pool = "gold"

carol   Cleartext-Password := "carol-pw"

dave    Cleartext-Password := "dave-pw"
        Acct-Interim-Interval = 1

erin    Cleartext-Password := "erin-pw"
        Framed-Route = "198.51.100.192/26 0.0.0.0 1"

frank   Cleartext-Password := "frank-pw"
        Idle-Timeout = 2
"#;

fn installed_calls(bpffs: &std::path::Path) -> usize {
    let pins = pptp_agent::dataplane::bpffs::PinDir::new(bpffs, SERVER_INSTANCE).unwrap();
    pptp_agent::dataplane::report::installed_calls(&pins)
        .unwrap()
        .len()
}

fn sessions(lab: &Lab, bin: &std::path::Path) -> Vec<serde_json::Value> {
    let out = netns::output(std::process::Command::new(bin).args([
        "sessions",
        "--json",
        "--api-socket",
        &agents::api_socket(lab).display().to_string(),
    ]))
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["sessions"].as_array().unwrap().clone()
}

fn session_of<'a>(sessions: &'a [serde_json::Value], user: &str) -> Option<&'a serde_json::Value> {
    sessions.iter().find(|s| s["user"] == user)
}

/// Accounting-On or -Off records.
fn nas_records(radius: &FreeRadius, status: &str) -> Vec<BTreeMap<String, String>> {
    radius
        .detail_records()
        .into_iter()
        .filter(|r| r.get("Acct-Status-Type").map(String::as_str) == Some(status))
        .collect()
}

/// A Disconnect-Request for `user` from the DAE client, as the test writes it (so that
/// the very same bytes can be sent again): with `stamp` as Event-Timestamp and a
/// Message-Authenticator when `signed`.
fn disconnect(id: u8, user: &str, stamp: Option<u32>, signed: bool) -> Vec<u8> {
    use pptp_agent::radius::packet::{Packet, attr, code};
    let mut p = Packet::new(code::DISCONNECT_REQUEST, id, [0; 16]);
    p.push(attr::USER_NAME, user);
    if let Some(stamp) = stamp {
        p.push_u32(attr::EVENT_TIMESTAMP, stamp);
    }
    if signed {
        p.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
    }
    p.encode(DAE_SECRET.as_bytes(), None).unwrap()
}

/// Sends `request` to the agent's dynamic authorization port from the
/// concentrator's namespace; the code of its answer, if one comes within 2 s.
fn send_dae(ns: &str, request: Vec<u8>) -> Option<u8> {
    netns::run_in(ns, move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        socket.send_to(&request, "127.0.0.1:3799")?;
        let mut buf = [0u8; 4096];
        Ok(socket.recv(&mut buf).ok().map(|_| buf[0]))
    })
    .unwrap()
}

#[test]
fn freeradius_authenticates_accounts_and_disconnects() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 6 }).unwrap();
    let bpffs = lab.bpffs().unwrap();
    let ns = lab.concentrator_ns();
    let dir = std::env::temp_dir().join(format!("{}-freeradius", lab.id()));
    let radius = FreeRadius::start(
        &mut lab,
        &ns,
        &dir,
        &freeradius::Spec {
            auth_port: 18120,
            secret: SECRET,
            users: USERS,
            site: None,
            modules: &[],
        },
    )
    .unwrap();
    let configured = start_configured(
        &mut lab,
        &bin,
        "# users come from RADIUS\n",
        "methods = [\"mschapv2\", \"mschap\", \"chap\", \"pap\"]\nsource = \"radius\"",
        &format!(
            "[mppe]\npolicy = \"prefer\"\n\
             [radius]\nnas_identifier = \"lab-nas\"\ntimeout = 1\nretries = 0\n\
             [[radius.servers]]\nauth = \"127.0.0.1:18130\"\nsecret = \"nobody-listens\"\n\
             [[radius.servers]]\nauth = \"127.0.0.1:18120\"\nacct = \"127.0.0.1:18121\"\nsecret = \"{SECRET}\"\n\
             [radius.pools]\ngold = [\"192.0.2.251-192.0.2.254\"]\n\
             [radius.dae]\nlisten = \"127.0.0.1:3799\"\nclients = [{{ address = \"127.0.0.1\", secret = \"{DAE_SECRET}\" }}]\n"
        ),
    );
    let server = &configured.server;

    // Every method, each through the second server after the first stays silent.
    let cases = [
        ("alice", "alice-pw", "pap", "deny"),
        ("bob", "bob-pw", "chap", "deny"),
        ("carol", "carol-pw", "mschap", "require"),
        ("dave", "dave-pw", "mschapv2", "require"),
    ];
    let mut clients = Vec::new();
    for (i, (user, password, auth, mppe)) in cases.iter().enumerate() {
        let client =
            agents::dial_as(&mut lab, &bin, i, user, password, auth, mppe).unwrap_or_else(|e| {
                panic!(
                    "{user} ({auth}, MPPE {mppe}): {e:#}\n{}\n{}",
                    server.log_tail(),
                    radius.log_tail()
                )
            });
        assert!(
            agents::ping(&lab.client_ns(i), addr::LAN_HOST, 3).unwrap(),
            "{user} ({auth}, MPPE {mppe}): ping through the tunnel"
        );
        clients.push(client);
    }
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("127.0.0.1:18130") && log.contains("failing over"),
        "the silent first server was failed over:\n{}",
        server.log_tail()
    );
    assert_eq!(
        agents::tunnel_address(&lab.client_ns(0)),
        Some("192.0.2.77".parse().unwrap()),
        "alice got her Framed-IP-Address"
    );
    assert!(log.contains("welcome alice"), "the Reply-Message is logged");
    assert_eq!(
        agents::tunnel_address(&lab.client_ns(1)),
        Some("192.0.2.251".parse().unwrap()),
        "bob got an address of his Framed-Pool"
    );
    let all = sessions(&lab, &bin);
    assert_eq!(all.len(), 4);
    for user in ["carol", "dave"] {
        assert!(
            session_of(&all, user).unwrap()["mppe"].is_string(),
            "{user}'s session is encrypted with MPPE keys from RADIUS: {all:?}"
        );
    }
    assert_eq!(installed_calls(&bpffs), 4);

    // Erin's Framed-Route: the LAN host reaches an address behind her client (a
    // router) through her session, and the route goes when she hangs up.
    let erin_ns = lab.client_ns(4);
    let erin = agents::dial(
        &mut lab,
        &bin,
        4,
        &["--user", "erin", "--password", "erin-pw", "--auth", "pap"],
    )
    .unwrap();
    netns::ip_in(&erin_ns, &["addr", "add", "198.51.100.200/32", "dev", "lo"]).unwrap();
    assert!(
        agents::tunnel_routes(&lab)
            .unwrap()
            .contains("198.51.100.192/26"),
        "the Framed-Route is installed: {}",
        agents::tunnel_routes(&lab).unwrap()
    );
    assert!(
        agents::ping(&lab.lan_ns(), "198.51.100.200".parse().unwrap(), 3).unwrap(),
        "the network behind erin's client answers through her session"
    );
    lab.stop(erin.pid, Duration::from_secs(10)).unwrap();
    wait_for(Duration::from_secs(10), || {
        !agents::tunnel_routes(&lab)
            .unwrap()
            .contains("198.51.100.192/26")
    })
    .expect("the Framed-Route is removed with the session");

    // Frank sends nothing: his Idle-Timeout (2 s) ends the session.
    let frank = agents::dial(
        &mut lab,
        &bin,
        5,
        &[
            "--user",
            "frank",
            "--password",
            "frank-pw",
            "--auth",
            "chap",
        ],
    )
    .unwrap();
    let stop = radius.wait_record("frank", "Stop");
    assert_eq!(
        stop.get("Acct-Terminate-Cause").map(String::as_str),
        Some("Idle-Timeout"),
        "{stop:?}"
    );
    let idle = num(&stop, "Acct-Session-Time");
    assert!(
        (2..=4).contains(&idle),
        "ended 2 s after the last traffic: {idle} s"
    );
    wait_for(Duration::from_secs(10), || lab.exited(frank.pid).is_some())
        .expect("frank's client saw the session end");

    // Accounting: Accounting-On first, then Start for everyone, each under its own
    // Acct-Session-Id naming the NAS; Interim-Update for dave
    // (Acct-Interim-Interval 1).
    let on = nas_records(&radius, "Accounting-On");
    assert_eq!(on.len(), 1, "{on:?}");
    assert_eq!(
        on[0].get("NAS-Identifier").map(String::as_str),
        Some("lab-nas")
    );
    let mut ids = vec![on[0]["Acct-Session-Id"].clone()];
    for (user, ..) in &cases {
        let start = radius.wait_record(user, "Start");
        assert_eq!(
            start.get("NAS-Identifier").map(String::as_str),
            Some("lab-nas")
        );
        ids.push(start["Acct-Session-Id"].clone());
    }
    assert!(ids.iter().all(|id| id.starts_with("lab-nas-")), "{ids:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), cases.len() + 1, "one Acct-Session-Id each");
    let interim = radius.wait_record("dave", "Interim-Update");
    assert!(num(&interim, "Acct-Input-Packets") >= 3, "{interim:?}");

    // Alice hangs up (our client clears the call without LCP Terminate: the lower
    // layer goes): her Stop carries the counters the data plane (XDP) counted.
    let before = session_of(&sessions(&lab, &bin), "alice").unwrap().clone();
    lab.stop(clients[0].pid, Duration::from_secs(10)).unwrap();
    let stop = radius.wait_record("alice", "Stop");
    assert_eq!(
        stop.get("Acct-Terminate-Cause").map(String::as_str),
        Some("Lost-Carrier")
    );
    assert_eq!(
        stop.get("Class").map(String::as_str),
        Some("0x676f6c64"),
        "Class echoed"
    );
    assert_eq!(
        stop.get("Framed-IP-Address").map(String::as_str),
        Some("192.0.2.77")
    );
    for (key, field) in [
        ("Acct-Input-Packets", "rx_packets"),
        ("Acct-Input-Octets", "rx_bytes"),
        ("Acct-Output-Packets", "tx_packets"),
        ("Acct-Output-Octets", "tx_bytes"),
    ] {
        assert_eq!(
            num(&stop, key),
            before[field].as_u64().unwrap(),
            "{key}: {stop:?} vs {before}"
        );
    }
    assert!(
        num(&stop, "Acct-Input-Packets") >= 3 && num(&stop, "Acct-Output-Packets") >= 3,
        "{stop:?}"
    );
    assert_eq!(
        num(&stop, "Acct-Input-Octets"),
        84 * num(&stop, "Acct-Input-Packets"),
        "only the pings (84-byte IPv4 packets) crossed: {stop:?}"
    );

    // CoA: bob gets a one-second Session-Timeout, which ends his session.
    let coa = freeradius::radclient(
        &ns,
        "127.0.0.1:3799",
        "coa",
        DAE_SECRET,
        &dae("User-Name = \"bob\"\nSession-Timeout = 1\n"),
    )
    .unwrap();
    assert!(coa.contains("CoA-ACK"), "{coa}");
    let stop = radius.wait_record("bob", "Stop");
    assert_eq!(
        stop.get("Acct-Terminate-Cause").map(String::as_str),
        Some("Session-Timeout"),
        "{stop:?}"
    );

    // Disconnect-Request for dave's session by its Acct-Session-Id.
    let dave_id = radius.records("dave", "Start")[0]["Acct-Session-Id"].clone();
    let calls = installed_calls(&bpffs);
    let nak = freeradius::radclient(
        &ns,
        "127.0.0.1:3799",
        "disconnect",
        DAE_SECRET,
        &dae("Acct-Session-Id = \"0000000000000000\"\n"),
    )
    .unwrap();
    assert!(
        nak.contains("Disconnect-NAK"),
        "an unknown session is refused: {nak}"
    );
    let ack = freeradius::radclient(
        &ns,
        "127.0.0.1:3799",
        "disconnect",
        DAE_SECRET,
        &dae(&format!("Acct-Session-Id = \"{dave_id}\"\n")),
    )
    .unwrap();
    assert!(ack.contains("Disconnect-ACK"), "{ack}");
    let stop = radius.wait_record("dave", "Stop");
    assert_eq!(
        stop.get("Acct-Terminate-Cause").map(String::as_str),
        Some("Admin-Reset")
    );
    wait_for(Duration::from_secs(10), || {
        session_of(&sessions(&lab, &bin), "dave").is_none()
    })
    .expect("dave's session is gone");
    wait_for(Duration::from_secs(10), || {
        installed_calls(&bpffs) == calls - 1
    })
    .expect("dave's call left the XDP maps");
    let wrong_secret = freeradius::radclient(
        &ns,
        "127.0.0.1:3799",
        "disconnect",
        "not-the-secret",
        &dae("User-Name = \"carol\"\n"),
    )
    .unwrap();
    assert!(!wrong_secret.contains("Disconnect-ACK"), "{wrong_secret}");
    assert!(
        session_of(&sessions(&lab, &bin), "carol").is_some(),
        "a forged request ends nothing"
    );

    // Replay: a Disconnect-Request for dave ends his next session; the same bytes
    // sent again once he is back are answered as before and end nothing.
    wait_for(Duration::from_secs(10), || {
        lab.exited(clients[3].pid).is_some()
    })
    .expect("dave's client saw its session end");
    let dave = ["--user", "dave", "--password", "dave-pw"];
    agents::dial(&mut lab, &bin, 3, &dave).unwrap();
    let captured = disconnect(42, "dave", Some(unix_now()), true);
    assert_eq!(
        send_dae(&ns, captured.clone()),
        Some(41),
        "Disconnect-ACK for dave's second session"
    );
    wait_for(Duration::from_secs(10), || {
        session_of(&sessions(&lab, &bin), "dave").is_none()
    })
    .expect("dave's second session is gone");
    let third = agents::dial(&mut lab, &bin, 3, &dave).unwrap();
    assert_eq!(
        send_dae(&ns, captured),
        Some(41),
        "the replay gets the first answer again"
    );
    // Requests the agent must drop without a word: no Event-Timestamp, one from an
    // hour ago, no Message-Authenticator.
    for (what, request) in [
        ("no Event-Timestamp", disconnect(43, "carol", None, true)),
        (
            "stale",
            disconnect(44, "carol", Some(unix_now() - 3600), true),
        ),
        ("unsigned", disconnect(45, "carol", Some(unix_now()), false)),
    ] {
        assert_eq!(send_dae(&ns, request), None, "{what}: no answer");
    }
    std::thread::sleep(Duration::from_secs(1));
    let now = sessions(&lab, &bin);
    assert!(
        session_of(&now, "dave").is_some() && lab.exited(third.pid).is_none(),
        "the replayed Disconnect-Request ended nothing: {now:?}"
    );
    assert!(
        session_of(&now, "carol").is_some(),
        "nor did the requests without a fresh timestamp or a signature"
    );
    let guard = agents::stats(&mut lab, &bin).unwrap()["guard"].clone();
    for (event, at_least) in [
        ("dae_duplicates", 1),
        ("dae_no_event_timestamp", 1),
        ("dae_stale_event_timestamp", 1),
        ("dae_bad_packet", 2),
    ] {
        assert!(
            guard[event].as_u64().unwrap() >= at_least,
            "{event}: {guard}"
        );
    }
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.lines()
            .filter(|l| l.contains("dynamic authorization requests dropped"))
            .count()
            <= 2,
        "drops are logged once per interval, not once each:\n{log}"
    );

    // A user name with a newline and a terminal escape: refused by RADIUS, and
    // logged escaped (no line of its choosing in the agent's log).
    let forged = agents::dial(
        &mut lab,
        &bin,
        5,
        &[
            "--user",
            "mallory\nINJECTED by mallory\x1b[2J",
            "--password",
            "x",
            "--auth",
            "pap",
        ],
    );
    assert!(forged.is_err(), "mallory is unknown to RADIUS");
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("mallory\\nINJECTED by mallory"),
        "the name is logged escaped:\n{}",
        server.log_tail()
    );
    assert!(
        !log.lines().any(|l| l.starts_with("INJECTED")),
        "no forged log line:\n{}",
        server.log_tail()
    );

    // A wrong password is refused by RADIUS.
    let refused = agents::dial(
        &mut lab,
        &bin,
        0,
        &["--user", "alice", "--password", "wrong", "--auth", "pap"],
    );
    let message = format!("{:#}", refused.err().expect("wrong password refused"));
    assert!(message.contains("authentication failed"), "{message}");

    lab.stop(server.pid, Duration::from_secs(10)).unwrap();
    let stop = radius.wait_record("carol", "Stop");
    assert_eq!(
        stop.get("Acct-Terminate-Cause").map(String::as_str),
        Some("Admin-Reboot"),
        "Stop sent at shutdown"
    );
    let off = nas_records(&radius, "Accounting-Off");
    assert_eq!(off.len(), 1, "Accounting-Off at a clean stop: {off:?}");
    let statuses: Vec<String> = radius
        .detail_records()
        .iter()
        .filter_map(|r| r.get("Acct-Status-Type").cloned())
        .collect();
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("Accounting-Off"),
        "after every Stop: {statuses:?}"
    );
    lab.stop(radius.pid, Duration::from_secs(10)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
