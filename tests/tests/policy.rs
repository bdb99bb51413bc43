//! Rate limits and quotas end to end, with FreeRADIUS (Debian's package, its own
//! `dictionary.mikrotik`) in the concentrator's namespace: TCP (iperf3) through a
//! session whose Access-Accept says `Mikrotik-Rate-Limit = "10M/10M"` reaches
//! 8.5-10.5 Mbit/s each way, on the XDP path and on the MPPE (agent) path, and
//! the drops are counted for the session; a CoA-Request (radclient) raising it to
//! 20M takes effect at once (the first second after the CoA-ACK already carries
//! more than the old limit could pass in a second, the rest of the run is near the
//! new one); a `Mikrotik-Total-Limit` ends its session, whose Stop in FreeRADIUS's
//! detail file says Session-Timeout. Needs root; about 40 s.

use std::{process::Command, time::Duration};

use anyhow::Context as _;
use pptp_tests::{
    agents::{self, start_configured},
    demo::wait_for,
    freeradius::{self, FreeRadius, dae, num},
    iperf,
    lab::{Lab, LabSpec, addr},
    netns,
};

const SECRET: &str = "radius-secret";
const DAE_SECRET: &str = "dae-secret";
/// Seconds of each throughput run.
const RUN: u64 = 4;

const USERS: &str = r#"
grace   Cleartext-Password := "grace-pw"
        Mikrotik-Rate-Limit = "10M/10M"

heidi   Cleartext-Password := "heidi-pw"
        Mikrotik-Rate-Limit = "10M/10M"

ivan    Cleartext-Password := "ivan-pw"
        Mikrotik-Total-Limit = 300000
"#;

/// One iperf3 run of `seconds` from client `i` to the LAN host (or back, with
/// `reverse`), one report a second: the received rate of each second and of the
/// run after its first `omit` seconds, in Mbit/s.
fn iperf(
    lab: &mut Lab,
    i: usize,
    reverse: bool,
    seconds: u64,
    omit: u64,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let iperf_server = iperf::serve_once(lab)?;
    let mut client = iperf::client();
    client.args([
        "-t",
        &seconds.to_string(),
        "-i",
        "1",
        "-O",
        &omit.to_string(),
        "-J",
    ]);
    if reverse {
        client.arg("-R");
    }
    let out = netns::run_in_ns(&lab.client_ns(i), &mut client);
    let _ = lab.stop(iperf_server, Duration::from_secs(5));
    let json: serde_json::Value = serde_json::from_slice(&out?.stdout)?;
    let total = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 reported no throughput")?;
    let seconds = json["intervals"]
        .as_array()
        .context("no intervals")?
        .iter()
        .filter_map(|i| i["sum"]["bits_per_second"].as_f64())
        .map(|b| b / 1e6)
        .collect();
    Ok((seconds, total / 1e6))
}

fn session<'a>(all: &'a [serde_json::Value], user: &str) -> &'a serde_json::Value {
    all.iter()
        .find(|s| s["user"] == user)
        .unwrap_or_else(|| panic!("no session of {user}: {all:?}"))
}

/// Both directions of client `i` at about 10 Mbit/s. The first second is left out:
/// it carries the bucket the idle session filled (half a second at the rate).
fn check_ten_megabits(lab: &mut Lab, i: usize, what: &str) {
    for (reverse, direction) in [(false, "from the client"), (true, "to the client")] {
        let (_, mbit) = iperf(lab, i, reverse, RUN, 1).unwrap();
        eprintln!("{what}, {direction}: {mbit:.2} Mbit/s (limit 10)");
        assert!(
            (8.5..=10.5).contains(&mbit),
            "{what}, {direction}: {mbit:.2} Mbit/s through a 10 Mbit/s limit"
        );
    }
}

