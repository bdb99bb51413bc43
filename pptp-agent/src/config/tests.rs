use std::{net::SocketAddr, path::PathBuf, time::Duration};

use super::*;
use crate::{
    auth::pool::AddressRange,
    guard::limits::{Limits, PeerCaps, PeerLimits},
};

const PATH: &str = "/etc/pptp-xdp/pptp-agent.toml";

const MINIMAL: &str = "[tunnel]\nlocal_ip = \"192.0.2.1\"\npools = [\"192.0.2.10-192.0.2.250\"]\n";

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(PATH, text).map_err(|e| e.to_string())
}

/// The error of `text`, which must fail.
fn error(text: &str) -> String {
    parse(text).expect_err("should fail")
}

/// The errors of MINIMAL followed by `extra` (MINIMAL is 3 lines long).
fn error_with(extra: &str) -> String {
    error(&format!("{MINIMAL}{extra}"))
}

#[test]
fn minimal_config_gets_the_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.path, Path::new(PATH));
    assert_eq!(c.name, "pptp-xdp");
    assert_eq!(
        c.listen,
        vec!["0.0.0.0:1723".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(c.mru, 1400);
    assert_eq!(
        c.interfaces,
        Interfaces {
            uplink: vec![],
            lan: vec![],
            tun: "pptp0".into(),
            drop_unknown: true,
            bpffs: "/sys/fs/bpf".into(),
            instance: "pptp-xdp".into(),
        }
    );
    assert_eq!(c.tunnel.local_ip, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(c.tunnel.pool_size(), 241);
    assert_eq!(c.tunnel.dns, [None, None]);
    assert_eq!(c.tunnel.wins, [None, None]);
    assert_eq!(
        c.auth.policy.methods,
        vec![Method::MsChapV2],
        "a client can Nak the server down to any method allowed: only MS-CHAPv2 by default"
    );
    assert_eq!(c.auth.secrets, Path::new("/etc/ppp/chap-secrets"));
    assert_eq!(c.auth.default_dial_in, DialIn::Allow);
    assert!(c.auth.dial_in.is_empty());
    assert_eq!(c.mppe.mode, MppeMode::Deny);
    assert_eq!(c.mppe.strengths, vec![crate::mppe::KeyStrength::Bits128]);
    assert!(!c.mppe.allow_stateful && !c.mppe.request_stateful);
    assert_eq!(
        c.limits,
        Limits {
            max_sessions: 1000,
            sessions_per_user: None,
            handshake_timeout: Duration::from_secs(30),
            caps: PeerCaps {
                connections_per_source: Some(10),
                unauthenticated_calls_per_connection: Some(4),
                unauthenticated_calls_per_source: Some(16),
            },
            failed_logins: Some(5),
            login_backoff: Duration::from_secs(60),
            peers: std::sync::Arc::new([]),
        },
        "finite defaults, the same as serve's without a file"
    );
    assert_eq!(
        c.keepalive,
        Keepalive {
            lcp_echo_interval: Some(Duration::from_secs(30)),
            lcp_echo_failures: 3,
            control_echo_interval: Some(Duration::from_secs(60)),
        }
    );
}

#[test]
fn every_key_is_read() {
    let c = parse(
        r#"
name = "vpn1"
listen = ["198.51.100.1:1723", "203.0.113.1:1723"]
mru = 1450

[interfaces]
uplink = ["eth0"]
lan = ["eth1", "eth2"]
tun = "vpn0"
drop_unknown = false
bpffs = "/run/bpf"
instance = "vpn1"

[tunnel]
local_ip = "10.0.0.1"
pools = ["10.0.0.16-10.0.0.31", "10.1.0.0/24", "10.2.0.9"]
dns = ["10.0.0.2", "10.0.0.3"]
wins = ["10.0.0.4"]

[auth]
methods = ["pap", "mschapv2"]
secrets = "secrets/chap"
dial_in = "deny"

[mppe]
policy = "require"
bits = [40, 128]
stateful = true

[limits]
max_sessions = 200
sessions_per_user = 1
connections_per_source = 0
handshake_timeout = 20
unauthenticated_calls_per_connection = 2
unauthenticated_calls_per_source = 0
failed_logins = 3
login_backoff = 30

[[limits.peers]]
address = "198.51.100.0/28"
unauthenticated_calls_per_connection = 64

[[limits.peers]]
address = "198.51.100.7"
unauthenticated_calls_per_connection = 512
unauthenticated_calls_per_source = 1024
connections_per_source = 2

[keepalive]
lcp_echo_interval = 0
lcp_echo_failures = 5
control_echo_interval = 120

[dhcp]
domain = "corp.example"
routes = ["10.20.0.0/16", "172.16.0.0/12"]

[users.alice]
dial_in = "allow"

[users."bob@corp"]
dial_in = "deny"
"#,
    )
    .unwrap();
    assert_eq!(c.name, "vpn1");
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.mru, 1450);
    assert_eq!(c.interfaces.uplink, vec!["eth0"]);
    assert_eq!(c.interfaces.lan, vec!["eth1", "eth2"]);
    assert_eq!(c.interfaces.tun, "vpn0");
    assert!(!c.interfaces.drop_unknown);
    assert_eq!(c.interfaces.bpffs, Path::new("/run/bpf"));
    assert_eq!(c.interfaces.instance, "vpn1");
    assert_eq!(
        c.tunnel.pools,
        vec![
            AddressRange {
                first: Ipv4Addr::new(10, 0, 0, 16),
                last: Ipv4Addr::new(10, 0, 0, 31)
            },
            // A subnet without its network and broadcast addresses.
            AddressRange {
                first: Ipv4Addr::new(10, 1, 0, 1),
                last: Ipv4Addr::new(10, 1, 0, 254)
            },
            AddressRange {
                first: Ipv4Addr::new(10, 2, 0, 9),
                last: Ipv4Addr::new(10, 2, 0, 9)
            },
        ]
    );
    assert_eq!(c.tunnel.pool_size(), 16 + 254 + 1);
    assert_eq!(
        c.tunnel.dns,
        [
            Some(Ipv4Addr::new(10, 0, 0, 2)),
            Some(Ipv4Addr::new(10, 0, 0, 3))
        ]
    );
    assert_eq!(c.tunnel.wins, [Some(Ipv4Addr::new(10, 0, 0, 4)), None]);
    assert_eq!(c.auth.policy.methods, vec![Method::Pap, Method::MsChapV2]);
    // Relative to the configuration file's directory.
    assert_eq!(c.auth.secrets, Path::new("/etc/pptp-xdp/secrets/chap"));
    assert_eq!(c.auth.default_dial_in, DialIn::Deny);
    assert_eq!(c.auth.dial_in.get("alice"), Some(&DialIn::Allow));
    assert_eq!(c.auth.dial_in.get("bob@corp"), Some(&DialIn::Deny));
    assert_eq!(c.mppe.mode, MppeMode::Require);
    assert_eq!(
        c.mppe.strengths,
        vec![
            crate::mppe::KeyStrength::Bits40,
            crate::mppe::KeyStrength::Bits128
        ]
    );
    assert!(c.mppe.allow_stateful && c.mppe.request_stateful);
    assert_eq!(
        c.limits,
        Limits {
            max_sessions: 200,
            sessions_per_user: Some(1),
            handshake_timeout: Duration::from_secs(20),
            caps: PeerCaps {
                connections_per_source: None,
                unauthenticated_calls_per_connection: Some(2),
                unauthenticated_calls_per_source: None,
            },
            failed_logins: Some(3),
            login_backoff: Duration::from_secs(30),
            // Most specific first; what a peer does not give is the general figure.
            peers: vec![
                PeerLimits {
                    net: "198.51.100.7/32".parse().unwrap(),
                    caps: PeerCaps {
                        connections_per_source: Some(2),
                        unauthenticated_calls_per_connection: Some(512),
                        unauthenticated_calls_per_source: Some(1024),
                    },
                },
                PeerLimits {
                    net: "198.51.100.0/28".parse().unwrap(),
                    caps: PeerCaps {
                        connections_per_source: None,
                        unauthenticated_calls_per_connection: Some(64),
                        unauthenticated_calls_per_source: None,
                    },
                },
            ]
            .into(),
        }
    );
    assert_eq!(
        c.limits
            .for_peer("198.51.100.9".parse().unwrap())
            .unauthenticated_calls_per_connection,
        Some(64)
    );
    assert_eq!(
        c.keepalive,
        Keepalive {
            lcp_echo_interval: None,
            lcp_echo_failures: 5,
            control_echo_interval: Some(Duration::from_secs(120)),
        }
    );
    // DHCPINFORM answers: our tunnel address serves and routes, DNS from [tunnel].
    let local = c.tunnel.local_ip;
    assert_eq!(
        c.dhcp,
        crate::dhcp::DhcpInformConfig {
            server: local,
            domain: Some("corp.example".into()),
            routes: vec![
                crate::dhcp::StaticRoute {
                    prefix: Ipv4Addr::new(10, 20, 0, 0),
                    len: 16,
                    gateway: local
                },
                crate::dhcp::StaticRoute {
                    prefix: Ipv4Addr::new(172, 16, 0, 0),
                    len: 12,
                    gateway: local
                },
            ],
            dns: vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)],
            subnet_mask: None,
        }
    );
}

