//! Hostile peers against `serve`, black-box: a peer that places calls and never
//! authenticates gets a few (per control connection, per source address, more for a
//! configured peer), and a call stops counting once its session is up; failed logins
//! back a source address and a user name off, and the back-off ends; a process whose
//! descriptors run out keeps its listener and its sessions, refuses what does not fit
//! and accepts again once descriptors free up; a user name cannot forge a log line.
//! The raw PPTP client here speaks only the control connection (it never runs PPP).
//! Needs root.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddrV4, TcpStream},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use pptp_agent::pptp::{
    framing::{Deframer, Frame},
    message::{
        BearerCaps, BearerType, FramingCaps, FramingType, Message, NumberLength,
        OutgoingCallRequest, OutgoingResult, PROTOCOL_VERSION, Reserved16,
        StartControlConnectionRequest, Text,
    },
};
use pptp_tests::{
    agents::{self, ConfigSpec},
    demo::wait_for,
    lab::{Lab, LabSpec, addr},
    netns,
    process::open_fds,
};

const SERVER: SocketAddrV4 = SocketAddrV4::new(addr::CONC_WAN, 1723);

/// A control connection from a client namespace, past Start-Control-Connection.
struct Raw {
    stream: TcpStream,
    deframer: Deframer,
}

impl Raw {
    fn open(ns: &str) -> Self {
        let stream = netns::run_in(ns, || {
            Ok(TcpStream::connect_timeout(
                &SERVER.into(),
                Duration::from_secs(5),
            )?)
        })
        .unwrap();
        let mut raw = Raw {
            stream,
            deframer: Deframer::new(),
        };
        raw.send(&[Message::StartControlConnectionRequest(
            StartControlConnectionRequest {
                protocol_version: PROTOCOL_VERSION,
                reserved1: Reserved16,
                framing_capabilities: FramingCaps::ALL,
                bearer_capabilities: BearerCaps::ALL,
                maximum_channels: 0,
                firmware_revision: 1,
                host_name: Text::new("hostile"),
                vendor_name: Text::new("test"),
            },
        )]);
        let reply = raw.next();
        assert!(
            matches!(reply, Message::StartControlConnectionReply(_)),
            "{reply:?}"
        );
        raw
    }

    fn send(&mut self, messages: &[Message]) {
        let mut out = Vec::new();
        for m in messages {
            m.emit(&mut out);
        }
        self.stream.write_all(&out).unwrap();
    }

    /// The next message (Echo-Requests answered and skipped), within 20 s.
    fn next(&mut self) -> Message {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match self.deframer.next_frame().unwrap() {
                Some(Frame::Message(Message::EchoRequest(_))) => continue,
                Some(Frame::Message(m)) => return m,
                Some(Frame::Invalid(m)) => panic!("invalid message from the server: {m:?}"),
                None => {}
            }
            let n = self.stream.read(&mut buf).expect("a message within 20 s");
            assert!(n > 0, "the server closed the control connection");
            self.deframer.push(&buf[..n]);
        }
    }

    /// Places `n` outgoing calls at once (Call IDs from `first`) and reads the
    /// replies: (connected, refused).
    fn place_calls(&mut self, first: u16, n: u16) -> (u32, u32) {
        let requests: Vec<Message> = (first..first + n)
            .map(|call_id| {
                Message::OutgoingCallRequest(OutgoingCallRequest {
                    call_id,
                    call_serial_number: call_id,
                    minimum_bps: 2400,
                    maximum_bps: 10_000_000,
                    bearer_type: BearerType::Either,
                    framing_type: FramingType::Either,
                    packet_recv_window_size: 64,
                    packet_processing_delay: 0,
                    phone_number_length: NumberLength::default(),
                    reserved1: Reserved16,
                    phone_number: Text::default(),
                    subaddress: Text::default(),
                })
            })
            .collect();
        self.send(&requests);
        let (mut connected, mut refused) = (0, 0);
        while connected + refused < u32::from(n) {
            match self.next() {
                Message::OutgoingCallReply(r) if r.result == OutgoingResult::Connected => {
                    connected += 1
                }
                Message::OutgoingCallReply(_) => refused += 1,
                _ => {}
            }
        }
        (connected, refused)
    }
}

fn guard(lab: &mut Lab, event: &str) -> u64 {
    let stats = agents::stats(lab, &agents::agent_bin()).unwrap();
    stats["guard"][event]
        .as_u64()
        .unwrap_or_else(|| panic!("no guard counter {event}: {stats}"))
}

