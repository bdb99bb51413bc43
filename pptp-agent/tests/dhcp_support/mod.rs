//! Packets and configuration shared by the DHCPINFORM tests: a DHCPINFORM as a Windows
//! RAS client sends it, built field by field from RFC 2131 and RFC 2132, and an
//! independent IPv4/UDP encoder and option reader.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use pptp_agent::dhcp::{DhcpInformConfig, StaticRoute};

/// Our tunnel address.
pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// The address IPCP gave the client.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// The client's adapter address (chaddr).
pub const CHADDR: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// Transaction ID of the Windows request.
pub const XID: [u8; 4] = [0x39, 0x03, 0xf3, 0x26];

/// The Parameter Request List of Windows 7 and later over a VPN connection (dnsmasq logs
/// of a "MSFT 5.0" client show 1,15,3,6,44,46,47,31,33,121,249,43; 252, WPAD, follows on
/// later versions).
pub const WINDOWS_PRL: [u8; 13] = [1, 15, 3, 6, 44, 46, 47, 31, 33, 121, 249, 43, 252];

/// The configuration the exact-bytes test answers with.
pub fn config() -> DhcpInformConfig {
    DhcpInformConfig {
        server: SERVER,
        domain: Some("corp.example".into()),
        routes: vec![
            StaticRoute::new(Ipv4Addr::new(10, 0, 0, 0), 8, SERVER),
            StaticRoute::new(Ipv4Addr::new(192, 168, 1, 0), 24, SERVER),
        ],
        dns: vec![Ipv4Addr::new(10, 99, 0, 53)],
        subnet_mask: Some(Ipv4Addr::BROADCAST),
    }
}

/// RFC 1071 sum, folded, not complemented.
pub fn ones_sum(chunks: &[&[u8]]) -> u16 {
    let mut acc: u32 = 0;
    for data in chunks {
        for pair in data.chunks(2) {
            acc += u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
        }
    }
    while acc > 0xffff {
        acc = (acc >> 16) + (acc & 0xffff);
    }
    acc as u16
}

/// An IPv4/UDP packet around `payload`; the UDP checksum is left zero unless `checksum`.
pub fn ipv4_udp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
    checksum: bool,
) -> Vec<u8> {
    let total = (28 + payload.len()) as u16;
    let mut p = vec![
        0x45, // version 4, 5 words
        0x00, // DSCP/ECN
    ];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x1c, 0x46]); // identification
    p.extend_from_slice(&[0x00, 0x00]); // no flags, offset 0
    p.push(128); // Windows' TTL
    p.push(17); // UDP
    p.extend_from_slice(&[0, 0]); // header checksum, below
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = !ones_sum(&[&p]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let ulen = (8 + payload.len()) as u16;
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&ulen.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    if checksum {
        let pseudo = [
            &src.octets()[..],
            &dst.octets(),
            &[0, 17],
            &ulen.to_be_bytes(),
        ]
        .concat();
        let c = match !ones_sum(&[&pseudo, &p[20..]]) {
            0 => 0xffff,
            c => c,
        };
        p[26..28].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// A BOOTREQUEST from the client with the given message type and options (after the
/// magic cookie, End appended), padded to BOOTP's 300 bytes.
pub fn bootrequest(ciaddr: Ipv4Addr, options: &[u8]) -> Vec<u8> {
    let mut m = vec![
        1, // op: BOOTREQUEST
        1, // htype: Ethernet (10 Mb)
        6, // hlen
        0, // hops
    ];
    m.extend_from_slice(&XID);
    m.extend_from_slice(&[0, 0]); // secs
    m.extend_from_slice(&[0, 0]); // flags: unicast
    m.extend_from_slice(&ciaddr.octets()); // ciaddr: the client's address
    m.extend_from_slice(&[0; 4]); // yiaddr
    m.extend_from_slice(&[0; 4]); // siaddr
    m.extend_from_slice(&[0; 4]); // giaddr
    m.extend_from_slice(&CHADDR); // chaddr
    m.extend_from_slice(&[0; 10]); // chaddr padding
    m.extend_from_slice(&[0; 64]); // sname
    m.extend_from_slice(&[0; 128]); // file
    m.extend_from_slice(&[99, 130, 83, 99]); // magic cookie
    m.extend_from_slice(options);
    m.push(255); // End
    if m.len() < 300 {
        m.resize(300, 0);
    }
    m
}

/// The options of a Windows DHCPINFORM, message type first.
pub fn windows_options(message_type: u8) -> Vec<u8> {
    let mut o = vec![53, 1, message_type]; // DHCP message type
    o.extend_from_slice(&[61, 7, 1]); // client identifier: htype 1 + MAC
    o.extend_from_slice(&CHADDR);
    o.extend_from_slice(&[12, 9]); // host name
    o.extend_from_slice(b"DESKTOP-7");
    o.extend_from_slice(&[60, 8]); // vendor class identifier
    o.extend_from_slice(b"MSFT 5.0");
    o.extend_from_slice(&[55, WINDOWS_PRL.len() as u8]); // parameter request list
    o.extend_from_slice(&WINDOWS_PRL);
    o
}

/// The DHCPINFORM a Windows client sends after IPCP: from its address to the limited
/// broadcast, ciaddr set, UDP checksum set.
pub fn windows_inform() -> Vec<u8> {
    let dhcp = bootrequest(CLIENT, &windows_options(8));
    ipv4_udp(CLIENT, Ipv4Addr::BROADCAST, 68, 67, &dhcp, true)
}

/// The DHCP message of a reply (after IPv4 and UDP headers).
pub fn dhcp_of(reply: &[u8]) -> &[u8] {
    &reply[28..]
}

/// The options of a DHCP reply, in order (pads skipped, up to End).
pub fn options_of(reply: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let o = &dhcp_of(reply)[240..];
    let mut out = Vec::new();
    let mut i = 0;
    while i < o.len() {
        match o[i] {
            0 => i += 1,
            255 => break,
            code => {
                let len = usize::from(o[i + 1]);
                out.push((code, o[i + 2..i + 2 + len].to_vec()));
                i += 2 + len;
            }
        }
    }
    out
}
