//! The operator's commands against a real concentrator in the lab: `sessions`
//! (table and JSON) shows a dialed-in session with its user, address, path and
//! counters that grow with traffic; `kill` hangs it up (the client exits, the session
//! leaves the maps, its route goes); `stats` through the API, once and with
//! `--watch`, and from the maps when no agent answers; the Prometheus endpoint.
//! Needs root.

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::Command,
    time::Duration,
};

use pptp_tests::{
    agents::{self, SERVER_INSTANCE},
    demo::wait_for,
    lab::{Lab, LabSpec, addr, ifname},
    netns,
};
use serde_json::Value;

/// Runs an operator command that must succeed; returns its stdout.
fn ok(lab: &mut Lab, args: &[&str]) -> String {
    let out = agents::operator(lab, &agents::agent_bin(), args).unwrap();
    assert!(
        out.status.success(),
        "pptp-agent {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(lab: &mut Lab, args: &[&str]) -> Value {
    serde_json::from_str(&ok(lab, args)).unwrap()
}

fn alice_up(lab: &mut Lab, extra: &[&str]) -> (agents::Agent, agents::Agent) {
    let bin = agents::agent_bin();
    let mut args = vec!["--user", "alice:secret-1"];
    args.extend_from_slice(extra);
    let server = agents::start_server(lab, &bin, &args).unwrap();
    let client =
        agents::dial(lab, &bin, 0, &["--user", "alice", "--password", "secret-1"]).unwrap();
    (server, client)
}

#[test]
fn sessions_lists_the_session_and_kill_hangs_it_up() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let (server, client) = alice_up(&mut lab, &[]);
    let socket = agents::api_socket(&lab);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the API socket is root's only");

    let before = json(&mut lab, &["sessions", "--json"]);
    let sessions = before["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{before:#}");
    let s = &sessions[0];
    assert_eq!(s["user"], "alice");
    assert_eq!(s["client"], addr::POOL_START.to_string());
    assert_eq!(s["peer"], addr::client(0).to_string());
    assert_eq!(s["path"], "xdp");
    assert_eq!(s["state"], "up");
    assert_eq!(s["mppe"], Value::Null);
    let id = s["id"].as_u64().unwrap();

    let client_ns = lab.client_ns(0);
    assert!(agents::ping(&client_ns, addr::LAN_HOST, 5).unwrap());
    let after = json(&mut lab, &["sessions", "--json"]);
    let count = |v: &Value, field: &str| v["sessions"][0][field].as_u64().unwrap();
    for field in ["rx_packets", "tx_packets"] {
        assert!(
            count(&after, field) >= count(&before, field) + 5,
            "{field} grew by the 5 pings: {} -> {}",
            count(&before, field),
            count(&after, field)
        );
    }
    assert!(count(&after, "rx_bytes") >= count(&before, "rx_bytes") + 5 * 84);

    let table = ok(&mut lab, &["sessions"]);
    eprintln!("$ pptp-agent sessions\n{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].trim_start().starts_with("id | user "), "{table}");
    assert_eq!(lines.len(), 3, "header, rule, one session:\n{table}");
    let cells: Vec<&str> = lines[2].split('|').map(str::trim).collect();
    assert_eq!(
        cells[..7],
        [
            &id.to_string(),
            "alice",
            &addr::client(0).to_string(),
            &addr::POOL_START.to_string(),
            "xdp",
            "-",
            "up"
        ]
    );

    let stats = ok(&mut lab, &["stats"]);
    eprintln!("$ pptp-agent stats\n{stats}");
    assert!(stats.starts_with("source: agent ("), "{stats}");
    assert!(stats.contains("sessions: 1 (up 1, starting 0; path xdp 1, agent 0)"));
    assert!(stats.contains("calls installed in the XDP maps: 1"));
    let stats_json = json(&mut lab, &["stats", "--json"]);
    assert_eq!(stats_json["source"], "agent");
    assert_eq!(stats_json["installed_calls"], 1);
    assert_eq!(stats_json["sessions"][0]["user"], "alice");
    assert!(stats_json["sessions"][0]["dataplane"]["slot"].is_u64());
    // The agent filters and limits: totals still count the session.
    let nobody = json(&mut lab, &["stats", "--json", "--user", "bob"]);
    assert_eq!(nobody["totals"]["sessions"], 1);
    assert_eq!(nobody["matched"], 0);
    assert!(nobody["sessions"].as_array().unwrap().is_empty());
    let limited = json(
        &mut lab,
        &[
            "sessions", "--json", "--user", "alice", "--sort", "rx_bytes", "--limit", "1",
        ],
    );
    assert_eq!(limited["matched"], 1);
    assert_eq!(limited["sessions"][0]["user"], "alice");
    let none = ok(&mut lab, &["sessions", "--limit", "0"]);
    assert!(none.contains("(0 of 1 matching sessions shown)"), "{none}");

    // A second agent with the same socket stops before it touches the data plane
    // (it would flush the first one's sessions from the shared pins).
    let mut second = Command::new(&bin);
    second
        .args([
            "serve",
            "--uplink",
            ifname::UPLINK,
            "--local-ip",
            "192.0.2.1",
        ])
        .args(["--pool", "192.0.2.10-192.0.2.250", "--user", "x:y"])
        .arg("--bpffs")
        .arg(lab.bpffs().unwrap())
        .args(["--instance", SERVER_INSTANCE])
        .arg("--api-socket")
        .arg(&socket);
    netns::command_in(&lab.concentrator_ns(), &mut second).unwrap();
    let second = agents::output_within(&mut second, Duration::from_secs(30)).unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another agent answers on"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(json(&mut lab, &["stats", "--json"])["installed_calls"], 1);
    assert!(agents::ping(&client_ns, addr::LAN_HOST, 1).unwrap());

    // A user with no session: nothing hung up, and the command says so.
    let none = agents::operator(&mut lab, &bin, &["kill", "bob"]).unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no session matches user \"bob\""));
    assert!(lab.exited(client.pid).is_none(), "alice is still up");

    let killed = ok(&mut lab, &["kill", "alice"]);
    assert_eq!(killed.trim(), "hanging up 1 session (user \"alice\")");
    wait_for(Duration::from_secs(10), || lab.exited(client.pid).is_some())
        .unwrap_or_else(|e| panic!("the client did not exit: {e:#}\n{}", client.log_tail()));
    wait_for(Duration::from_secs(10), || {
        let s = json(&mut lab, &["stats", "--json"]);
        s["installed_calls"] == 0 && s["sessions"].as_array().is_some_and(Vec::is_empty)
    })
    .expect("the session left the hub and the XDP maps");
    assert_eq!(
        agents::tunnel_routes(&lab).unwrap(),
        "",
        "no route left to the client"
    );
    let stats = json(&mut lab, &["stats", "--json"]);
    assert_eq!(
        stats["pool"]["in_use"], 0,
        "the address is back in the pool"
    );
    assert_eq!(
        json(&mut lab, &["sessions", "--json"])["sessions"],
        Value::Array(vec![])
    );

    // SIGTERM: the socket goes with the agent, and the commands say where they looked.
    let status = lab.stop(server.pid, Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{status}\n{}", server.log_tail());
    assert!(!socket.exists(), "the API socket is removed on shutdown");
    let gone = agents::operator(&mut lab, &bin, &["sessions"]).unwrap();
    let err = String::from_utf8_lossy(&gone.stderr);
    assert!(!gone.status.success());
    assert!(
        err.contains("no agent answers on") && err.contains(&socket.display().to_string()),
        "{err}"
    );
}

