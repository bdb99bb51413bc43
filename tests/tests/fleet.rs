//! Two concentrators as one service (docs/fleet.md): a real FreeRADIUS with
//! rlm_sqlippool and rlm_sql on a real PostgreSQL (Debian's packages), configured
//! from the repository's example (pptp-agent/examples/fleet/), in the
//! concentrator's namespace on loopback. Concentrator A (198.51.100.1, XDP) and
//! concentrator B (198.51.100.2, the agent's path) share that namespace and the
//! FreeRADIUS (a route gives B's client B's address as the GRE source, which the
//! agent leaves to the kernel; A's XDP passes B's GRE up); `load-test` puts 100
//! sessions on each, from two clients. The test shows that
//! - the 200 sessions hold 200 distinct addresses, all leased from the one SQL pool
//!   (each concentrator's sessions on its own NAS-IP-Address);
//! - radacct rows carry the octets each session's data plane counted (XDP on A, the
//!   agent on B), by Interim-Updates every 2 s;
//! - A's sessions ending free A's leases and close A's radacct rows, B's untouched;
//! - B killed (SIGKILL: no Stop, no Accounting-Off) leaves its leases and rows
//!   open; B restarted says Accounting-On, which frees them and closes the rows.
//!
//! Needs root.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::Duration,
};

use pptp_tests::{
    agents::{self, Agent},
    demo::wait_for,
    freeradius::{self, FreeRadius, SYSTEM_RADDB},
    lab::{Lab, LabSpec, addr, ifname},
    load::{self, LoadRun, Target},
    netns,
    postgres::Postgres,
};

const SECRET: &str = "fleet-secret";
const AUTH_PORT: u16 = 18120;
const SQL_PORT: u16 = 15432;
const PER_CONCENTRATOR: usize = 100;
const B_WAN: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

/// A file of the repository's example deployment.
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pptp-agent/examples/fleet")
        .join(name)
}

fn read_example(name: &str) -> String {
    std::fs::read_to_string(example(name)).unwrap()
}

/// One concentrator of the fleet.
struct Concentrator {
    name: &'static str,
    wan: Ipv4Addr,
    xdp: bool,
    config: PathBuf,
    socket: PathBuf,
}

