//! Interoperability with real peers: Debian's pppd, pptp-linux and pptpd in a VM
//! (`pptp_tests::vm`) on the lab's WAN, against our `pptp-agent serve` (with XDP) and
//! our `pptp-agent dial`.
//!
//! One VM is booted for the whole test and the scenarios run in sequence inside it.
//! Each scenario connects, passes ping (every request answered) and 1 MiB of TCP
//! each way (compared byte for byte; in the guest with `cmp`, and every guest script
//! runs under `set -euo pipefail`, so a failed command fails the scenario), and its
//! row in the summary says so; it then hangs up and checks that both ends saw a clean
//! hang-up; its capture (dumpcap
//! on the WAN bridge) is dissected by tshark with no malformed packet and no expert
//! error. A summary table (scenario, result, connect time) is printed at the end,
//! and the test fails if any scenario failed. Needs root, qemu and the VM image
//! (`cargo xtask setup` builds it; this test builds it too when the cache lacks it).

use std::{
    fmt::Write as _,
    io::Write as _,
    net::{Ipv4Addr, SocketAddrV4},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use pptp_tests::{
    agents::{self, Agent},
    capture::{self, Capture},
    demo::wait_for,
    lab::{Lab, LabSpec, addr},
    traffic::{self, EchoServer},
    vm::{self, GUEST_WAN, Guest},
};

const USER: &str = "alice";
const PASSWORD: &str = "interop-secret";
/// Bytes sent each way through every tunnel.
const TCP_BYTES: usize = 1 << 20;
/// Echo requests sent through every tunnel; each must be answered.
const PINGS: u32 = 5;
/// Where the echo servers listen (the LAN host, and the guest for `dial` scenarios).
const ECHO_PORT: u16 = 9000;
/// The authentication methods our server offers: the real client picks one by
/// refusing the others, as pppd users do.
const ALL_AUTH: &str = "mschapv2,mschap,chap,pap";
/// tshark's filter for LCP Terminate-Ack.
const TERMINATE_ACK: &str = "lcp && ppp.code == 6";
/// pptpd's address inside its tunnels (the guest's end of ppp0).
const PPTPD_LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// One guest-side setup for every scenario: pppd reads no distribution defaults
/// (Debian's /etc/ppp/options asks for `auth`, `crtscts` and friends), the PPP
/// modules are loaded, and an echo server listens for the `dial` scenarios.
const GUEST_SETUP: &str = r#"
set -e
: > /etc/ppp/options
modprobe -a ppp_generic ppp_async ppp_mppe ppp_deflate bsd_comp
socat TCP-LISTEN:$ECHO_PORT,fork,reuseaddr EXEC:cat < /dev/null > /dev/null 2>&1 &
echo "kernel $(uname -r)"
dpkg-query -W -f '${Package} ${Version}\n' ppp pptp-linux pptpd
"#;

/// Shell functions the scenario scripts share.
const GUEST_LIB: &str = r#"
alive() { [ -e /proc/$1 ] && ! grep -q '^State:[[:space:]]*Z' /proc/$1/status; }
wait_gone() { for _ in $(seq 150); do alive $1 || return 0; sleep 0.1; done; return 1; }
"#;

/// A real pptp-linux + pppd client against our concentrator.
struct ClientCase {
    name: &'static str,
    /// `pptp-agent serve` arguments beyond the lab's defaults and the user.
    server: &'static [&'static str],
    /// pppd options choosing the method and MPPE.
    pppd: &'static str,
    /// What `pptp-agent sessions` reports as the session's MPPE, `None` for plain
    /// sessions (which must take the XDP path).
    mppe: Option<&'static str>,
    /// tshark filter a frame of the negotiation must match (the method chosen).
    auth_filter: &'static str,
}

