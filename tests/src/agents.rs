//! Running `pptp-agent` in the lab: a concentrator in the concentrator namespace,
//! clients dialing from client namespaces, and waiting (bounded) for each to be
//! ready. Each agent's log goes to a file whose tail is shown when a wait fails.

use std::{
    fs::File,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::{
    demo::wait_for,
    lab::{Lab, addr, ifname},
    netns,
};

/// The TUN device a dialing client creates.
pub const CLIENT_TUN: &str = "pptp-client0";
/// The concentrator's address inside the tunnels.
pub const SERVER_TUNNEL_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Instance name the lab's concentrator pins its maps under.
pub const SERVER_INSTANCE: &str = "conc";

/// The PATH the lab's agents run with: a directory that does not exist, so no
/// program (`ip` included) can be found.
pub const NO_PROGRAMS: &str = "/nonexistent/pptp-tests-no-programs";

/// The agent binary the tests run: `PPTP_AGENT_BIN` (set by `cargo xtask test` and
/// `bench`) or the workspace's debug build.
pub fn agent_bin() -> PathBuf {
    std::env::var_os("PPTP_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/pptp-agent")
        })
}

/// A running agent.
pub struct Agent {
    pub pid: u32,
    pub log: PathBuf,
}

impl Agent {
    /// The last lines of the agent's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

fn spawn(
    lab: &mut Lab,
    ns: &str,
    bin: &Path,
    args: &[String],
    name: &str,
) -> anyhow::Result<Agent> {
    let log = std::env::temp_dir().join(format!("{}-{name}.log", lab.id()));
    let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("RUST_LOG", "info")
        // The agent runs no program (routes and addresses go over rtnetlink, so the
        // hub never waits for a subprocess): a PATH with none proves it.
        .env("PATH", NO_PROGRAMS)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    let pid = lab.spawn(ns, cmd)?;
    Ok(Agent { pid, log })
}

/// Starts the concentrator with XDP on the uplink and the LAN link, the lab's pool,
/// and `extra` arguments (users, policies); returns once it accepts connections.
pub fn start_server(lab: &mut Lab, bin: &Path, extra: &[&str]) -> anyhow::Result<Agent> {
    start_server_on(lab, bin, ifname::UPLINK, extra)
}

/// As [`start_server`], with XDP asked for on `uplink` (a missing interface makes the
/// agent fall back to its own path).
pub fn start_server_on(
    lab: &mut Lab,
    bin: &Path,
    uplink: &str,
    extra: &[&str],
) -> anyhow::Result<Agent> {
    let bpffs = lab.bpffs()?;
    let mut args: Vec<String> = [
        "serve",
        "--uplink",
        uplink,
        "--lan",
        ifname::LAN,
        "--local-ip",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(SERVER_TUNNEL_ADDR.to_string());
    args.push("--pool".into());
    args.push(format!("{}-192.0.2.250", addr::POOL_START));
    args.push("--bpffs".into());
    args.push(bpffs.display().to_string());
    args.extend(["--instance".into(), SERVER_INSTANCE.into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    start_server_with(lab, bin, args)
}

/// Starts `pptp-agent` with `args` (a `serve` command line) in the concentrator's
/// namespace, with the lab's own API socket (labs run in parallel); returns once it
/// accepts connections.
pub fn start_server_with(lab: &mut Lab, bin: &Path, args: Vec<String>) -> anyhow::Result<Agent> {
    let ns = lab.concentrator_ns();
    let socket = api_socket(lab);
    start_serving_in(lab, bin, &ns, args, &socket, "server")
}

/// Starts `pptp-agent` with `args` (a `serve` command line) in namespace `ns`, with
/// API socket `socket`, its log named after `name`; returns once it accepts
/// connections.
pub fn start_serving_in(
    lab: &mut Lab,
    bin: &Path,
    ns: &str,
    mut args: Vec<String>,
    socket: &Path,
    name: &str,
) -> anyhow::Result<Agent> {
    args.push("--api-socket".into());
    args.push(socket.display().to_string());
    let agent = spawn(lab, ns, bin, &args, name)?;
    wait_for(Duration::from_secs(20), || listening(ns, 1723)).with_context(|| {
        format!(
            "the agent in {ns} did not listen on 1723:\n{}",
            agent.log_tail()
        )
    })?;
    Ok(agent)
}

/// The sessions (`sessions --json`) of the agent whose API socket is `socket`.
pub fn sessions_at(bin: &Path, socket: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let out = output_within(
        Command::new(bin)
            .args(["sessions", "--json", "--api-socket"])
            .arg(socket),
        Duration::from_secs(10),
    )?;
    if !out.status.success() {
        bail!("sessions: {}", String::from_utf8_lossy(&out.stderr));
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(json["sessions"].as_array().cloned().unwrap_or_default())
}

/// Dials the lab's concentrator from client `i` with `extra` arguments (user,
/// password, policies); returns once the client's tunnel has its address.
pub fn dial(lab: &mut Lab, bin: &Path, i: usize, extra: &[&str]) -> anyhow::Result<Agent> {
    dial_to(lab, bin, i, addr::CONC_WAN, extra)
}

/// As [`dial`], as `user` with `password`, authenticating with `auth` and with
/// MPPE `mppe` (`dial --auth` and `--mppe`).
pub fn dial_as(
    lab: &mut Lab,
    bin: &Path,
    i: usize,
    user: &str,
    password: &str,
    auth: &str,
    mppe: &str,
) -> anyhow::Result<Agent> {
    let args = [
        "--user",
        user,
        "--password",
        password,
        "--auth",
        auth,
        "--mppe",
        mppe,
    ];
    dial(lab, bin, i, &args)
}

/// As [`dial`], to the PPTP server at `server` (a real peer, say).
pub fn dial_to(
    lab: &mut Lab,
    bin: &Path,
    i: usize,
    server: Ipv4Addr,
    extra: &[&str],
) -> anyhow::Result<Agent> {
    let mut args: Vec<String> = vec!["dial".into(), "--server".into(), server.to_string()];
    args.extend(["--route".into(), "203.0.113.0/24".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let ns = lab.client_ns(i);
    let agent = spawn(lab, &ns, bin, &args, &format!("client{i}"))?;
    let mut exit = None;
    let up = wait_for(Duration::from_secs(20), || {
        exit = lab.exited(agent.pid);
        exit.is_some() || tunnel_address(&ns).is_some()
    });
    match (up, exit) {
        (Ok(()), None) => Ok(agent),
        (_, Some(status)) => bail!("client {i} exited ({status}):\n{}", agent.log_tail()),
        (Err(e), None) => {
            Err(e).with_context(|| format!("client {i} did not come up:\n{}", agent.log_tail()))
        }
    }
}

/// The address of the client's tunnel device in `ns`, once it is up.
pub fn tunnel_address(ns: &str) -> Option<Ipv4Addr> {
    let out = netns::output(
        Command::new("ip").args(["-n", ns, "-j", "-4", "addr", "show", "dev", CLIENT_TUN]),
    )
    .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    json[0]["addr_info"][0]["local"].as_str()?.parse().ok()
}

/// Packets received and sent by `dev` in `ns`.
pub fn link_packets(ns: &str, dev: &str) -> anyhow::Result<(u64, u64)> {
    let out =
        netns::output(Command::new("ip").args(["-n", ns, "-j", "-s", "link", "show", "dev", dev]))?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let stats = &json[0]["stats64"];
    Ok((
        stats["rx"]["packets"].as_u64().context("no rx packets")?,
        stats["tx"]["packets"].as_u64().context("no tx packets")?,
    ))
}

/// Whether something listens on TCP `port` in `ns`.
pub fn listening(ns: &str, port: u16) -> bool {
    let needle = format!(":{port:04X} 00000000:0000 0A");
    netns::run_in(ns, move || {
        Ok(std::fs::read_to_string("/proc/thread-self/net/tcp")?)
    })
    .map(|tcp| tcp.contains(&needle))
    .unwrap_or(false)
}

/// Pings `dst` from `ns` every 0.2 s until `count` echoes are answered; true if they
/// are within `count + 3` seconds. A lost echo (a route or map entry that lands a
/// moment after the client's address, on a loaded machine) costs a resend, not the
/// test; a path that carries nothing still fails.
pub fn ping(ns: &str, dst: Ipv4Addr, count: u32) -> anyhow::Result<bool> {
    let mut cmd = Command::new("ping");
    cmd.args([
        "-c",
        &count.to_string(),
        "-i",
        "0.2",
        "-w",
        &(count + 3).to_string(),
        &dst.to_string(),
    ]);
    netns::command_in(ns, &mut cmd)?;
    let out = cmd
        .output()
        .context("ping (run `cargo xtask setup` for iputils-ping)")?;
    Ok(out.status.success())
}

/// The concentrator's routes on its TUN device (one per session on the agent's path
/// and per fast-path client, for the box's own traffic), as `ip route` prints them.
pub fn tunnel_routes(lab: &Lab) -> anyhow::Result<String> {
    let out = crate::netns::output(Command::new("ip").args([
        "-n",
        &lab.concentrator_ns(),
        "route",
        "show",
        "dev",
        "pptp0",
    ]))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The API socket of the lab's concentrator (in the lab's run directory).
pub fn api_socket(lab: &Lab) -> PathBuf {
    Path::new(crate::lab::RUN_ROOT)
        .join(lab.id())
        .join("api.sock")
}

/// Runs an operator command (`sessions`, `kill`, `stats`) against the lab's
/// concentrator (its API socket, pins and instance added), bounded in time; returns
/// its output whether it succeeded or not.
pub fn operator(lab: &mut Lab, bin: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .arg("--api-socket")
        .arg(api_socket(lab))
        .args(["--instance", SERVER_INSTANCE]);
    if args.first() == Some(&"stats") {
        cmd.arg("--bpffs").arg(lab.bpffs()?);
    }
    output_within(&mut cmd, Duration::from_secs(30))
}

/// Runs `cmd` to completion, killing it (by its PID) if it takes longer than `limit`.
pub fn output_within(cmd: &mut Command, limit: Duration) -> anyhow::Result<std::process::Output> {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            // SAFETY: kill(2) on the PID of our own child, not yet reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let out = child.wait_with_output();
    let _ = done_tx.send(());
    let _ = watchdog.join();
    Ok(out?)
}

/// `pptp-agent stats --json` of the lab's concentrator.
pub fn stats(lab: &mut Lab, bin: &Path) -> anyhow::Result<Value> {
    let out = operator(lab, bin, &["stats", "--json"])?;
    anyhow::ensure!(
        out.status.success(),
        "stats: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The concentrator's session totals (`sessions`, `up`, `starting`, `xdp`,
/// `agent`) from `stats --limit 0`: no rows, cheap to ask often with thousands of
/// sessions (and no answer of that size left in the agent's memory); `None` when
/// it does not answer.
pub fn totals(lab: &mut Lab, bin: &Path) -> Option<Value> {
    let out = operator(lab, bin, &["stats", "--limit", "0", "--json"]).ok()?;
    Some(serde_json::from_slice::<Value>(&out.stdout).ok()?["totals"].take())
}

/// Sessions up on the concentrator ([`totals`]); 0 when it does not answer.
pub fn up_sessions(lab: &mut Lab, bin: &Path) -> u64 {
    totals(lab, bin).and_then(|t| t["up"].as_u64()).unwrap_or(0)
}

/// The concentrator's sessions (`sessions --json`); empty when it does not answer.
pub fn sessions(lab: &mut Lab, bin: &Path) -> Vec<Value> {
    operator(lab, bin, &["sessions", "--json"])
        .ok()
        .and_then(|out| serde_json::from_slice::<Value>(&out.stdout).ok())
        .and_then(|v| v["sessions"].as_array().cloned())
        .unwrap_or_default()
}

/// A global XDP counter's packets from `stats --json`, if it is there.
pub fn xdp_counter(stats: &Value, name: &str) -> Option<u64> {
    stats["counters"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == name))
        .and_then(|c| c["packets"].as_u64())
}

/// A global XDP counter's packets from `stats --json`; panics if it is missing.
pub fn counter(stats: &Value, name: &str) -> u64 {
    xdp_counter(stats, name).unwrap_or_else(|| panic!("no counter {name} in {stats}"))
}

/// A concentrator started in the lab from a configuration file (the lab's
/// interfaces, bpffs and pool; `auth` lines in `[auth]`; `extra` sections) with
/// `secrets` as its chap-secrets. The files are removed on drop.
pub struct Configured {
    pub dir: PathBuf,
    pub secrets: PathBuf,
    pub server: Agent,
}

impl Drop for Configured {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn start_configured(
    lab: &mut Lab,
    bin: &std::path::Path,
    secrets: &str,
    auth: &str,
    extra: &str,
) -> Configured {
    let dir = std::env::temp_dir().join(format!("{}-config", lab.id()));
    let spec = ConfigSpec {
        xdp: true,
        pools: &["192.0.2.10-192.0.2.250"],
        secrets,
        auth,
        extra,
    };
    let server = start_from_config(lab, bin, &dir, &spec).unwrap();
    Configured {
        secrets: dir.join("chap-secrets"),
        dir,
        server,
    }
}

/// What a lab concentrator's configuration file holds beyond the lab's own facts
/// (bpffs, instance, tunnel address).
pub struct ConfigSpec<'a> {
    /// XDP on the lab's uplink and LAN link; without it every session takes the
    /// agent's path.
    pub xdp: bool,
    /// `tunnel.pools`.
    pub pools: &'a [&'a str],
    /// The chap-secrets file's content.
    pub secrets: &'a str,
    /// Lines of `[auth]` besides `secrets`.
    pub auth: &'a str,
    /// Further sections.
    pub extra: &'a str,
}

/// Writes `dir/pptp-agent.toml` and `dir/chap-secrets` for `spec` and starts the
/// concentrator from them.
pub fn start_from_config(
    lab: &mut Lab,
    bin: &Path,
    dir: &Path,
    spec: &ConfigSpec,
) -> anyhow::Result<Agent> {
    let config = write_config(lab, dir, spec)?;
    start_server_with(
        lab,
        bin,
        vec![
            "serve".into(),
            "--config".into(),
            config.display().to_string(),
        ],
    )
}

/// Writes `dir/pptp-agent.toml` and `dir/chap-secrets` for `spec`; returns the
/// configuration's path.
pub fn write_config(lab: &mut Lab, dir: &Path, spec: &ConfigSpec) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let secrets = dir.join("chap-secrets");
    std::fs::write(&secrets, spec.secrets)?;
    // As an operator must keep it (the agent warns otherwise).
    std::fs::set_permissions(
        &secrets,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    let links = if spec.xdp {
        format!(
            "uplink = [\"{}\"]\nlan = [\"{}\"]\n",
            ifname::UPLINK,
            ifname::LAN
        )
    } else {
        String::new()
    };
    let pools: Vec<String> = spec.pools.iter().map(|p| format!("{p:?}")).collect();
    let config = dir.join("pptp-agent.toml");
    std::fs::write(
        &config,
        format!(
            "[interfaces]\n{links}bpffs = \"{bpffs}\"\ninstance = \"{SERVER_INSTANCE}\"\n\
             [tunnel]\nlocal_ip = \"192.0.2.1\"\npools = [{pools}]\n\
             [auth]\nsecrets = \"{secrets}\"\n{auth}\n{extra}\n",
            bpffs = lab.bpffs()?.display(),
            pools = pools.join(", "),
            secrets = secrets.display(),
            auth = spec.auth,
            extra = spec.extra,
        ),
    )?;
    Ok(config)
}

/// A scrape of the Prometheus endpoint `/metrics` at `addr` from inside namespace
/// `ns`: the whole HTTP answer.
pub fn scrape(ns: &str, addr: std::net::SocketAddr) -> String {
    use std::io::{Read as _, Write as _};
    netns::run_in(ns, move || {
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    })
    .unwrap()
}

/// The value of `series` in a scrape's body.
pub fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}