impl Concentrator {
    fn new(lab: &mut Lab, dir: &Path, name: &'static str, wan: Ipv4Addr, xdp: bool) -> Self {
        let (local, pool, tun) = if xdp {
            ("192.0.2.1", "203.0.113.200-203.0.113.209", "pptpa")
        } else {
            ("192.0.2.2", "203.0.113.210-203.0.113.219", "pptpb")
        };
        let links = if xdp {
            format!(
                "uplink = [\"{}\"]\nlan = [\"{}\"]\n",
                ifname::UPLINK,
                ifname::LAN
            )
        } else {
            String::new()
        };
        let secrets = dir.join(format!("{name}-chap-secrets"));
        std::fs::write(&secrets, "# users come from RADIUS\n").unwrap();
        std::fs::set_permissions(
            &secrets,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "name = \"{name}\"\nlisten = [\"{wan}:1723\"]\n\
                 [interfaces]\n{links}tun = \"{tun}\"\n\
                 # A's XDP passes B's GRE up to B's socket.\ndrop_unknown = false\n\
                 bpffs = \"{bpffs}\"\ninstance = \"fleet-{name}\"\n\
                 [tunnel]\nlocal_ip = \"{local}\"\npools = [\"{pool}\"]\n\
                 [auth]\nsecrets = \"{secrets}\"\nmethods = [\"chap\"]\nsource = \"radius\"\n\
                 [limits]\nmax_sessions = 1000\nconnections_per_source = 0\n\
                 unauthenticated_calls_per_source = 0\n\
                 [radius]\nnas_identifier = \"{name}\"\nnas_ip = \"{wan}\"\ninterim_interval = 2\n\
                 [[radius.servers]]\nauth = \"127.0.0.1:{AUTH_PORT}\"\nacct = \"127.0.0.1:{acct}\"\n\
                 secret = \"{SECRET}\"\n",
                bpffs = lab.bpffs().unwrap().display(),
                secrets = secrets.display(),
                acct = AUTH_PORT + 1,
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        Concentrator {
            name,
            wan,
            xdp,
            config,
            socket: dir.join(format!("{name}.sock")),
        }
    }

    /// Starts it; returns once its API answers.
    fn start(&self, lab: &mut Lab, bin: &Path) -> Agent {
        let args = vec![
            "serve".into(),
            "--config".into(),
            self.config.display().to_string(),
        ];
        let ns = lab.concentrator_ns();
        let agent = agents::start_serving_in(lab, bin, &ns, args, &self.socket, self.name).unwrap();
        wait_for(Duration::from_secs(20), || {
            agents::sessions_at(bin, &self.socket).is_ok()
        })
        .unwrap_or_else(|_| panic!("{} did not start:\n{}", self.name, agent.log_tail()));
        agent
    }

    /// Its sessions that are up: client address to (rx_bytes, tx_bytes).
    fn up(&self, bin: &Path) -> BTreeMap<String, (u64, u64)> {
        agents::sessions_at(bin, &self.socket)
            .unwrap_or_default()
            .iter()
            .filter(|s| s["state"] == "up")
            .filter_map(|s| {
                Some((
                    s["client"].as_str()?.to_owned(),
                    (s["rx_bytes"].as_u64()?, s["tx_bytes"].as_u64()?),
                ))
            })
            .collect()
    }
}

/// Rows of `sql` (one column per `|`).
fn rows(pg: &Postgres, sql: &str) -> Vec<Vec<String>> {
    pg.psql("radius", sql, &[])
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

/// Addresses leased now to the NAS at `nas`.
fn leases(pg: &Postgres, nas: Ipv4Addr) -> BTreeSet<String> {
    rows(
        pg,
        &format!(
            "SELECT host(framedipaddress) FROM radippool \
             WHERE nasipaddress = '{nas}' AND expiry_time > now()"
        ),
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

/// Open radacct rows of `nas`: address to (input octets, output octets).
fn open_rows(pg: &Postgres, nas: Ipv4Addr) -> BTreeMap<String, (u64, u64)> {
    rows(
        pg,
        &format!(
            "SELECT host(framedipaddress), acctinputoctets, acctoutputoctets FROM radacct \
             WHERE nasipaddress = '{nas}' AND acctstoptime IS NULL"
        ),
    )
    .into_iter()
    .map(|r| (r[0].clone(), (r[1].parse().unwrap(), r[2].parse().unwrap())))
    .collect()
}

#[test]
fn two_concentrators_share_one_sql_pool_and_accounting() {
    let bin = agents::agent_bin();
    let mut lab = Lab::up(&LabSpec { clients: 2 }).unwrap();
    let ns = lab.concentrator_ns();
    netns::run_in_ns(
        &ns,
        std::process::Command::new("ip").args([
            "addr",
            "add",
            &format!("{B_WAN}/{}", addr::SUBNET_LEN),
            "dev",
            ifname::UPLINK,
        ]),
    )
    .unwrap();
    // The agent leaves a GRE packet's source to the kernel's route: B's client
    // (client 1) is reached from B's address, as a box of its own would be.
    netns::run_in_ns(
        &ns,
        std::process::Command::new("ip").args([
            "route",
            "add",
            &format!("{}/32", addr::client(1)),
            "dev",
            ifname::UPLINK,
            "src",
            &B_WAN.to_string(),
        ]),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("{}-fleet", lab.id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // PostgreSQL with FreeRADIUS's schemas and the example's pool: 241 addresses.
    let pg = Postgres::start(&mut lab, &ns, &dir.join("pg"), SQL_PORT).unwrap();
    let at = |p: PathBuf| format!("@{}", p.display());
    pg.psql(
        "postgres",
        &at(example("radius.sql")),
        &[("password", "'change-me'")],
    )
    .unwrap();
    for schema in ["main", "ippool"] {
        let file = Path::new(SYSTEM_RADDB)
            .join("mods-config/sql")
            .join(schema)
            .join("postgresql/schema.sql");
        pg.psql("radius", &at(file), &[]).unwrap();
    }
    pg.psql(
        "radius",
        &at(example("pool.sql")),
        &[
            ("pool", "'fleet'"),
            ("first", "'192.0.2.10'"),
            ("count", "241"),
        ],
    )
    .unwrap();

    // FreeRADIUS from the example: its site, sql (our port), sqlippool, users.
    let sql = read_example("sql").replace("port = 5432", &format!("port = {SQL_PORT}"));
    let users = format!(
        "{}{} Cleartext-Password := \"{}\"\n",
        read_example("users"),
        load::USER,
        load::PASSWORD
    );
    let site = read_example("site");
    let radius = FreeRadius::start(
        &mut lab,
        &ns,
        &dir.join("radius"),
        &freeradius::Spec {
            auth_port: AUTH_PORT,
            secret: SECRET,
            users: &users,
            site: Some(&site),
            modules: &[("sql", sql), ("sqlippool", read_example("sqlippool"))],
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));

    let a = Concentrator::new(&mut lab, &dir, "a", addr::CONC_WAN, true);
    let b = Concentrator::new(&mut lab, &dir, "b", B_WAN, false);
    let agent_a = a.start(&mut lab, &bin);
    let agent_b = b.start(&mut lab, &bin);
    let diagnose = |what: &str, lab_agents: &[&Agent]| -> String {
        let mut text = format!("{what}\n");
        for agent in lab_agents {
            text.push_str(&agent.log_tail());
            text.push('\n');
        }
        text + &radius.log_tail()
    };

    let run = |lab: &mut Lab, c: &Concentrator, client: usize, hold: u64| {
        let to = Target {
            client,
            server: c.wan,
            sessions: PER_CONCENTRATOR,
            concurrency: 16,
            hold,
        };
        LoadRun::start_to(lab, &bin, &dir, c.name, to).unwrap()
    };
    let run_a = run(&mut lab, &a, 0, 10);
    let run_b = run(&mut lab, &b, 1, 120);
    let all_up = wait_for(Duration::from_secs(120), || {
        a.up(&bin).len() == PER_CONCENTRATOR && b.up(&bin).len() == PER_CONCENTRATOR
    });
    if all_up.is_err() {
        panic!(
            "{}",
            diagnose(
                &format!(
                    "up: a {}, b {}\n{}\n{}",
                    a.up(&bin).len(),
                    b.up(&bin).len(),
                    run_a.notable_log(20),
                    run_b.notable_log(20)
                ),
                &[&agent_a, &agent_b]
            )
        );
    }

    for c in [&a, &b] {
        let paths: BTreeSet<String> = agents::sessions_at(&bin, &c.socket)
            .unwrap()
            .iter()
            .filter_map(|s| s["path"].as_str().map(str::to_owned))
            .collect();
        let expected = if c.xdp { "xdp" } else { "agent" };
        assert_eq!(
            paths,
            BTreeSet::from([expected.to_owned()]),
            "{}'s data plane",
            c.name
        );
    }

    // 200 distinct addresses, each leased from the SQL pool to its session's NAS.
    let (up_a, up_b) = (a.up(&bin), b.up(&bin));
    let (leased_a, leased_b) = (leases(&pg, a.wan), leases(&pg, b.wan));
    let addresses_a: BTreeSet<String> = up_a.keys().cloned().collect();
    let addresses_b: BTreeSet<String> = up_b.keys().cloned().collect();
    assert_eq!(addresses_a, leased_a, "A's sessions hold A's leases");
    assert_eq!(addresses_b, leased_b, "B's sessions hold B's leases");
    assert!(addresses_a.is_disjoint(&addresses_b));
    assert_eq!(addresses_a.len() + addresses_b.len(), 2 * PER_CONCENTRATOR);
    let in_pool = rows(
        &pg,
        "SELECT count(*) FROM radippool WHERE pool_name = 'fleet' AND expiry_time > now()",
    );
    assert_eq!(in_pool[0][0], (2 * PER_CONCENTRATOR).to_string());
    eprintln!(
        "200 sessions: A {} addresses, B {} addresses, all from the SQL pool",
        addresses_a.len(),
        addresses_b.len()
    );

    // radacct carries what each data plane counted (the load test's pings are
    // over; Interim-Updates every 2 s bring the rows level).
    for c in [&a, &b] {
        let mut last = (BTreeMap::new(), BTreeMap::new());
        let level = wait_for(Duration::from_secs(30), || {
            last = (c.up(&bin), open_rows(&pg, c.wan));
            last.0.len() == PER_CONCENTRATOR
                && last.0 == last.1
                && last.0.values().all(|(rx, tx)| *rx > 0 && *tx > 0)
        });
        assert!(
            level.is_ok(),
            "{} (xdp: {}): data plane {:?}\nradacct {:?}",
            c.name,
            c.xdp,
            last.0.iter().take(5).collect::<Vec<_>>(),
            last.1.iter().take(5).collect::<Vec<_>>()
        );
    }

    // A's sessions end (its load test's hold is over): A's leases are free, A's
    // rows closed; B's untouched.
    wait_for(Duration::from_secs(60), || lab.exited(run_a.pid).is_some())
        .unwrap_or_else(|_| panic!("A's load test did not end"));
    wait_for(Duration::from_secs(20), || {
        leases(&pg, a.wan).is_empty() && open_rows(&pg, a.wan).is_empty()
    })
    .unwrap_or_else(|_| {
        panic!(
            "{}",
            diagnose(
                &format!(
                    "A's leases {:?}, open rows {}",
                    leases(&pg, a.wan),
                    open_rows(&pg, a.wan).len()
                ),
                &[&agent_a]
            )
        )
    });
    let closed_a = rows(
        &pg,
        &format!(
            "SELECT count(*) FROM radacct WHERE nasipaddress = '{}' AND acctstoptime IS NOT NULL",
            a.wan
        ),
    );
    assert_eq!(closed_a[0][0], PER_CONCENTRATOR.to_string());
    assert_eq!(leases(&pg, b.wan), leased_b, "B's leases stay");

    // B crashes: nothing tells the server, its leases and rows stay open.
    lab.kill(agent_b.pid).unwrap();
    lab.kill(run_b.pid).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(leases(&pg, b.wan), leased_b, "a crash frees nothing");
    assert_eq!(open_rows(&pg, b.wan).len(), PER_CONCENTRATOR);
    // B comes back: Accounting-On frees its leases and closes its rows.
    let agent_b = b.start(&mut lab, &bin);
    wait_for(Duration::from_secs(20), || {
        leases(&pg, b.wan).is_empty() && open_rows(&pg, b.wan).is_empty()
    })
    .unwrap_or_else(|_| {
        panic!(
            "{}",
            diagnose(
                &format!(
                    "after B's restart: leases {}, open rows {}",
                    leases(&pg, b.wan).len(),
                    open_rows(&pg, b.wan).len()
                ),
                &[&agent_b]
            )
        )
    });
    let causes = rows(
        &pg,
        &format!(
            "SELECT DISTINCT acctterminatecause FROM radacct WHERE nasipaddress = '{}'",
            b.wan
        ),
    );
    assert_eq!(
        causes,
        [["NAS-Reboot".to_owned()]],
        "closed by Accounting-On"
    );

    lab.stop(agent_b.pid, Duration::from_secs(10)).unwrap();
    lab.stop(agent_a.pid, Duration::from_secs(10)).unwrap();
    lab.stop(radius.pid, Duration::from_secs(10)).unwrap();
    lab.stop(pg.pid, Duration::from_secs(10)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
