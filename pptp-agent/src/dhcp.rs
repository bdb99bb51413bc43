//! Answering the DHCPINFORM that Windows clients send through the tunnel.
//!
//! # What Windows does
//!
//! IPCP gives a PPP client its address and, with Microsoft's extensions (RFC 1877), DNS
//! and WINS servers, but nothing else. So once IPCP is open, the Windows RAS client sends
//! a DHCPINFORM (RFC 2131 §3.4, message type 8) through the tunnel: from its assigned
//! address, UDP port 68 to port 67, usually to 255.255.255.255, with `ciaddr` set to its
//! address and a Parameter Request List (option 55) such as 1, 15, 3, 6, 44, 46, 47, 31,
//! 33, 121, 249, 43 (252 on later versions). Windows RRAS answers it through its DHCP
//! Relay Agent, with whatever the LAN's DHCP server has for that scope. Unanswered, the
//! connection still works, but the client lacks:
//!
//! - the connection's DNS suffix (option 15), so short names do not resolve;
//! - classless static routes (option 121, RFC 3442, and Microsoft's option 249, same
//!   encoding): the way to give a *split-tunnel* client (one that does not use the VPN as
//!   its default gateway) routes to the networks behind the concentrator, instead of
//!   the classful route Windows otherwise derives from its address.
//!
//! # What this module does
//!
//! [`DhcpInformResponder::respond`] looks at one IPv4 packet a client sent into the
//! tunnel. If it is a DHCPINFORM for us (UDP 68 → 67, to 255.255.255.255 or our
//! address, BOOTREQUEST, magic cookie, message type 8), it writes the complete DHCPACK
//! IPv4/UDP packet into a caller-owned buffer: from our address port 67 to the client's
//! `ciaddr` (or the packet's source) port 68, carrying options 53 (ACK), 54 (server
//! identifier), the client identifier echoed (RFC 6842), then the options the client
//! requested that we have (1, 6, 15, 121, 249), in the order it asked for them (without a
//! request list: 1, 6, 15, 121); no lease time and no `yiaddr` (RFC 2131 §4.3.5).
//! Everything else is `Ok(None)`: the caller forwards it as usual. A packet addressed to
//! our DHCP server port that we cannot read is a [`DhcpError`]: drop it (and count it).
//! Sans-IO, no allocation per packet once the reply buffer has [`MAX_REPLY_LEN`] capacity.
//!
//! # Size limits
//!
//! Each option is at most 255 bytes: a configuration whose routes, DNS list or domain
//! would need more is refused by [`DhcpInformConfig::validate`] rather than split per
//! RFC 3396, because Windows' support for RFC 3396 concatenation is not documented (MS-DHCPE
//! describes its own long-option encoding, for option 43 only) and a route table the
//! client truncated would silently install part of the routes. 255 bytes hold 28 routes
//! of any length. Validation also makes sure one copy of everything (mask, DNS, domain,
//! one of the route options), with an Ethernet-style client identifier echoed (9 bytes,
//! as Windows sends), fits in the 576-byte message every DHCP client must accept.
//! When the reply would exceed the client's limit (option 57, else 576 bytes), requested
//! options that do not fit are left out whole, never truncated: in practice the second
//! copy of the routes (249 after 121, as Windows orders them) when the table is large.
//!
//! # Wiring
//!
//! On the agent's path, call [`DhcpInformResponder::respond`] on each IPv4 packet
//! decapsulated (and decrypted) from a session before it goes to the TUN device, and
//! send a reply back into *that* session as if it came from the TUN device.

use crate::inet::{Ipv4Repr, fold, pseudo_header, sum16, verifies};
use pptp_common::wire::{
    DHCP_SERVER_PORT, get16,
    ipv4::{self, PROTO_UDP},
    udp,
};
use std::collections::HashSet;
use std::net::Ipv4Addr;

/// UDP port of DHCP servers.
pub const SERVER_PORT: u16 = DHCP_SERVER_PORT;
/// UDP port of DHCP clients.
pub const CLIENT_PORT: u16 = 68;
/// The BOOTP vendor-area magic cookie that marks DHCP options (RFC 2132 §2).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// DHCP message types (option 53) this module knows.
pub const DHCPACK: u8 = 5;
/// DHCPINFORM (RFC 2131).
pub const DHCPINFORM: u8 = 8;

