//! The example systemd unit (`pptp-agent/examples/pptp-agent.service`) is hardened
//! (NoNewPrivileges, ProtectSystem=strict with the paths the agent writes,
//! ProtectHome, a capability bounding set of exactly what the agent uses, a
//! descriptor limit for the most sessions) and `systemd-analyze verify` finds nothing
//! wrong with it (the agent binary standing in for /usr/local/sbin/pptp-agent).

use std::{collections::BTreeSet, path::Path, process::Command};

use pptp_tests::agents;

fn unit() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pptp-agent/examples/pptp-agent.service");
    std::fs::read_to_string(path).unwrap()
}

/// The values of `key` in the unit.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

fn caps(unit: &str, key: &str) -> BTreeSet<String> {
    values(unit, key)
        .iter()
        .flat_map(|v| v.split_whitespace())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_example_unit_is_hardened() {
    let unit = unit();
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("RuntimeDirectory", "pptp-xdp"),
    ] {
        assert_eq!(values(&unit, key), [value], "{key}");
    }
    assert!(
        values(&unit, "ReadWritePaths").contains(&"/sys/fs/bpf"),
        "the pins must stay writable under ProtectSystem=strict"
    );
    let needed: BTreeSet<String> = [
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_SYS_ADMIN",
        "CAP_NET_BIND_SERVICE",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(caps(&unit, "CapabilityBoundingSet"), needed);
    assert!(caps(&unit, "AmbientCapabilities").is_subset(&needed));
    let nofile: u64 = values(&unit, "LimitNOFILE")[0].parse().unwrap();
    assert!(
        nofile >= 65_535 + 1024,
        "one descriptor per session at max_sessions = 65535, and the agent's own: {nofile}"
    );
}

/// What `systemd-analyze verify` says about `unit` (written as `name` in a fresh
/// directory, the agent binary in place of /usr/local/sbin/pptp-agent): its lines
/// about that file.
fn verify(unit: &str, name: &str) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("pptp-unit-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    let bin = agents::agent_bin();
    std::fs::write(
        &file,
        unit.replace("/usr/local/sbin/pptp-agent", &bin.display().to_string()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()
        .expect("systemd-analyze (Debian package systemd; run `cargo xtask setup`)");
    let _ = std::fs::remove_dir_all(&dir);
    // It also reports on other units it loads (dependencies): only ours counts.
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .filter(|l| l.contains(name))
        .map(str::to_owned)
        .collect()
}

#[test]
fn systemd_analyze_verifies_the_example_unit() {
    assert!(
        agents::agent_bin().exists(),
        "the agent binary is needed: cargo build -p pptp-agent"
    );
    let unit = unit();
    assert_eq!(verify(&unit, "pptp-agent.service"), Vec::<String>::new());
    // The check can fail: a broken copy is reported.
    let broken = unit.replace("ProtectSystem=strict", "ProtectSystem=strictest");
    let said = verify(&broken, "pptp-agent-broken.service");
    assert!(
        said.iter().any(|l| l.contains("protect system")),
        "{said:?}"
    );
}
