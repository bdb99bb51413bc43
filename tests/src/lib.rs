//! Test support shared by the integration tests, `cargo xtask` and the benchmarks.
//!
//! - [`agents`]: pptp-agent servers and clients in the lab.
//! - [`bench_lab`]: the namespaces of `cargo xtask bench` (three parallel chains).
//! - [`bpffs`]: private bpffs mounts for pinned maps.
//! - [`capture`]: dumpcap captures in the lab, dissected by tshark.
//! - [`freeradius`]: a real FreeRADIUS and radclient for the RADIUS tests.
//! - [`nft`]: nftables rules with counters (induced loss, held ports, an ICMP echo
//!   observer).
//! - [`netns`]: run code and processes inside network namespaces.
//! - [`postgres`]: a real PostgreSQL and psql for the fleet test.
//! - [`load`]: many sessions at once (`pptp-agent load-test` against wide pools).
//! - [`process`]: a started process's memory, descriptors and CPU time (/proc).
//! - [`sample`]: medians of benchmark rounds.
//! - [`lab`]: the standard lab (clients, a WAN bridge, the concentrator, a LAN host)
//!   built from network namespaces and veth pairs, torn down when dropped.
//! - [`traffic`]: generators for the traffic the tests send (PPTP control TCP, GRE).
//! - [`vm`]: real third-party peers (pppd, pptp-linux, pptpd) in a qemu VM.

pub mod agents;
pub mod bench_lab;
pub mod bpffs;
pub mod capture;
pub mod demo;
pub mod freeradius;
pub mod iperf;
pub mod lab;
pub mod load;
pub mod netns;
pub mod nft;
pub mod postgres;
pub mod process;
pub mod sample;
pub mod traffic;
pub mod vm;