/// Option codes.
pub mod option {
    /// Pad.
    pub const PAD: u8 = 0;
    /// Subnet mask (RFC 2132 §3.3).
    pub const SUBNET_MASK: u8 = 1;
    /// Domain name servers (RFC 2132 §3.8).
    pub const DNS_SERVERS: u8 = 6;
    /// Domain name (RFC 2132 §3.17).
    pub const DOMAIN_NAME: u8 = 15;
    /// Option overload (RFC 2132 §9.3).
    pub const OVERLOAD: u8 = 52;
    /// DHCP message type (RFC 2132 §9.6).
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier (RFC 2132 §9.7).
    pub const SERVER_ID: u8 = 54;
    /// Parameter request list (RFC 2132 §9.8).
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    /// Maximum DHCP message size (RFC 2132 §9.10).
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    /// Client identifier (RFC 2132 §9.14).
    pub const CLIENT_ID: u8 = 61;
    /// Classless static routes (RFC 3442).
    pub const CLASSLESS_ROUTES: u8 = 121;
    /// Microsoft classless static routes (MS-DHCPE §2.2.8): RFC 3442's encoding.
    pub const MS_CLASSLESS_ROUTES: u8 = 249;
    /// End.
    pub const END: u8 = 255;
}

const IPV4_HEADER: usize = ipv4::HEADER_LEN;
const UDP_HEADER: usize = udp::HEADER_LEN;
/// op .. file: the fixed BOOTP header.
const BOOTP_FIXED: usize = 236;
/// The fixed header and the magic cookie.
const DHCP_FIXED: usize = BOOTP_FIXED + 4;
/// RFC 1542 §2.1: the UDP data of a BOOTP message is at least 300 bytes.
const BOOTP_MIN: usize = 300;
/// RFC 2131 §2: every client accepts a 576-byte IP datagram (312 bytes of options).
pub const MIN_MAX_MESSAGE: usize = 576;
/// The largest reply [`DhcpInformResponder::respond`] can write: headers, the fixed part,
/// options 53 and 54, then at most five options of 255 bytes (client identifier, DNS,
/// domain, both route options), the mask and the end.
pub const MAX_REPLY_LEN: usize = IPV4_HEADER + UDP_HEADER + DHCP_FIXED + 3 + 6 + 6 + 5 * 257 + 1;
/// What a request without a Parameter Request List gets (besides 53, 54 and 61).
const DEFAULT_REQUEST: [u8; 4] = [
    option::SUBNET_MASK,
    option::DNS_SERVERS,
    option::DOMAIN_NAME,
    option::CLASSLESS_ROUTES,
];
/// How much of the 576-byte minimum our options may use: the options field less the
/// echo of a client identifier of type 1 and a 6-byte MAC (Windows').
const MIN_OPTIONS_ROOM: usize = MIN_MAX_MESSAGE - IPV4_HEADER - UDP_HEADER - DHCP_FIXED - 9;

/// One classless static route (RFC 3442): packets to `prefix/len` go to `gateway`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StaticRoute {
    /// The destination network, host bits zero.
    pub prefix: Ipv4Addr,
    /// Prefix length, 0 to 32 (0 is a default route).
    pub len: u8,
    /// The router, normally our tunnel address (0.0.0.0: on the link).
    pub gateway: Ipv4Addr,
}

impl StaticRoute {
    /// A route; [`DhcpInformConfig::validate`] checks it.
    pub const fn new(prefix: Ipv4Addr, len: u8, gateway: Ipv4Addr) -> Self {
        Self {
            prefix,
            len,
            gateway,
        }
    }

    /// Encoded length: width, significant octets of the destination, router.
    pub const fn encoded_len(&self) -> usize {
        1 + (self.len as usize).div_ceil(8) + 4
    }

    /// Appends the RFC 3442 encoding: the prefix length, the significant octets of the
    /// destination (`ceil(len / 8)`), the router.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.len);
        let significant = (self.len as usize).div_ceil(8).min(4);
        out.extend_from_slice(&self.prefix.octets()[..significant]);
        out.extend_from_slice(&self.gateway.octets());
    }
}

/// Appends the RFC 3442 encoding of `routes` (the data of option 121 or 249).
pub fn encode_classless_routes(routes: &[StaticRoute], out: &mut Vec<u8>) {
    for r in routes {
        r.encode(out);
    }
}

