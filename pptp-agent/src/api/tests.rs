//! The API's protocol, rendering and servers, against a fake hub (no root needed).

use std::{
    io::{Read as _, Write as _},
    net::Ipv4Addr,
    os::unix::fs::PermissionsExt as _,
    sync::atomic::{AtomicU32, Ordering},
};

use super::{
    Held,
    client::{self, ClientError},
    view::{SessionView, StatsView, printable, render_sessions, render_stats, uptime},
    *,
};
use crate::dataplane::{
    counters::{GlobalCounters, NamedCounter},
    report::{Path as DpPath, SessionRow},
};
use crate::engine::AgentCounter;

fn alice() -> SessionInfo {
    SessionInfo {
        id: SessionId::from_number(1),
        user: Some("alice".into()),
        peer: Ipv4Addr::new(198, 51, 100, 2),
        local_call_id: 7,
        peer_call_id: 9,
        client: Some(Ipv4Addr::new(192, 0, 2, 10)),
        state: SessionState::Up,
        path: DataPath::Xdp,
        mppe: None,
        interface: None,
        uptime_secs: 65,
        rx_packets: 5,
        rx_bytes: 420,
        tx_packets: 6,
        tx_bytes: 504,
        rate: Some("10M/20M".into()),
        policed_rx: 3,
        policed_tx: 4,
    }
}

fn bob() -> SessionInfo {
    SessionInfo {
        id: SessionId::from_number(2),
        user: Some("bo\"b\n\x1b[31m".into()),
        peer: Ipv4Addr::new(198, 51, 100, 3),
        local_call_id: 8,
        client: None,
        state: SessionState::Starting,
        path: DataPath::Agent,
        mppe: Some("128-bit stateless".into()),
        interface: None,
        uptime_secs: 90_061,
        ..alice()
    }
}

fn report() -> Report {
    Report {
        global: GlobalCounters {
            counters: vec![
                NamedCounter {
                    name: "pptp_control",
                    packets: 12,
                    bytes: 900,
                },
                NamedCounter {
                    name: "decapsulated",
                    packets: 5,
                    bytes: 420,
                },
            ],
        },
        sessions: vec![SessionRow {
            slot: 3,
            peer: Ipv4Addr::new(198, 51, 100, 2),
            call_id: 7,
            client: Some(Ipv4Addr::new(192, 0, 2, 10)),
            path: DpPath::Xdp,
            counters: pptp_common::session::SessionCounters {
                rx_packets: 5,
                to_agent: 11,
                drop_spoofed: 1,
                drop_old_seq: 2,
                ..Default::default()
            },
        }],
    }
}

/// Two of the guards' counters.
const GUARD: [(&str, u64); 2] = [("accept_errors", 3), ("dae_duplicates", 1)];

fn hub_stats() -> AgentStats {
    let mut stats = AgentStats::default();
    for (counter, n) in [
        (AgentCounter::UnknownSession, 4),
        (AgentCounter::MppeResetsSent, 2),
        (AgentCounter::DhcpInformsAnswered, 5),
        (AgentCounter::AuthFailures, 3),
    ] {
        (0..n).for_each(|_| stats.add(counter));
    }
    stats
}

