//! The calling router in network namespaces (docs/calling-router.md):
//! - the Seattle/New York example of "TCP/IP Fundamentals for Microsoft Windows"
//!   ch. 14: two sites with a LAN host each, both routers running our agent with a
//!   demand-dial interface toward the other; a ping from one LAN to the other dials,
//!   the idle timer hangs up, traffic from the other side dials again, and both
//!   sides dialing at once leave one call;
//! - an answer-only interface: the answering router routes the calling router's
//!   networks while the call is up, and only then, and a restarted caller's new call
//!   takes them over from its stale one;
//! - a persistent interface: connected at start, never idled out, called again when
//!   the other side hangs up; the host route to the other router goes with the agent;
//! - a router that died without a word and calls again: its new call takes over the
//!   interface once up, the stale one is hung up after;
//! - an ISP-initiated (compulsory) tunnel: our agent as PAC places an
//!   Incoming-Call-Request toward our concentrator, which answers as PNS; ping and
//!   TCP cross it;
//! - a multihomed concentrator (KB Q217079): default route on the Internet side only,
//!   LAN on another interface, client traffic reaches the LAN with no extra route.
//!
//! Needs root. The lab's concentrator namespace is Seattle (WAN 198.51.100.1, LAN
//! 203.0.113.0/27 with its host 203.0.113.10); client 0's namespace is New York (WAN
//! 198.51.100.10) with a LAN of its own, 192.0.2.128/25 and its host 192.0.2.138.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use pptp_tests::{
    agents::{self, Agent},
    demo::wait_for,
    lab::{Lab, LabSpec, addr, sysctl},
    netns::{self, ip, ip_in},
    nft,
    traffic::{EchoServer, tcp_exchange},
};

const NY_ROUTER_LAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 129);
const NY_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 138);
const NY_LAN: &str = "192.0.2.128/25";
const SEATTLE_LAN: &str = "203.0.113.0/27";
/// The demand-dial interfaces, named as in the book.
const DD_NEW_YORK: &str = "DD_NewYork";
const DD_SEATTLE: &str = "DD_Seattle";
const IDLE_SECS: u64 = 3;

/// One router's agent: where it runs, its configuration and API socket.
struct Router {
    agent: Agent,
    socket: PathBuf,
    ns: String,
    config: PathBuf,
    name: &'static str,
}

impl Router {
    fn sessions(&self) -> Vec<serde_json::Value> {
        agents::sessions_at(&agents::agent_bin(), &self.socket).unwrap()
    }

