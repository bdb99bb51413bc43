//! The demo scenario, shared by `cargo xtask demo` and the test that checks it: the
//! concentrator with XDP in the lab, one client on the XDP fast path (no MPPE) and
//! one on the agent's path (MPPE-128), ping and TCP from both to the LAN host, then
//! `pptp-agent stats`. The uplink's PPTP-control and GRE counters must equal what the
//! clients sent, counted independently by nftables in each client's namespace.

use std::{
    net::SocketAddrV4,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

use crate::{
    agents::{self, SERVER_INSTANCE},
    lab::{Lab, LabSpec, addr},
    netns,
    traffic::{self, EchoServer, TcpSent},
};

/// What to send.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// The `pptp-agent` binary to run.
    pub agent_bin: PathBuf,
    /// Bytes each client exchanges with the LAN host over TCP through its tunnel.
    pub tcp_payload: usize,
    /// Pings each client sends to the LAN host.
    pub pings: u32,
}

/// One client of the demo.
#[derive(Debug)]
pub struct ClientReport {
    pub user: &'static str,
    /// MPPE policy it dialed with.
    pub mppe: &'static str,
    pub tcp: TcpSent,
}

/// What happened.
#[derive(Debug)]
pub struct DemoReport {
    pub clients: Vec<ClientReport>,
    /// TCP segments to port 1723 the clients sent (nftables' count).
    pub control_segments: u64,
    /// GRE packets the clients sent (nftables' count).
    pub gre_packets: u64,
    /// `pptp-agent stats` output.
    pub stats_table: String,
    /// `pptp-agent stats --json` output.
    pub stats_json: String,
}

/// The demo's users: (name, password, MPPE policy of their client).
const USERS: [(&str, &str, &str); 2] = [
    ("alice", "alice-secret", "deny"),
    ("bob", "bob-secret", "require"),
];

/// Runs the demo; fails if a session does not carry its traffic, if the counters
/// differ from what was sent, or if anything is left behind.
pub fn run(config: &DemoConfig) -> anyhow::Result<DemoReport> {
    ensure!(
        config.agent_bin.is_file(),
        "{} not found: build it with `cargo build -p pptp-agent`",
        config.agent_bin.display()
    );
    let mut lab = Lab::up(&LabSpec {
        clients: USERS.len(),
    })?;
    let lab_id = lab.id().to_owned();
    let bpffs = lab.bpffs()?;
    let users: Vec<String> = USERS.iter().map(|(u, p, _)| format!("{u}:{p}")).collect();
    let mut server_args = vec!["--mppe", "prefer"];
    for user in &users {
        server_args.extend(["--user", user]);
    }
    let server = agents::start_server(&mut lab, &config.agent_bin, &server_args)?;
    for i in 0..USERS.len() {
        count_sent(&lab.client_ns(i))?;
    }
    let mut clients = Vec::new();
    let mut client_pids = Vec::new();
    for (i, (user, password, mppe)) in USERS.iter().enumerate() {
        let dialed = agents::dial(
            &mut lab,
            &config.agent_bin,
            i,
            &["--user", user, "--password", password, "--mppe", mppe],
        )?;
        client_pids.push(dialed.pid);
    }
    let echo = EchoServer::start(&lab.lan_ns(), SocketAddrV4::new(addr::LAN_HOST, 9000))?;
    for (i, (user, _, mppe)) in USERS.iter().enumerate() {
        let ns = lab.client_ns(i);
        ensure!(
            agents::ping(&ns, addr::LAN_HOST, config.pings)?,
            "{user}: ping through the tunnel failed"
        );
        let tcp = traffic::tcp_exchange(&ns, echo.address(), config.tcp_payload)?;
        clients.push(ClientReport { user, mppe, tcp });
    }
    drop(echo);

    let api_socket = agents::api_socket(&lab);
    let stats = |json: bool| -> anyhow::Result<String> {
        let mut cmd = Command::new(&config.agent_bin);
        cmd.arg("stats")
            .arg("--bpffs")
            .arg(&bpffs)
            .args(["--instance", SERVER_INSTANCE])
            .arg("--api-socket")
            .arg(&api_socket);
        if json {
            cmd.arg("--json");
        }
        Ok(String::from_utf8(netns::output(&mut cmd)?.stdout)?)
    };
    // Keepalives may cross while we read: read the clients' counts on both sides of
    // the agent's, and take a round where nothing moved.
    let mut attempt = 0;
    let (control_segments, gre_packets, stats_json) = loop {
        let before = sent_totals(&lab)?;
        let json = stats(true)?;
        if sent_totals(&lab)? == before {
            break (before.0, before.1, json);
        }
        attempt += 1;
        ensure!(attempt < 5, "the clients' traffic never stopped");
    };
    let stats_table = stats(false)?;
    check_counters(
        &serde_json::from_str(&stats_json)?,
        control_segments,
        gre_packets,
    )?;

    for pid in client_pids {
        let status = lab.stop(pid, Duration::from_secs(10))?;
        ensure!(status.success(), "a client exited with {status}");
    }
    wait_for(Duration::from_secs(10), || {
        stats(true).is_ok_and(|json| sessions_gone(&json))
    })
    .context("sessions stayed installed after the hang-ups")?;
    let status = lab.stop(server.pid, Duration::from_secs(10))?;
    ensure!(
        status.success(),
        "the concentrator exited with {status} on SIGTERM"
    );
    ensure!(
        !bpffs.join(SERVER_INSTANCE).exists(),
        "the concentrator left its pinned maps behind"
    );
    lab.down()?;
    let left: Vec<_> = netns::list()
        .into_iter()
        .filter(|ns| ns.starts_with(&lab_id))
        .collect();
    ensure!(left.is_empty(), "namespaces left behind: {left:?}");
    Ok(DemoReport {
        clients,
        control_segments,
        gre_packets,
        stats_table,
        stats_json,
    })
}

