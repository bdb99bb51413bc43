//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624), on
//! 16-bit words read big-endian: the IPv4 header checksum XDP writes and the agent
//! writes and checks, the TCP checksum of a clamped MSS, the agent's UDP and ICMP
//! checksums.

/// One's-complement sum of `data` as big-endian 16-bit words (an odd last byte is
/// padded with zero), added to `acc`. Exact for up to 128 KiB of data; [`fold`]
/// the result.
#[inline(always)]
pub fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut i = 0;
    while i + 1 < data.len() {
        acc += u16::from_be_bytes([data[i], data[i + 1]]) as u32;
        i += 2;
    }
    if i < data.len() {
        acc += (data[i] as u32) << 8;
    }
    acc
}

/// Folds the carries of a [`sum16`] back into 16 bits (two folds suffice for any
/// `u32`).
#[inline(always)]
pub fn fold(acc: u32) -> u16 {
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// The checksum to write into data whose checksum field is zero.
#[inline(always)]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum16(0, data))
}

/// Whether data that includes its checksum field verifies (sums to all ones).
#[inline(always)]
pub fn verifies(acc: u32, data: &[u8]) -> bool {
    fold(sum16(acc, data)) == 0xffff
}

/// The sum of the IPv4 pseudo-header of a `len`-byte TCP or UDP segment (RFC 793
/// §3.1, RFC 768), to start [`sum16`] of the segment with.
#[inline(always)]
pub fn pseudo_header(src: [u8; 4], dst: [u8; 4], protocol: u8, len: u16) -> u32 {
    sum16(sum16(0, &src), &dst) + protocol as u32 + len as u32
}

/// The checksum after one 16-bit word of the covered data changes from `old` to
/// `new` (RFC 1624, eqn. 3).
#[inline(always)]
pub fn replace16(check: u16, old: u16, new: u16) -> u16 {
    !fold(!check as u32 + !old as u32 + new as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum16(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn a_published_ipv4_header() {
        // The example header of Wikipedia's "IPv4 header checksum" (192.168.0.1 ->
        // 192.168.0.199, UDP, DF, TTL 64): its checksum is b861.
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0x00,
            0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&header), 0xb861);
        header[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verifies(0, &header));
        // An odd length pads with a zero byte.
        assert_eq!(fold(sum16(0, &[0xab])), 0xab00);
        assert_eq!(sum16(0, &[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn folding_is_exact_for_every_carry() {
        for acc in [
            0,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0xffff_ffff,
            0x8000_7fff,
            0x1234_5678,
        ] {
            let mut looped = acc;
            while looped >> 16 != 0 {
                looped = (looped & 0xffff) + (looped >> 16);
            }
            assert_eq!(fold(acc), looped as u16, "{acc:#x}");
        }
    }

    #[test]
    fn the_pseudo_header_of_a_known_udp_datagram() {
        // UDP 192.0.2.1:67 -> 192.0.2.10:68, 8 bytes, no data; the checksum computed
        // apart from this code (Python, RFC 1071's algorithm) is 7b4b.
        let mut udp = [0, 67, 0, 68, 0, 8, 0, 0];
        let acc = pseudo_header([192, 0, 2, 1], [192, 0, 2, 10], 17, 8);
        assert_eq!(acc, 0xc000 + 0x0201 + 0xc000 + 0x020a + 17 + 8);
        let sum = !fold(sum16(acc, &udp));
        assert_eq!(sum, 0x7b4b);
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        assert!(verifies(acc, &udp));
    }

    #[test]
    fn an_incremental_update_equals_a_recomputed_checksum() {
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0x00,
            0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let check = checksum(&header);
        // (offset of the word, new value): TTL/protocol, total length, identification.
        for (at, new) in [(8, 0x3f11u16), (2, 0xffff), (4, 0x1234), (6, 0x0000)] {
            let old = u16::from_be_bytes([header[at], header[at + 1]]);
            let mut changed = header;
            changed[at..at + 2].copy_from_slice(&new.to_be_bytes());
            assert_eq!(
                replace16(check, old, new),
                checksum(&changed),
                "word at {at}: {old:#x} -> {new:#x}"
            );
        }
    }
}