#[test]
fn requests_parse_and_print_back() {
    let ok = |s: &str| Request::parse(s.as_bytes()).unwrap();
    assert_eq!(
        ok(r#"{"cmd":"sessions"}"#),
        Request::Sessions(SessionQuery::default())
    );
    assert_eq!(
        ok(r#"{"cmd":"stats"}"#),
        Request::Stats(SessionQuery::default())
    );
    assert_eq!(ok(r#"{"cmd":"interfaces"}"#), Request::Interfaces);
    assert_eq!(
        ok(r#"{"cmd":"kill","id":3}"#),
        Request::Kill(Selector::Id(SessionId::from_number(3)))
    );
    assert_eq!(
        ok(r#"{"cmd":"kill","user":"alice"}"#),
        Request::Kill(Selector::User("alice".into()))
    );
    assert_eq!(
        ok(r#"{"cmd":"kill","all":true}"#),
        Request::Kill(Selector::All)
    );
    for request in [
        Request::Sessions(SessionQuery::default()),
        Request::Stats(SessionQuery::default()),
        Request::Interfaces,
        Request::Kill(Selector::Id(SessionId::from_number(3))),
        Request::Kill(Selector::User("alice".into())),
        Request::Kill(Selector::All),
        Request::Capture(SessionId::from_number(7)),
    ] {
        assert_eq!(
            Request::parse(request.to_json().to_string().as_bytes()),
            Ok(request)
        );
    }
    let err = |s: &str| Request::parse(s.as_bytes()).unwrap_err();
    assert!(err("sessions").contains("not a JSON request"));
    assert!(err("[1]").contains("object"));
    assert!(err(r#"{"cmd":"reboot"}"#).contains("unknown cmd"));
    assert!(err(r#"{"cmd":"sessions","id":1}"#).contains("unexpected field"));
    assert!(err(r#"{"cmd":"interfaces","all":true}"#).contains("unexpected field"));
    assert!(err(r#"{"cmd":"kill"}"#).contains("exactly one"));
    assert!(err(r#"{"cmd":"kill","id":1,"user":"a"}"#).contains("exactly one"));
    assert!(err(r#"{"cmd":"kill","all":false}"#).contains("exactly one"));
    assert!(err(r#"{"cmd":"kill","id":"1"}"#).contains("number"));
    assert!(err(r#"{"cmd":"kill","id":-1}"#).contains("number"));
    assert!(err(r#"{"cmd":"sessions","sort":"colour"}"#).contains("unknown sort field"));
    assert!(err(r#"{"cmd":"stats","limit":-1}"#).contains("number"));
    assert!(err(r#"{"cmd":"sessions","user":1}"#).contains("string"));

    assert!(err(r#"{"cmd":"capture"}"#).contains("\"id\""));
    assert!(err(r#"{"cmd":"capture","id":1,"user":"a"}"#).contains("unexpected field"));
    let query = SessionQuery {
        user: Some("alice".into()),
        sort: query::SortKey::RxBytes,
        limit: Some(20),
    };
    assert_eq!(
        ok(r#"{"cmd":"sessions","user":"alice","sort":"rx_bytes","limit":20}"#),
        Request::Sessions(query.clone())
    );
    for request in [Request::Sessions(query.clone()), Request::Stats(query)] {
        assert_eq!(
            Request::parse(request.to_json().to_string().as_bytes()),
            Ok(request)
        );
    }
}

/// `n` sessions of users u0..u9, with distinct counters and uptimes.
fn many(n: u64) -> Vec<SessionInfo> {
    (0..n)
        .map(|i| SessionInfo {
            id: SessionId::from_number(i + 1),
            user: Some(format!("u{}", i % 10)),
            rx_bytes: (i * 7919) % n,
            uptime_secs: n - i,
            local_call_id: i as u16,
            ..alice()
        })
        .collect()
}

#[test]
fn a_query_filters_by_user_sorts_and_limits() {
    let all = many(1000);
    let busiest = SessionQuery {
        sort: query::SortKey::RxBytes,
        limit: Some(5),
        ..SessionQuery::default()
    };
    let (listed, matched) = busiest.apply(all.clone());
    assert_eq!(matched, 1000);
    let bytes: Vec<u64> = listed.iter().map(|s| s.rx_bytes).collect();
    let mut expected: Vec<u64> = all.iter().map(|s| s.rx_bytes).collect();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(bytes, expected[..5]);

    let one_user = SessionQuery {
        user: Some("u3".into()),
        sort: query::SortKey::Uptime,
        limit: Some(3),
    };
    let (listed, matched) = one_user.apply(all.clone());
    assert_eq!(matched, 100);
    let ids: Vec<String> = listed.iter().map(|s| s.id.to_string()).collect();
    assert_eq!(ids, ["4", "14", "24"], "the oldest of u3's sessions first");

    let (listed, matched) = SessionQuery::default().apply(all);
    assert_eq!((listed.len(), matched), (1000, 1000));
    assert!(listed.windows(2).all(|w| w[0].id < w[1].id));
    let none = SessionQuery {
        limit: Some(0),
        ..SessionQuery::default()
    };
    assert_eq!(none.apply(many(3)), (Vec::new(), 3));
}

#[test]
fn stats_count_every_session_and_list_what_the_query_asks() {
    let doc = stats_document(
        &hub_stats(),
        &EngineLoad::default(),
        &GUARD,
        &many(50),
        &SessionQuery {
            user: Some("u1".into()),
            limit: Some(2),
            ..SessionQuery::default()
        },
        Some(&report()),
        Held::default(),
    );
    assert_eq!(doc["totals"]["sessions"], 50);
    assert_eq!(doc["matched"], 5);
    assert_eq!(doc["sessions"].as_array().unwrap().len(), 2);
    assert_eq!(doc["sessions"][0]["id"], 2);
    // The map's row (alice's peer, call ID 7) joins the session with that call ID.
    let listed = stats_document(
        &hub_stats(),
        &EngineLoad::default(),
        &GUARD,
        &many(50),
        &SessionQuery {
            user: Some("u7".into()),
            limit: Some(1),
            ..SessionQuery::default()
        },
        Some(&report()),
        Held::default(),
    );
    assert_eq!(listed["sessions"][0]["local_call_id"], 7);
    assert_eq!(listed["sessions"][0]["dataplane"]["slot"], 3);
}

const POOL: PoolUsage = PoolUsage {
    in_use: 2,
    size: 241,
};

#[test]
fn stats_join_hub_sessions_with_their_rows_in_the_maps() {
    let doc = stats_document(
        &hub_stats(),
        &EngineLoad::default(),
        &GUARD,
        &[alice(), bob()],
        &SessionQuery::default(),
        Some(&report()),
        Held {
            pool: Some(POOL),
            call_ids: Some(2),
        },
    );
    assert_eq!(doc["xdp"], true);
    assert_eq!(doc["installed_calls"], 1);
    assert_eq!(doc["counters"][0]["name"], "pptp_control");
    assert_eq!(doc["hub"]["unknown_session"], 4);
    assert_eq!(doc["guard"]["accept_errors"], 3);
    assert_eq!(doc["guard"]["dae_duplicates"], 1);
    assert_eq!(
        doc["totals"],
        json!({"sessions": 2, "up": 1, "starting": 1, "xdp": 1, "agent": 1})
    );
    assert_eq!(doc["pool"], json!({"in_use": 2, "size": 241}));
    assert_eq!(doc["call_ids"], 2);
    assert_eq!(doc["sessions"][0]["user"], "alice");
    assert_eq!(doc["sessions"][0]["dataplane"]["slot"], 3);
    assert_eq!(doc["sessions"][0]["dataplane"]["to_agent"], 11);
    assert!(doc["sessions"][1].get("dataplane").is_none());

    let without_xdp = stats_document(
        &hub_stats(),
        &EngineLoad::default(),
        &GUARD,
        &[alice()],
        &SessionQuery::default(),
        None,
        Held::default(),
    );
    assert_eq!(without_xdp["xdp"], false);
    assert!(without_xdp.get("counters").is_none());
    assert_eq!(without_xdp["pool"], Value::Null);
    assert_eq!(without_xdp["call_ids"], Value::Null);
}

#[test]
fn session_table_is_pipe_separated_and_escapes_user_names() {
    let sessions: Vec<SessionView> = serde_json::from_value(json!([alice(), bob()])).unwrap();
    let table = render_sessions(&sessions);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    let cells =
        |line: &str| -> Vec<String> { line.split(" | ").map(|c| c.trim().to_owned()).collect() };
    assert_eq!(
        cells(lines[0]),
        [
            "id", "user", "peer", "client", "path", "mppe", "state", "uptime", "rx-pkts",
            "rx-bytes", "tx-pkts", "tx-bytes", "rate", "policed"
        ]
    );
    assert!(lines[1].starts_with("----") && lines[1].contains("-+-"));
    assert_eq!(
        cells(lines[2]),
        [
            "1",
            "alice",
            "198.51.100.2",
            "192.0.2.10",
            "xdp",
            "-",
            "up",
            "00:01:05",
            "5",
            "420",
            "6",
            "504",
            "10M/20M",
            "7"
        ]
    );
    let bob = cells(lines[3]);
    assert_eq!(bob[1], "bo\"b\\n\\u{1b}[31m", "no raw control characters");
    assert_eq!(
        (bob[3].as_str(), bob[5].as_str()),
        ("-", "128-bit stateless")
    );
    assert_eq!(bob[7], "1d 01:01:01");
    // Every row has its columns where the header has them.
    let bars = |line: &str| -> Vec<usize> { line.match_indices(" | ").map(|(i, _)| i).collect() };
    assert_eq!(bars(lines[0]), bars(lines[2]));
    assert_eq!(bars(lines[0]), bars(lines[3]));
    assert_eq!(printable("a|b"), "a\\|b");
    assert_eq!(uptime(0), "00:00:00");
    assert_eq!(uptime(3600 * 25), "1d 01:00:00");
}

#[test]
fn stats_render_counters_drops_and_sessions() {
    let doc = stats_document(
        &hub_stats(),
        &EngineLoad::default(),
        &GUARD,
        &[alice(), bob()],
        &SessionQuery::default(),
        Some(&report()),
        Held {
            pool: Some(POOL),
            call_ids: Some(2),
        },
    );
    let view: StatsView = serde_json::from_value(doc).unwrap();
    let text = render_stats(&view);
    assert!(
        text.starts_with(
            "sessions: 2 (up 1, starting 1; path xdp 1, agent 1)\npool: 2 of 241 addresses in use\n\
             call IDs: 2 live\n\
             agent holds: 0 session timers, 0 RADIUS authentications and 0 accounting requests in flight\n\n"
        ),
        "{text}"
    );
    assert!(text.contains("\npptp_control "), "{text}");
    assert!(
        text.contains("calls installed in the XDP maps: 1"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("unknown_session") && l.ends_with(" 4")),
        "{text}"
    );
    // Events are not listed among the drops.
    for event in ["mppe_resets_sent", "dhcp_informs_answered", "auth_failures"] {
        assert!(!text.lines().any(|l| l.starts_with(event)), "{text}");
    }
    assert!(text.contains("CCP Reset-Requests sent (stateful MPPE lost sync): 2\n"));
    assert!(text.contains("DHCPINFORMs answered for clients: 5\n"));
    assert!(text.contains(
        "Logins refused (credentials, unknown user, dial-in denied, RADIUS reject): 3\n"
    ));
    assert!(text.contains("\nguards\n"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("accept_errors ") && l.ends_with(" 3")),
        "{text}"
    );
    let header = text.lines().find(|l| l.contains("| to-agent |")).unwrap();
    assert!(header.trim_end().ends_with("| drops"), "{header}");
    let alice_row = text.lines().find(|l| l.contains("| alice ")).unwrap();
    assert!(
        alice_row.trim_end().ends_with("|       11 |     3"),
        "{alice_row}"
    );

    let view: StatsView = serde_json::from_value(stats_document(
        &hub_stats(),
        &EngineLoad::default(),
        &GUARD,
        &[],
        &SessionQuery::default(),
        None,
        Held {
            pool: Some(POOL),
            call_ids: None,
        },
    ))
    .unwrap();
    assert!(render_stats(&view).contains("XDP: not in use"));
}

#[test]
fn prometheus_text_has_sessions_by_state_and_path_counters_and_drops() {
    let text = metrics::render(
        &[alice(), bob()],
        &hub_stats(),
        &EngineLoad {
            timers: 2,
            authentications: 1,
            accounting: 0,
        },
        &GUARD,
        Some(&report()),
        Some(POOL),
        false,
    );
    let has = |line: &str| text.lines().any(|l| l == line);
    for line in [
        "# TYPE pptp_sessions gauge",
        "pptp_sessions{state=\"up\",path=\"xdp\"} 1",
        "pptp_sessions{state=\"up\",path=\"agent\"} 0",
        "pptp_sessions{state=\"starting\",path=\"agent\"} 1",
        "pptp_sessions{state=\"starting\",path=\"xdp\"} 0",
        "pptp_xdp_enabled 1",
        "# TYPE pptp_xdp_packets_total counter",
        "pptp_xdp_packets_total{counter=\"pptp_control\"} 12",
        "pptp_xdp_bytes_total{counter=\"decapsulated\"} 420",
        "pptp_xdp_installed_calls 1",
        "# TYPE pptp_pool_addresses gauge",
        "pptp_pool_addresses{state=\"in_use\"} 2",
        "pptp_pool_addresses{state=\"size\"} 241",
        "pptp_agent_drops_total{reason=\"unknown_session\"} 4",
        "pptp_agent_drops_total{reason=\"spoofed_source\"} 0",
        "pptp_mppe_reset_requests_total 2",
        "# TYPE pptp_agent_timers gauge",
        "pptp_agent_timers 2",
        "pptp_radius_authentications_in_flight 1",
        "pptp_radius_accounting_in_flight 0",
        "# TYPE pptp_guard_total counter",
        "pptp_guard_total{event=\"accept_errors\"} 3",
        "pptp_guard_total{event=\"dae_duplicates\"} 1",
    ] {
        assert!(has(line), "missing {line:?} in\n{text}");
    }
    assert!(
        !text.contains("pptp_session_"),
        "per-session series are opt-in"
    );
    for event in ["mppe_resets_sent", "dhcp_informs_answered", "auth_failures"] {
        assert!(!text.contains(&format!("reason=\"{event}\"")), "{event}");
    }
    assert!(text.lines().any(|l| l == "pptp_auth_failures_total 3"));
    assert!(
        text.lines()
            .any(|l| l == "pptp_dhcp_informs_answered_total 5")
    );
    // Every sample line is `name{labels} value` or `name value`, and every metric has
    // HELP and TYPE before its samples.
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split(' ').next().unwrap().to_owned());
        } else if !line.starts_with("# HELP ") {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(typed.contains(name), "{name} has no TYPE");
            assert!(
                line.rsplit(' ').next().unwrap().parse::<u64>().is_ok(),
                "{line}"
            );
        }
    }

    let text = metrics::render(
        &[alice(), bob()],
        &hub_stats(),
        &EngineLoad::default(),
        &GUARD,
        None,
        None,
        true,
    );
    assert!(text.contains("pptp_xdp_enabled 0"));
    assert!(!text.contains("pptp_xdp_packets_total"));
    assert!(text.lines().any(|l| l
        == "pptp_session_rx_bytes_total{id=\"1\",user=\"alice\",client=\"192.0.2.10\",path=\"xdp\"} 420"));
    assert!(
        text.contains("user=\"bo\\\"b\\n\x1b[31m\",client=\"\""),
        "label values escaped: {text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("pptp_session_uptime_seconds{"))
            .count(),
        2
    );
}

#[test]
fn http_requests_are_routed() {
    use metrics::{Route, route};
    assert_eq!(
        route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
        Route::Metrics
    );
    assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
    assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
    assert_eq!(
        route(b"POST /metrics HTTP/1.1\r\n\r\n"),
        Route::MethodNotAllowed
    );
    assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
    assert_eq!(route(b"GET /metrics SPDY/3\r\n\r\n"), Route::BadRequest);
}

/// A hub that answers the operator's commands with [`alice`] and [`bob`] and records
/// what it was asked to kill.
fn fake_hub() -> (
    mpsc::Sender<HubCommand>,
    std::sync::Arc<std::sync::Mutex<Vec<Selector>>>,
) {
    let (tx, mut rx) = mpsc::channel(16);
    let killed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = killed.clone();
    tokio::spawn(async move {
        while let Some(command) = rx.recv().await {
            match command {
                HubCommand::Sessions(reply) => {
                    let _ = reply.send(vec![alice(), bob()]);
                }
                HubCommand::Stats(reply) => {
                    let _ = reply.send(hub_stats());
                }
                HubCommand::Load(reply) => {
                    let _ = reply.send(EngineLoad {
                        timers: 2,
                        authentications: 0,
                        accounting: 1,
                    });
                }
                HubCommand::Kill(selector, reply) => {
                    let n = match &selector {
                        Selector::User(u) if u == "alice" => 1,
                        Selector::All => 2,
                        _ => 0,
                    };
                    log.lock().unwrap().push(selector);
                    let _ = reply.send(n);
                }
                _ => {}
            }
        }
    });
    (tx, killed)
}

fn temp_socket() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir()
        .join(format!(
            "pptp-api-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
        .join("agent.sock")
}

fn quick() -> Limits {
    Limits {
        read_timeout: Duration::from_millis(300),
        ..Limits::default()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test]
async fn the_socket_answers_one_json_line_per_request() {
    let path = temp_socket();
    let (hub, killed) = fake_hub();
    let socket = ApiSocket::bind(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "root only");
    let backend = Arc::new(Backend {
        hub,
        pins: None,
        pool: None,
        call_ids: None,
        guard: Arc::default(),
        timeout: Duration::from_secs(2),
    });
    let (stop_tx, stop) = watch::channel(false);
    let server = tokio::spawn(socket.serve(backend, quick(), stop));

    let p = path.clone();
    let answers = blocking(move || {
        let t = Duration::from_secs(5);
        (
            client::call(&p, &Request::Sessions(SessionQuery::default()), t).unwrap(),
            client::call(&p, &Request::Stats(SessionQuery::default()), t).unwrap(),
            client::call(&p, &Request::Kill(Selector::User("alice".into())), t).unwrap(),
            client::call(
                &p,
                &Request::Kill(Selector::Id(SessionId::from_number(99))),
                t,
            )
            .unwrap(),
        )
    })
    .await;
    assert_eq!(answers.0["sessions"][0]["user"], "alice");
    assert_eq!(answers.0["sessions"][1]["state"], "starting");
    assert_eq!(answers.1["xdp"], false);
    assert_eq!(answers.1["totals"]["sessions"], 2);
    assert_eq!(answers.2, json!({"killed": 1}));
    assert_eq!(answers.3, json!({"killed": 0}));
    assert_eq!(
        *killed.lock().unwrap(),
        [
            Selector::User("alice".into()),
            Selector::Id(SessionId::from_number(99))
        ]
    );

    // Garbage, oversized and silent clients get an error line, and the server goes on.
    let p = path.clone();
    let raw = move |bytes: Vec<u8>, close: bool| {
        let p = p.clone();
        blocking(move || {
            let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(&bytes);
            if close {
                s.shutdown(std::net::Shutdown::Write).unwrap();
            }
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            answer
        })
    };
    assert!(
        raw(b"hello\n".to_vec(), false)
            .await
            .contains("\"error\":\"not a JSON request")
    );
    assert!(
        raw(vec![b'{'; 4096], false)
            .await
            .contains("longer than 4096 bytes")
    );
    assert!(
        raw(Vec::new(), false)
            .await
            .contains("not received in time")
    );
    assert_eq!(
        raw(b"{\"cmd\":\"kill\",\"all\":true}".to_vec(), true).await,
        "{\"killed\":2}\n",
        "a request without its newline, then EOF, is still answered"
    );
    // A second agent on the same socket is refused while this one runs.
    let err = ApiSocket::bind(&path).err().unwrap();
    assert!(
        format!("{err:#}").contains("another agent answers"),
        "{err:#}"
    );

    stop_tx.send(true).unwrap();
    server.await.unwrap().unwrap();
    assert!(!path.exists(), "the socket is removed on stop");
    let p = path.clone();
    let err = blocking(move || {
        client::call(
            &p,
            &Request::Sessions(SessionQuery::default()),
            Duration::from_secs(1),
        )
    })
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()));
    let _ = std::fs::remove_dir(path.parent().unwrap());
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_other_files_are_not() {
    let path = temp_socket();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // A socket nobody listens on any more, as a crashed agent leaves it.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let socket = ApiSocket::bind(&path).unwrap();
    assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
    drop(socket);
    assert!(!path.exists());

    std::fs::write(&path, "not a socket").unwrap();
    let err = ApiSocket::bind(&path).err().unwrap();
    assert!(format!("{err:#}").contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
    std::fs::remove_file(&path).unwrap();
    let _ = std::fs::remove_dir(path.parent().unwrap());
}

#[tokio::test]
async fn metrics_are_served_over_http_and_bad_requests_refused() {
    let (hub, _) = fake_hub();
    let backend = Arc::new(Backend {
        hub,
        pins: None,
        pool: None,
        call_ids: None,
        guard: Arc::default(),
        timeout: Duration::from_secs(2),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let server = tokio::spawn(metrics::serve(listener, backend, true, quick(), stop));
    let get = move |request: Vec<u8>| {
        blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(&request);
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            answer
        })
    };
    let ok = get(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()).await;
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.contains("Content-Type: text/plain; version=0.0.4"));
    let (head, body) = ok.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(&format!("Content-Length: {}", body.len())));
    assert!(body.contains("pptp_sessions{state=\"up\",path=\"xdp\"} 1\n"));
    assert!(body.contains("pptp_session_tx_packets_total{id=\"1\""));
    assert!(
        get(b"GET /nope HTTP/1.1\r\n\r\n".to_vec())
            .await
            .starts_with("HTTP/1.1 404")
    );
    assert!(
        get(b"DELETE /metrics HTTP/1.1\r\n\r\n".to_vec())
            .await
            .starts_with("HTTP/1.1 405")
    );
    let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    big.resize(metrics::MAX_HEAD, b'a');
    assert!(get(big).await.starts_with("HTTP/1.1 400"), "oversized head");
    assert_eq!(
        get(b"GET /metrics HTTP/1.1\r\n".to_vec()).await,
        "",
        "incomplete head: closed after the timeout"
    );
    stop_tx.send(true).unwrap();
    server.await.unwrap();
}

#[test]
fn prometheus_output_does_not_grow_with_the_sessions_unless_asked() {
    let scrape = |sessions: &[SessionInfo], per_session| {
        metrics::render(
            sessions,
            &hub_stats(),
            &EngineLoad::default(),
            &GUARD,
            Some(&report()),
            Some(POOL),
            per_session,
        )
    };
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    let few = scrape(&many(5), false);
    let lots = scrape(&many(5_000), false);
    assert_eq!(series(&few), series(&lots));
    assert!(lots.len() < 8 * 1024, "{} bytes", lots.len());
    let per_session = scrape(&many(5_000), true);
    assert!(series(&per_session) >= series(&lots) + 5 * 5_000);
}