/// What the responder answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpInformConfig {
    /// Our tunnel address: the server identifier (option 54) and the reply's source.
    pub server: Ipv4Addr,
    /// The connection's DNS suffix (option 15).
    pub domain: Option<String>,
    /// Classless static routes (options 121 and 249).
    pub routes: Vec<StaticRoute>,
    /// DNS servers (option 6); IPCP already carries two, this is for clients asking here.
    pub dns: Vec<Ipv4Addr>,
    /// Subnet mask (option 1); 255.255.255.255 suits a point-to-point link.
    pub subnet_mask: Option<Ipv4Addr>,
}

/// Why a [`DhcpInformConfig`] is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The server address cannot identify a server.
    #[error("DHCP server identifier {0} is not a unicast address")]
    BadServer(Ipv4Addr),
    /// A prefix length above 32.
    #[error("route {prefix}/{len}: prefix length above 32")]
    PrefixTooLong {
        /// Destination.
        prefix: Ipv4Addr,
        /// Length given.
        len: u8,
    },
    /// Bits set beyond the prefix length.
    #[error("route {prefix}/{len}: host bits set (did you mean {network}/{len}?)")]
    HostBitsSet {
        /// Destination.
        prefix: Ipv4Addr,
        /// Length.
        len: u8,
        /// The network with host bits cleared.
        network: Ipv4Addr,
    },
    /// The same destination twice.
    #[error("route {prefix}/{len} given twice")]
    DuplicateRoute {
        /// Destination.
        prefix: Ipv4Addr,
        /// Length.
        len: u8,
    },
    /// The domain is not a DNS name.
    #[error(
        "domain {0:?} is not a DNS name (labels of 1-63 letters, digits, '-' or '_', at most 253 characters)"
    )]
    BadDomain(String),
    /// The subnet mask is not contiguous ones then zeros.
    #[error("subnet mask {0} is not contiguous")]
    BadMask(Ipv4Addr),
    /// One option would exceed 255 bytes (long options are refused, not split per RFC 3396).
    #[error(
        "DHCP option {code} would need {len} bytes, more than 255 (fewer routes or DNS servers, or a shorter domain)"
    )]
    OptionTooLong {
        /// Option code.
        code: u8,
        /// Bytes it would need.
        len: usize,
    },
    /// Mask, DNS, domain and routes together exceed the 576-byte message every client
    /// accepts (with room for a client identifier).
    #[error(
        "the DHCP options need {len} bytes, more than the {room} every client accepts (fewer routes or DNS servers, or a shorter domain)"
    )]
    TooMuch {
        /// Bytes needed.
        len: usize,
        /// Room in a 576-byte message.
        room: usize,
    },
}

impl DhcpInformConfig {
    /// Checks the configuration: prefix lengths at most 32 with host bits zero, no
    /// duplicate routes, a DNS domain name, a contiguous mask, each option at most 255
    /// bytes, and one copy of everything within the 576 bytes every client accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = self.server;
        if s.is_unspecified() || s.is_broadcast() || s.is_multicast() {
            return Err(ConfigError::BadServer(s));
        }
        let mut seen = HashSet::new();
        for r in &self.routes {
            if r.len > 32 {
                return Err(ConfigError::PrefixTooLong {
                    prefix: r.prefix,
                    len: r.len,
                });
            }
            let mask = prefix_mask(r.len);
            let network = Ipv4Addr::from(u32::from(r.prefix) & mask);
            if network != r.prefix {
                return Err(ConfigError::HostBitsSet {
                    prefix: r.prefix,
                    len: r.len,
                    network,
                });
            }
            if !seen.insert((r.prefix, r.len)) {
                return Err(ConfigError::DuplicateRoute {
                    prefix: r.prefix,
                    len: r.len,
                });
            }
        }
        if let Some(d) = &self.domain
            && !is_dns_name(d)
        {
            return Err(ConfigError::BadDomain(d.clone()));
        }
        if let Some(m) = self.subnet_mask {
            let m32 = u32::from(m);
            if m32.leading_ones() + m32.trailing_zeros() != 32 {
                return Err(ConfigError::BadMask(m));
            }
        }
        let routes: usize = self.routes.iter().map(StaticRoute::encoded_len).sum();
        let sizes = [
            (option::DNS_SERVERS, 4 * self.dns.len()),
            (
                option::DOMAIN_NAME,
                self.domain.as_ref().map_or(0, String::len),
            ),
            (option::CLASSLESS_ROUTES, routes),
        ];
        let mut total = 3 + 6 + 1; // 53, 54, end
        if self.subnet_mask.is_some() {
            total += 6;
        }
        for (code, len) in sizes {
            if len > 255 {
                return Err(ConfigError::OptionTooLong { code, len });
            }
            if len > 0 {
                total += 2 + len;
            }
        }
        if total > MIN_OPTIONS_ROOM {
            return Err(ConfigError::TooMuch {
                len: total,
                room: MIN_OPTIONS_ROOM,
            });
        }
        Ok(())
    }
}