const CLIENT_CASES: &[ClientCase] = &[
    ClientCase {
        name: "pptp-linux: MS-CHAPv2 + MPPE-128 stateless",
        server: &[
            "--auth",
            ALL_AUTH,
            "--mppe",
            "require",
            "--mppe-bits",
            "128",
        ],
        pppd: "refuse-eap refuse-pap refuse-chap refuse-mschap require-mppe-128",
        mppe: Some("128-bit stateless"),
        auth_filter: "lcp.opt.algorithm == 0x81 && ppp.code == 2",
    },
    ClientCase {
        name: "pptp-linux: MS-CHAPv2 + MPPE-128 stateful",
        server: &[
            "--auth",
            ALL_AUTH,
            "--mppe",
            "require",
            "--mppe-bits",
            "128",
            "--mppe-stateful",
        ],
        pppd: "refuse-eap refuse-pap refuse-chap refuse-mschap require-mppe-128 mppe-stateful",
        mppe: Some("128-bit stateful"),
        auth_filter: "lcp.opt.algorithm == 0x81 && ppp.code == 2",
    },
    ClientCase {
        name: "pptp-linux: MS-CHAPv2 + MPPE-40",
        server: &[
            "--auth",
            ALL_AUTH,
            "--mppe",
            "require",
            "--mppe-bits",
            "128,40",
        ],
        pppd: "refuse-eap refuse-pap refuse-chap refuse-mschap require-mppe-40",
        mppe: Some("40-bit stateless"),
        auth_filter: "lcp.opt.algorithm == 0x81 && ppp.code == 2",
    },
    ClientCase {
        name: "pptp-linux: MS-CHAPv1 + MPPE-128",
        server: &[
            "--auth",
            ALL_AUTH,
            "--mppe",
            "require",
            "--mppe-bits",
            "128",
        ],
        pppd: "refuse-eap refuse-pap refuse-chap refuse-mschap-v2 require-mppe-128",
        mppe: Some("128-bit stateless"),
        auth_filter: "lcp.opt.algorithm == 0x80 && ppp.code == 2",
    },
    ClientCase {
        name: "pptp-linux: CHAP-MD5, no MPPE (XDP)",
        server: &["--auth", ALL_AUTH, "--mppe", "deny"],
        pppd: "refuse-eap refuse-pap refuse-mschap refuse-mschap-v2 nomppe",
        mppe: None,
        auth_filter: "lcp.opt.algorithm == 5 && ppp.code == 2",
    },
    ClientCase {
        name: "pptp-linux: PAP, no MPPE (XDP)",
        server: &["--auth", ALL_AUTH, "--mppe", "deny"],
        pppd: "refuse-eap refuse-chap refuse-mschap refuse-mschap-v2 nomppe",
        mppe: None,
        auth_filter: "pap.code == 2",
    },
];

/// Our `pptp-agent dial` against pptpd in the guest.
struct DialCase {
    name: &'static str,
    /// pptpd's pppd options choosing the method and MPPE.
    pptpd_pppd: &'static str,
    /// `pptp-agent dial` arguments beyond the server, user and password.
    dial: &'static [&'static str],
    mppe: bool,
    auth_filter: &'static str,
}

const DIAL_CASES: &[DialCase] = &[
    DialCase {
        name: "dial -> pptpd: MS-CHAPv2 + MPPE-128",
        pptpd_pppd: "refuse-pap refuse-chap refuse-mschap require-mschap-v2 require-mppe-128",
        dial: &[
            "--auth",
            "mschapv2",
            "--mppe",
            "require",
            "--mppe-bits",
            "128",
        ],
        mppe: true,
        auth_filter: "lcp.opt.algorithm == 0x81 && ppp.code == 2",
    },
    DialCase {
        name: "dial -> pptpd: CHAP-MD5, no MPPE",
        pptpd_pppd: "refuse-pap refuse-mschap refuse-mschap-v2 require-chap nomppe",
        dial: &["--auth", "chap", "--mppe", "deny"],
        mppe: false,
        auth_filter: "lcp.opt.algorithm == 5 && ppp.code == 2",
    },
];

/// One line of the summary.
struct Row {
    name: &'static str,
    result: anyhow::Result<String>,
    connect: Option<Duration>,
}

/// What a scenario measured.
#[derive(Default)]
struct Measured {
    connect: Option<Duration>,
    notes: Vec<String>,
}

/// What a scenario's capture must show, as tshark display filters: each of
/// `present` matches at least one frame, none of `absent` matches any, and for each
/// pair of `ordered` the first frame matching the first filter comes before the
/// first matching the second.
struct Wire {
    present: Vec<String>,
    absent: Vec<String>,
    ordered: Vec<(&'static str, &'static str)>,
}

impl Wire {
    /// A session authenticated as `auth` says, with or without MPPE (a CCP Ack with
    /// the MPPE option),
    /// and a clean hang-up: LCP Terminate-Request and -Ack, Call-Clear-Request.
    fn session(auth: &str, mppe: bool) -> Self {
        let ccp_ack = "ccp.opt.type == 18 && ppp.code == 2".to_owned();
        let mut wire = Self {
            present: vec![
                auth.to_owned(),
                "ipcp && ppp.code == 2".into(),
                "lcp && ppp.code == 5".into(),
                TERMINATE_ACK.into(),
                "pptp.control_message_type == 12".into(),
            ],
            absent: Vec::new(),
            ordered: Vec::new(),
        };
        if mppe {
            wire.present.push(ccp_ack);
        } else {
            wire.absent.push(ccp_ack);
        }
        wire
    }

