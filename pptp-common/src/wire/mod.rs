//! The headers both halves of the data plane read and write, written once: Ethernet
//! ([`ethernet`]), IPv4 ([`ipv4`]), enhanced GRE ([`gre`], RFC 2637 §4.1), the PPP
//! header ([`ppp`], RFC 1661 §6), the parts of TCP and UDP the data plane touches
//! ([`tcp`], [`udp`]) and the Internet checksum ([`checksum`]). The BPF programs
//! (`pptp-ebpf`) and the agent (`pptp-agent/src/gre.rs`, `pptp-agent/src/ppp/frame.rs`,
//! `pptp-agent/src/dhcp.rs`, `pptp-agent/src/engine/session.rs`, ...) call the same functions, so a packet the agent would
//! refuse cannot get past XDP, and what XDP writes is what the agent would write.
//!
//! Shaped like smoltcp's `wire/`: each header names its fields in a `mod field` of
//! byte offsets and ranges, has a view over its fixed-size bytes (a BPF program reads
//! a header with one bounds check, then asks the view) and builders that return the
//! bytes to write. What the BPF programs call works on fixed-size arrays, with no
//! loop but ones bounded by a constant and no index the compiler cannot prove in
//! range (the verifier would refuse the panic path), and is `#[inline(always)]`;
//! `cargo test -p pptp-common` runs it on the host.

pub mod checksum;
pub mod ethernet;
pub mod gre;
pub mod ipv4;
pub mod ppp;
pub mod tcp;
pub mod udp;

/// A field of a header: its byte range.
pub type Field = core::ops::Range<usize>;

/// TCP port of the PPTP control connection (RFC 2637 §2).
pub const PPTP_TCP_PORT: u16 = 1723;
/// UDP port of DHCP servers: Windows clients send DHCPINFORM there through the tunnel.
pub const DHCP_SERVER_PORT: u16 = 67;

/// The big-endian `u16` in `field` of `bytes`.
#[inline(always)]
pub fn get16<const N: usize>(bytes: &[u8; N], field: Field) -> u16 {
    u16::from_be_bytes([bytes[field.start], bytes[field.start + 1]])
}

/// The big-endian `u32` in `field` of `bytes`.
#[inline(always)]
pub fn get32<const N: usize>(bytes: &[u8; N], field: Field) -> u32 {
    let at = field.start;
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The four bytes in `field` of `bytes` (an IPv4 address).
#[inline(always)]
pub fn get_addr<const N: usize>(bytes: &[u8; N], field: Field) -> [u8; 4] {
    let at = field.start;
    [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]
}

/// Writes `value` big-endian into `field` of `bytes`.
#[inline(always)]
pub fn put16<const N: usize>(bytes: &mut [u8; N], field: Field, value: u16) {
    let [hi, lo] = value.to_be_bytes();
    bytes[field.start] = hi;
    bytes[field.start + 1] = lo;
}

/// Writes `value` (four bytes) into `field` of `bytes`.
#[inline(always)]
pub fn put_addr<const N: usize>(bytes: &mut [u8; N], field: Field, value: [u8; 4]) {
    let at = field.start;
    bytes[at] = value[0];
    bytes[at + 1] = value[1];
    bytes[at + 2] = value[2];
    bytes[at + 3] = value[3];
}