#[test]
fn stats_watch_fallback_metrics_and_kill_by_id_and_all() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 2 }).unwrap();
    let metrics: SocketAddr = (Ipv4Addr::LOCALHOST, 9100).into();
    // alice on the XDP path, bob with MPPE on the agent's.
    let (_server, alice) = alice_up(
        &mut lab,
        &[
            "--user",
            "bob:secret-2",
            "--mppe",
            "prefer",
            "--metrics",
            &metrics.to_string(),
            "--metrics-sessions",
        ],
    );
    let bob = agents::dial(
        &mut lab,
        &bin,
        1,
        &[
            "--user",
            "bob",
            "--password",
            "secret-2",
            "--mppe",
            "require",
        ],
    )
    .unwrap();
    assert!(agents::ping(&lab.client_ns(0), addr::LAN_HOST, 5).unwrap());
    assert!(agents::ping(&lab.client_ns(1), addr::LAN_HOST, 3).unwrap());
    let table = ok(&mut lab, &["sessions"]);
    eprintln!("$ pptp-agent sessions\n{table}");
    let bob_row = table.lines().find(|l| l.contains("| bob ")).expect(&table);
    assert!(
        bob_row.contains("| agent | 128-bit stateless | up "),
        "{table}"
    );

    let watch = ok(&mut lab, &["stats", "--watch", "1", "--count", "2"]);
    eprintln!("$ pptp-agent stats --watch 1 --count 2\n{watch}");
    assert_eq!(
        watch.matches("Every 1s: pptp-agent stats").count(),
        2,
        "{watch}"
    );
    assert!(watch.contains(", frame 1, ") && watch.contains(", frame 2, "));
    assert_eq!(watch.matches("source: agent (").count(), 2);
    let frames = json(&mut lab, &["stats", "--json"]);

    // No agent on the socket given: the pinned maps, and the output says so.
    let fallback = agents::output_within(
        Command::new(&bin)
            .args(["stats", "--api-socket", "/nonexistent/api.sock"])
            .arg("--bpffs")
            .arg(lab.bpffs().unwrap())
            .args(["--instance", SERVER_INSTANCE]),
        Duration::from_secs(30),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&fallback.stdout);
    assert!(fallback.status.success());
    assert!(
        text.starts_with("source: pinned maps only") && text.contains("/nonexistent/api.sock"),
        "{text}"
    );
    assert!(text.contains("decapsulated"), "{text}");

    let answer = agents::scrape(&lab.concentrator_ns(), metrics);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"));
    eprintln!("GET /metrics\n{body}");
    assert_eq!(
        agents::sample(body, "pptp_sessions{state=\"up\",path=\"xdp\"}"),
        1
    );
    assert_eq!(
        agents::sample(body, "pptp_sessions{state=\"up\",path=\"agent\"}"),
        1
    );
    assert_eq!(
        agents::sample(body, "pptp_sessions{state=\"starting\",path=\"xdp\"}"),
        0
    );
    assert_eq!(agents::sample(body, "pptp_xdp_enabled"), 1);
    assert_eq!(agents::sample(body, "pptp_xdp_installed_calls"), 2);
    // Nothing but the pings' data is decapsulated (keepalives go to the agent): the
    // scrape agrees with stats.
    let counter = |name: &str| agents::counter(&frames, name);
    let decapsulated = counter("decapsulated");
    // The first ping goes up the stack while the LAN host's address is resolved.
    assert!(decapsulated + counter("no_next_hop") >= 5, "{frames:#}");
    assert_eq!(
        agents::sample(body, "pptp_xdp_packets_total{counter=\"decapsulated\"}"),
        decapsulated
    );
    assert_eq!(
        agents::sample(body, "pptp_agent_drops_total{reason=\"spoofed_source\"}"),
        0
    );
    let id_of = |user: &str| {
        frames["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["user"] == user)
            .unwrap()["id"]
            .as_u64()
            .unwrap()
    };
    let labels = format!(
        "{{id=\"{}\",user=\"alice\",client=\"{}\",path=\"xdp\"}}",
        id_of("alice"),
        addr::POOL_START
    );
    assert!(agents::sample(body, &format!("pptp_session_rx_packets_total{labels}")) >= 5);
    assert!(agents::sample(body, &format!("pptp_session_tx_packets_total{labels}")) >= 5);
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.rsplit(' ').next().unwrap().parse::<u64>().is_ok(),
            "not a sample: {line}"
        );
    }

    // Kill by id (bob only), then --all (alice).
    let bob_id = id_of("bob").to_string();
    assert_eq!(
        ok(&mut lab, &["kill", &bob_id]).trim(),
        format!("hanging up 1 session (session {bob_id})")
    );
    wait_for(Duration::from_secs(10), || lab.exited(bob.pid).is_some()).expect("bob hung up");
    assert!(lab.exited(alice.pid).is_none(), "alice is still up");
    assert_eq!(
        ok(&mut lab, &["kill", "--all"]).trim(),
        "hanging up 1 session (--all)"
    );
    wait_for(Duration::from_secs(10), || lab.exited(alice.pid).is_some()).expect("alice hung up");
    wait_for(Duration::from_secs(10), || {
        json(&mut lab, &["stats", "--json"])["installed_calls"] == 0
    })
    .expect("no call left in the XDP maps");
}
