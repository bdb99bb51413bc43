//! The benchmark topology: three identical chains of three namespaces, one per data
//! plane under comparison, so that the rounds of a benchmark interleave the data
//! planes without re-attaching programs.
//!
//! ```text
//!  [gen/wan] g0 ── up0 [concentrator] lan0 ── eth0 [lan]
//!   198.51.100.2   198.51.100.1  203.0.113.1   203.0.113.2
//! ```
//!
//! Every chain has the same addresses and MAC addresses, so one set of frames serves
//! all three. Peers (outer GRE sources) live in 198.51.100.64/26 and clients (tunnel
//! addresses) in 192.0.2.0/24, 198.51.100.128/25, 203.0.113.128/25 and (beyond 500
//! clients) 198.18.0.0/16, all routed
//! on the concentrator via the wan end (198.51.100.2); the wan and LAN ends have
//! permanent neighbour entries on the concentrator (their sink programs answer no
//! ARP). Both concentrator veths have GRO on: XDP frames sent into a veth need NAPI
//! on the receiving end, which an XDP program or GRO provides.
//!
//! Names follow the lab's convention (`pxl<pid>xb<n>-<chain><role>`), so
//! [`crate::lab::down_stale`] removes what a killed benchmark left; dropping a
//! [`BenchLab`] deletes its namespaces (and with them their veths) and its run
//! directory.

use std::{
    net::Ipv4Addr,
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::Context as _;

use crate::{
    lab::{self, RUN_ROOT},
    netns::{self, ip, ip_in},
};

/// Interface names and MAC addresses (the same in every chain).
pub mod link {
    /// The generator/sink end on the wan side.
    pub const WAN: &str = "g0";
    /// The concentrator's uplink.
    pub const UPLINK: &str = "up0";
    /// The concentrator's LAN link.
    pub const LAN: &str = "lan0";
    /// The generator/sink end on the LAN side.
    pub const HOST: &str = "eth0";

    pub const WAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 1, 2];
    pub const UPLINK_MAC: [u8; 6] = [0x02, 0, 0, 0, 1, 1];
    pub const LAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 2, 1];
    pub const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 2, 2];
}

/// Addresses (documentation ranges only).
pub mod addr {
    use std::net::Ipv4Addr;

    pub const UPLINK: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    pub const WAN_END: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
    pub const LAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    pub const LAN_HOST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);

    /// Number of distinct peer addresses (198.51.100.64 + i).
    pub const PEERS: usize = 60;
    /// Number of distinct client addresses: 500 in the documentation ranges, the
    /// rest in 198.18.0.0/15 (RFC 2544's benchmarking range).
    pub const MAX_CLIENTS: usize = 250 + 125 + 125 + 65_536;

    /// Outer address of peer `i`.
    pub fn peer(i: usize) -> Ipv4Addr {
        assert!(i < PEERS);
        Ipv4Addr::new(198, 51, 100, 64 + i as u8)
    }

    /// Tunnel address of client `i` (`i < MAX_CLIENTS`).
    pub fn client(i: usize) -> Ipv4Addr {
        match i {
            0..250 => Ipv4Addr::new(192, 0, 2, 1 + i as u8),
            250..375 => Ipv4Addr::new(198, 51, 100, 129 + (i - 250) as u8),
            375..500 => Ipv4Addr::new(203, 0, 113, 129 + (i - 375) as u8),
            500..MAX_CLIENTS => {
                let [_, _, hi, lo] = ((i - 500) as u32).to_be_bytes();
                Ipv4Addr::new(198, 18, hi, lo)
            }
            _ => panic!("client {i}: the bench ranges hold {MAX_CLIENTS} clients"),
        }
    }

    /// Routes on the concentrator towards the wan end.
    pub const ROUTED: [&str; 5] = [
        "198.51.100.64/26",
        "192.0.2.0/24",
        "198.51.100.128/25",
        "203.0.113.128/25",
        "198.18.0.0/16",
    ];
}

/// One chain: generator/sink namespaces on both sides of a concentrator.
#[derive(Clone, Debug)]
pub struct Chain {
    /// The wan-side namespace (interface [`link::WAN`]).
    pub wan: String,
    /// The concentrator (interfaces [`link::UPLINK`] and [`link::LAN`]).
    pub concentrator: String,
    /// The LAN-side namespace (interface [`link::HOST`]).
    pub lan: String,
}

impl Chain {
    pub fn namespaces(&self) -> [&str; 3] {
        [&self.wan, &self.concentrator, &self.lan]
    }
}

/// The benchmark's namespaces, removed when dropped.
pub struct BenchLab {
    id: String,
    chains: Vec<Chain>,
}

