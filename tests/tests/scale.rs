//! Many concurrent sessions on one concentrator, all passing traffic: `pptp-agent
//! load-test` in one client namespace establishes as many sessions as the
//! documentation ranges have tunnel addresses for (699, see `addr::WIDE_POOLS`),
//! pings the LAN host through each, and hangs them all up. The concentrator must
//! list every session on the XDP path while they are up, and afterwards hold no
//! session, map entry or route; a second run of the same size proves that every
//! address went back to the pool. Needs root.

use std::{process::Command, time::Duration};

use pptp_tests::{
    agents::{self, SERVER_INSTANCE},
    demo::wait_for,
    lab::{Lab, LabSpec, addr, ifname},
    netns,
};
use serde_json::Value;

const SESSIONS: usize = 699;

#[test]
fn every_address_of_the_pools_in_use_at_once_all_passing_traffic() {
    assert_eq!(pool_size(), SESSIONS, "the test fills the pools exactly");
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let dir = std::env::temp_dir().join(format!("{}-scale", lab.id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secrets = dir.join("chap-secrets");
    std::fs::write(&secrets, "load * load-secret *\n").unwrap();
    let config = dir.join("pptp-agent.toml");
    let pools: Vec<String> = addr::WIDE_POOLS.iter().map(|p| format!("{p:?}")).collect();
    std::fs::write(
        &config,
        format!(
            "[interfaces]\nuplink = [\"{uplink}\"]\nlan = [\"{lan}\"]\nbpffs = \"{bpffs}\"\ninstance = \"{SERVER_INSTANCE}\"\n\
             [tunnel]\nlocal_ip = \"192.0.2.1\"\npools = [{pools}]\n\
             [auth]\nmethods = [\"chap\"]\nsecrets = \"{secrets}\"\n\
             [limits]\nmax_sessions = {SESSIONS}\nconnections_per_source = 0\n",
            uplink = ifname::UPLINK,
            lan = ifname::LAN,
            bpffs = lab.bpffs().unwrap().display(),
            pools = pools.join(", "),
            secrets = secrets.display(),
        ),
    )
    .unwrap();
    let server = agents::start_server_with(
        &mut lab,
        &bin,
        vec![
            "serve".into(),
            "--config".into(),
            config.display().to_string(),
        ],
    )
    .unwrap();

    for round in 1..=2 {
        let report_path = dir.join(format!("report-{round}.json"));
        let mut load = Command::new(&bin);
        load.args(["load-test", "--server", &addr::CONC_WAN.to_string()])
            .args(["--sessions", &SESSIONS.to_string(), "--concurrency", "64"])
            .args([
                "--user",
                "load",
                "--password",
                "load-secret",
                "--auth",
                "chap",
            ])
            .args([
                "--ping",
                &addr::LAN_HOST.to_string(),
                "--hold",
                "3",
                "--json",
            ])
            .stdout(std::fs::File::create(&report_path).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("load-{round}.log"))).unwrap());
        let pid = lab.spawn(&lab.client_ns(0), load).unwrap();

        // While they are up, the concentrator lists every one of them on the XDP path.
        wait_for(Duration::from_secs(240), || {
            let listed = sessions(&mut lab, &bin);
            let up = listed.iter().filter(|s| s["state"] == "up").count();
            up == SESSIONS || lab.exited(pid).is_some()
        })
        .unwrap_or_else(|e| panic!("round {round}: {e:#}\n{}", server.log_tail()));
        let listed = sessions(&mut lab, &bin);
        if listed.len() != SESSIONS {
            let _ = wait_for(Duration::from_secs(60), || lab.exited(pid).is_some());
            let mut s = stats(&mut lab, &bin);
            s["sessions"] = Value::Null;
            panic!(
                "round {round}: {} sessions listed\nreport {}\nconcentrator {s}\nload-test log {}",
                listed.len(),
                std::fs::read_to_string(&report_path).unwrap_or_default(),
                tail(&dir.join(format!("load-{round}.log")))
            );
        }
        let on_xdp = listed.iter().filter(|s| s["path"] == "xdp").count();
        assert_eq!(on_xdp, SESSIONS, "round {round}: every session on XDP");
        let mut clients: Vec<&str> = listed.iter().filter_map(|s| s["client"].as_str()).collect();
        clients.sort_unstable();
        clients.dedup();
        assert_eq!(clients.len(), SESSIONS, "round {round}: distinct addresses");

        wait_for(Duration::from_secs(120), || lab.exited(pid).is_some())
            .unwrap_or_else(|e| panic!("round {round}: the load test did not end: {e:#}"));
        let status = lab.exited(pid).unwrap();
        let text = std::fs::read_to_string(&report_path).unwrap();
        let log = std::fs::read_to_string(dir.join(format!("load-{round}.log"))).unwrap();
        if !status.success() {
            let mut s = stats(&mut lab, &bin);
            s["sessions"] = Value::Null;
            let notable: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains("PPP starting") && !l.contains("closed locally"))
                .collect();
            panic!(
                "round {round}: {status}\n{text}\nconcentrator {s}\n{}",
                notable[notable.len().saturating_sub(40)..].join("\n")
            );
        }
        let report: Value = serde_json::from_str(&text).unwrap();
        for (field, expected) in [
            ("established", SESSIONS),
            ("failed", 0),
            ("echo_answered", SESSIONS),
            ("echo_unanswered", 0),
            ("hung_up", SESSIONS),
        ] {
            assert_eq!(
                report[field].as_u64(),
                Some(expected as u64),
                "round {round}: {field} in {report}"
            );
        }
        eprintln!(
            "round {round}: {SESSIONS} sessions in {:.1} s ({:.0}/s), setup p50 {:.0} ms p99 {:.0} ms",
            report["setup_seconds"].as_f64().unwrap(),
            report["sessions_per_second"].as_f64().unwrap(),
            report["setup_ms_p50"].as_f64().unwrap(),
            report["setup_ms_p99"].as_f64().unwrap(),
        );

        // Hung up: no session, no map entry, no route left.
        wait_for(Duration::from_secs(30), || {
            let s = stats(&mut lab, &bin);
            s["installed_calls"] == 0 && s["sessions"].as_array().is_some_and(Vec::is_empty)
        })
        .unwrap_or_else(|e| panic!("round {round}: sessions left: {e:#}"));
        assert_eq!(routes(&lab), "", "round {round}: no route left");
    }
    // Both rounds' echoes went through XDP in both directions (an echo request
    // that finds no neighbour entry yet is passed to the kernel, which forwards it).
    let s = stats(&mut lab, &bin);
    let counter = |name: &str| {
        s["counters"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["name"] == name))
            .and_then(|c| c["packets"].as_u64())
            .unwrap_or_else(|| panic!("{name} in {s}"))
    };
    let echoes = 2 * SESSIONS as u64;
    assert!(
        counter("decapsulated") + counter("no_next_hop") >= echoes,
        "{s}"
    );
    assert!(counter("encapsulated") >= echoes, "{s}");
    assert_eq!(
        counter("spoofed_source") + counter("old_sequence"),
        0,
        "{s}"
    );
    let status = lab.stop(server.pid, Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status}\n{}", server.log_tail());
    let _ = std::fs::remove_dir_all(&dir);
}

fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn pool_size() -> usize {
    addr::WIDE_POOLS
        .iter()
        .map(|range| {
            let (first, last) = range.split_once('-').unwrap();
            let (first, last): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
                (first.parse().unwrap(), last.parse().unwrap());
            (u32::from(last) - u32::from(first) + 1) as usize
        })
        .sum()
}

fn stats(lab: &mut Lab, bin: &std::path::Path) -> Value {
    let out = agents::operator(lab, bin, &["stats", "--json"]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sessions(lab: &mut Lab, bin: &std::path::Path) -> Vec<Value> {
    let out = agents::operator(lab, bin, &["sessions", "--json"]).unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["sessions"].as_array().cloned().unwrap_or_default()
}

fn routes(lab: &Lab) -> String {
    let out = netns::output(Command::new("ip").args([
        "-n",
        &lab.concentrator_ns(),
        "route",
        "show",
        "dev",
        "pptp0",
    ]))
    .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
