//! nftables in the lab's namespaces, always with counters the tests read back:
//!
//! - [`induce_gre_loss`] drops every n-th GRE packet each way (this kernel has no
//!   netem) and [`gre_loss`] says how many went through each rule, so a loss test
//!   shows that packets were in fact dropped;
//! - [`block_gre`] drops all GRE (a firewall passing only TCP 1723);
//! - [`hold_tcp_port`] drops connections to a port until [`release_tcp_port`];
//! - [`EchoObserver`] counts ICMP echo requests arriving at a host and replies
//!   leaving it by (address, identifier): an observer of traffic outside the product.

use std::{collections::BTreeMap, net::Ipv4Addr, process::Command};

use anyhow::{Context as _, ensure};
use serde_json::Value;

use crate::netns;

/// Runs `nft` with `args` in namespace `ns`; returns its standard output.
fn nft(ns: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = netns::run_in_ns(ns, Command::new("nft").args(args))
        .context("nft (run `cargo xtask setup` for nftables)")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs an nft script (`nft -f -`) in namespace `ns`.
fn nft_script(ns: &str, script: &str) -> anyhow::Result<()> {
    let file = std::env::temp_dir().join(format!(
        "pxl-nft-{}-{}.nft",
        std::process::id(),
        ns.replace('/', "_")
    ));
    std::fs::write(&file, script)?;
    let result = nft(ns, &["-f", &file.display().to_string()]);
    let _ = std::fs::remove_file(&file);
    result.map(drop)
}

/// Drops every `every`-th GRE packet entering and leaving namespace `ns`. Counters
/// `gre_<hook>` count every GRE packet, `dropped_<hook>` the dropped ones. Bounded
/// by the namespace's life.
pub fn induce_gre_loss(ns: &str, every: u32) -> anyhow::Result<()> {
    ensure!(every >= 2, "losing every packet is no loss test");
    let mut script = String::from("table inet loss {\n");
    for hook in ["input", "output"] {
        script.push_str(&format!(
            "  counter gre_{hook} {{ }}\n  counter dropped_{hook} {{ }}\n  \
             chain {hook} {{ type filter hook {hook} priority 0;\n    \
             ip protocol gre counter name gre_{hook}\n    \
             ip protocol gre numgen inc mod {every} 0 counter name dropped_{hook} drop\n  }}\n"
        ));
    }
    script.push_str("}\n");
    nft_script(ns, &script)
}

/// Drops every GRE packet (IP protocol 47) entering and leaving namespace `ns`, as
/// a firewall passing only TCP 1723 does; [`gre_blocked`] says how many were
/// dropped. Bounded by the namespace's life.
pub fn block_gre(ns: &str) -> anyhow::Result<()> {
    nft_script(
        ns,
        "table inet block {\n  counter dropped { }\n  \
         chain input { type filter hook input priority 0; ip protocol gre counter name dropped drop\n  }\n  \
         chain output { type filter hook output priority 0; ip protocol gre counter name dropped drop\n  }\n}\n",
    )
}

/// GRE packets [`block_gre`] dropped in namespace `ns`.
pub fn gre_blocked(ns: &str) -> anyhow::Result<u64> {
    let json: Value = serde_json::from_str(&nft(
        ns,
        &["-j", "list", "counter", "inet", "block", "dropped"],
    )?)?;
    json["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|item| item.get("counter")?["packets"].as_u64())
        .with_context(|| format!("no nft counter dropped in {json}"))
}

/// GRE packets that met one direction's rules, and how many of them were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    pub packets: u64,
    pub dropped: u64,
}

/// What [`induce_gre_loss`] counted in namespace `ns`: (entering, leaving).
pub fn gre_loss(ns: &str) -> anyhow::Result<(Lost, Lost)> {
    let json: Value = serde_json::from_str(&nft(
        ns,
        &["-j", "list", "counters", "table", "inet", "loss"],
    )?)?;
    let mut counters = BTreeMap::new();
    for item in json["nftables"].as_array().into_iter().flatten() {
        if let Some(c) = item.get("counter") {
            let name = c["name"].as_str().unwrap_or_default().to_owned();
            counters.insert(name, c["packets"].as_u64().unwrap_or(0));
        }
    }
    let get = |name: &str| {
        counters
            .get(name)
            .copied()
            .with_context(|| format!("no nft counter {name} in {json}"))
    };
    Ok((
        Lost {
            packets: get("gre_input")?,
            dropped: get("dropped_input")?,
        },
        Lost {
            packets: get("gre_output")?,
            dropped: get("dropped_output")?,
        },
    ))
}

/// Drops TCP connections to `port` arriving in namespace `ns` (a caller's SYN is
/// retransmitted after a second) until [`release_tcp_port`].
pub fn hold_tcp_port(ns: &str, port: u16) -> anyhow::Result<()> {
    nft_script(
        ns,
        &format!(
            "table inet hold {{\n  chain input {{ type filter hook input priority 0;\n    \
             tcp dport {port} drop\n  }}\n}}\n"
        ),
    )
}

/// Undoes [`hold_tcp_port`].
pub fn release_tcp_port(ns: &str) -> anyhow::Result<()> {
    nft(ns, &["delete", "table", "inet", "hold"]).map(drop)
}

/// Counts, on a host, the ICMP echo requests it receives by (source, identifier)
/// and the echo replies it sends by (destination, identifier).
pub struct EchoObserver {
    ns: String,
}

/// Packets counted per (address, ICMP identifier).
pub type EchoCounts = BTreeMap<(Ipv4Addr, u16), u64>;

impl EchoObserver {
    /// Installs the counting rules in namespace `ns` (sets of up to 65,536 pairs).
    pub fn install(ns: &str) -> anyhow::Result<Self> {
        nft_script(
            ns,
            "table ip observe {\n  \
             set requests { typeof ip saddr . icmp id; flags dynamic; counter; size 65536; }\n  \
             set replies { typeof ip daddr . icmp id; flags dynamic; counter; size 65536; }\n  \
             chain input { type filter hook input priority 0;\n    \
             icmp type echo-request update @requests { ip saddr . icmp id }\n  }\n  \
             chain output { type filter hook output priority 0;\n    \
             icmp type echo-reply update @replies { ip daddr . icmp id }\n  }\n}\n",
        )?;
        Ok(Self { ns: ns.to_owned() })
    }

    /// Echo requests received so far.
    pub fn requests(&self) -> anyhow::Result<EchoCounts> {
        self.counts("requests")
    }

    /// Echo replies sent so far.
    pub fn replies(&self) -> anyhow::Result<EchoCounts> {
        self.counts("replies")
    }

    /// Forgets what was counted.
    pub fn reset(&self) -> anyhow::Result<()> {
        for set in ["requests", "replies"] {
            nft(&self.ns, &["flush", "set", "ip", "observe", set])?;
        }
        Ok(())
    }

    fn counts(&self, set: &str) -> anyhow::Result<EchoCounts> {
        let text = nft(&self.ns, &["-j", "list", "set", "ip", "observe", set])?;
        parse_set_counts(&text)
    }
}

/// The elements of an `nft -j list set` of `ipv4_addr . integer` with counters.
fn parse_set_counts(text: &str) -> anyhow::Result<EchoCounts> {
    let json: Value = serde_json::from_str(text)?;
    let mut counts = EchoCounts::new();
    for item in json["nftables"].as_array().into_iter().flatten() {
        for elem in item["set"]["elem"].as_array().into_iter().flatten() {
            let elem = &elem["elem"];
            let concat = elem["val"]["concat"]
                .as_array()
                .with_context(|| format!("not a concatenation: {elem}"))?;
            let address: Ipv4Addr = concat[0]
                .as_str()
                .context("no address")?
                .parse()
                .context("bad address")?;
            let id = u16::try_from(concat[1].as_u64().context("no identifier")?)?;
            let packets = elem["counter"]["packets"].as_u64().context("no counter")?;
            *counts.entry((address, id)).or_default() += packets;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_set_elements_with_counters() {
        let text = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "ip", "name": "requests", "table": "observe", "type": ["ipv4_addr", "integer"], "handle": 4, "size": 65536, "elem": [{"elem": {"val": {"concat": ["192.0.2.10", 7]}, "counter": {"packets": 2, "bytes": 168}}}, {"elem": {"val": {"concat": ["192.0.2.11", 8]}, "counter": {"packets": 1, "bytes": 84}}}]}}]}"#;
        let counts = parse_set_counts(text).unwrap();
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            [
                ((Ipv4Addr::new(192, 0, 2, 10), 7), 2),
                ((Ipv4Addr::new(192, 0, 2, 11), 8), 1)
            ]
        );
        let empty = r#"{"nftables": [{"metainfo": {}}, {"set": {"name": "replies"}}]}"#;
        assert!(parse_set_counts(empty).unwrap().is_empty());
    }
}