impl BenchLab {
    /// Builds one chain per tag (a short lowercase name, e.g. "o" for ours).
    pub fn up(tags: &[&str]) -> anyhow::Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        lab::check_privileges()?;
        let id = format!(
            "pxl{}xb{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut bench = Self {
            id,
            chains: Vec::new(),
        };
        for tag in tags {
            let chain = Chain {
                wan: format!("{}-{tag}w", bench.id),
                concentrator: format!("{}-{tag}c", bench.id),
                lan: format!("{}-{tag}l", bench.id),
            };
            // On error `bench` is dropped and removes whatever was created.
            bench.chains.push(chain.clone());
            create(&chain)?;
        }
        Ok(bench)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The chains, in the order of the tags given to [`BenchLab::up`].
    pub fn chains(&self) -> &[Chain] {
        &self.chains
    }

    /// A directory for this benchmark's bpffs mounts, removed with the lab (and by
    /// [`crate::lab::down_stale`]).
    pub fn run_dir(&self) -> PathBuf {
        PathBuf::from(RUN_ROOT).join(&self.id)
    }

    fn teardown(&mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        let run_dir = self.run_dir();
        if run_dir.exists() {
            for entry in std::fs::read_dir(&run_dir)?.flatten() {
                let _ = nix::mount::umount2(&entry.path(), nix::mount::MntFlags::MNT_DETACH);
            }
            if let Err(e) = std::fs::remove_dir_all(&run_dir) {
                first_error.get_or_insert(anyhow::Error::from(e));
            }
        }
        let prefix = format!("{}-", self.id);
        for ns in netns::list().into_iter().filter(|n| n.starts_with(&prefix)) {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                first_error.get_or_insert(e);
            }
        }
        self.chains.clear();
        first_error.map_or(Ok(()), Err)
    }

    /// Removes everything now (also done on drop).
    pub fn down(mut self) -> anyhow::Result<()> {
        self.teardown()
    }
}

impl Drop for BenchLab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("bench lab {}: teardown: {e:#}", self.id);
        }
    }
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn create(chain: &Chain) -> anyhow::Result<()> {
    for ns in chain.namespaces() {
        ip(&["netns", "add", ns])?;
        ip_in(ns, &["link", "set", "lo", "up"])?;
        for key in [
            "net/ipv6/conf/all/disable_ipv6",
            "net/ipv6/conf/default/disable_ipv6",
        ] {
            lab::sysctl(ns, key, "1")?;
        }
    }
    let conc = &chain.concentrator;
    let pair = |ns_a: &str, a: &str, mac_a, ns_b: &str, b: &str, mac_b| {
        ip(&[
            "link",
            "add",
            "name",
            a,
            "address",
            &mac(mac_a),
            "netns",
            ns_a,
            "type",
            "veth",
            "peer",
            "name",
            b,
            "address",
            &mac(mac_b),
            "netns",
            ns_b,
        ])
    };
    pair(
        &chain.wan,
        link::WAN,
        link::WAN_MAC,
        conc,
        link::UPLINK,
        link::UPLINK_MAC,
    )?;
    pair(
        conc,
        link::LAN,
        link::LAN_MAC,
        &chain.lan,
        link::HOST,
        link::HOST_MAC,
    )?;
    let set_up = |ns: &str, dev: &str, address: Ipv4Addr| {
        ip_in(ns, &["addr", "add", &format!("{address}/28"), "dev", dev])?;
        ip_in(ns, &["link", "set", dev, "up"])
    };
    set_up(&chain.wan, link::WAN, addr::WAN_END)?;
    set_up(conc, link::UPLINK, addr::UPLINK)?;
    set_up(conc, link::LAN, addr::LAN)?;
    set_up(&chain.lan, link::HOST, addr::LAN_HOST)?;
    for (neighbour, lladdr, dev) in [
        (addr::WAN_END, link::WAN_MAC, link::UPLINK),
        (addr::LAN_HOST, link::HOST_MAC, link::LAN),
    ] {
        ip_in(
            conc,
            &[
                "neigh",
                "replace",
                &neighbour.to_string(),
                "lladdr",
                &mac(lladdr),
                "dev",
                dev,
                "nud",
                "permanent",
            ],
        )?;
    }
    for prefix in addr::ROUTED {
        ip_in(
            conc,
            &["route", "add", prefix, "via", &addr::WAN_END.to_string()],
        )?;
    }
    lab::sysctl(conc, "net/ipv4/ip_forward", "1")?;
    for dev in ["all", "default", link::UPLINK, link::LAN] {
        lab::sysctl(conc, &format!("net/ipv4/conf/{dev}/rp_filter"), "0")?;
    }
    for dev in [link::UPLINK, link::LAN] {
        netns::run_in_ns(
            conc,
            std::process::Command::new("ethtool").args(["-K", dev, "gro", "on"]),
        )
        .context("ethtool (run `cargo xtask setup`)")?;
    }
    Ok(())
}

/// The index of interface `dev` in namespace `ns`.
pub fn ifindex(ns: &str, dev: &str) -> anyhow::Result<u32> {
    let dev = dev.to_owned();
    netns::run_in(ns, move || {
        nix::net::if_::if_nametoindex(dev.as_str()).with_context(|| format!("no interface {dev}"))
    })
}