    /// Our client hangs up like a PPP peer should: the peer's LCP Terminate-Ack
    /// arrives before our Call-Clear-Request.
    fn ack_before_clear(mut self) -> Self {
        self.ordered
            .push((TERMINATE_ACK, "pptp.control_message_type == 12"));
        self
    }

    fn check(&self, file: &Path) -> anyhow::Result<()> {
        for filter in &self.present {
            ensure!(
                !capture::matching(file, filter)?.is_empty(),
                "no frame matches {filter:?}"
            );
        }
        for filter in &self.absent {
            let n = capture::matching(file, filter)?.len();
            ensure!(n == 0, "{n} frames match {filter:?}");
        }
        for (first, then) in &self.ordered {
            let a = capture::matching(file, first)?.first().copied();
            let b = capture::matching(file, then)?.first().copied();
            ensure!(
                matches!((a, b), (Some(a), Some(b)) if a < b),
                "expected {first:?} (frame {a:?}) before {then:?} (frame {b:?})"
            );
        }
        Ok(())
    }
}

struct World {
    lab: Lab,
    guest: Guest,
    bin: PathBuf,
}

#[test]
fn real_peers_interoperate() {
    let image = vm::image::ensure().expect("the interop VM image");
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let started = Instant::now();
    let mut guest = Guest::boot(&mut lab, &image).unwrap();
    let boot_time = guest.boot_time;
    let setup = GUEST_SETUP.replace("$ECHO_PORT", &ECHO_PORT.to_string());
    let versions = guest.run_ok(&setup, Duration::from_secs(30)).unwrap();
    let peers = versions.trim().replace('\n', ", ");
    let echo =
        EchoServer::start(&lab.lan_ns(), SocketAddrV4::new(addr::LAN_HOST, ECHO_PORT)).unwrap();
    let mut world = World { lab, guest, bin };

    let mut rows = Vec::new();
    for case in CLIENT_CASES {
        rows.push(scenario(&mut world, case.name, |w, m| {
            pptp_linux_client(w, case, m)
        }));
    }
    rows.push(scenario(
        &mut world,
        "pptp-linux: wrong password refused",
        wrong_password,
    ));
    for case in DIAL_CASES {
        rows.push(scenario(&mut world, case.name, |w, m| {
            dial_pptpd(w, case, m)
        }));
    }
    drop(echo);
    let World { mut lab, guest, .. } = world;
    guest.stop(&mut lab).unwrap();

    let mut table = String::from("| scenario | result | connect time |\n| --- | --- | --- |\n");
    for row in &rows {
        let result = match &row.result {
            Ok(notes) => format!("pass: {notes}"),
            Err(e) => format!("FAIL: {}", format!("{e:#}").replace('\n', " / ")),
        };
        let connect = row
            .connect
            .map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64()));
        writeln!(table, "| {} | {result} | {connect} |", row.name).unwrap();
    }
    // Written to stderr itself, not through eprintln!, which the test harness
    // captures: the table shows in every `cargo xtask test` log, passing or not.
    let _ = writeln!(
        std::io::stderr(),
        "interop: the peers: {peers}\ninterop: {} scenarios in {:.0?} (guest booted in {:.1?})\n{table}",
        rows.len(),
        started.elapsed(),
        boot_time,
    );
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.result.is_err())
        .map(|r| r.name)
        .collect();
    assert!(failed.is_empty(), "scenarios failed: {failed:?}");
}

