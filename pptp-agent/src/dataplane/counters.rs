//! The global counters kept by the uplink program: read from a loaded or pinned
//! map, summed over CPUs, and rendered for `pptp-agent stats`.

use std::path::Path;

use anyhow::Context as _;
use aya::maps::{Map, MapData, PerCpuArray};
use pptp_common::counters::{Counter, GlobalCounter};
use serde::Serialize;

/// One named counter, summed over all CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NamedCounter {
    pub name: &'static str,
    pub packets: u64,
    pub bytes: u64,
}

/// Snapshot of every [`GlobalCounter`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GlobalCounters {
    pub counters: Vec<NamedCounter>,
}

impl GlobalCounters {
    /// Reads the counters from the map pinned at `path`.
    pub fn read_pinned(path: &Path) -> anyhow::Result<Self> {
        let data = MapData::from_pin(path).with_context(|| {
            format!(
                "opening the pinned counter map {} (is `pptp-agent serve` running with the same --bpffs and --instance?)",
                path.display()
            )
        })?;
        Self::read(&Map::PerCpuArray(data))
    }

    /// Reads the counters from a counter map.
    pub fn read(map: &Map) -> anyhow::Result<Self> {
        let array: PerCpuArray<&MapData, Counter> =
            PerCpuArray::try_from(map).context("the counter map has an unexpected type")?;
        let counters = GlobalCounter::ALL
            .iter()
            .map(|&class| {
                let per_cpu = array
                    .get(&class.index(), 0)
                    .with_context(|| format!("reading counter {}", class.name()))?;
                let mut sum = Counter::default();
                per_cpu.iter().for_each(|c| sum.add(c));
                Ok(NamedCounter {
                    name: class.name(),
                    packets: sum.packets,
                    bytes: sum.bytes,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { counters })
    }

    /// The counter called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&NamedCounter> {
        self.counters.iter().find(|c| c.name == name)
    }

    /// Total frames the program ran on (every frame lands in exactly one class).
    pub fn total_packets(&self) -> u64 {
        self.counters.iter().map(|c| c.packets).sum()
    }

    /// Human-readable table.
    pub fn render_table(&self) -> String {
        let mut out = format!("{:<14} {:>14} {:>16}\n", "class", "packets", "bytes");
        for c in &self.counters {
            out.push_str(&format!(
                "{:<14} {:>14} {:>16}\n",
                c.name, c.packets, c.bytes
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GlobalCounters {
        GlobalCounters {
            counters: vec![
                NamedCounter {
                    name: "pptp_control",
                    packets: 3,
                    bytes: 200,
                },
                NamedCounter {
                    name: "gre_enhanced",
                    packets: 5,
                    bytes: 700,
                },
            ],
        }
    }

    #[test]
    fn table_lists_every_counter_with_its_values() {
        let table = sample().render_table();
        let lines: Vec<_> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("pptp_control") && lines[1].ends_with(" 200"));
        assert!(lines[2].contains(" 5 ") && lines[2].ends_with(" 700"));
    }

    #[test]
    fn json_names_each_counter() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["counters"][1]["name"], "gre_enhanced");
        assert_eq!(json["counters"][1]["packets"], 5);
        assert_eq!(sample().total_packets(), 8);
        assert_eq!(sample().get("gre_enhanced").unwrap().bytes, 700);
    }
}