fn prefix_mask(len: u8) -> u32 {
    match len {
        0 => 0,
        l => u32::MAX << (32 - u32::from(l.min(32))),
    }
}

fn is_dns_name(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Why a packet addressed to our DHCP server port was not answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DhcpError {
    /// The IPv4 header checksum is wrong.
    #[error("IPv4 header checksum mismatch")]
    IpChecksum,
    /// The IPv4 total length disagrees with the packet.
    #[error("IPv4 total length {total} but {have} bytes (header {header})")]
    IpLength {
        /// Total length field.
        total: usize,
        /// Bytes present.
        have: usize,
        /// Header length.
        header: usize,
    },
    /// The UDP length disagrees with the IPv4 payload.
    #[error("UDP length {udp} does not fit an IPv4 payload of {payload} bytes")]
    UdpLength {
        /// UDP length field.
        udp: usize,
        /// IPv4 payload length.
        payload: usize,
    },
    /// The UDP checksum is non-zero and wrong.
    #[error("UDP checksum mismatch")]
    UdpChecksum,
    /// Shorter than the fixed BOOTP header.
    #[error("DHCP message of {0} bytes, shorter than the 236-byte BOOTP header")]
    Truncated(usize),
    /// A hardware address length above the 16 bytes of `chaddr`.
    #[error("hardware address length {0} above 16")]
    BadHlen(u8),
    /// An option runs past the end of its area.
    #[error("option {code} at offset {at} runs past the end of its area")]
    OptionOverrun {
        /// Option code.
        code: u8,
        /// Offset in the DHCP message.
        at: usize,
    },
    /// An option with an impossible length or value.
    #[error("option {0} has an invalid length or value")]
    BadOption(u8),
    /// Neither `ciaddr` nor the source address says where to answer.
    #[error("DHCPINFORM without a client address")]
    NoClientAddress,
}

/// What one DHCPINFORM asked for, read without allocating.
struct Inform<'a> {
    xid: [u8; 4],
    flags: [u8; 2],
    htype: u8,
    hlen: u8,
    ciaddr: Ipv4Addr,
    chaddr: &'a [u8],
    /// The option areas in RFC 3396 order: options, then `file`, then `sname` if overloaded.
    areas: [&'a [u8]; 3],
    /// Requested options in the order asked, without duplicates.
    requested: [u8; 256],
    n_requested: usize,
    max_message: usize,
}

impl Inform<'_> {
    /// Every option of the (already validated) message, areas in RFC 3396 order.
    fn each_option(&self, mut each: impl FnMut(u8, &[u8])) {
        for (area, base) in self.areas.into_iter().zip([DHCP_FIXED, 108, 44]) {
            let _ = walk(area, base, |code, data| {
                each(code, data);
                Ok(())
            });
        }
    }
}

/// Walks TLV options in `area` (`base` is its offset in the message, for errors), calling
/// `each(code, data)`. Stops at End; a missing End at the end of the area is tolerated.
fn walk<'a>(
    area: &'a [u8],
    base: usize,
    mut each: impl FnMut(u8, &'a [u8]) -> Result<(), DhcpError>,
) -> Result<(), DhcpError> {
    let mut i = 0;
    while i < area.len() {
        let code = area[i];
        match code {
            option::PAD => i += 1,
            option::END => return Ok(()),
            _ => {
                let Some(&len) = area.get(i + 1) else {
                    return Err(DhcpError::OptionOverrun { code, at: base + i });
                };
                let end = i + 2 + usize::from(len);
                let Some(data) = area.get(i + 2..end) else {
                    return Err(DhcpError::OptionOverrun { code, at: base + i });
                };
                each(code, data)?;
                i = end;
            }
        }
    }
    Ok(())
}

