//! The IPv4 header (RFC 791): the view XDP classifies and forwards by, the one rule
//! for "these bytes are an IPv4 packet" (XDP's decapsulation and encapsulation, the
//! agent's [`Packet::parse`] before it trusts a source address), the header writer
//! (XDP's outer header, the agent's DHCPINFORM answers and echo requests, the test
//! fixtures) and the TTL decrement of forwarding.

use core::net::Ipv4Addr;

use super::{checksum, get_addr, get16, put_addr, put16};

pub mod field {
    use crate::wire::Field;

    /// Version (high nibble) and header length in 32-bit words (low nibble).
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    /// Flags (high three bits) and fragment offset.
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options (IHL 5).
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// Flags/fragment offset: "don't fragment".
pub const FLAG_DF: u16 = 0x4000;
/// Flags/fragment offset: "more fragments".
pub const FLAG_MF: u16 = 0x2000;
/// Flags/fragment offset: the offset bits.
pub const OFFSET_MASK: u16 = 0x1fff;

/// TTL of the packets we originate.
pub const DEFAULT_TTL: u8 = 64;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_GRE: u8 = 47;

/// The first [`HEADER_LEN`] bytes of an IPv4 header, as read from a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header(pub [u8; HEADER_LEN]);

impl Header {
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.0[field::VER_IHL] >> 4
    }

    /// The header's length in bytes, options included (IHL × 4).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        ((self.0[field::VER_IHL] & 0x0f) as usize) * 4
    }

    /// The total length field: header and payload.
    #[inline(always)]
    pub fn total_len(&self) -> usize {
        get16(&self.0, field::LENGTH) as usize
    }

    /// The flags and fragment offset field.
    #[inline(always)]
    pub fn flags_offset(&self) -> u16 {
        get16(&self.0, field::FLG_OFF)
    }

    /// A fragment other than the first: no transport header follows.
    #[inline(always)]
    pub fn is_later_fragment(&self) -> bool {
        self.flags_offset() & OFFSET_MASK != 0
    }

    /// A fragment of any kind (more fragments follow, or an offset).
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }

    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.0[field::TTL]
    }

    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.0[field::PROTOCOL]
    }

    #[inline(always)]
    pub fn src(&self) -> [u8; 4] {
        get_addr(&self.0, field::SRC_ADDR)
    }

    #[inline(always)]
    pub fn dst(&self) -> [u8; 4] {
        get_addr(&self.0, field::DST_ADDR)
    }

    /// Whether the header is of a version 4 packet with a header length of at least 20
    /// bytes ([`header_len`](Self::header_len) is where the payload starts).
    #[inline(always)]
    pub fn is_ipv4(&self) -> bool {
        self.version() == 4 && self.header_len() >= HEADER_LEN
    }

    /// Whether this header starts a well-formed IPv4 packet within `available`
    /// bytes: [`is_ipv4`](Self::is_ipv4), a header length within the total length,
    /// and a total length within `available` (a link may pad after it). Anything else
    /// (IPv6, garbage) has no IPv4 source address to check.
    #[inline(always)]
    pub fn is_packet_within(&self, available: usize) -> bool {
        let total = self.total_len();
        self.is_ipv4() && self.header_len() <= total && total <= available
    }

    /// The TTL, protocol and checksum fields (bytes 8..12) after one hop: the TTL
    /// one lower, the checksum updated (RFC 1624). The caller has checked that the
    /// TTL is above 1.
    #[inline(always)]
    pub fn decremented_ttl(&self) -> [u8; 4] {
        let old = u16::from_be_bytes([self.0[field::TTL], self.0[field::PROTOCOL]]);
        let new = old - 0x0100;
        let check = checksum::replace16(get16(&self.0, field::CHECKSUM), old, new);
        let [t, p] = new.to_be_bytes();
        let [c0, c1] = check.to_be_bytes();
        [t, p, c0, c1]
    }
}

/// The header of a packet to write (no options).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub protocol: u8,
    pub ttl: u8,
    pub ident: u16,
    /// Flags and fragment offset.
    pub flags_offset: u16,
    /// Bytes after the header.
    pub payload_len: u16,
}

impl Repr {
    /// A packet we originate: DF set, so the identification may stay zero (RFC 6864
    /// §4.1, atomic datagrams), TTL [`DEFAULT_TTL`].
    #[inline(always)]
    pub const fn new(src: [u8; 4], dst: [u8; 4], protocol: u8, payload_len: u16) -> Self {
        Self {
            src,
            dst,
            protocol,
            ttl: DEFAULT_TTL,
            ident: 0,
            flags_offset: FLAG_DF,
            payload_len,
        }
    }