#[test]
fn syntax_errors() {
    assert_eq!(
        error("name = \"x\"\nmru = \n"),
        "/etc/pptp-xdp/pptp-agent.toml:2: TOML syntax: string values must be quoted, expected literal string"
    );
    assert_eq!(
        error("[tunnel]\nlocal_ip = \"a\"\nlocal_ip = \"b\"\n"),
        "/etc/pptp-xdp/pptp-agent.toml:3: TOML syntax: duplicate key"
    );
    assert_eq!(
        error("[users.bob]\ndial_in = \"deny\"\n[users.bob]\ndial_in = \"allow\"\n"),
        "/etc/pptp-xdp/pptp-agent.toml:3: TOML syntax: duplicate key"
    );
}

#[test]
fn unknown_keys_and_wrong_types() {
    assert_eq!(
        error_with("[mppe]\nbitz = [128]\n"),
        "/etc/pptp-xdp/pptp-agent.toml:5: mppe.bitz: unknown field `bitz`, expected one of `policy`, `bits`, `stateful`"
    );
    assert_eq!(
        error_with("[limitz]\n"),
        "/etc/pptp-xdp/pptp-agent.toml:4: limitz: unknown field `limitz`, expected one of `name`, `listen`, `mru`, `interfaces`, `tunnel`, `auth`, `mppe`, `limits`, `keepalive`, `dhcp`, `users`, `radius`, `demand_dial`"
    );
    assert_eq!(
        error_with("[users.bob]\ndial_in = \"deny\"\nmax = 3\n"),
        "/etc/pptp-xdp/pptp-agent.toml:6: users.bob.max: unknown field `max`, expected `dial_in` or `rate`"
    );
    assert_eq!(
        error_with("[mppe]\nbits = [128, \"56\"]\n"),
        "/etc/pptp-xdp/pptp-agent.toml:5: mppe.bits[1]: invalid type: string \"56\", expected i64"
    );
    assert_eq!(
        error_with("[interfaces]\nuplink = \"eth0\"\n"),
        "/etc/pptp-xdp/pptp-agent.toml:5: interfaces.uplink: invalid type: string \"eth0\", expected a sequence"
    );
    assert_eq!(
        error_with("[mppe]\nstateful = \"yes\"\n"),
        "/etc/pptp-xdp/pptp-agent.toml:5: mppe.stateful: invalid type: string \"yes\", expected a boolean"
    );
    assert_eq!(
        error_with("[users.bob]\ndial_in = false\n"),
        "/etc/pptp-xdp/pptp-agent.toml:5: users.bob.dial_in: invalid type: boolean `false`, expected a string"
    );
    assert_eq!(
        error("[tunnel]\nlocal_ip = 3232235777\n"),
        "/etc/pptp-xdp/pptp-agent.toml:2: tunnel.local_ip: invalid type: integer `3232235777`, expected a string"
    );
    assert_eq!(
        error("users = 1\n"),
        "/etc/pptp-xdp/pptp-agent.toml:1: users: invalid type: integer `1`, expected a map"
    );
    assert_eq!(
        error("mru = 1400.5\n"),
        "/etc/pptp-xdp/pptp-agent.toml:1: mru: invalid type: floating point `1400.5`, expected i64"
    );
}

