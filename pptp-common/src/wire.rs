//! Wire constants: Ethernet, IPv4 and the parts of TCP and enhanced GRE (RFC 2637 §4.1)
//! that both the BPF programs and the agent need.

/// EtherType of IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// Length of an Ethernet II header without VLAN tags.
pub const ETH_HLEN: usize = 14;
/// Minimum IPv4 header length (IHL = 5).
pub const IPV4_MIN_HLEN: usize = 20;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
/// UDP port of DHCP servers: Windows clients send DHCPINFORM there through the tunnel.
pub const DHCP_SERVER_PORT: u16 = 67;
pub const IPPROTO_GRE: u8 = 47;

/// IPv4 flags/fragment-offset field: "more fragments" bit.
pub const IPV4_MF: u16 = 0x2000;
/// IPv4 flags/fragment-offset field: the offset bits.
pub const IPV4_OFFSET_MASK: u16 = 0x1fff;

/// TCP port of the PPTP control connection (RFC 2637 §2).
pub const PPTP_TCP_PORT: u16 = 1723;

/// GRE protocol type carried by PPTP: PPP (RFC 2637 §4.1).
pub const GRE_PROTO_PPP: u16 = 0x880b;
/// GRE version number of the enhanced GRE header.
pub const GRE_VERSION_ENHANCED: u8 = 1;
/// Length of the fixed part of the enhanced GRE header: flags/version, protocol,
/// payload length and call ID (the key field).
pub const GRE_ENHANCED_MIN_HLEN: usize = 8;

/// First byte of the GRE header: checksum present.
pub const GRE_FLAG_C: u8 = 0x80;
/// First byte of the GRE header: routing present.
pub const GRE_FLAG_R: u8 = 0x40;
/// First byte of the GRE header: key present (must be set for PPTP).
pub const GRE_FLAG_K: u8 = 0x20;
/// First byte of the GRE header: sequence number present.
pub const GRE_FLAG_S: u8 = 0x10;
/// First byte of the GRE header: strict source route (must be clear for PPTP).
pub const GRE_FLAG_STRICT: u8 = 0x08;
/// First byte of the GRE header: recursion control bits (must be zero for PPTP).
pub const GRE_RECUR_MASK: u8 = 0x07;
/// Second byte of the GRE header: acknowledgment number present.
pub const GRE_FLAG_A: u8 = 0x80;
/// Second byte of the GRE header: flags that must be zero for PPTP.
pub const GRE_FLAGS2_MASK: u8 = 0x78;
/// Second byte of the GRE header: version bits.
pub const GRE_VERSION_MASK: u8 = 0x07;