    /// The header's bytes, checksum included.
    #[inline(always)]
    pub fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0; HEADER_LEN];
        h[field::VER_IHL] = 0x45;
        put16(&mut h, field::LENGTH, HEADER_LEN as u16 + self.payload_len);
        put16(&mut h, field::IDENT, self.ident);
        put16(&mut h, field::FLG_OFF, self.flags_offset);
        h[field::TTL] = self.ttl;
        h[field::PROTOCOL] = self.protocol;
        put_addr(&mut h, field::SRC_ADDR, self.src);
        put_addr(&mut h, field::DST_ADDR, self.dst);
        let check = checksum::checksum(&h);
        put16(&mut h, field::CHECKSUM, check);
        h
    }
}

/// The addresses and lengths of a well-formed IPv4 packet (the agent's view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    /// The header's length: what follows it starts there.
    pub header_len: usize,
    /// The header's total length: the packet is `bytes[..len]` (a link may pad).
    pub len: usize,
}

impl Packet {
    /// Reads the header of `bytes` if they hold an IPv4 packet
    /// ([`Header::is_packet_within`] their length).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let header = Header(*bytes.first_chunk()?);
        header.is_packet_within(bytes.len()).then(|| Self {
            source: header.src().into(),
            destination: header.dst().into(),
            header_len: header.header_len(),
            len: header.total_len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ICMP packet of 28 bytes 192.0.2.10 -> 203.0.113.10.
    const PACKET: [u8; 28] = {
        let mut p = [0; 28];
        let h = [
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 10, 203, 0, 113, 10,
        ];
        let mut i = 0;
        while i < 20 {
            p[i] = h[i];
            i += 1;
        }
        p
    };

    #[test]
    fn only_well_formed_ipv4_has_a_source() {
        let ok = Packet::parse(&PACKET).unwrap();
        assert_eq!(ok.source, Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(ok.destination, Ipv4Addr::new(203, 0, 113, 10));
        assert_eq!((ok.header_len, ok.len), (20, 28));
        // Padding after the packet is not part of it.
        let mut padded = [0; 32];
        padded[..28].copy_from_slice(&PACKET);
        assert_eq!(Packet::parse(&padded).unwrap().len, 28);
        let broken = |i: usize, v: u8| {
            let mut p = PACKET;
            p[i] = v;
            Packet::parse(&p)
        };
        assert_eq!(
            broken(0, 0x65),
            None,
            "IPv6 with the client's address at 12..16"
        );
        assert_eq!(broken(0, 0x44), None, "header shorter than 20 bytes");
        assert_eq!(broken(0, 0x48), None, "header longer than the packet");
        assert_eq!(broken(3, 29), None, "total length beyond the bytes");
        assert_eq!(broken(3, 19), None, "total length inside the header");
        assert_eq!(Packet::parse(&PACKET[..19]), None);
    }

    #[test]
    fn the_view_reads_every_field() {
        let mut bytes = PACKET;
        bytes[6..8].copy_from_slice(&0x2000u16.to_be_bytes());
        let h = Header(*bytes.first_chunk().unwrap());
        assert_eq!((h.version(), h.header_len(), h.total_len()), (4, 20, 28));
        assert_eq!((h.ttl(), h.protocol()), (64, PROTO_ICMP));
        assert_eq!((h.src(), h.dst()), ([192, 0, 2, 10], [203, 0, 113, 10]));
        assert!(h.is_fragment() && !h.is_later_fragment());
        let mut later = h;
        later.0[7] = 1;
        assert!(later.is_later_fragment());
    }

    #[test]
    fn the_writer_writes_what_we_originate() {
        let repr = Repr::new([198, 51, 100, 1], [198, 51, 100, 10], PROTO_GRE, 100);
        let h = repr.header();
        // Checksum computed apart from this code (Python, RFC 1071's algorithm).
        assert_eq!(
            h,
            [
                0x45, 0, 0, 120, 0, 0, 0x40, 0, 64, 47, 0xe5, 0xe4, 198, 51, 100, 1, 198, 51, 100,
                10
            ]
        );
        let view = Header(h);
        assert!(view.is_packet_within(120) && !view.is_packet_within(119));
        let other = Repr {
            ttl: 128,
            ident: 0x1234,
            flags_offset: 0x0010,
            ..repr
        };
        let h = other.header();
        assert_eq!((h[8], &h[4..8]), (128, &[0x12, 0x34, 0x00, 0x10][..]));
        assert!(checksum::verifies(0, &h));
    }

    #[test]
    fn a_hop_lowers_the_ttl_and_keeps_the_checksum_valid() {
        let mut h = Repr::new([192, 0, 2, 10], [203, 0, 113, 10], PROTO_UDP, 8).header();
        for ttl in (2..=64).rev() {
            assert_eq!(h[8], ttl);
            let fields = Header(h).decremented_ttl();
            h[8..12].copy_from_slice(&fields);
            assert_eq!(h[8], ttl - 1);
            assert!(checksum::verifies(0, &h), "TTL {ttl}");
        }
    }
}