/// Runs one scenario with a capture of the WAN bridge around it, then dissects the
/// capture; whatever happens, the guest's PPP daemons are stopped afterwards.
fn scenario(
    world: &mut World,
    name: &'static str,
    body: impl FnOnce(&mut World, &mut Measured) -> anyhow::Result<Wire>,
) -> Row {
    eprintln!("interop: {name}");
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let pcap = std::env::temp_dir().join(format!("{}-{slug}.pcapng", world.lab.id()));
    let mut measured = Measured::default();
    let result = (|| {
        let wan = world.lab.wan_ns();
        let capture = Capture::start(&mut world.lab, &wan, "br0", &pcap)?;
        let outcome = body(world, &mut measured);
        let file = capture.finish(&mut world.lab)?;
        let wire = outcome?;
        check_capture(&file, &mut measured)?;
        wire.check(&file)
    })();
    let cleanup = world.guest.run(
        &format!(
            "{GUEST_LIB}\nfor f in /var/run/ppp*.pid /var/run/pptpd.pid; do [ -f $f ] && \
             pid=$(head -n1 $f) && kill $pid && wait_gone $pid; rm -f $f; done; true"
        ),
        Duration::from_secs(30),
    );
    let result = result.and_then(|()| cleanup.map(drop));
    if result.is_ok() {
        // Only the captures of failed scenarios are kept, for reading.
        let _ = std::fs::remove_file(&pcap);
    }
    Row {
        name,
        result: result
            .map(|()| measured.notes.join(", "))
            .with_context(|| format!("capture {}", pcap.display())),
        connect: measured.connect,
    }
}

/// tshark reads the whole capture without a malformed frame or an expert error, and
/// saw the control channel and PPP.
fn check_capture(file: &Path, measured: &mut Measured) -> anyhow::Result<()> {
    let dissection = capture::dissect(file, &[ECHO_PORT])?;
    ensure!(
        dissection.count("pptp") > 0 && dissection.count("ppp") > 0,
        "tshark saw no PPTP/PPP in {} frames",
        dissection.frames
    );
    measured
        .notes
        .push(format!("tshark: {} frames clean", dissection.frames));
    Ok(())
}

/// Stops our `agent` (the `role` it plays) once its scenario's `result` is in: the
/// result's error comes first, with the agent's log; then the agent must exit cleanly.
fn stop_after<T>(
    world: &mut World,
    agent: &Agent,
    role: &str,
    result: anyhow::Result<T>,
) -> anyhow::Result<T> {
    let status = world.lab.stop(agent.pid, Duration::from_secs(10));
    let value = result.with_context(|| format!("{role} log:\n{}", agent.log_tail()))?;
    let status = status?;
    ensure!(
        status.success(),
        "{role} exit {status}:\n{}",
        agent.log_tail()
    );
    Ok(value)
}

fn start_server(world: &mut World, extra: &[&str]) -> anyhow::Result<Agent> {
    let user = format!("{USER}:{PASSWORD}");
    let mut args = vec!["--user", &user];
    args.extend_from_slice(extra);
    agents::start_server(&mut world.lab, &world.bin, &args)
}

/// Starts pppd + pptp-linux in the guest towards our concentrator; returns pppd's
/// exit status (0: the link is up and pppd detached), the connect time measured in
/// the guest, and the log's lines that matter.
fn guest_pppd(
    guest: &mut Guest,
    password: &str,
    options: &str,
) -> anyhow::Result<(i32, Duration, String)> {
    let script = format!(
        r#"
rm -f /tmp/ppp.log
start=$(date +%s%N)
status=0
timeout 60 pppd pty "pptp {server} --nolaunchpppd" user {USER} password '{password}' \
    linkname interop noauth nodefaultroute nobsdcomp nodeflate updetach \
    logfile /tmp/ppp.log debug {options} > /dev/null 2>&1 || status=$?
end=$(date +%s%N)
echo "status=$status connect_ms=$(( (end - start) / 1000000 ))"
grep -E 'MPPE|authentication|E=691|IP address|Exit|Connection terminated|exit' /tmp/ppp.log || true
"#,
        server = addr::CONC_WAN,
    );
    let out = guest.run_ok(&script, Duration::from_secs(90))?;
    let first = out.lines().next().context("no output")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        first
            .split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("no {name} in {first:?}"))?
            .parse()
            .context("bad number")
    };
    Ok((
        field("status")? as i32,
        Duration::from_millis(field("connect_ms")?),
        out,
    ))
}

fn pptp_linux_client(
    world: &mut World,
    case: &ClientCase,
    measured: &mut Measured,
) -> anyhow::Result<Wire> {
    let server = start_server(world, case.server)?;
    let result = pptp_linux_session(world, case, measured);
    stop_after(world, &server, "server", result)?;
    Ok(Wire::session(case.auth_filter, case.mppe.is_some()))
}