/// The case: one control connection that never authenticates asks for 2,000
/// calls. `serve` without a configuration file has the file's finite defaults: 4
/// calls per connection wait for authentication at most, 16 per source address.
/// (Before, all 2,000 were accepted.)
#[test]
fn a_peer_that_never_authenticates_gets_a_few_calls() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 2 }).unwrap();
    let server = agents::start_server(&mut lab, &bin, &["--user", "alice:secret-1"]).unwrap();
    let ns = lab.client_ns(0);
    let mut first = Raw::open(&ns);
    assert_eq!(
        first.place_calls(1, 2000),
        (4, 1996),
        "4 calls of 2,000 accepted\n{}",
        server.log_tail()
    );
    // Three more connections from the same address fill its 16; a fifth gets none.
    let mut more: Vec<Raw> = (0..3).map(|_| Raw::open(&ns)).collect();
    for raw in &mut more {
        assert_eq!(raw.place_calls(1, 10), (4, 6));
    }
    let mut fifth = Raw::open(&ns);
    assert_eq!(
        fifth.place_calls(1, 4),
        (0, 4),
        "the address has 16 waiting"
    );
    assert!(guard(&mut lab, "calls_unauthenticated_per_connection") >= 1996 + 18);
    assert_eq!(guard(&mut lab, "calls_unauthenticated_per_source"), 4);
    // Another client is not affected.
    agents::dial(
        &mut lab,
        &bin,
        1,
        &["--user", "alice", "--password", "secret-1"],
    )
    .unwrap();
    assert!(agents::ping(&lab.client_ns(1), addr::LAN_HOST, 2).unwrap());
    let log = std::fs::read_to_string(&server.log).unwrap();
    let lines = log
        .lines()
        .filter(|l| l.contains("call refused (count"))
        .count();
    assert!(
        lines <= 2,
        "2,000 refusals are logged once per interval, not once each: {lines} lines"
    );
}

