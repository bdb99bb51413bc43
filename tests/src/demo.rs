//! The demo scenario, shared by `cargo xtask demo` and the test that checks it:
//! the agent on the concentrator's uplink, PPTP control TCP and GRE from a client,
//! then `pptp-agent stats`, whose counters must equal what was sent.

use std::{
    net::SocketAddrV4,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

use crate::{
    lab::{Lab, LabSpec, addr, ifname},
    netns,
    traffic::{self, EchoServer, GreSent, TcpSent},
};

/// Instance name the demo agent pins its maps under.
const INSTANCE: &str = "demo";
/// PPTP control port.
const PPTP_PORT: u16 = 1723;

/// What to send.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// The `pptp-agent` binary to run.
    pub agent_bin: PathBuf,
    /// GRE packets to send.
    pub gre_packets: u32,
    /// Bytes to exchange over the TCP-1723 connection.
    pub tcp_payload: usize,
}

/// What happened.
#[derive(Debug)]
pub struct DemoReport {
    pub tcp: TcpSent,
    pub gre: GreSent,
    /// `pptp-agent stats` output.
    pub stats_table: String,
    /// `pptp-agent stats --json` output.
    pub stats_json: String,
}

/// Runs the demo; fails if the agent's counters differ from what was sent or if
/// anything is left behind.
pub fn run(config: &DemoConfig) -> anyhow::Result<DemoReport> {
    ensure!(
        config.agent_bin.is_file(),
        "{} not found: build it with `cargo build -p pptp-agent`",
        config.agent_bin.display()
    );
    let mut lab = Lab::up(&LabSpec { clients: 1 })?;
    let lab_id = lab.id().to_owned();
    let bpffs = lab.bpffs()?;
    let pin = |args: &mut Command| {
        args.arg("--bpffs")
            .arg(&bpffs)
            .args(["--instance", INSTANCE]);
    };

    let mut serve = Command::new(&config.agent_bin);
    serve.args(["serve", "--uplink", ifname::UPLINK]);
    pin(&mut serve);
    let agent = lab.spawn(&lab.concentrator_ns(), serve)?;
    let counters_pin = bpffs.join(INSTANCE).join("GLOBAL_COUNTERS");
    wait_for(Duration::from_secs(20), || {
        counters_pin.exists() && xdp_attached(&lab.concentrator_ns())
    })
    .context("the agent did not attach its XDP program within 20 s")?;

    // Until the control channel is served by the agent, an echo server stands in
    // for it: the traffic on the wire is real TCP to port 1723 either way.
    let server = EchoServer::start(
        &lab.concentrator_ns(),
        SocketAddrV4::new(addr::CONC_WAN, PPTP_PORT),
    )?;
    let tcp = traffic::tcp_exchange(&lab.client_ns(0), server.address(), config.tcp_payload)?;
    let gre = traffic::send_gre(&lab.client_ns(0), addr::CONC_WAN, 0, config.gre_packets)?;
    drop(server);

    let stats = |json: bool| -> anyhow::Result<String> {
        let mut cmd = Command::new(&config.agent_bin);
        cmd.arg("stats");
        pin(&mut cmd);
        if json {
            cmd.arg("--json");
        }
        let out = netns::output(cmd.stderr(Stdio::piped()))?;
        Ok(String::from_utf8(out.stdout)?)
    };
    let stats_table = stats(false)?;
    let stats_json = stats(true)?;
    check_counters(&serde_json::from_str(&stats_json)?, &tcp, &gre)?;

    let status = lab.stop(agent, Duration::from_secs(10))?;
    ensure!(
        status.success(),
        "the agent exited with {status} on SIGTERM"
    );
    ensure!(
        !bpffs.join(INSTANCE).exists(),
        "the agent left its pinned maps behind"
    );
    lab.down()?;
    let left: Vec<_> = netns::list()
        .into_iter()
        .filter(|ns| ns.starts_with(&lab_id))
        .collect();
    ensure!(left.is_empty(), "namespaces left behind: {left:?}");
    Ok(DemoReport {
        tcp,
        gre,
        stats_table,
        stats_json,
    })
}

/// The counters must be exactly what the client sent.
fn check_counters(json: &serde_json::Value, tcp: &TcpSent, gre: &GreSent) -> anyhow::Result<()> {
    let counter = |name: &str, field: &str| -> anyhow::Result<u64> {
        json["counters"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["name"] == name))
            .and_then(|c| c[field].as_u64())
            .with_context(|| format!("no {name}.{field} in the stats JSON"))
    };
    let control = counter("pptp_control", "packets")?;
    let gre_packets = counter("gre_enhanced", "packets")?;
    let gre_bytes = counter("gre_enhanced", "bytes")?;
    if control != tcp.segments || gre_packets != gre.packets || gre_bytes != gre.frame_bytes() {
        bail!(
            "counters differ from what was sent: pptp_control {control} (sent {}), \
             gre_enhanced {gre_packets} packets / {gre_bytes} bytes (sent {} / {})",
            tcp.segments,
            gre.packets,
            gre.frame_bytes()
        );
    }
    ensure!(
        counter("malformed", "packets")? == 0,
        "frames counted as malformed"
    );
    Ok(())
}

fn xdp_attached(ns: &str) -> bool {
    netns::output(Command::new("ip").args(["-n", ns, "-d", "link", "show", ifname::UPLINK]))
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("prog/xdp"))
        .unwrap_or(false)
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