/// Reads a BOOTREQUEST with DHCP options; `Ok(None)` when it is not a DHCPINFORM.
fn parse_inform(msg: &[u8]) -> Result<Option<Inform<'_>>, DhcpError> {
    if msg.len() < BOOTP_FIXED {
        return Err(DhcpError::Truncated(msg.len()));
    }
    if msg[0] != 1 || msg.len() < DHCP_FIXED || msg[236..240] != MAGIC_COOKIE {
        // A BOOTREPLY, or plain BOOTP without DHCP options.
        return Ok(None);
    }
    if msg[2] > 16 {
        return Err(DhcpError::BadHlen(msg[2]));
    }
    let main = &msg[DHCP_FIXED..];
    let mut overload = 0u8;
    let mut n_overload = 0;
    walk(main, DHCP_FIXED, |code, data| {
        if code == option::OVERLOAD {
            n_overload += 1;
            overload = *data.first().unwrap_or(&0);
            if data.len() != 1 || !(1..=3).contains(&overload) || n_overload > 1 {
                return Err(DhcpError::BadOption(code));
            }
        }
        Ok(())
    })?;
    let file = if overload & 1 != 0 {
        &msg[108..236]
    } else {
        &[][..]
    };
    let sname = if overload & 2 != 0 {
        &msg[44..108]
    } else {
        &[][..]
    };
    let mut inform = Inform {
        xid: msg[4..8].try_into().unwrap_or_default(),
        flags: msg[10..12].try_into().unwrap_or_default(),
        htype: msg[1],
        hlen: msg[2],
        ciaddr: ipv4_at(msg, 12),
        chaddr: &msg[28..44],
        areas: [main, file, sname],
        requested: [0; 256],
        n_requested: 0,
        max_message: MIN_MAX_MESSAGE,
    };
    let mut seen = [false; 256];
    // RFC 3396: instances of one option concatenate, so collect lengths across areas.
    let mut msg_type = [0u8; 2];
    let mut n_type = 0usize;
    let mut max_size = [0u8; 3];
    let mut n_max = 0usize;
    for (area, base) in inform.areas.into_iter().zip([DHCP_FIXED, 108, 44]) {
        walk(area, base, |code, data| {
            match code {
                option::MESSAGE_TYPE => {
                    for &b in data {
                        if n_type < 2 {
                            msg_type[n_type] = b;
                        }
                        n_type += 1;
                    }
                }
                option::MAX_MESSAGE_SIZE => {
                    for &b in data {
                        if n_max < 3 {
                            max_size[n_max] = b;
                        }
                        n_max += 1;
                    }
                }
                option::PARAMETER_REQUEST_LIST => {
                    for &c in data {
                        if !seen[usize::from(c)] {
                            seen[usize::from(c)] = true;
                            inform.requested[inform.n_requested] = c;
                            inform.n_requested += 1;
                        }
                    }
                }
                option::OVERLOAD if base != DHCP_FIXED => {
                    return Err(DhcpError::BadOption(code));
                }
                _ => {}
            }
            Ok(())
        })?;
    }
    if inform.n_requested == 0 {
        // No Parameter Request List: what we have, the routes once.
        for (i, c) in DEFAULT_REQUEST.iter().enumerate() {
            inform.requested[i] = *c;
        }
        inform.n_requested = DEFAULT_REQUEST.len();
    }
    match n_type {
        // BOOTP with RFC 1497 vendor extensions: not DHCP.
        0 => return Ok(None),
        1 => {}
        _ => return Err(DhcpError::BadOption(option::MESSAGE_TYPE)),
    }
    if msg_type[0] != DHCPINFORM {
        return Ok(None);
    }
    if msg[24..28] != [0; 4] {
        // Relayed (giaddr set): a relay agent's business, not a tunnel client's.
        return Ok(None);
    }
    match n_max {
        0 => {}
        2 => {
            let m = usize::from(u16::from_be_bytes([max_size[0], max_size[1]]));
            // RFC 2132 §9.10: 576 is the minimum legal value.
            inform.max_message = m.max(MIN_MAX_MESSAGE);
        }
        _ => return Err(DhcpError::BadOption(option::MAX_MESSAGE_SIZE)),
    }
    Ok(Some(inform))
}