/// A configured peer (`[[limits.peers]]`, an access switch) gets its own figures;
/// a call stops waiting for authentication once its session is up, and a connection
/// that goes gives its waiting calls back.
#[test]
fn configured_peers_get_more_and_calls_stop_counting_once_up() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 2 }).unwrap();
    let dir = std::env::temp_dir().join(format!("{}-guards", lab.id()));
    let switch = addr::client(1);
    let spec = ConfigSpec {
        xdp: true,
        pools: &["192.0.2.10-192.0.2.250"],
        secrets: "alice * secret-1 *\n",
        auth: "",
        extra: &format!(
            "[limits]\nunauthenticated_calls_per_source = 2\n\
             [[limits.peers]]\naddress = \"{switch}\"\n\
             unauthenticated_calls_per_connection = 50\nunauthenticated_calls_per_source = 50\n"
        ),
    };
    let server = agents::start_from_config(&mut lab, &bin, &dir, &spec).unwrap();
    let mut switch_connection = Raw::open(&lab.client_ns(1));
    assert_eq!(switch_connection.place_calls(1, 100), (50, 50));

    let ns = lab.client_ns(0);
    let mut hostile = Raw::open(&ns);
    assert_eq!(
        hostile.place_calls(1, 3),
        (2, 1),
        "2 per source by default here"
    );
    let refused = agents::dial(
        &mut lab,
        &bin,
        0,
        &["--user", "alice", "--password", "secret-1"],
    );
    assert!(
        refused.is_err(),
        "the address already has 2 calls waiting\n{}",
        server.log_tail()
    );
    drop(hostile);
    let hostile_peer = addr::client(0).to_string();
    wait_for(Duration::from_secs(10), || {
        !agents::sessions(&mut lab, &bin)
            .iter()
            .any(|s| s["peer"] == hostile_peer.as_str())
    })
    .expect("the closed connection's calls are gone");
    agents::dial(
        &mut lab,
        &bin,
        0,
        &["--user", "alice", "--password", "secret-1"],
    )
    .expect("a closed connection gives its calls back");
    // Alice's session is up: her call no longer waits, the address has room for 2.
    let mut again = Raw::open(&ns);
    assert_eq!(again.place_calls(1, 3), (2, 1));
    assert!(agents::ping(&ns, addr::LAN_HOST, 2).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Failed logins back off the address they come from and the user name they try;
/// both are refused meanwhile (even with the right password), and accepted again
/// when the back-off ends. (Before, nothing backed off.)
#[test]
fn failed_logins_back_off_the_address_and_the_user_name() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 3 }).unwrap();
    let dir = std::env::temp_dir().join(format!("{}-backoff", lab.id()));
    let spec = ConfigSpec {
        xdp: true,
        pools: &["192.0.2.10-192.0.2.250"],
        secrets: "alice * secret-1 *\nbob * secret-2 *\n",
        auth: "",
        extra: "[limits]\nfailed_logins = 3\nlogin_backoff = 20\n",
    };
    let server = agents::start_from_config(&mut lab, &bin, &dir, &spec).unwrap();
    let alice = |password: &'static str| -> [&'static str; 4] {
        ["--user", "alice", "--password", password]
    };
    for _ in 0..3 {
        assert!(agents::dial(&mut lab, &bin, 0, &alice("guess")).is_err());
    }
    let started = Instant::now();
    assert!(
        agents::dial(&mut lab, &bin, 0, &alice("secret-1")).is_err(),
        "the address is backed off: refused with the right password"
    );
    assert!(
        agents::dial(&mut lab, &bin, 1, &alice("secret-1")).is_err(),
        "so is the user name, from another address"
    );
    agents::dial(
        &mut lab,
        &bin,
        2,
        &["--user", "bob", "--password", "secret-2"],
    )
    .expect("another user from another address is not affected");
    assert_eq!(
        guard(&mut lab, "login_backoffs"),
        2,
        "address and user name"
    );
    assert!(guard(&mut lab, "calls_source_backoff") >= 1);
    assert!(guard(&mut lab, "logins_user_backoff") >= 1);
    let wait = Duration::from_secs(21).saturating_sub(started.elapsed());
    std::thread::sleep(wait);
    agents::dial(&mut lab, &bin, 1, &alice("secret-1")).expect("the back-off ended");
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("too many failed logins: backing off"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A user name with a newline logs in (it is in the secrets) and is logged escaped:
/// no line of its choosing in the agent's log. (Before, the hub's "authenticated"
/// line carried it raw: a forged line followed.)
#[test]
fn a_user_name_cannot_forge_a_log_line() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let name = "x\nINJECTED line \u{202e}";
    let server =
        agents::start_server(&mut lab, &bin, &["--user", &format!("{name}:secret-1")]).unwrap();
    agents::dial(
        &mut lab,
        &bin,
        0,
        &["--user", name, "--password", "secret-1"],
    )
    .unwrap();
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("x\\nINJECTED line \\u{202e}"),
        "logged escaped:\n{}",
        server.log_tail()
    );
    assert!(
        !log.lines().any(|l| l.starts_with("INJECTED")),
        "no forged line:\n{}",
        server.log_tail()
    );
}