#[test]
fn missing_required_keys() {
    assert_eq!(
        error(""),
        "/etc/pptp-xdp/pptp-agent.toml: tunnel.local_ip: missing: our address inside the tunnels, e.g. local_ip = \"192.0.2.1\"\n\
         /etc/pptp-xdp/pptp-agent.toml: tunnel.pools: missing: client addresses, e.g. pools = [\"192.0.2.10-192.0.2.250\"]"
    );
}

#[test]
fn semantic_errors_name_line_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[mppe]\nbits = [128, 64]\n",
            "5: mppe.bits: 64 is not one of 40, 56, 128",
        ),
        (
            "[mppe]\nbits = [128, 128]\n",
            "5: mppe.bits: 128 is listed twice",
        ),
        (
            "[mppe]\npolicy = \"prefer\"\nbits = []\n",
            "6: mppe.bits: empty: no key length to negotiate",
        ),
        (
            "[mppe]\npolicy = \"always\"\n",
            "5: mppe.policy: \"always\" is not one of \"require\", \"prefer\", \"deny\"",
        ),
        (
            "[auth]\nmethods = [\"chap\", \"pap\"]\n[mppe]\npolicy = \"require\"\n",
            "7: mppe.policy: \"require\" needs \"mschapv2\" or \"mschap\" in auth.methods (MPPE keys come from MS-CHAP)",
        ),
        (
            "[auth]\nmethods = [\"eap\"]\n",
            "5: auth.methods: \"eap\" is not one of \"mschapv2\", \"mschap\", \"chap\", \"pap\"",
        ),
        (
            "[auth]\nmethods = [\"pap\", \"pap\"]\n",
            "5: auth.methods: \"pap\" is listed twice",
        ),
        (
            "[auth]\nmethods = []\n",
            "5: auth.methods: empty: every client would be let in without authentication",
        ),
        ("[auth]\nsecrets = \"\"\n", "5: auth.secrets: empty path"),
        (
            "[auth]\ndial_in = \"maybe\"\n",
            "5: auth.dial_in: \"maybe\" is not one of \"allow\", \"deny\"",
        ),
        (
            "[users.bob]\ndial_in = \"no\"\n",
            "5: users.bob.dial_in: \"no\" is not one of \"allow\", \"deny\"",
        ),
        (
            "[users.\"b o b\"]\n",
            "4: users.\"b o b\": missing: dial_in = \"allow\" or \"deny\" (or a rate)",
        ),
        (
            "[users.\"\"]\ndial_in = \"deny\"\n",
            "4: users: empty user name",
        ),
        (
            "[interfaces]\nuplink = [\"a-very-long-interface0\"]\n",
            "5: interfaces.uplink: \"a-very-long-interface0\" is longer than 15 bytes (Linux's limit for interface names)",
        ),
        (
            "[interfaces]\nlan = [\"\"]\n",
            "5: interfaces.lan: empty interface name",
        ),
        (
            "[interfaces]\ntun = \"tun 0\"\n",
            "5: interfaces.tun: \"tun 0\" is not a valid interface name",
        ),
        (
            "[interfaces]\nuplink = [\"eth0\"]\nlan = [\"eth0\"]\n",
            "6: interfaces.lan: \"eth0\" is listed twice (uplink and lan)",
        ),
        (
            "[interfaces]\nbpffs = \"sys/fs/bpf\"\n",
            "5: interfaces.bpffs: must be an absolute path",
        ),
        (
            "[interfaces]\ninstance = \"../x\"\n",
            "5: interfaces.instance: \"../x\": use a plain directory name",
        ),
        (
            "[limits]\nmax_sessions = 0\n",
            "5: limits.max_sessions: 0 is out of range (1 to 65535)",
        ),
        (
            "[limits]\nsessions_per_user = -1\n",
            "5: limits.sessions_per_user: -1 is out of range (0 to 65535)",
        ),
        (
            "[limits]\nconnections_per_source = 70000\n",
            "5: limits.connections_per_source: 70000 is out of range (0 to 65535)",
        ),
        (
            "[limits]\nhandshake_timeout = 0\n",
            "5: limits.handshake_timeout: 0 is out of range (1 to 600)",
        ),
        (
            "[keepalive]\nlcp_echo_interval = 7200\n",
            "5: keepalive.lcp_echo_interval: 7200 is out of range (0 to 3600)",
        ),
        (
            "[keepalive]\nlcp_echo_failures = 0\n",
            "5: keepalive.lcp_echo_failures: 0 is out of range (1 to 100)",
        ),
        (
            "[keepalive]\ncontrol_echo_interval = -5\n",
            "5: keepalive.control_echo_interval: -5 is out of range (0 to 3600)",
        ),
        (
            "[dhcp]\nroutes = [\"10.0.0.0\"]\n",
            "5: dhcp.routes: \"10.0.0.0\" is not a prefix (a.b.c.d/n)",
        ),
        (
            "[dhcp]\nroutes = [\"10.0.0.0/8\",\n  \"10.1.2.0/16\"]\n",
            "6: dhcp.routes: route 10.1.2.0/16: host bits set (did you mean 10.1.0.0/16?)",
        ),
        (
            "[dhcp]\nroutes = [\"10.0.0.0/33\"]\n",
            "5: dhcp.routes: route 10.0.0.0/33: prefix length above 32",
        ),
        (
            "[dhcp]\ndomain = \"corp..example\"\n",
            "5: dhcp.domain: domain \"corp..example\" is not a DNS name (labels of 1-63 letters, digits, '-' or '_', at most 253 characters)",
        ),
    ];
    let top_level: &[(&str, &str)] = &[
        (
            "listen = [\"0.0.0.0\"]\n",
            "1: listen: \"0.0.0.0\" is not ADDRESS:PORT (e.g. \"0.0.0.0:1723\")",
        ),
        (
            "listen = [\"[::]:1723\"]\n",
            "1: listen: [::]:1723: PPTP carries GRE over IPv4 only",
        ),
        (
            "listen = [\"0.0.0.0:1723\", \"0.0.0.0:1723\"]\n",
            "1: listen: 0.0.0.0:1723 is listed twice",
        ),
        (
            "listen = []\n",
            "1: listen: empty: the agent would accept no connection",
        ),
        ("mru = 9000\n", "1: mru: 9000 is out of range (576 to 1500)"),
        (
            "name = \"\"\n",
            "1: name: must be non-empty, without control characters",
        ),
    ];
    for (extra, expected) in top_level {
        assert_eq!(
            error(&format!("{extra}{MINIMAL}")),
            format!("{PATH}:{expected}"),
            "for {extra:?}"
        );
    }
    for (extra, expected) in cases {
        assert_eq!(
            error_with(extra),
            format!("{PATH}:{expected}"),
            "for {extra:?}"
        );
    }
}

