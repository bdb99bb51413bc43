//! Types and constants shared by the BPF programs (`pptp-ebpf`) and the agent.
//!
//! Everything here is `#![no_std]` and `#[repr(C)]` with explicit padding, because the
//! same bytes are read by the kernel side and by userspace through BPF maps. The `user`
//! feature implements `aya::Pod` for the map value types.
#![no_std]

pub mod counters;
pub mod maps;
pub mod seq;
pub mod session;
pub mod wire;