/// Descriptors under RLIMIT_NOFILE (a hard limit of 200 the agent cannot raise):
/// control connections beyond the budget the agent computed at start are closed at
/// once and counted, a session keeps answering, and connections are accepted again
/// once descriptors free up. Then the limit is cut under what the process holds
/// (every new descriptor fails: accept() gets EMFILE): the listener survives, the
/// session still answers, and once the limit is back the waiting connections are
/// accepted. (Before, EMFILE ended the listener and dropped every control
/// connection: the session went with its connection.)
#[test]
fn a_full_descriptor_table_refuses_connections_and_keeps_sessions() {
    let bin = agents::agent_bin();
    let prlimit = Path::new("/usr/bin/prlimit");
    assert!(
        prlimit.exists(),
        "prlimit (util-linux) is needed to run the agent under a low descriptor limit"
    );
    let mut lab = Lab::up(&LabSpec { clients: 2 }).unwrap();
    let dir = std::env::temp_dir().join(format!("{}-fds", lab.id()));
    let spec = ConfigSpec {
        xdp: true,
        pools: &["192.0.2.10-192.0.2.250"],
        secrets: "alice * secret-1 *\n",
        auth: "",
        extra: "[limits]\nconnections_per_source = 0\nhandshake_timeout = 300\n",
    };
    let config = agents::write_config(&mut lab, &dir, &spec).unwrap();
    let (conc, socket) = (lab.concentrator_ns(), agents::api_socket(&lab));
    let server = agents::start_serving_in(
        &mut lab,
        prlimit,
        &conc,
        vec![
            "--nofile=200:200".into(),
            "--".into(),
            bin.display().to_string(),
            "serve".into(),
            "--config".into(),
            config.display().to_string(),
        ],
        &socket,
        "server",
    )
    .unwrap();
    wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&server.log)
            .unwrap_or_default()
            .contains("descriptor budget")
    })
    .unwrap_or_else(|_| panic!("no descriptor budget logged:\n{}", server.log_tail()));
    let log = std::fs::read_to_string(&server.log).unwrap();
    let budget: usize = log
        .lines()
        .find(|l| l.contains("descriptor budget"))
        .map(without_colours)
        .as_deref()
        .and_then(|l| l.split("control_connections=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no descriptor budget logged:\n{log}"));
    assert!(
        (10..200).contains(&budget),
        "a budget under the limit: {budget}"
    );
    assert!(
        log.contains("below what max_sessions voluntary clients need"),
        "200 descriptors cannot serve max_sessions = 1000: warned\n{log}"
    );
    agents::dial(
        &mut lab,
        &bin,
        0,
        &["--user", "alice", "--password", "secret-1"],
    )
    .unwrap();
    let alice = lab.client_ns(0);
    let ns = lab.client_ns(1);
    // Alice holds one connection of the budget; three more than fit are asked for.
    let mut held: Vec<TcpStream> = (0..budget + 2).map(|_| connect(&ns)).collect();
    let first = served(&held);
    assert_eq!(
        first.iter().filter(|s| **s).count(),
        budget - 1,
        "within the budget: served"
    );
    assert_eq!(first[budget - 1..], [false; 3], "over it: closed at once");
    held.truncate(budget - 1);
    assert!(
        agents::ping(&alice, addr::LAN_HOST, 2).unwrap(),
        "the session answers"
    );
    // Two connections closed: the concentrator frees their descriptors once it has
    // read their EOF (before that, a new connection still finds the budget spent).
    let descriptors = open_fds(server.pid).unwrap();
    held.truncate(budget - 3);
    wait_for(Duration::from_secs(10), || {
        open_fds(server.pid).is_ok_and(|n| n + 2 <= descriptors)
    })
    .unwrap_or_else(|e| panic!("two closed connections still held: {e:#}"));
    let again: Vec<TcpStream> = (0..3).map(|_| connect(&ns)).collect();
    assert_eq!(
        served(&again),
        [true, true, false],
        "two descriptors freed: two served again"
    );
    held.extend(again);
    assert_eq!(guard(&mut lab, "connections_over_fd_budget"), 4);
    assert_eq!(
        guard(&mut lab, "accept_errors"),
        0,
        "the budget kept EMFILE away"
    );

    // No descriptor left at all (the soft limit under what is open): accept() fails.
    let pid = server.pid.to_string();
    // The soft limit only: not even root raises a hard limit here.
    let set_limit = |soft: &str| {
        let out = netns::output(Command::new(prlimit).args([
            "--pid",
            &pid,
            &format!("--nofile={soft}:200"),
        ]))
        .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    set_limit("3");
    // Room in the budget, none in the descriptor table.
    held.truncate(budget - 3);
    let waiting: Vec<TcpStream> = (0..2).map(|_| connect(&ns)).collect();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        agents::ping(&alice, addr::LAN_HOST, 2).unwrap(),
        "the session answers while accept() fails"
    );
    set_limit("200");
    assert_eq!(
        served(&waiting),
        [true, true],
        "accepted once descriptors are back"
    );
    assert!(guard(&mut lab, "accept_errors") >= 1);
    assert!(lab.exited(server.pid).is_none(), "the agent runs");
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("accepting a control connection failed; the listener goes on"),
        "{}",
        server.log_tail()
    );
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TCP connection to the concentrator from `ns`.
fn connect(ns: &str) -> TcpStream {
    netns::run_in(ns, || {
        Ok(TcpStream::connect_timeout(
            &SERVER.into(),
            Duration::from_secs(5),
        )?)
    })
    .unwrap()
}

/// Which of `streams` the concentrator keeps open a second later (a refused one is
/// closed at once; a client that says nothing gets nothing back).
fn served(streams: &[TcpStream]) -> Vec<bool> {
    std::thread::sleep(Duration::from_secs(1));
    streams
        .iter()
        .map(|stream| {
            stream.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 1];
            matches!((&*stream).read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .collect()
}

/// `line` without the ANSI colour sequences of the agent's log.
fn without_colours(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}