#[test]
fn rate_limits_and_quotas_from_radius_and_coa() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 3 }).unwrap();
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
        "methods = [\"mschapv2\", \"pap\"]\nsource = \"radius\"",
        &format!(
            "[mppe]\npolicy = \"prefer\"\n\
             [radius]\ntimeout = 1\nretries = 1\n\
             [[radius.servers]]\nauth = \"127.0.0.1:18120\"\nacct = \"127.0.0.1:18121\"\nsecret = \"{SECRET}\"\n\
             [radius.dae]\nlisten = \"127.0.0.1:3799\"\nclients = [{{ address = \"127.0.0.1\", secret = \"{DAE_SECRET}\" }}]\n"
        ),
    );
    let server = &configured.server;
    let dial = |lab: &mut Lab, i: usize, user: &str, auth: &str, mppe: &str| {
        agents::dial_as(lab, &bin, i, user, &format!("{user}-pw"), auth, mppe)
            .unwrap_or_else(|e| panic!("{user}: {e:#}\n{}", server.log_tail()))
    };

    // The XDP path: grace, no MPPE.
    let _grace = dial(&mut lab, 0, "grace", "pap", "deny");
    let all = agents::sessions(&mut lab, &bin);
    assert_eq!(session(&all, "grace")["path"], "xdp", "{all:?}");
    assert_eq!(session(&all, "grace")["rate"], "10M/10M", "{all:?}");
    check_ten_megabits(&mut lab, 0, "XDP path");
    let all = agents::sessions(&mut lab, &bin);
    let grace = session(&all, "grace");
    assert!(
        grace["policed_rx"].as_u64().unwrap() > 0 && grace["policed_tx"].as_u64().unwrap() > 0,
        "the data plane dropped over the limit both ways: {grace}"
    );

    // CoA: 20M. The first second after the CoA-ACK is already past what the old
    // limit could pass in one second (10 Mbit/s and a full bucket, half a second of
    // it: 15), and the rest of the run is at the new one.
    let coa = freeradius::radclient(
        &ns,
        "127.0.0.1:3799",
        "coa",
        DAE_SECRET,
        &dae("User-Name = \"grace\"\nMikrotik-Rate-Limit = \"20M/20M\"\n"),
    )
    .unwrap();
    assert!(coa.contains("CoA-ACK"), "{coa}");
    let all = agents::sessions(&mut lab, &bin);
    assert_eq!(session(&all, "grace")["rate"], "20M/20M", "{all:?}");
    let (seconds, mbit) = iperf(&mut lab, 0, true, RUN, 1).unwrap();
    eprintln!(
        "XDP path after the CoA, to the client: {seconds:.2?} Mbit/s each second, {mbit:.2} overall (limit 20)"
    );
    assert!(
        seconds[0] > 15.5,
        "the first second after the CoA runs above the old limit: {seconds:?}"
    );
    assert!(
        (17.0..=21.0).contains(&mbit),
        "{mbit:.2} Mbit/s through a 20 Mbit/s limit"
    );

    // The agent's path: heidi, MPPE-128 (keys from RADIUS).
    let _heidi = dial(&mut lab, 1, "heidi", "mschapv2", "require");
    let all = agents::sessions(&mut lab, &bin);
    assert_eq!(session(&all, "heidi")["path"], "agent", "{all:?}");
    assert!(session(&all, "heidi")["mppe"].is_string(), "{all:?}");
    assert_eq!(session(&all, "heidi")["rate"], "10M/10M", "{all:?}");
    check_ten_megabits(&mut lab, 1, "MPPE path");
    let all = agents::sessions(&mut lab, &bin);
    let heidi = session(&all, "heidi");
    assert!(
        heidi["policed_rx"].as_u64().unwrap() > 0 && heidi["policed_tx"].as_u64().unwrap() > 0,
        "the agent dropped over the limit both ways: {heidi}"
    );

    // A quota: ivan's 300000 octets end his session; the Stop says why.
    let ivan = dial(&mut lab, 2, "ivan", "pap", "deny");
    let mut ping = Command::new("ping");
    ping.args(["-c", "500", "-i", "0.005", "-s", "1400", "-w", "8"])
        .arg(addr::LAN_HOST.to_string());
    let _ = netns::run_in_ns(&lab.client_ns(2), &mut ping);
    let stop = radius.wait_record("ivan", "Stop");
    assert_eq!(
        stop.get("Acct-Terminate-Cause").map(String::as_str),
        Some("Session-Timeout"),
        "{stop:?}"
    );
    let octets = num(&stop, "Acct-Input-Octets") + num(&stop, "Acct-Output-Octets");
    assert!(
        octets >= 300_000,
        "ended only once the quota was used: {stop:?}"
    );
    wait_for(Duration::from_secs(10), || lab.exited(ivan.pid).is_some())
        .expect("ivan's client saw the session end");

    lab.stop(server.pid, Duration::from_secs(10)).unwrap();
    lab.stop(radius.pid, Duration::from_secs(10)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