    /// Its one demand-dial interface (`interfaces --json`).
    fn interface(&self) -> serde_json::Value {
        let out = agents::output_within(
            Command::new(agents::agent_bin())
                .args(["interfaces", "--json", "--api-socket"])
                .arg(&self.socket),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(out.status.success(), "{out:?}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["interfaces"][0].clone()
    }
}

/// The two sites.
struct Sites {
    lab: Lab,
    dir: PathBuf,
    seattle: Router,
    new_york: Router,
}

impl Drop for Sites {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Sites {
    fn seattle_ns(&self) -> String {
        self.lab.concentrator_ns()
    }
    fn new_york_ns(&self) -> String {
        self.lab.client_ns(0)
    }
    fn seattle_host_ns(&self) -> String {
        self.lab.lan_ns()
    }
    fn new_york_host_ns(&self) -> String {
        format!("{}-nylan", self.lab.id())
    }
    fn logs(&self) -> String {
        format!(
            "--- Seattle:\n{}\n--- New York:\n{}",
            self.seattle.agent.log_tail(),
            self.new_york.agent.log_tail()
        )
    }
}

/// A router's configuration: its tunnel addresses, one demand-dial interface (`mode`
/// "on-demand" dials `server`; "answer" only answers), and the chap-secrets line
/// the other router dials in with.
#[allow(clippy::too_many_arguments)]
fn router_config(
    dir: &Path,
    site: &str,
    local_ip: &str,
    pool: &str,
    interface: &str,
    mode: &str,
    server: Ipv4Addr,
    dial_out: (&str, &str),
    routes: &str,
    dial_in: (&str, &str),
) -> PathBuf {
    let secrets = dir.join(format!("{site}-secrets"));
    std::fs::write(&secrets, format!("{} * \"{}\" *\n", dial_in.0, dial_in.1)).unwrap();
    let dialing = if mode == "answer" {
        String::new()
    } else {
        format!(
            "server = \"{server}\"\nuser = \"{}\"\npassword = \"{}\"\nidle_timeout = {IDLE_SECS}\n",
            dial_out.0, dial_out.1
        )
    };
    let config = dir.join(format!("{site}.toml"));
    std::fs::write(
        &config,
        format!(
            "name = \"{site}\"\n\
             [interfaces]\ntun = \"pptp0\"\n\
             [tunnel]\nlocal_ip = \"{local_ip}\"\npools = [\"{pool}\"]\n\
             [auth]\nsecrets = \"{secrets}\"\n\
             [[demand_dial]]\nname = \"{interface}\"\nmode = \"{mode}\"\nroutes = [\"{routes}\"]\n{dialing}",
            secrets = secrets.display(),
        ),
    )
    .unwrap();
    config
}

/// Builds the sites; Seattle's interface toward New York has `seattle_mode`, New
/// York's toward Seattle `new_york_mode`.
fn sites(seattle_mode: &str, new_york_mode: &str) -> Sites {
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let (ny, ny_lan) = (lab.client_ns(0), format!("{}-nylan", lab.id()));
    ip(&["netns", "add", &ny_lan]).unwrap();
    ip_in(&ny_lan, &["link", "set", "lo", "up"]).unwrap();
    ip(&[
        "link", "add", "name", "lan0", "netns", &ny, "type", "veth", "peer", "name", "eth0",
        "netns", &ny_lan,
    ])
    .unwrap();
    ip_in(
        &ny,
        &["addr", "add", &format!("{NY_ROUTER_LAN}/25"), "dev", "lan0"],
    )
    .unwrap();
    ip_in(&ny, &["link", "set", "lan0", "up"]).unwrap();
    ip_in(
        &ny_lan,
        &["addr", "add", &format!("{NY_HOST}/25"), "dev", "eth0"],
    )
    .unwrap();
    ip_in(&ny_lan, &["link", "set", "eth0", "up"]).unwrap();
    ip_in(
        &ny_lan,
        &["route", "add", "default", "via", &NY_ROUTER_LAN.to_string()],
    )
    .unwrap();
    sysctl(&ny, "net/ipv4/ip_forward", "1").unwrap();

    let dir = std::env::temp_dir().join(format!("{}-router", lab.id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seattle_config = router_config(
        &dir,
        "seattle",
        "192.0.2.1",
        "192.0.2.10-192.0.2.19",
        DD_NEW_YORK,
        seattle_mode,
        addr::client(0),
        (DD_SEATTLE, "7%uQv45l?p!kWy9*"),
        NY_LAN,
        (DD_NEW_YORK, "h8#dW@93z~[Fc6$Q"),
    );
    let new_york_config = router_config(
        &dir,
        "newyork",
        "192.0.2.65",
        "192.0.2.70-192.0.2.79",
        DD_SEATTLE,
        new_york_mode,
        addr::CONC_WAN,
        (DD_NEW_YORK, "h8#dW@93z~[Fc6$Q"),
        SEATTLE_LAN,
        (DD_SEATTLE, "7%uQv45l?p!kWy9*"),
    );
    let seattle_ns = lab.concentrator_ns();
    let seattle = start_router(&mut lab, &dir, &seattle_ns, &seattle_config, "seattle");
    let new_york = start_router(&mut lab, &dir, &ny, &new_york_config, "newyork");
    Sites {
        lab,
        dir,
        seattle,
        new_york,
    }
}

/// Starts a router's agent from `config` in `ns`.
fn start_router(lab: &mut Lab, dir: &Path, ns: &str, config: &Path, name: &'static str) -> Router {
    let socket = dir.join(format!("{name}.sock"));
    let args = vec![
        "serve".into(),
        "--config".into(),
        config.display().to_string(),
    ];
    let agent =
        agents::start_serving_in(lab, &agents::agent_bin(), ns, args, &socket, name).unwrap();
    Router {
        agent,
        socket,
        ns: ns.to_owned(),
        config: config.to_owned(),
        name,
    }
}

/// Kills Seattle's agent without a word: no LCP Terminate, no Call-Clear, and its
/// kernel's FIN/RST on the control connection dropped, so New York does not notice.
fn kill_silently(s: &mut Sites) {
    let seattle_ns = s.seattle_ns();
    let nft = |args: &[&str]| {
        netns::run_in_ns(&seattle_ns, Command::new("nft").args(args))
            .expect("nft (run `cargo xtask setup` for nftables)");
    };
    nft(&["add", "table", "inet", "mute"]);
    nft(&[
        "add",
        "chain",
        "inet",
        "mute",
        "output",
        "{ type filter hook output priority 0; }",
    ]);
    nft(&[
        "add",
        "rule",
        "inet",
        "mute",
        "output",
        "tcp",
        "flags",
        "&",
        "(fin|rst)",
        "!=",
        "0",
        "drop",
    ]);
    let pid = s.seattle.agent.pid;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for(Duration::from_secs(5), || s.lab.exited(pid).is_some()).unwrap();
    nft(&["delete", "table", "inet", "mute"]);
}

/// Starts Seattle's agent again, same configuration.
fn restart_seattle(s: &mut Sites) {
    let (dir, ns, config) = (
        s.dir.clone(),
        s.seattle.ns.clone(),
        s.seattle.config.clone(),
    );
    s.seattle = start_router(&mut s.lab, &dir, &ns, &config, s.seattle.name);
}

/// `ip route show <prefix>` in `ns`: the devices routing it.
fn route_devices(ns: &str, prefix: &str) -> Vec<String> {
    let out =
        netns::output(Command::new("ip").args(["-n", ns, "-j", "route", "show", prefix])).unwrap();
    let routes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    routes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["dev"].as_str().map(str::to_owned))
        .collect()
}

/// The IPv4 addresses on `dev` in `ns`.
fn addresses(ns: &str, dev: &str) -> Vec<String> {
    let out =
        netns::output(Command::new("ip").args(["-n", ns, "-j", "-4", "addr", "show", "dev", dev]))
            .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    json[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["local"].as_str().map(str::to_owned))
        .collect()
}

/// One echo request, answered within `wait_secs`.
fn ping_once(ns: &str, dst: Ipv4Addr, wait_secs: u32) -> bool {
    let mut cmd = Command::new("ping");
    cmd.args(["-c", "1", "-W", &wait_secs.to_string(), &dst.to_string()]);
    netns::command_in(ns, &mut cmd).unwrap();
    cmd.output().unwrap().status.success()
}

/// The session bound to `interface`, if there is one.
fn bound(sessions: &[serde_json::Value], interface: &str) -> Option<serde_json::Value> {
    sessions
        .iter()
        .find(|s| s["interface"].as_str() == Some(interface))
        .cloned()
}

/// Both sides hang up on their own within the idle timeout (plus LCP's close).
fn wait_for_idle_hang_up(s: &Sites) {
    wait_for(Duration::from_secs(IDLE_SECS + 8), || {
        s.seattle.sessions().is_empty() && s.new_york.sessions().is_empty()
    })
    .unwrap_or_else(|e| panic!("the link did not idle out: {e:#}\n{}", s.logs()));
}

#[test]
fn seattle_and_new_york_dial_each_other_on_demand() {
    let s = sites("on-demand", "on-demand");
    let (sea, ny) = (s.seattle_ns(), s.new_york_ns());

    // Before any call: each interface and its routes exist, the route to the other
    // router's PPTP address is pinned to the WAN link, and nothing is connected.
    assert_eq!(route_devices(&sea, NY_LAN), [DD_NEW_YORK]);
    assert_eq!(route_devices(&ny, SEATTLE_LAN), [DD_SEATTLE]);
    assert_eq!(
        route_devices(&sea, &format!("{}/32", addr::client(0))),
        ["up0"]
    );
    assert_eq!(
        route_devices(&ny, &format!("{}/32", addr::CONC_WAN)),
        ["eth0"]
    );
    assert!(s.seattle.sessions().is_empty() && s.new_york.sessions().is_empty());
    assert!(addresses(&sea, DD_NEW_YORK).is_empty());
    let idle = s.seattle.interface();
    assert_eq!(
        (idle["name"].as_str(), idle["state"].as_str()),
        (Some(DD_NEW_YORK), Some("idle"))
    );
    assert_eq!(idle["dials"], 0);

    // A Seattle host pings a New York host: the one packet dials the link, waits for
    // it, and is answered.
    assert!(
        ping_once(&s.seattle_host_ns(), NY_HOST, 10),
        "the packet that dialed was not delivered\n{}",
        s.logs()
    );
    let at_seattle = bound(&s.seattle.sessions(), DD_NEW_YORK).expect("Seattle's call");
    let at_new_york = bound(&s.new_york.sessions(), DD_SEATTLE)
        .expect("New York bound the call to DD_Seattle by its user name");
    assert_eq!(at_new_york["user"], DD_SEATTLE);
    assert_eq!(at_new_york["state"], "up");
    assert_eq!(at_seattle["state"], "up");
    let dialed = s.seattle.interface();
    assert_eq!(dialed["state"], "up");
    assert_eq!(dialed["session"], at_seattle["id"]);
    assert_eq!(dialed["dials"], 1);
    assert!(
        dialed["queued"].as_u64() >= Some(1),
        "the ping waited: {dialed}"
    );
    assert_eq!(dialed["dropped_queue_full"], 0);
    assert_eq!(s.new_york.interface()["dials"], 0, "New York answered");
    // The link's addresses are on both interfaces while it is up.
    assert_eq!(addresses(&ny, DD_SEATTLE), ["192.0.2.65"]);
    assert_eq!(addresses(&sea, DD_NEW_YORK).len(), 1);
    assert!(
        ping_once(&s.new_york_host_ns(), addr::LAN_HOST, 2),
        "and back"
    );

    // Idle for IDLE_SECS: both hang up; the link's addresses go, the routes stay
    // (they are what dials next time).
    wait_for_idle_hang_up(&s);
    let hung_up = s.seattle.interface();
    assert_eq!(hung_up["state"], "idle");
    // Whichever idle timer fired first hung up (both may have).
    let idle_hangups = hung_up["idle_hangups"].as_u64().unwrap()
        + s.new_york.interface()["idle_hangups"].as_u64().unwrap();
    assert!((1..=2).contains(&idle_hangups), "{idle_hangups}");
    assert_eq!(hung_up["session"], serde_json::Value::Null);
    assert!(addresses(&sea, DD_NEW_YORK).is_empty());
    assert!(addresses(&ny, DD_SEATTLE).is_empty());
    assert_eq!(route_devices(&sea, NY_LAN), [DD_NEW_YORK]);

    // Traffic from New York dials the other way.
    assert!(
        ping_once(&s.new_york_host_ns(), addr::LAN_HOST, 10),
        "New York's packet that dialed was not delivered\n{}",
        s.logs()
    );
    let answered =
        bound(&s.seattle.sessions(), DD_NEW_YORK).expect("Seattle bound New York's call");
    assert_eq!(answered["user"], DD_NEW_YORK, "New York dialed this time");
    wait_for_idle_hang_up(&s);

    // Both sides dial at the same moment: one call survives on both sides and both
    // first packets arrive. Each router drops incoming connections to port 1723
    // until both have dialed (each interface counts its call and is dialing), so
    // the two calls are placed before either is answered.
    let dials = |s: &Sites| {
        [s.seattle.interface(), s.new_york.interface()]
            .map(|i| (i["dials"].as_u64().unwrap(), i["state"].clone()))
    };
    let [(sea_dials, _), (ny_dials, _)] = dials(&s);
    let log_of = |router: &Router| std::fs::read_to_string(&router.agent.log).unwrap();
    let marks = [log_of(&s.seattle).len(), log_of(&s.new_york).len()];
    for ns in [&sea, &ny] {
        nft::hold_tcp_port(ns, 1723).unwrap();
    }
    let (sea_host, ny_host) = (s.seattle_host_ns(), s.new_york_host_ns());
    let from_seattle = std::thread::spawn(move || ping_once(&sea_host, NY_HOST, 15));
    let from_new_york = std::thread::spawn(move || ping_once(&ny_host, addr::LAN_HOST, 15));
    let both_dialing = wait_for(Duration::from_secs(5), || {
        dials(&s)
            == [
                (sea_dials + 1, "dialing".into()),
                (ny_dials + 1, "dialing".into()),
            ]
    });
    for ns in [&sea, &ny] {
        nft::release_tcp_port(ns).unwrap();
    }
    both_dialing.unwrap_or_else(|e| {
        panic!(
            "both routers dial: {e:#}; (dials, state) {:?}\n{}",
            dials(&s),
            s.logs()
        )
    });
    let both = (from_seattle.join().unwrap(), from_new_york.join().unwrap());
    assert_eq!(both, (true, true), "\n{}", s.logs());
    // Both calls placed: a router that has both bound to its interface settles them
    // (logs it and clears one); the other may see its duplicate cleared before it
    // was bound (authenticated), so at least one of the two says so. A router whose
    // SYN still waited for TCP's retransmission when the other call bound the
    // interface may never place its own: then there is nothing to settle
    // (engine::tests::routers covers the collision itself on a virtual clock).
    let logs: Vec<String> = [(&s.seattle, marks[0]), (&s.new_york, marks[1])]
        .into_iter()
        .map(|(router, mark)| log_of(router)[mark..].to_string())
        .collect();
    let placed = logs
        .iter()
        .all(|log| log.contains("control connection established"));
    let settled = logs
        .iter()
        .any(|log| log.contains("two calls for one interface"));
    if placed {
        assert!(
            settled,
            "both calls placed, and one router settled them\n{}",
            s.logs()
        );
    } else {
        eprintln!("one call only in this collision: the other router's dial never connected");
    }
    wait_for(Duration::from_secs(5), || {
        s.seattle.sessions().len() == 1 && s.new_york.sessions().len() == 1
    })
    .unwrap_or_else(|e| panic!("two calls left: {e:#}\n{}", s.logs()));
    let (a, b) = (s.seattle.sessions(), s.new_york.sessions());
    assert!(bound(&a, DD_NEW_YORK).is_some() && bound(&b, DD_SEATTLE).is_some());
    assert_eq!(
        a[0]["local_call_id"], b[0]["peer_call_id"],
        "both sides kept the same call"
    );
}

#[test]
fn a_restarted_router_replaces_its_stale_call() {
    let mut s = sites("on-demand", "on-demand");
    assert!(
        ping_once(&s.seattle_host_ns(), NY_HOST, 10),
        "\n{}",
        s.logs()
    );
    let stale = bound(&s.new_york.sessions(), DD_SEATTLE).expect("the first call")["id"].clone();
    // Seattle dies without a word; New York still has the call bound and up when
    // Seattle, restarted, calls again.
    kill_silently(&mut s);
    assert_eq!(
        bound(&s.new_york.sessions(), DD_SEATTLE).unwrap()["id"],
        stale,
        "New York did not notice"
    );
    restart_seattle(&mut s);
    // The new call takes over once it is up (the stale one is kept until then, and
    // hung up a moment later): the packet that dialed is answered.
    assert!(
        ping_once(&s.seattle_host_ns(), NY_HOST, 10),
        "the new call did not take over\n{}",
        s.logs()
    );
    let interface = s.new_york.interface();
    assert_eq!(interface["state"], "up");
    assert_ne!(
        interface["session"], stale,
        "New York's interface sends on the new call"
    );
    assert!(
        s.new_york
            .sessions()
            .iter()
            .any(|x| x["id"] == interface["session"] && x["state"] == "up")
    );
    wait_for(Duration::from_secs(15), || s.new_york.sessions().len() == 1)
        .unwrap_or_else(|e| panic!("the stale call stayed: {e:#}\n{}", s.logs()));
}

#[test]
fn answering_router_routes_the_callers_networks_only_while_connected() {
    let mut s = sites("on-demand", "answer");
    let ny = s.new_york_ns();
    assert!(
        route_devices(&ny, SEATTLE_LAN).is_empty(),
        "no route to Seattle before the call"
    );
    assert!(
        ping_once(&s.seattle_host_ns(), NY_HOST, 10),
        "Seattle's call\n{}",
        s.logs()
    );
    assert_eq!(
        route_devices(&ny, SEATTLE_LAN),
        ["pptp0"],
        "New York routes Seattle's LAN to the call"
    );
    assert!(
        agents::ping(&s.new_york_host_ns(), addr::LAN_HOST, 3).unwrap(),
        "New York's LAN reaches Seattle's through the route"
    );
    // Seattle restarts without hanging up and calls again: its new session takes
    // the route over from its stale one.
    kill_silently(&mut s);
    assert_eq!(s.new_york.sessions().len(), 1, "New York did not notice");
    restart_seattle(&mut s);
    assert!(
        ping_once(&s.seattle_host_ns(), NY_HOST, 10),
        "the new call did not get the route\n{}",
        s.logs()
    );
    assert_eq!(route_devices(&ny, SEATTLE_LAN), ["pptp0"]);
    wait_for_idle_hang_up(&s);
    assert!(
        route_devices(&ny, SEATTLE_LAN).is_empty(),
        "the route left with the call"
    );
}

#[test]
fn persistent_interface_dials_at_start_and_redials_when_the_link_is_lost() {
    let mut s = sites("persistent", "answer");
    let connected = |s: &Sites| {
        bound(&s.seattle.sessions(), DD_NEW_YORK).is_some_and(|x| x["state"] == "up")
            && s.new_york.sessions().len() == 1
    };
    wait_for(Duration::from_secs(10), || connected(&s))
        .unwrap_or_else(|e| panic!("no call at start: {e:#}\n{}", s.logs()));
    let first = bound(&s.seattle.sessions(), DD_NEW_YORK).unwrap()["id"].clone();
    // No idle hang-up for a persistent link.
    std::thread::sleep(Duration::from_secs(IDLE_SECS + 1));
    assert_eq!(
        bound(&s.seattle.sessions(), DD_NEW_YORK).unwrap()["id"],
        first
    );
    // New York's operator hangs the call up: Seattle calls again by itself.
    let out = agents::output_within(
        Command::new(agents::agent_bin())
            .args(["kill", "--all", "--api-socket"])
            .arg(&s.new_york.socket),
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_for(Duration::from_secs(10), || {
        bound(&s.seattle.sessions(), DD_NEW_YORK)
            .is_some_and(|x| x["id"] != first && x["state"] == "up")
    })
    .unwrap_or_else(|e| panic!("no redial: {e:#}\n{}", s.logs()));
    assert!(agents::ping(&s.seattle_host_ns(), NY_HOST, 2).unwrap());
    // Stopped, Seattle takes its host route to New York with it.
    let host_route = format!("{}/32", addr::client(0));
    assert_eq!(route_devices(&s.seattle_ns(), &host_route), ["up0"]);
    let pid = s.seattle.agent.pid;
    s.lab.stop(pid, Duration::from_secs(10)).unwrap();
    assert!(route_devices(&s.seattle_ns(), &host_route).is_empty());
}

#[test]
fn isp_initiated_call_carries_ping_and_tcp() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let server = agents::start_server(&mut lab, &bin, &["--user", "alice:alice-pw"]).unwrap();
    let dialed = std::time::Instant::now();
    let pac = agents::dial(
        &mut lab,
        &bin,
        0,
        &["--incoming", "--user", "alice", "--password", "alice-pw"],
    )
    .unwrap();
    let setup = dialed.elapsed();
    // The PAC sends its first LCP frame right after Incoming-Call-Connected: XDP
    // (dropping GRE of unknown calls) must already know the call, or the frame is
    // lost and LCP waits out its 3-second restart timer.
    let unknown = agents::counter(&agents::stats(&mut lab, &bin).unwrap(), "unknown_session");
    assert_eq!(
        unknown,
        0,
        "GRE of the incoming call reached XDP before the call was installed (set-up took {setup:?}):\n{}",
        server.log_tail()
    );
    let client = lab.client_ns(0);
    assert!(agents::ping(&client, addr::LAN_HOST, 3).unwrap());
    let echo = EchoServer::start(&lab.lan_ns(), SocketAddrV4::new(addr::LAN_HOST, 7001)).unwrap();
    let sent = tcp_exchange(&client, echo.address(), 200_000).unwrap();
    assert_eq!(sent.payload, 200_000);
    let server_log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        server_log.contains("call accepted") && server_log.contains("\"incoming\""),
        "the concentrator answered an Incoming-Call-Request:\n{}",
        server.log_tail()
    );
    let pac_log = std::fs::read_to_string(&pac.log).unwrap();
    assert!(
        pac_log.contains("control connection established") && pac_log.contains("Incoming"),
        "{}",
        pac.log_tail()
    );
}

#[test]
fn multihomed_concentrator_needs_no_route_for_client_traffic() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    // The Internet side has the default gateway; the LAN only its connected route.
    let (wan, conc) = (lab.wan_ns(), lab.concentrator_ns());
    ip_in(&wan, &["addr", "add", "198.51.100.2/27", "dev", "br0"]).unwrap();
    ip_in(
        &conc,
        &[
            "route",
            "add",
            "default",
            "via",
            "198.51.100.2",
            "dev",
            "up0",
        ],
    )
    .unwrap();
    let routes_before = routes(&conc);
    agents::start_server(&mut lab, &bin, &["--user", "alice:alice-pw"]).unwrap();
    agents::dial(
        &mut lab,
        &bin,
        0,
        &["--user", "alice", "--password", "alice-pw"],
    )
    .unwrap();
    let client = lab.client_ns(0);
    assert!(agents::ping(&client, addr::LAN_HOST, 3).unwrap());
    let echo = EchoServer::start(&lab.lan_ns(), SocketAddrV4::new(addr::LAN_HOST, 7002)).unwrap();
    assert_eq!(
        tcp_exchange(&client, echo.address(), 100_000)
            .unwrap()
            .payload,
        100_000
    );
    // What the agent added: its TUN's own routes and the session's /32, nothing else.
    let added: Vec<String> = routes(&conc)
        .into_iter()
        .filter(|r| !routes_before.contains(r))
        .filter(|r| !r.contains("dev pptp0"))
        .collect();
    assert!(added.is_empty(), "routes beyond the sessions': {added:?}");
}

/// `ip route` in `ns`, one line per route.
fn routes(ns: &str) -> Vec<String> {
    let out = netns::output(Command::new("ip").args(["-n", ns, "route"])).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