fn pptp_linux_session(
    world: &mut World,
    case: &ClientCase,
    measured: &mut Measured,
) -> anyhow::Result<()> {
    let (status, connect, log) = guest_pppd(&mut world.guest, PASSWORD, case.pppd)?;
    ensure!(status == 0, "pppd exited {status}:\n{log}");
    measured.connect = Some(connect);

    let sessions = operator_json(world, &["sessions", "--json"])?;
    let session = &sessions["sessions"][0];
    ensure!(
        session["user"] == USER && session["state"] == "up",
        "our server's session: {sessions:#}"
    );
    let expected_path = if case.mppe.is_some() { "agent" } else { "xdp" };
    ensure!(
        session["mppe"].as_str() == case.mppe && session["path"] == expected_path,
        "session MPPE {} on path {}, expected {:?} on {expected_path}",
        session["mppe"],
        session["path"],
        case.mppe
    );
    if let Some(mppe) = case.mppe {
        let bits = mppe.split('-').next().unwrap_or_default();
        ensure!(
            log.contains(&format!("MPPE {bits}-bit")),
            "pppd's log does not show MPPE {bits}-bit:\n{log}"
        );
        measured.notes.push(format!("MPPE {mppe}"));
    }

    let before = stats_counters(world)?;
    world.guest.run_ok(
        &format!(
            "ip route add {net}/{len} dev ppp0",
            net = Ipv4Addr::new(203, 0, 113, 0),
            len = addr::SUBNET_LEN,
        ),
        Duration::from_secs(10),
    )?;
    let ping = vm::traffic::ping(&mut world.guest, addr::LAN_HOST, PINGS)?;
    measured.notes.push(ping.to_string());
    let took = vm::traffic::tcp_echo(&mut world.guest, addr::LAN_HOST, ECHO_PORT, TCP_BYTES)?;
    measured.notes.push(format!(
        "TCP {TCP_BYTES} bytes each way, identical (cmp), in {:.1} s",
        took.as_secs_f64()
    ));
    let after = stats_counters(world)?;
    if case.mppe.is_none() {
        // The plain session's data took the XDP path both ways: at least one packet
        // per full-size segment of the 1 MiB each way.
        let minimum = (TCP_BYTES / 1500) as u64;
        let decap = after.0 - before.0;
        let encap = after.1 - before.1;
        ensure!(
            decap >= minimum && encap >= minimum,
            "XDP counters moved by decapsulated {decap}, encapsulated {encap}: expected >= {minimum} each"
        );
        measured
            .notes
            .push(format!("XDP decapsulated {decap}, encapsulated {encap}"));
    }

    // The client hangs up: pppd ends cleanly and our server forgets the session.
    let hangup = world.guest.run(
        &format!(
            r#"{GUEST_LIB}
pid=$(head -n1 /var/run/ppp-interop.pid)
kill -TERM $pid && wait_gone $pid || {{ echo "pppd $pid still running"; exit 1; }}
grep -E 'Connection terminated|Connect time' /tmp/ppp.log
"#
        ),
        Duration::from_secs(30),
    )?;
    ensure!(hangup.status == 0, "hang-up: {}", hangup.text);
    wait_for(Duration::from_secs(10), || {
        operator_json(world, &["sessions", "--json"])
            .is_ok_and(|j| j["sessions"].as_array().is_some_and(Vec::is_empty))
    })
    .context("our server still lists the session after the hang-up")?;
    Ok(())
}

