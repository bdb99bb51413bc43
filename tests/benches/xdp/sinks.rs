//! The counting sinks (`bench_sink`) at both ends of every chain. Each is a bench
//! object of its own, so each counts apart: a round reads only the sinks of its own
//! chain, and a frame that arrives late from another chain, or from the other
//! direction, is never taken for this round's.

use std::collections::BTreeMap;

use anyhow::Context as _;
use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray},
    programs::XdpMode,
};
use pptp_agent::dataplane::BENCH_OBJECT;
use pptp_tests::bench_lab::{BenchLab, link};

use crate::{Direction, Plane, in_ns, live::Kinds, program_mut};

/// An end of a chain.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum End {
    /// The wan end (`g0`): where encapsulated traffic arrives.
    Wan,
    /// The LAN end (`eth0`): where decapsulated traffic arrives.
    Lan,
}

impl End {
    /// Where `direction`'s traffic must arrive.
    pub fn far(direction: Direction) -> End {
        match direction {
            Direction::Decap => End::Lan,
            Direction::Encap => End::Wan,
        }
    }

    /// Where `direction`'s traffic is sent from (nothing may come back there).
    pub fn near(direction: Direction) -> End {
        match direction {
            Direction::Decap => End::Wan,
            Direction::Encap => End::Lan,
        }
    }
}

pub struct Sinks {
    objects: BTreeMap<(Plane, End), Ebpf>,
}

impl Sinks {
    /// A sink on both ends of every chain (chains in the order of [`Plane::ALL`]).
    pub fn attach(lab: &BenchLab) -> anyhow::Result<Self> {
        let mut objects = BTreeMap::new();
        for (chain, plane) in lab.chains().iter().zip(Plane::ALL) {
            for (end, ns, dev) in [
                (End::Wan, &chain.wan, link::WAN),
                (End::Lan, &chain.lan, link::HOST),
            ] {
                let mut object = EbpfLoader::new()
                    .load(BENCH_OBJECT)
                    .context("loading the bench object")?;
                let sink = program_mut(&mut object, "bench_sink")?;
                sink.load()?;
                in_ns(ns, || sink.attach(dev, XdpMode::default()))?
                    .with_context(|| format!("attaching the sink to {dev} in {ns}"))?;
                objects.insert((plane, end), object);
            }
        }
        Ok(Self { objects })
    }

    /// What the sink at `end` of `plane`'s chain has counted so far, by kind.
    pub fn counts(&self, plane: Plane, end: End) -> anyhow::Result<Kinds> {
        let object = &self.objects[&(plane, end)];
        let map: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(object.map("SINK_COUNTERS").context("no SINK_COUNTERS")?)?;
        let mut out = [0u64; 4];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = map.get(&(i as u32), 0)?.iter().sum();
        }
        Ok(out)
    }
}