#[test]
fn tunnel_errors() {
    let tunnel = |body: &str| error(&format!("[tunnel]\n{body}"));
    let cases: &[(&str, &str)] = &[
        (
            "local_ip = \"192.0.2.300\"\npools = [\"192.0.2.10-192.0.2.20\"]\n",
            "2: tunnel.local_ip: \"192.0.2.300\" is not an IPv4 address",
        ),
        (
            "local_ip = \"224.0.0.1\"\npools = [\"192.0.2.10-192.0.2.20\"]\n",
            "2: tunnel.local_ip: 224.0.0.1 is not a unicast address",
        ),
        (
            "local_ip = \"192.0.2.1\"\npools = []\n",
            "3: tunnel.pools: empty: clients would get no address",
        ),
        (
            "local_ip = \"192.0.2.1\"\npools = [\"192.0.2.20-192.0.2.10\"]\n",
            "3: tunnel.pools: \"192.0.2.20-192.0.2.10\" is empty (192.0.2.20 comes after 192.0.2.10)",
        ),
        (
            "local_ip = \"192.0.2.15\"\npools = [\"192.0.2.10-192.0.2.20\"]\n",
            "3: tunnel.pools: 192.0.2.10-192.0.2.20 contains the local address 192.0.2.15 (tunnel.local_ip)",
        ),
        (
            "local_ip = \"192.0.2.1\"\npools = [\n  \"192.0.2.10-192.0.2.20\",\n  \"192.0.2.16/28\",\n]\n",
            "5: tunnel.pools: 192.0.2.17-192.0.2.30 overlaps 192.0.2.10-192.0.2.20",
        ),
        (
            "local_ip = \"192.0.2.1\"\npools = [\"192.0.2.17/28\"]\n",
            "3: tunnel.pools: \"192.0.2.17/28\" has host bits set (did you mean 192.0.2.16/28?)",
        ),
        (
            "local_ip = \"192.0.2.1\"\npools = [\"192.0.2.0/40\"]\n",
            "3: tunnel.pools: \"192.0.2.0/40\": the prefix length must be 0 to 32; write FIRST-LAST, ADDR/N or one address",
        ),
        (
            "local_ip = \"192.0.2.1\"\npools = [\"pool-a\"]\n",
            "3: tunnel.pools: \"pool-a\": not an address; write FIRST-LAST, ADDR/N or one address",
        ),
        (
            "local_ip = \"192.0.2.1\"\npools = [\"0.0.0.0/0\"]\n",
            "3: tunnel.pools: 0.0.0.1-255.255.255.254 contains the local address 192.0.2.1 (tunnel.local_ip)",
        ),
        (
            "local_ip = \"10.0.0.1\"\npools = [\"224.0.0.0/4\"]\n",
            "3: tunnel.pools: 224.0.0.1-239.255.255.254 includes addresses clients cannot use",
        ),
        (
            "local_ip = \"192.0.2.1\"\npools = [\"192.0.2.10\"]\ndns = [\"192.0.2.2\", \"192.0.2.3\", \"192.0.2.4\"]\n",
            "4: tunnel.dns: 3 servers given; clients accept at most two (primary, secondary)",
        ),
        (
            "local_ip = \"192.0.2.1\"\npools = [\"192.0.2.10\"]\nwins = [\"wins.example\"]\n",
            "4: tunnel.wins: \"wins.example\" is not an IPv4 address",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(tunnel(body), format!("{PATH}:{expected}"), "for {body:?}");
    }
}

#[test]
fn every_semantic_error_is_reported_in_line_order() {
    assert_eq!(
        error(
            "mru = 20\n\
             [tunnel]\n\
             local_ip = \"192.0.2.1\"\n\
             pools = [\"192.0.2.1/32\"]\n\
             [mppe]\n\
             bits = [64]\n\
             [interfaces]\n\
             uplink = [\"this-name-is-too-long\"]\n"
        ),
        format!(
            "{PATH}:1: mru: 20 is out of range (576 to 1500)\n\
             {PATH}:4: tunnel.pools: 192.0.2.1-192.0.2.1 contains the local address 192.0.2.1 (tunnel.local_ip)\n\
             {PATH}:6: mppe.bits: 64 is not one of 40, 56, 128\n\
             {PATH}:8: interfaces.uplink: \"this-name-is-too-long\" is longer than 15 bytes (Linux's limit for interface names)"
        )
    );
}

/// A directory with a configuration and a secrets file.
pub(super) struct Files(PathBuf);

impl Files {
    /// Both files readable by their owner only.
    pub(super) fn new(tag: &str, config: &str, secrets: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pptp-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pptp-agent.toml"), config).unwrap();
        std::fs::write(dir.join("chap-secrets"), secrets).unwrap();
        let f = Files(dir);
        f.chmod("pptp-agent.toml", 0o600);
        f.chmod("chap-secrets", 0o600);
        f
    }

    pub(super) fn chmod(&self, file: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(self.0.join(file), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    pub(super) fn config(&self) -> PathBuf {
        self.0.join("pptp-agent.toml")
    }

    pub(super) fn d(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) const WITH_SECRETS: &str = "[tunnel]\nlocal_ip = \"192.0.2.1\"\npools = [\"192.0.2.10-192.0.2.20\"]\n\
                            [auth]\nsecrets = \"chap-secrets\"\n";

#[test]
fn users_cross_checked_with_the_config() {
    let f = Files::new(
        "cross",
        &format!(
            "{WITH_SECRETS}[users.bob]\ndial_in = \"deny\"\n[users.zed]\ndial_in = \"allow\"\n"
        ),
        "alice * pw *\n\
         bob pptp-xdp pw 192.0.2.77\n\
         carol * nthash:8846F7EAEE8FB117AD06BDD830B7586C 192.0.2.78\n\
         dave * pw\n\
         erin elsewhere pw 192.0.2.1\n",
    );
    let c = Config::load(f.config()).unwrap();
    let (db, warnings) = c.load_users().unwrap();
    let d = f.d();
    let w: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        vec![
            format!(
                "{d}/chap-secrets:4: addresses: no address allowed (a line without addresses, or `-`): IPCP will fail; write `*` to let the pool choose"
            ),
            format!(
                "{d}/pptp-agent.toml:8: users.zed: no entry for this user in {d}/chap-secrets (server pptp-xdp or *)"
            ),
        ]
    );
    use crate::ppp::{auth::SecretSource, ipcp::AddressPool};
    let users = crate::auth::users::Users::new(db.clone());
    let mut pool = c.pool(&users);
    assert_eq!(pool.size(), 11);
    assert_eq!(pool.allocate(b"bob"), Some(Ipv4Addr::new(192, 0, 2, 77)));
    assert_eq!(pool.allocate(b"alice"), Some(Ipv4Addr::new(192, 0, 2, 10)));
    assert_eq!(pool.allocate(b"dave"), None, "no address allowed");
    assert_eq!(
        c.keepalive.lcp_echo(),
        Some(crate::ppp::link::EchoConfig {
            interval: Duration::from_secs(30),
            max_failures: 3
        })
    );
    assert!(db.secret(b"alice").is_some());
    assert!(db.secret(b"bob").is_none(), "dial-in denied");
    assert!(db.secret(b"erin").is_none(), "another server's user");
    assert_eq!(
        c.summary(&db),
        format!(
            "listen: 0.0.0.0:1723\n\
             interfaces: uplink none, lan none, tun pptp0\n\
             tunnel: local 192.0.2.1, pool 192.0.2.10-192.0.2.20 (11 addresses), 2 static\n\
             users: 4 in {d}/chap-secrets, dial-in default allow, denied: bob\n\
             auth: mschapv2\n\
             mppe: deny\n\
             limits: 1000 sessions, unlimited per user, 10 connections per source, handshake 30 s\n\
             unauthenticated calls: 4 per connection, 16 per source; 0 peer entries; login back-off after 5 failures, 60 s\n"
        )
    );
}

#[test]
fn secrets_errors_against_the_config() {
    let f = Files::new("secrets-errors", &format!("{WITH_SECRETS}[auth]\n"), "");
    // A duplicate [auth] table is a TOML error.
    assert_eq!(
        Config::load(f.config()).unwrap_err().to_string(),
        format!("{}/pptp-agent.toml:6: TOML syntax: duplicate key", f.d())
    );
    let f = Files::new(
        "secrets-errors2",
        "listen = [\"198.51.100.1:1723\"]\n\
         [tunnel]\nlocal_ip = \"192.0.2.1\"\npools = [\"192.0.2.10-192.0.2.20\"]\n\
         dns = [\"192.0.2.53\"]\n\
         [auth]\nsecrets = \"chap-secrets\"\nmethods = [\"chap\"]\n",
        "a * pw 192.0.2.1\nb * pw 192.0.2.50\nc * pw 192.0.2.50\n\
         d * nthash:8846F7EAEE8FB117AD06BDD830B7586C *\n\
         e * pw 192.0.2.53\nf * pw 198.51.100.1\n",
    );
    let c = Config::load(f.config()).unwrap();
    let d = f.d();
    assert_eq!(
        c.load_users().unwrap_err().to_string(),
        format!(
            "{d}/chap-secrets:1: addresses: 192.0.2.1 is the tunnel's local address (tunnel.local_ip)\n\
             {d}/chap-secrets:3: addresses: 192.0.2.50 is already the static address on line 2\n\
             {d}/chap-secrets:4: secret: an NT hash cannot answer CHAP-MD5, the only method in auth.methods\n\
             {d}/chap-secrets:5: addresses: 192.0.2.53 is a DNS or WINS server handed to clients\n\
             {d}/chap-secrets:6: addresses: 198.51.100.1 is an address we listen on: tunnelled traffic to it would loop"
        )
    );
    std::fs::remove_file(f.0.join("chap-secrets")).unwrap();
    assert_eq!(
        c.load_users().unwrap_err().to_string(),
        format!("{d}/chap-secrets: cannot read: No such file or directory (os error 2)")
    );
    assert_eq!(
        Config::load(f.0.join("none.toml")).unwrap_err().to_string(),
        format!("{d}/none.toml: cannot read: No such file or directory (os error 2)")
    );
}

#[test]
fn reload_rereads_both_files_and_says_what_needs_a_restart() {
    let f = Files::new("reload", WITH_SECRETS, "alice * pw *\n");
    let c = Config::load(f.config()).unwrap();
    let r = reload(&c).unwrap();
    assert!(r.needs_restart.is_empty());
    assert_eq!(r.config, c);
    let users = crate::auth::users::Users::new(c.load_users().unwrap().0);
    use crate::ppp::auth::SecretSource;
    assert!(users.secret(b"alice").is_some() && users.secret(b"bob").is_none());

    std::fs::write(
        f.config(),
        format!("{WITH_SECRETS}[limits]\nmax_sessions = 5\n[users.alice]\ndial_in = \"deny\"\n"),
    )
    .unwrap();
    std::fs::write(f.0.join("chap-secrets"), "alice * pw *\nbob * pw2 *\n").unwrap();
    let r = reload(&c).unwrap();
    assert_eq!(r.config.limits.max_sessions, 5);
    assert!(r.needs_restart.is_empty(), "{:?}", r.needs_restart);
    users.replace(r.users);
    assert!(users.secret(b"alice").is_none(), "now denied");
    assert!(users.secret(b"bob").is_some(), "new user");

    // Changes that need a restart are named; errors leave the old values alone.
    std::fs::write(
        f.config(),
        WITH_SECRETS.replace("192.0.2.20", "192.0.2.30") + "mru = 1500\n",
    )
    .unwrap();
    let e = reload(&c).unwrap_err().to_string();
    assert!(e.contains("mru: unknown field"), "{e}");
    std::fs::write(
        f.config(),
        format!(
            "mru = 1500\n{}",
            WITH_SECRETS.replace("192.0.2.20", "192.0.2.30")
        ),
    )
    .unwrap();
    assert_eq!(reload(&c).unwrap().needs_restart, vec!["mru", "tunnel"]);
    std::fs::write(
        f.config(),
        format!("{WITH_SECRETS}[mppe]\npolicy = \"require\"\n[dhcp]\ndomain = \"corp.example\"\n"),
    )
    .unwrap();
    assert_eq!(reload(&c).unwrap().needs_restart, vec!["mppe", "dhcp"]);
    std::fs::write(f.0.join("chap-secrets"), "alice *\n").unwrap();
    assert_eq!(
        reload(&c).unwrap_err().to_string(),
        format!(
            "{}/chap-secrets:1: entry: 2 words; expected: client server secret [addresses...]",
            f.d()
        )
    );
}

#[test]
fn the_examples_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let text = std::fs::read_to_string(dir.join("pptp-agent.toml")).unwrap();
    let c = Config::parse(dir.join("pptp-agent.toml"), &text).unwrap();
    // The example names /etc/ppp/chap-secrets; check the example secrets instead.
    let mut c = c;
    c.auth.secrets = dir.join("chap-secrets");
    let (db, warnings) = c.load_users().unwrap();
    // Git keeps the example secrets file 0644: the one warning it may give.
    let others: Vec<_> = warnings
        .iter()
        .filter(|w| !w.message.starts_with("readable by"))
        .collect();
    assert!(others.is_empty(), "{warnings:?}");
    assert!(c.summary(&db).contains("users: "));
    // Every default in the example is the real default: uncommenting nothing but the
    // required keys gives the same configuration as the example.
    let required = "[tunnel]\nlocal_ip = \"192.0.2.1\"\npools = [\"192.0.2.10-192.0.2.250\"]\n";
    let mut minimal = Config::parse(dir.join("pptp-agent.toml"), required).unwrap();
    minimal.auth.secrets = c.auth.secrets.clone();
    minimal.auth.dial_in = c.auth.dial_in.clone();
    minimal.auth.user_lines = c.auth.user_lines.clone();
    assert_eq!(minimal, c, "the example shows the defaults");
}

#[test]
fn radius_section() {
    use crate::radius::UserSource;
    let c = parse(&format!(
        "{MINIMAL}[auth]\nsource = \"radius-then-file\"\n[radius]\nnas_ip = \"192.0.2.1\"\ntimeout = 2\ninterim_interval = 60\n\
         [[radius.servers]]\nauth = \"127.0.0.1:18120\"\nacct = \"127.0.0.1\"\nsecret = \"one\"\n\
         [[radius.servers]]\nauth = \"127.0.0.2\"\nsecret = \"two\"\n\
         [radius.dae]\nlisten = \"127.0.0.1:3799\"\nclients = [{{ address = \"127.0.0.1\", secret = \"dae\" }}]\n\
         [radius.pools]\ngold = [\"198.51.100.0/28\"]\n"
    ))
    .unwrap();
    assert_eq!(c.auth.source, UserSource::RadiusThenFile);
    let r = c.radius.unwrap();
    let addrs = |v: &[crate::radius::client::Server]| {
        v.iter().map(|s| s.addr.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(
        addrs(&r.auth_servers),
        ["127.0.0.1:18120", "127.0.0.2:1812"]
    );
    assert_eq!(addrs(&r.acct_servers), ["127.0.0.1:1813"]);
    assert_eq!(r.acct_servers[0].secret, b"one");
    assert_eq!(
        r.nas.identifier.as_deref(),
        Some("pptp-xdp"),
        "NAS-Identifier defaults to the name"
    );
    assert_eq!(r.nas.ip, Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!((r.timing.timeout.as_secs(), r.timing.retries), (2, 2));
    assert_eq!(
        r.timing.require_message_authenticator,
        crate::radius::client::RequireMessageAuthenticator::Auto,
        "the default: required from a server once it has sent one"
    );
    assert_eq!(r.interim, Some(Duration::from_secs(60)));
    let dae = r.dae.unwrap();
    assert_eq!(dae.clients[0].1, b"dae");
    assert!(
        dae.require_message_authenticator && dae.require_event_timestamp,
        "both required by default"
    );
    assert_eq!(dae.window, Duration::from_secs(300));
    let lax = parse(&format!(
        "{MINIMAL}[radius]\n[[radius.servers]]\nacct = \"127.0.0.1\"\nsecret = \"s\"\n\
         [radius.dae]\nlisten = \"127.0.0.1:3799\"\nclients = [{{ address = \"127.0.0.1\", secret = \"dae\" }}]\n\
         require_message_authenticator = false\nevent_timestamp_window = 0\n"
    ))
    .unwrap()
    .radius
    .unwrap()
    .dae
    .unwrap();
    assert!(!lax.require_message_authenticator && !lax.require_event_timestamp);
    assert_eq!(
        lax.window,
        Duration::from_secs(300),
        "duplicates are still remembered"
    );
    assert_eq!(r.pools["gold"][0].to_string(), "198.51.100.1-198.51.100.14");
    assert_eq!(
        error_with(
            "[auth]\nsource = \"radius\"\n[radius]\n[[radius.servers]]\nauth = \"127.0.0.1\"\nsecret = \"s\"\n[radius.pools]\ngold = [\"192.0.2.20-192.0.2.30\"]\n"
        ),
        "/etc/pptp-xdp/pptp-agent.toml:11: radius.pools.gold: 192.0.2.20-192.0.2.30 overlaps 192.0.2.10-192.0.2.250"
    );

    for (value, expected) in [
        (
            "true",
            crate::radius::client::RequireMessageAuthenticator::Always,
        ),
        (
            "false",
            crate::radius::client::RequireMessageAuthenticator::Never,
        ),
        (
            "\"auto\"",
            crate::radius::client::RequireMessageAuthenticator::Auto,
        ),
    ] {
        let c = parse(&format!(
            "{MINIMAL}[radius]\nrequire_message_authenticator = {value}\n[[radius.servers]]\nacct = \"127.0.0.1\"\nsecret = \"s\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.radius.unwrap().timing.require_message_authenticator,
            expected
        );
    }
    assert_eq!(
        error_with(
            "[radius]\nrequire_message_authenticator = \"yes\"\n[[radius.servers]]\nacct = \"127.0.0.1\"\nsecret = \"s\"\n"
        ),
        "/etc/pptp-xdp/pptp-agent.toml:5: radius.require_message_authenticator: \"yes\" is not one of \"auto\", true, false"
    );
    assert_eq!(
        error_with("[auth]\nsource = \"radius\"\n"),
        "/etc/pptp-xdp/pptp-agent.toml:5: auth.source: RADIUS named but there is no [radius] section with servers"
    );
    assert_eq!(
        error_with("[auth]\nsource = \"ldap\"\n"),
        "/etc/pptp-xdp/pptp-agent.toml:5: auth.source: \"ldap\" is not one of \"file\", \"radius\", \"radius-then-file\""
    );
    assert_eq!(
        error_with("[radius]\n[[radius.servers]]\nauth = \"127.0.0.1\"\nsecret = \"s\"\n"),
        "/etc/pptp-xdp/pptp-agent.toml:4: radius.servers: no server has an `acct` address and auth.source is \"file\": the section does nothing"
    );
    assert_eq!(
        error_with("[radius]\nretries = 11\n[[radius.servers]]\nacct = \"x\"\nsecret = \"\"\n"),
        "/etc/pptp-xdp/pptp-agent.toml:5: radius.retries: 11 is out of range (0 to 10)\n\
         /etc/pptp-xdp/pptp-agent.toml:7: radius.servers.acct: \"x\" is not ADDRESS or ADDRESS:PORT\n\
         /etc/pptp-xdp/pptp-agent.toml:8: radius.servers.secret: empty secret"
    );
}

#[test]
fn the_router_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/router-seattle.toml");
    let c = Config::load(&path).unwrap();
    let [dd] = c.demand_dial.as_slice() else {
        panic!("one interface: {:?}", c.demand_dial);
    };
    assert_eq!(
        (dd.name.as_str(), dd.device.as_str()),
        ("DD_NewYork", "DD_NewYork")
    );
    assert_eq!(dd.server.as_deref(), Some("198.51.100.10"));
    assert_eq!(dd.user, "DD_Seattle");
    assert_eq!(dd.routes, ["192.0.2.128/25".parse().unwrap()]);
    assert_eq!(dd.demand.mode, crate::demand::Mode::OnDemand);
    assert_eq!(dd.demand.idle_timeout, Some(Duration::from_secs(300)));
    assert!(dd.dials());
    let secrets = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/chap-secrets");
    let mut c = c;
    c.auth.secrets = secrets;
    let (db, _) = c.load_users().unwrap();
    assert!(
        c.summary(&db).contains(
            "demand-dial DD_NewYork: on-demand to 198.51.100.10 as DD_Seattle, routes 192.0.2.128/25"
        ),
        "{}",
        c.summary(&db)
    );
}

#[test]
fn demand_dial_mistakes_are_reported_with_their_lines() {
    let base = "[tunnel]\nlocal_ip = \"192.0.2.1\"\npools = [\"192.0.2.10\"]\n";
    let cases = [
        (
            "[[demand_dial]]\nname = \"a\"\nserver = \"198.51.100.2\"\nuser = \"u\"\npassword = \"p\"\n",
            "4: demand_dial[0].routes: missing: the networks behind the other router",
        ),
        (
            "[[demand_dial]]\nname = \"a\"\nmode = \"sometimes\"\nroutes = [\"192.0.2.128/25\"]\n",
            "6: demand_dial[0].mode: \"sometimes\" is not one of \"on-demand\", \"persistent\", \"answer\"",
        ),
        (
            "[[demand_dial]]\nname = \"a\"\nmode = \"persistent\"\nroutes = [\"192.0.2.128/25\"]\n",
            "4: demand_dial[0].server: missing: the other router's host name or address",
        ),
        (
            "[[demand_dial]]\nname = \"a\"\nmode = \"answer\"\nserver = \"x\"\nroutes = [\"192.0.2.128/25\"]\n",
            "7: demand_dial[0].server: an \"answer\" interface does not call",
        ),
        (
            "[[demand_dial]]\nname = \"a\"\nroutes = [\"192.0.2.0/33\"]\n",
            "6: demand_dial[0].routes: \"192.0.2.0/33\" is not a.b.c.d/n",
        ),
        (
            "[[demand_dial]]\nname = \"pptp0\"\nroutes = [\"192.0.2.128/25\"]\n",
            "4: demand_dial[0].device: \"pptp0\" is already in use",
        ),
        (
            "[[demand_dial]]\nname = \"a very long interface name\"\nroutes = [\"192.0.2.128/25\"]\n",
            "5: demand_dial[0].device: missing: the name is longer than 15 bytes",
        ),
    ];
    for (extra, expected) in cases {
        let text = format!("{base}{extra}");
        let errors = Config::parse("/etc/pptp-xdp/pptp-agent.toml", &text)
            .expect_err(extra)
            .to_string();
        assert!(
            errors.contains(expected),
            "{extra}\nexpected {expected:?} in:\n{errors}"
        );
    }
    // An answer-only interface needs no credentials.
    let text =
        format!("{base}[[demand_dial]]\nname = \"DD_Seattle\"\nroutes = [\"203.0.113.0/24\"]\n");
    let c = Config::parse("/x.toml", &text).unwrap();
    assert!(!c.demand_dial[0].dials());
}

#[test]
fn rate_limits_per_user_and_by_default() {
    let c = parse(&format!(
        "{MINIMAL}[auth]\nrate = \"2M\"\n[users.alice]\nrate = \"10M/20M\"\n[users.bob]\ndial_in = \"deny\"\nrate = \"1M 2M 1M 16\"\n"
    ))
    .unwrap();
    let rate = |s| pptp_common::rate::RateLimit::parse(s).unwrap();
    assert_eq!(c.auth.default_rate, rate("2M"));
    assert_eq!(c.auth.rates.get("alice"), Some(&rate("10M/20M")));
    assert_eq!(c.auth.rates.get("bob"), Some(&rate("1M 2M 1M 16")));
    assert_eq!(
        c.auth.dial_in.get("alice"),
        None,
        "a rate alone: the default dial-in"
    );
    assert_eq!(c.auth.dial_in.get("bob"), Some(&DialIn::Deny));
    assert_eq!(
        parse(MINIMAL).unwrap().auth.default_rate,
        Default::default()
    );

    assert_eq!(
        error_with("[users.alice]\nrate = \"10Mbit\"\n"),
        "/etc/pptp-xdp/pptp-agent.toml:5: users.alice.rate: \"10Mbit\": a rate is not a number with an optional k, M or G (e.g. \"10M/20M\": from the client/to it, bits per second)"
    );
    assert_eq!(
        error_with("[auth]\nrate = \"\"\n"),
        "/etc/pptp-xdp/pptp-agent.toml:5: auth.rate: \"\": empty rate limit (e.g. \"10M/20M\": from the client/to it, bits per second)"
    );
    assert!(
        error_with("[users.carol]\n")
            .contains("missing: dial_in = \"allow\" or \"deny\" (or a rate)")
    );
}
