//! The data plane: the BPF programs embedded in this binary, the bpffs directory
//! their maps are pinned in, the sessions installed in them and the counters they
//! keep.
//!
//! The XDP programs are loaded from [`BPF_OBJECT`] by [`xdp`]; their maps are pinned
//! under `<bpffs>/<instance>/` so that `pptp-agent stats` (and `bpftool`) can read
//! them from another process. [`table`] shares each session's record (identity, GRE
//! sequence space, packet counters) between the programs and the agent.

pub mod bpffs;
pub mod capture;
pub mod clients;
pub mod counters;
pub mod mapped;
pub mod report;
pub mod table;
pub mod xdp;

/// The BPF object built from `pptp-ebpf` by `build.rs`.
pub static BPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pptp-ebpf.o"));

/// The benchmark programs built from `pptp-ebpf/src/bench.rs` (load generator, sink,
/// bare redirect), for `cargo xtask bench` only.
#[cfg(feature = "bench")]
pub static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pptp-bench.o"));