fn operator_json(world: &mut World, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let out = agents::operator(&mut world.lab, &world.bin, args)?;
    ensure!(
        out.status.success(),
        "pptp-agent {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The XDP counters (decapsulated, encapsulated) of our server.
fn stats_counters(world: &mut World) -> anyhow::Result<(u64, u64)> {
    let json = operator_json(world, &["stats", "--json"])?;
    let counter = |name: &str| {
        agents::xdp_counter(&json, name).with_context(|| format!("no counter {name} in {json}"))
    };
    Ok((counter("decapsulated")?, counter("encapsulated")?))
}

/// A wrong password: pppd gives up with "authentication failed" (MS-CHAPv2 E=691)
/// and our server logs the refusal and keeps no session.
fn wrong_password(world: &mut World, measured: &mut Measured) -> anyhow::Result<Wire> {
    let server = start_server(world, &["--mppe", "require"])?;
    let result = (|| {
        let (status, _, log) =
            guest_pppd(&mut world.guest, "not-the-password", CLIENT_CASES[0].pppd)?;
        // pppd's exit status 19: "we failed to authenticate ourselves to the peer".
        ensure!(status == 19, "pppd exited {status}, expected 19:\n{log}");
        ensure!(log.contains("E=691"), "pppd's log lacks E=691:\n{log}");
        wait_for(Duration::from_secs(10), || {
            std::fs::read_to_string(&server.log).is_ok_and(|l| l.contains("authentication failed"))
        })
        .context("our server did not log the failed authentication")?;
        let sessions = operator_json(world, &["sessions", "--json"])?;
        ensure!(
            sessions["sessions"].as_array().is_some_and(Vec::is_empty),
            "a refused client left a session: {sessions:#}"
        );
        measured
            .notes
            .push("pppd exit 19, E=691; server logged the refusal".into());
        Ok(())
    })();
    stop_after(world, &server, "server", result)?;
    Ok(Wire {
        present: vec![CLIENT_CASES[0].auth_filter.into(), "chap.code == 4".into()],
        absent: vec!["ipcp".into()],
        ordered: Vec::new(),
    })
}

fn dial_pptpd(world: &mut World, case: &DialCase, measured: &mut Measured) -> anyhow::Result<Wire> {
    let options = case.pptpd_pppd.replace(' ', "\n");
    world.guest.run_ok(
        &format!(
            r#"
set -e
cat > /etc/pptpd.conf <<EOF
option /etc/ppp/pptpd-options
localip {PPTPD_LOCAL}
remoteip 192.0.2.200-209
EOF
cat > /etc/ppp/pptpd-options <<EOF
name pptpd
{options}
nodefaultroute
nobsdcomp
nodeflate
logfile /tmp/pptpd-ppp.log
debug
EOF
printf '%s pptpd %s *\n' {USER} {PASSWORD} > /etc/ppp/chap-secrets
rm -f /tmp/pptpd-ppp.log
pptpd -c /etc/pptpd.conf -p /var/run/pptpd.pid
for _ in $(seq 100); do ss -ltn | grep ':1723 ' > /dev/null && exit 0; sleep 0.1; done
echo "pptpd does not listen"; exit 1
"#
        ),
        Duration::from_secs(30),
    )?;
    let route = format!("{PPTPD_LOCAL}/32");
    let mut args = vec!["--user", USER, "--password", PASSWORD, "--route", &route];
    args.extend_from_slice(case.dial);
    let started = Instant::now();
    let client = agents::dial_to(&mut world.lab, &world.bin, 0, GUEST_WAN, &args)?;
    measured.connect = Some(started.elapsed());
    let result = dial_session(world, case, measured);
    stop_after(world, &client, "client", result)?;
    // pptpd's pppd sees the hang-up and exits.
    let hangup = world.guest.run(
        &format!(
            r#"{GUEST_LIB}
for _ in $(seq 100); do ls /var/run/ppp0.pid > /dev/null 2>&1 || break; sleep 0.1; done
[ ! -e /var/run/ppp0.pid ] || {{ echo "pptpd's pppd still running"; exit 1; }}
grep -E 'terminated|Connect time' /tmp/pptpd-ppp.log
"#
        ),
        Duration::from_secs(30),
    )?;
    ensure!(hangup.status == 0, "hang-up at pptpd: {}", hangup.text);
    Ok(Wire::session(case.auth_filter, case.mppe).ack_before_clear())
}

fn dial_session(world: &mut World, case: &DialCase, measured: &mut Measured) -> anyhow::Result<()> {
    let ns = world.lab.client_ns(0);
    let ppp_log = world.guest.run_ok(
        "grep -E 'MPPE|authentication|IP address' /tmp/pptpd-ppp.log",
        Duration::from_secs(10),
    )?;
    ensure!(
        ppp_log.contains("MPPE 128-bit") == case.mppe,
        "pptpd's pppd log (MPPE expected: {}):\n{ppp_log}",
        case.mppe
    );
    if case.mppe {
        measured.notes.push("MPPE 128-bit stateless".into());
    }
    ensure!(
        agents::ping(&ns, PPTPD_LOCAL, PINGS)?,
        "ping through the tunnel to pptpd's end: not all {PINGS} answered"
    );
    let answered = vm::traffic::PingSummary {
        transmitted: PINGS,
        received: PINGS,
    };
    measured.notes.push(answered.to_string());
    let started = Instant::now();
    // tcp_exchange fails unless the echo equals what was sent, byte for byte.
    let sent = traffic::tcp_exchange(&ns, SocketAddrV4::new(PPTPD_LOCAL, ECHO_PORT), TCP_BYTES)?;
    ensure!(sent.payload == TCP_BYTES, "echoed {} bytes", sent.payload);
    measured.notes.push(format!(
        "TCP {TCP_BYTES} bytes each way, identical, in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}
