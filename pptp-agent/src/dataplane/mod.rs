//! The data plane: the BPF programs embedded in this binary, the bpffs directory
//! their maps are pinned in, and the counters they keep.
//!
//! The XDP program on the uplink is loaded from [`BPF_OBJECT`]; its maps are pinned
//! under `<bpffs>/<instance>/` so that `pptp-agent stats` (and `bpftool`) can read
//! them from another process.

pub mod bpffs;
pub mod counters;
pub mod uplink;

/// The BPF object built from `pptp-ebpf` by `build.rs`.
pub static BPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pptp-ebpf.o"));