fn ipv4_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// The UDP checksum over the pseudo-header and `udp` (header and data), as sent: 0 is
/// sent as 0xffff.
fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let acc = pseudo_header(src.octets(), dst.octets(), PROTO_UDP, udp.len() as u16);
    match !fold(sum16(acc, udp)) {
        0 => 0xffff,
        c => c,
    }
}

/// Answers DHCPINFORM with a validated [`DhcpInformConfig`].
#[derive(Clone, Debug)]
pub struct DhcpInformResponder {
    config: DhcpInformConfig,
    /// Options 121/249 data, encoded once.
    routes: Vec<u8>,
}

impl DhcpInformResponder {
    /// Validates `config` and encodes what every reply carries.
    pub fn new(config: DhcpInformConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut routes = Vec::new();
        encode_classless_routes(&config.routes, &mut routes);
        Ok(Self { config, routes })
    }

    /// The configuration answered with.
    pub fn config(&self) -> &DhcpInformConfig {
        &self.config
    }

    /// Looks at one IPv4 packet a client sent into the tunnel.
    ///
    /// - `Ok(None)`: not a DHCPINFORM for us (not IPv4/UDP 68 → 67 to 255.255.255.255
    ///   or our address, a fragment, not a DHCP BOOTREQUEST, another message type, or
    ///   relayed): forward it as usual. `reply` is left alone.
    /// - `Ok(Some(len))`: `reply` holds the DHCPACK, a complete IPv4/UDP packet of `len`
    ///   bytes (`reply.len() == len`), to send back into the session the request came from.
    /// - `Err(_)`: addressed to our DHCP server port but unreadable (bad checksum,
    ///   lengths, options): drop it. `reply` may have been cleared.
    ///
    /// `reply` is cleared and refilled; it does not allocate when its capacity is at least
    /// [`MAX_REPLY_LEN`].
    pub fn respond(&self, packet: &[u8], reply: &mut Vec<u8>) -> Result<Option<usize>, DhcpError> {
        let Some(header) = packet.first_chunk() else {
            return Ok(None);
        };
        let ip = ipv4::Header(*header);
        let ihl = ip.header_len();
        if !ip.is_ipv4() || packet.len() < ihl + UDP_HEADER || ip.protocol() != PROTO_UDP {
            return Ok(None);
        }
        if ip.is_fragment() {
            // More fragments or an offset: the kernel reassembles; not ours to answer.
            return Ok(None);
        }
        let src = Ipv4Addr::from(ip.src());
        let dst = Ipv4Addr::from(ip.dst());
        if dst != self.config.server && !dst.is_broadcast() {
            return Ok(None);
        }
        let Some(udp_header) = packet[ihl..].first_chunk::<UDP_HEADER>() else {
            return Ok(None);
        };
        if get16(udp_header, udp::field::SRC_PORT) != CLIENT_PORT
            || get16(udp_header, udp::field::DST_PORT) != SERVER_PORT
        {
            return Ok(None);
        }
        // From here on it is addressed to our DHCP server: problems are errors.
        if !verifies(0, &packet[..ihl]) {
            return Err(DhcpError::IpChecksum);
        }
        let total = ip.total_len();
        if total < ihl + UDP_HEADER || total > packet.len() {
            return Err(DhcpError::IpLength {
                total,
                have: packet.len(),
                header: ihl,
            });
        }
        let payload = &packet[ihl..total];
        let udp_len = usize::from(get16(udp_header, udp::field::LENGTH));
        if udp_len < UDP_HEADER || udp_len > payload.len() {
            return Err(DhcpError::UdpLength {
                udp: udp_len,
                payload: payload.len(),
            });
        }
        let udp = &payload[..udp_len];
        if udp[udp::field::CHECKSUM] != [0, 0] {
            let acc = pseudo_header(src.octets(), dst.octets(), PROTO_UDP, udp.len() as u16);
            if !verifies(acc, udp) {
                return Err(DhcpError::UdpChecksum);
            }
        }
        let Some(inform) = parse_inform(&udp[UDP_HEADER..])? else {
            return Ok(None);
        };
        let client = if inform.ciaddr.is_unspecified() {
            src
        } else {
            inform.ciaddr
        };
        if client.is_unspecified() || client.is_broadcast() {
            return Err(DhcpError::NoClientAddress);
        }
        Ok(Some(self.write_ack(&inform, client, reply)))
    }

