//! The IPv4 header and the Internet checksum as the agent names them: the one
//! implementation in [`pptp_common::wire`], which the BPF programs use too. The
//! agent checks with [`Ipv4Packet::parse`] that bytes a peer calls IPv4 are an IPv4
//! packet before their source address is trusted; it writes the IPv4, UDP and ICMP
//! headers of its own packets (DHCPINFORM answers, the load generator's echo
//! requests) with [`Ipv4Repr`] and [`checksum`].

pub use pptp_common::wire::{
    checksum::{checksum, fold, pseudo_header, sum16, verifies},
    ipv4::{Packet as Ipv4Packet, Repr as Ipv4Repr},
};
