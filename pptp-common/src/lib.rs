//! Types, rules and codecs shared by the BPF programs (`pptp-ebpf`) and the agent.
//!
//! Everything here is `#![no_std]`. The map types ([`session`], [`counters`]) are
//! `#[repr(C)]` with explicit padding, because the same bytes are read by the kernel
//! side and by userspace through BPF maps; the `user` feature implements `aya::Pod`
//! for them. [`seq`] is the one GRE receive window and [`wire`] the one set of header
//! codecs both sides run.
#![no_std]

pub mod capture;
pub mod counters;
pub mod maps;
pub mod police;
pub mod rate;
pub mod seq;
pub mod session;
pub mod wire;