    fn write_ack(&self, inform: &Inform<'_>, client: Ipv4Addr, reply: &mut Vec<u8>) -> usize {
        let server = self.config.server;
        reply.clear();
        reply.resize(IPV4_HEADER + UDP_HEADER + DHCP_FIXED, 0);
        let m = IPV4_HEADER + UDP_HEADER;
        reply[m] = 2; // BOOTREPLY
        reply[m + 1] = inform.htype;
        reply[m + 2] = inform.hlen;
        reply[m + 4..m + 8].copy_from_slice(&inform.xid);
        reply[m + 10..m + 12].copy_from_slice(&inform.flags);
        reply[m + 12..m + 16].copy_from_slice(&inform.ciaddr.octets());
        reply[m + 28..m + 44].copy_from_slice(inform.chaddr);
        reply[m + 236..m + 240].copy_from_slice(&MAGIC_COOKIE);

        reply.extend_from_slice(&[option::MESSAGE_TYPE, 1, DHCPACK]);
        reply.extend_from_slice(&[option::SERVER_ID, 4]);
        reply.extend_from_slice(&server.octets());
        // Room for the options, keeping a byte for End.
        let limit = inform.max_message.min(MAX_REPLY_LEN) - 1;
        // RFC 6842: the client identifier comes back unaltered, every instance in order
        // (RFC 3396), or not at all if it does not fit.
        let mut cid_len = 0;
        inform.each_option(|code, data| {
            if code == option::CLIENT_ID {
                cid_len += 2 + data.len();
            }
        });
        if reply.len() + cid_len <= limit {
            inform.each_option(|code, data| {
                if code == option::CLIENT_ID {
                    reply.extend_from_slice(&[code, data.len() as u8]);
                    reply.extend_from_slice(data);
                }
            });
        }
        for &code in &inform.requested[..inform.n_requested] {
            let c = &self.config;
            let mut put = |data: &[&[u8]]| {
                let len: usize = data.iter().map(|d| d.len()).sum();
                if reply.len() + 2 + len <= limit {
                    reply.extend_from_slice(&[code, len as u8]);
                    for d in data {
                        reply.extend_from_slice(d);
                    }
                }
            };
            match code {
                option::SUBNET_MASK => {
                    if let Some(mask) = c.subnet_mask {
                        put(&[&mask.octets()]);
                    }
                }
                option::DNS_SERVERS if !c.dns.is_empty() => {
                    let mut dns = [0u8; 252];
                    for (i, a) in c.dns.iter().take(63).enumerate() {
                        dns[4 * i..4 * i + 4].copy_from_slice(&a.octets());
                    }
                    put(&[&dns[..4 * c.dns.len().min(63)]]);
                }
                option::DOMAIN_NAME => {
                    if let Some(d) = &c.domain {
                        put(&[d.as_bytes()]);
                    }
                }
                option::CLASSLESS_ROUTES | option::MS_CLASSLESS_ROUTES
                    if !self.routes.is_empty() =>
                {
                    put(&[&self.routes]);
                }
                _ => {}
            }
        }
        reply.push(option::END);
        // RFC 1542 §2.1: at least 300 bytes of BOOTP.
        if reply.len() < m + BOOTP_MIN {
            reply.resize(m + BOOTP_MIN, option::PAD);
        }

        let total = reply.len();
        let udp_len = (total - IPV4_HEADER) as u16;
        let ip = Ipv4Repr::new(server.octets(), client.octets(), PROTO_UDP, udp_len);
        reply[..IPV4_HEADER].copy_from_slice(&ip.header());
        let datagram = &mut reply[IPV4_HEADER..];
        datagram[udp::field::SRC_PORT].copy_from_slice(&SERVER_PORT.to_be_bytes());
        datagram[udp::field::DST_PORT].copy_from_slice(&CLIENT_PORT.to_be_bytes());
        datagram[udp::field::LENGTH].copy_from_slice(&udp_len.to_be_bytes());
        let sum = udp_checksum(server, client, datagram);
        datagram[udp::field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
        total
    }
}
