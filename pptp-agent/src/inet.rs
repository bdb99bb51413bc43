//! The Internet checksum (RFC 1071), for the IPv4, UDP and ICMP headers the agent
//! writes itself (DHCPINFORM answers, the load generator's echo requests), and the
//! check that bytes a peer calls IPv4 are an IPv4 packet before their source
//! address is trusted.

use std::net::Ipv4Addr;

/// The addresses of a well-formed IPv4 packet and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet {
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    /// The header's length: what follows it starts there.
    pub header_len: usize,
    /// The header's total length: the packet is `bytes[..len]` (a link may pad).
    pub len: usize,
}

impl Ipv4Packet {
    /// Reads the header of `bytes` if they hold an IPv4 packet: version 4, a header
    /// length of at least 20 bytes within the total length, and a total length
    /// within `bytes`. Anything else (IPv6, garbage) has no IPv4 source address to
    /// check, so it must not reach the kernel as the peer's traffic.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let header: &[u8; 20] = bytes.first_chunk()?;
        let header_len = usize::from(header[0] & 0x0f) * 4;
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let valid =
            header[0] >> 4 == 4 && header_len >= 20 && header_len <= len && len <= bytes.len();
        valid.then(|| Self {
            source: Ipv4Addr::new(header[12], header[13], header[14], header[15]),
            destination: Ipv4Addr::new(header[16], header[17], header[18], header[19]),
            header_len,
            len,
        })
    }
}

/// One's-complement sum of `data` as 16-bit big-endian words (odd byte padded),
/// added to `acc`.
pub fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

/// Folds the carries of a [`sum16`] back into 16 bits.
pub fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum to write into a header whose checksum field is zero in `data`.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum16(0, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_ipv4_has_a_source() {
        let mut packet = [0u8; 28];
        packet[..20].copy_from_slice(&[
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 10, 203, 0, 113, 10,
        ]);
        let ok = Ipv4Packet::parse(&packet).unwrap();
        assert_eq!(ok.source, Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(ok.len, 28);
        // Padding after the packet is not part of it.
        let mut padded = packet.to_vec();
        padded.extend_from_slice(&[0; 4]);
        assert_eq!(Ipv4Packet::parse(&padded).unwrap().len, 28);
        let broken = |i: usize, v: u8| {
            let mut p = packet;
            p[i] = v;
            Ipv4Packet::parse(&p)
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
        assert_eq!(Ipv4Packet::parse(&packet[..19]), None);
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum16(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn a_header_with_its_checksum_sums_to_all_ones() {
        let mut header = [
            0x45, 0x00, 0x00, 0x54, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0, 0, 192, 0, 2, 10, 203,
            0, 113, 10,
        ];
        let sum = checksum(&header);
        header[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(fold(sum16(0, &header)), 0xffff);
        // An odd length pads with a zero byte.
        assert_eq!(fold(sum16(0, &[0xab])), 0xab00);
    }
}