fn sessions_gone(json: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v["sessions"].as_array().map(Vec::is_empty))
        .unwrap_or(false)
}

/// nftables rules in `ns` that count what leaves it: TCP to port 1723, then GRE.
fn count_sent(ns: &str) -> anyhow::Result<()> {
    let nft = |args: &[&str]| {
        netns::run_in_ns(ns, Command::new("nft").args(args))
            .map(drop)
            .context("nft (run `cargo xtask setup` for nftables)")
    };
    nft(&["add", "table", "inet", "demo"])?;
    nft(&[
        "add",
        "chain",
        "inet",
        "demo",
        "out",
        "{ type filter hook output priority 0; }",
    ])?;
    nft(&[
        "add", "rule", "inet", "demo", "out", "tcp", "dport", "1723", "counter",
    ])?;
    nft(&[
        "add", "rule", "inet", "demo", "out", "ip", "protocol", "gre", "counter",
    ])
}

/// (TCP segments to 1723, GRE packets) sent by all clients so far.
fn sent_totals(lab: &Lab) -> anyhow::Result<(u64, u64)> {
    let mut totals = (0, 0);
    for i in 0..USERS.len() {
        let mut cmd = Command::new("nft");
        cmd.args(["-j", "list", "chain", "inet", "demo", "out"]);
        let out = netns::run_in_ns(&lab.client_ns(i), &mut cmd)?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let counters: Vec<u64> = json["nftables"]
            .as_array()
            .context("nft -j output")?
            .iter()
            .filter_map(|item| {
                item["rule"]["expr"]
                    .as_array()?
                    .iter()
                    .find_map(|e| e["counter"]["packets"].as_u64())
            })
            .collect();
        let [control, gre] = counters[..] else {
            bail!("expected two counting rules, found {counters:?}");
        };
        totals.0 += control;
        totals.1 += gre;
    }
    Ok(totals)
}

/// The uplink counters must be exactly what the clients sent.
fn check_counters(json: &serde_json::Value, control: u64, gre: u64) -> anyhow::Result<()> {
    let counter = |name: &str| -> anyhow::Result<u64> {
        agents::xdp_counter(json, name).with_context(|| format!("no {name} in the stats JSON"))
    };
    let (seen_control, seen_gre) = (counter("pptp_control")?, counter("gre_enhanced")?);
    if seen_control != control || seen_gre != gre {
        bail!(
            "counters differ from what was sent: pptp_control {seen_control} (sent {control}), \
             gre_enhanced {seen_gre} (sent {gre})"
        );
    }
    ensure!(counter("malformed")? == 0, "frames counted as malformed");
    ensure!(
        counter("decapsulated")? > 0,
        "nothing took the XDP fast path"
    );
    ensure!(counter("to_agent")? > 0, "nothing took the agent's path");
    let paths: Vec<&str> = json["sessions"]
        .as_array()
        .context("no sessions in the stats JSON")?
        .iter()
        .filter_map(|s| s["path"].as_str())
        .collect();
    ensure!(
        paths.len() == 2 && paths.contains(&"xdp") && paths.contains(&"agent"),
        "expected one XDP and one agent-path session, found {paths:?}"
    );
    Ok(())
}

/// Polls `ready` every 50 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("timed out after {timeout:?}")
}
